//! Responder feedback: labels on incidents (`useful`, `noisy`, `late`, `duplicate`,
//! `wrong-cause`, and optionally the actual root-cause service), joined to the incidents the job
//! wrote, and what they say: how many incidents were labelled, how many were noise, and how often
//! the ranked cause was right. Read by `incidentflow eval --feedback` from a file, and by a
//! running job from a file or topic (`--feedback`, into `ops::feedback_book`) for `/metrics`.
//!
//! One label per incident counts: the last one read (a responder may correct theirs). The root
//! cause is judged right when the label names the actual root-cause service and the incident
//! ranked it first, or when the label is `useful` and names none (the responder accepted the
//! incident as it was); wrong when it names another service, or the label is `wrong-cause`.
//! `noisy`, `late` and `duplicate` without a service do not judge the cause.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::truth::ratio;
use serde::{Deserialize, Serialize};

/// What a responder said of an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelKind {
    /// A real problem, worth the page.
    Useful,
    /// Not a problem.
    Noisy,
    /// A real problem, reported too late to help.
    Late,
    /// Another incident already covered it.
    Duplicate,
    /// A real problem with the wrong likely cause.
    WrongCause,
}

impl LabelKind {
    /// The label as written.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelKind::Useful => "useful",
            LabelKind::Noisy => "noisy",
            LabelKind::Late => "late",
            LabelKind::Duplicate => "duplicate",
            LabelKind::WrongCause => "wrong-cause",
        }
    }
}

/// One feedback record (a JSON line).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The incident.
    pub incident_id: String,
    /// What the responder said.
    pub label: LabelKind,
    /// The service that was the actual root cause, when the responder knows it.
    #[serde(default)]
    pub root_cause_service: Option<String>,
    /// Who labelled it (kept for the record, not used).
    #[serde(default)]
    pub by: Option<String>,
    /// When (kept for the record, not used).
    #[serde(default)]
    pub at: Option<String>,
    /// A free comment (kept for the record, not used).
    #[serde(default)]
    pub comment: Option<String>,
}

/// Parses a feedback line, saying what is wrong with it.
pub fn parse(line: &[u8]) -> Result<Label, String> {
    let label: Label = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if label.incident_id.trim().is_empty() {
        return Err("incident_id is empty".into());
    }
    Ok(label)
}

/// How often the ranked cause was right, for one kind of label.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Judged {
    /// Labels that judge the cause.
    pub judged: u64,
    /// Of which the cause was right.
    pub right: u64,
    /// right / judged (0 when none).
    pub accuracy: f64,
}

/// What the feedback says.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FeedbackFigures {
    /// Incidents the job wrote.
    pub incidents: u64,
    /// Of which labelled.
    pub labelled: u64,
    /// labelled / incidents.
    pub coverage: f64,
    /// Labels on incidents the job did not write (another run, a typo).
    pub unmatched_labels: u64,
    /// Labelled incidents by label.
    pub by_label: BTreeMap<&'static str, u64>,
    /// noisy / labelled.
    pub noisy_rate: f64,
    /// Root-cause judgements by label, and over all labels ("all").
    pub root_cause: BTreeMap<&'static str, Judged>,
    /// Feedback lines refused (each logged with its position and reason).
    pub invalid: u64,
}

/// Joins `labels` (the last per incident) to `incidents` (id -> ranked causes).
pub fn figures(
    labels: &BTreeMap<String, Label>,
    incidents: &BTreeMap<String, Vec<String>>,
) -> FeedbackFigures {
    let mut f = FeedbackFigures {
        incidents: incidents.len() as u64,
        ..FeedbackFigures::default()
    };
    for (id, label) in labels {
        let Some(causes) = incidents.get(id) else {
            f.unmatched_labels += 1;
            continue;
        };
        f.labelled += 1;
        *f.by_label.entry(label.label.as_str()).or_default() += 1;
        let right = match (&label.root_cause_service, label.label) {
            (Some(actual), _) => Some(causes.first() == Some(actual)),
            (None, LabelKind::Useful) => Some(true),
            (None, LabelKind::WrongCause) => Some(false),
            (None, _) => None,
        };
        if let Some(right) = right {
            for key in [label.label.as_str(), "all"] {
                let j = f.root_cause.entry(key).or_default();
                j.judged += 1;
                j.right += u64::from(right);
            }
        }
    }
    for j in f.root_cause.values_mut() {
        j.accuracy = ratio(j.right, j.judged);
    }
    f.coverage = ratio(f.labelled, f.incidents);
    f.noisy_rate = ratio(f.by_label.get("noisy").copied().unwrap_or(0), f.labelled);
    f
}

/// The feedback section of a report.
pub fn render(f: &FeedbackFigures) -> String {
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "feedback: {} of {} incidents labelled (coverage {}); {} label{} on incidents not written here; {} invalid",
        f.labelled,
        f.incidents,
        pct(f.coverage),
        f.unmatched_labels,
        if f.unmatched_labels == 1 { "" } else { "s" },
        f.invalid
    );
    let by: Vec<String> = f.by_label.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        s,
        "  labels: {}   noisy rate {}",
        by.join(", "),
        pct(f.noisy_rate)
    );
    for (label, j) in &f.root_cause {
        let _ = writeln!(
            s,
            "  root cause right {:<12} {} of {} ({})",
            label,
            j.right,
            j.judged,
            pct(j.accuracy)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn labels(lines: &[&str]) -> BTreeMap<String, Label> {
        lines
            .iter()
            .map(|l| parse(l.as_bytes()).unwrap())
            .map(|l| (l.incident_id.clone(), l))
            .collect()
    }

    #[test]
    fn labels_join_incidents_and_judge_the_ranked_cause() {
        let incidents: BTreeMap<String, Vec<String>> = [
            ("a", vec!["db", "api"]),
            ("b", vec!["api"]),
            ("c", vec!["cache"]),
            ("d", vec!["web"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        let f = figures(
            &labels(&[
                r#"{"incident_id":"a","label":"useful","root_cause_service":"db"}"#,
                r#"{"incident_id":"b","label":"wrong-cause","root_cause_service":"db"}"#,
                r#"{"incident_id":"c","label":"noisy"}"#,
                r#"{"incident_id":"zzz","label":"useful"}"#,
            ]),
            &incidents,
        );
        assert_eq!((f.incidents, f.labelled, f.unmatched_labels), (4, 3, 1));
        assert_eq!(f.coverage, 0.75);
        assert!((f.noisy_rate - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(f.root_cause["all"].judged, 2);
        assert_eq!(f.root_cause["all"].right, 1);
        assert_eq!(f.root_cause["useful"].accuracy, 1.0);
        assert_eq!(f.root_cause["wrong-cause"].accuracy, 0.0);
        assert!(!f.root_cause.contains_key("noisy"));
    }

    #[test]
    fn bad_labels_say_what_is_wrong() {
        let err = parse(br#"{"incident_id":"a","label":"meh"}"#).unwrap_err();
        assert!(err.contains("unknown variant `meh`"), "{err}");
        let err = parse(br#"{"incident_id":"a","label":"noisy","severity":1}"#).unwrap_err();
        assert!(err.contains("unknown field `severity`"), "{err}");
        let err = parse(br#"{"label":"noisy"}"#).unwrap_err();
        assert!(err.contains("missing field `incident_id`"), "{err}");
    }
}
