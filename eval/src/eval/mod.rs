//! `incidentflow eval`: scores the job's anomalies (and incidents, when given) against a
//! ground-truth file of injected faults, as produced by `incidentflow-loadgen`.
//!
//! The rules, also printed in the report:
//! * An anomaly **matches** a fault when its service is one the fault affected and its time lies
//!   in [start, end + grace]. Anomaly precision = matching anomalies / anomalies; a fault is
//!   **detected** when at least one anomaly matches it; recall = detected faults / faults;
//!   service recall = affected services with a matching anomaly / affected services.
//! * Detection delay = the first matching anomaly's time - the fault's start (event time).
//! * Incidents are read as versions and grouped by `incident_id` (the newest version gives the
//!   services and causes; the span runs from `created_at` to the last `updated_at`). An incident
//!   **matches** a fault when the spans overlap (with the grace) and it contains the root service.
//!   An incident the job resolved as `merged_into` another counts as that one (the job corrected
//!   the duplicate itself; the survivor's span starts at the earlier of the two), and the report
//!   says how many merged.
//!   Incident precision = incidents matching a fault / incidents; recall = faults matched by an
//!   incident / faults; duplicates = incidents matching a fault beyond the first; compression =
//!   anomalies / incidents; root cause top-1 / top-3 = the fault's first matching incident ranks
//!   the root service first / in its first three.
//!
//! | file | what it holds |
//! |---|---|
//! | this one | [`evaluate`] (the truth's spans, then each scoring) and [`run`] (files in, report out) |
//! | `report` | the report and its parts: [`EvalReport`], [`FaultScore`], the figures |
//! | `anomalies` | anomalies matched to faults, and the anomaly figures |
//! | `incidents` | incident versions grouped, merges folded, matched to faults, roots ranked |
//! | `render` | the report as text |
//! | `files` | the files read, line by line, with the position of a bad line |

mod anomalies;
mod files;
mod incidents;
mod render;
mod report;

use std::path::Path;

use incidentflow_dataflows::time::{parse_rfc3339, Time};

pub use crate::eval::incidents::IncidentVersion;
pub use crate::eval::render::render;
pub use crate::eval::report::{AnomalyFigures, EvalReport, FaultScore, IncidentFigures};
use crate::truth::{AnomalyRef, TruthFault};
use crate::EvalError;

/// Scores `anomalies` and `incidents` (either may be absent) against `truth`.
pub fn evaluate(
    truth: &[TruthFault],
    anomalies: Option<&[AnomalyRef]>,
    incidents: Option<&[IncidentVersion]>,
    grace_ms: u64,
) -> Result<EvalReport, String> {
    let spans = fault_spans(truth, grace_ms)?;
    let mut per_fault: Vec<FaultScore> = truth.iter().map(FaultScore::unscored).collect();
    let anomaly_figures = anomalies
        .map(|anomalies| anomalies::score_anomalies(truth, &spans, anomalies, &mut per_fault));
    let incident_figures = incidents.map(|versions| {
        incidents::score_incidents(truth, &spans, versions, anomalies, &mut per_fault)
    });
    Ok(EvalReport {
        faults: truth.len(),
        grace_ms,
        anomalies: anomaly_figures,
        incidents: incident_figures,
        per_fault,
        detectors: Vec::new(),
        feedback: None,
        with_truth: true,
    })
}

/// Each fault's [start, end + grace], or the first fault whose times are not RFC 3339.
fn fault_spans(truth: &[TruthFault], grace_ms: u64) -> Result<Vec<(Time, Time)>, String> {
    truth
        .iter()
        .map(|f| {
            Ok((
                parse_rfc3339(&f.start).map_err(|e| format!("{}: {e:?}", f.fault_id))?,
                parse_rfc3339(&f.end).map_err(|e| format!("{}: {e:?}", f.fault_id))? + grace_ms,
            ))
        })
        .collect()
}

/// What `eval` reads and how.
pub struct EvalInputs<'a> {
    /// Ground truth.
    pub truth: Option<&'a Path>,
    /// The champion's anomalies.
    pub anomalies: Option<&'a Path>,
    /// The challengers' anomalies.
    pub challengers: Option<&'a Path>,
    /// Incident versions.
    pub incidents: Option<&'a Path>,
    /// Responder labels.
    pub feedback: Option<&'a Path>,
    /// Grace after a fault's end (ms).
    pub grace_ms: u64,
    /// Per-sample anomalies of one series this close are one episode (ms).
    pub episode_gap_ms: u64,
    /// The time between a series' samples (ms), for delays in intervals.
    pub interval_ms: u64,
}

/// Reads the files, evaluates, prints and writes the JSON report.
pub fn run(inputs: EvalInputs<'_>, out: Option<&Path>) -> Result<String, EvalError> {
    let EvalInputs {
        truth,
        anomalies,
        challengers,
        incidents,
        feedback,
        grace_ms,
        episode_gap_ms,
        interval_ms,
    } = inputs;
    let faults: Vec<TruthFault> = match truth {
        None => Vec::new(),
        Some(truth) => files::read_truth(truth)?,
    };
    let anomalies = match anomalies {
        None => None,
        Some(path) => Some(files::read_anomalies(path, "anomalies")?),
    };
    let incidents = match incidents {
        None => None,
        Some(path) => Some(files::read_incidents(path)?),
    };
    let mut report = evaluate(
        &faults,
        anomalies.as_deref(),
        incidents.as_deref(),
        grace_ms,
    )
    .map_err(EvalError::InvalidFile)?;
    report.with_truth = truth.is_some();
    if let (Some(_), Some(champion)) = (truth, &anomalies) {
        report.detectors = compare_detectors(
            &faults,
            champion,
            challengers,
            grace_ms,
            episode_gap_ms,
            interval_ms,
        )?;
    }
    if let (Some(path), Some(incidents)) = (feedback, &incidents) {
        report.feedback = Some(files::feedback_figures(path, incidents)?);
    }
    if let Some(out) = out {
        write_json(&report, out)?;
    }
    Ok(render(&report))
}

/// The champion and the challengers side by side, as episodes, over the days the anomalies and
/// the faults span (the challengers read from their file, when given); none when a fault's times
/// cannot be read.
fn compare_detectors(
    faults: &[TruthFault],
    champion: &[AnomalyRef],
    challengers: Option<&Path>,
    grace_ms: u64,
    episode_gap_ms: u64,
    interval_ms: u64,
) -> Result<Vec<crate::compare::DetectorRow>, EvalError> {
    let mut all = champion.to_vec();
    if let Some(path) = challengers {
        all.extend(files::read_anomalies(path, "challengers")?);
    }
    let spans: Vec<(Time, Time)> = faults
        .iter()
        .filter_map(|f| {
            let start = parse_rfc3339(&f.start).ok()?;
            Some((start, parse_rfc3339(&f.end).ok()? + grace_ms))
        })
        .collect();
    if spans.len() != faults.len() {
        return Ok(Vec::new());
    }
    let times = all
        .iter()
        .map(|a| a.timestamp)
        .chain(spans.iter().flat_map(|(a, b)| [*a, *b]));
    let (first, last) = times.fold((Time::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let days = last.saturating_sub(first) as f64 / 86_400_000.0;
    let champion = champion
        .first()
        .map_or("zscore".to_string(), |a| a.detector.clone());
    let episodes = crate::compare::episodes(&all, episode_gap_ms);
    Ok(crate::compare::compare(
        faults,
        &spans,
        &episodes,
        &champion,
        interval_ms,
        days,
    ))
}

/// Writes the report as pretty JSON to `out`.
fn write_json(report: &EvalReport, out: &Path) -> Result<(), EvalError> {
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    std::fs::write(out, json + "\n").map_err(|source| EvalError::Output {
        what: "the evaluation",
        name: out.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Time = 1_795_392_000_000;

    fn truth() -> Vec<TruthFault> {
        let f = |id: &str, root: &str, affected: &[&str], start: Time, end: Time| TruthFault {
            fault_id: id.into(),
            kind: "latency_spike".into(),
            root_service: root.into(),
            affected_services: affected.iter().map(|s| s.to_string()).collect(),
            start: incidentflow_dataflows::time::format_rfc3339(start),
            end: incidentflow_dataflows::time::format_rfc3339(end),
            ..TruthFault::default()
        };
        vec![
            f("f1", "db", &["db", "api", "web"], T + 600_000, T + 900_000),
            f("f2", "cache", &["cache"], T + 3_600_000, T + 3_900_000),
        ]
    }

    fn anomaly(service: &str, t: Time) -> AnomalyRef {
        AnomalyRef {
            service: service.into(),
            series: format!("shop/{service}/latency"),
            timestamp: t,
            detector: "zscore".into(),
            episode: None,
        }
    }

    fn incident(
        id: &str,
        version: u64,
        from: Time,
        to: Time,
        services: &[&str],
        causes: &[&str],
    ) -> IncidentVersion {
        IncidentVersion {
            incident_id: id.into(),
            version,
            created_at: from,
            updated_at: to,
            services: services.iter().map(|s| s.to_string()).collect(),
            causes: causes.iter().map(|s| s.to_string()).collect(),
            merged_into: None,
        }
    }

    #[test]
    fn a_perfect_answer_scores_100_percent() {
        let anomalies = vec![
            anomaly("db", T + 600_000),
            anomaly("api", T + 630_000),
            anomaly("web", T + 660_000),
            anomaly("cache", T + 3_630_000),
        ];
        let incidents = vec![
            incident("i1", 1, T + 600_000, T + 600_000, &["db"], &["db"]),
            incident(
                "i1",
                2,
                T + 600_000,
                T + 960_000,
                &["db", "api", "web"],
                &["db", "api", "web"],
            ),
            incident(
                "i2",
                1,
                T + 3_630_000,
                T + 3_950_000,
                &["cache"],
                &["cache"],
            ),
        ];
        let r = evaluate(&truth(), Some(&anomalies), Some(&incidents), 300_000).unwrap();
        let a = r.anomalies.unwrap();
        assert_eq!((a.precision, a.recall, a.service_recall), (1.0, 1.0, 1.0));
        assert_eq!(a.delay_p50_ms, Some(0));
        assert_eq!(a.delay_p90_ms, Some(30_000));
        let i = r.incidents.unwrap();
        assert_eq!((i.precision, i.recall, i.duplicates), (1.0, 1.0, 0));
        assert_eq!((i.root_cause_top1, i.root_cause_top3), (1.0, 1.0));
        assert_eq!((i.propagating_top1, i.propagating_top3), (1.0, 1.0));
        assert_eq!(i.compression, Some(2.0));
        assert_eq!(i.total, 2, "versions of one incident count once");
    }

    #[test]
    fn an_empty_answer_scores_zero() {
        let r = evaluate(&truth(), Some(&[]), Some(&[]), 300_000).unwrap();
        let a = r.anomalies.unwrap();
        assert_eq!(
            (a.precision, a.recall, a.service_recall, a.delay_p50_ms),
            (0.0, 0.0, 0.0, None)
        );
        let i = r.incidents.unwrap();
        assert_eq!(
            (i.precision, i.recall, i.root_cause_top1, i.duplicates),
            (0.0, 0.0, 0.0, 0)
        );
    }

    #[test]
    fn duplicates_false_positives_and_wrong_causes_are_counted() {
        let anomalies = vec![
            anomaly("db", T + 660_000),
            anomaly("web", T + 2_000_000),
            anomaly("cache", T + 9_000_000),
        ];
        let incidents = vec![
            incident(
                "i1",
                1,
                T + 660_000,
                T + 900_000,
                &["db", "api"],
                &["api", "db"],
            ),
            incident("i2", 1, T + 700_000, T + 800_000, &["db"], &["db"]),
            incident(
                "i3",
                1,
                T + 9_000_000,
                T + 9_100_000,
                &["cache"],
                &["cache"],
            ),
        ];
        let r = evaluate(&truth(), Some(&anomalies), Some(&incidents), 300_000).unwrap();
        let a = r.anomalies.unwrap();
        assert!((a.precision - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(a.recall, 0.5);
        assert_eq!(a.delay_p50_ms, Some(60_000));
        let i = r.incidents.unwrap();
        assert_eq!(
            i.duplicates, 1,
            "two incidents for one fault: one duplicate"
        );
        assert_eq!(i.matching, 2);
        assert!((i.precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(i.recall, 0.5);
        assert_eq!(i.root_cause_top1, 0.0, "the first incident blames api");
        assert_eq!(i.root_cause_top3, 1.0);
        assert_eq!(r.per_fault[0].root_rank, Some(2));
        assert_eq!(r.per_fault[0].incidents, 2);
    }

    #[test]
    fn an_incident_merged_into_another_counts_as_the_survivor() {
        let mut absorbed = incident("i2", 2, T + 610_000, T + 700_000, &["db"], &["db"]);
        absorbed.merged_into = Some("i1".into());
        let incidents = vec![
            incident("i2", 1, T + 610_000, T + 610_000, &["db"], &["db"]),
            absorbed,
            incident(
                "i1",
                3,
                T + 650_000,
                T + 900_000,
                &["api", "db"],
                &["db", "api"],
            ),
        ];
        let r = evaluate(&truth(), None, Some(&incidents), 300_000).unwrap();
        let i = r.incidents.unwrap();
        assert_eq!((i.total, i.merged, i.duplicates), (1, 1, 0));
        assert_eq!(i.matching, 1);
        assert_eq!(r.per_fault[0].root_rank, Some(1), "ranked by the survivor");
        // Without the merge the same versions are two incidents for one fault.
        let unmerged: Vec<_> = incidents
            .into_iter()
            .map(|mut v| {
                v.merged_into = None;
                v
            })
            .collect();
        let i = evaluate(&truth(), None, Some(&unmerged), 300_000)
            .unwrap()
            .incidents
            .unwrap();
        assert_eq!((i.total, i.merged, i.duplicates), (2, 0, 1));
    }
}
