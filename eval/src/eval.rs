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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use incidentflow_dataflows::time::{format_duration, parse_rfc3339, Time};
use serde::Serialize;

use crate::truth::{percentile, ratio, AnomalyRef, TruthFault};
use crate::EvalError;
use incidentflow_dataflows::incident::IncidentRecord;

/// What eval reads of an incident version.
#[derive(Clone, Debug)]
pub struct IncidentVersion {
    /// Id.
    pub incident_id: String,
    /// Version number (later wins).
    pub version: u64,
    /// Start.
    pub created_at: Time,
    /// This version's time.
    pub updated_at: Time,
    /// Member services.
    pub services: Vec<String>,
    /// Ranked causes, most likely first.
    pub causes: Vec<String>,
    /// The incident this one was merged into, if it was.
    pub merged_into: Option<String>,
}

/// Per-fault results.
#[derive(Clone, Debug, Serialize)]
pub struct FaultScore {
    /// Id.
    pub fault_id: String,
    /// Kind.
    pub kind: String,
    /// Root.
    pub root_service: String,
    /// Matching anomalies.
    pub anomalies: u64,
    /// Affected services with a matching anomaly, and how many were affected.
    pub services_detected: (usize, usize),
    /// First matching anomaly minus start, in ms.
    pub detection_delay_ms: Option<u64>,
    /// Matching incidents.
    pub incidents: u64,
    /// Rank of the root among the first matching incident's causes (1-based).
    pub root_rank: Option<usize>,
}

/// The whole evaluation.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// Faults in the truth.
    pub faults: usize,
    /// Grace after a fault's end, ms.
    pub grace_ms: u64,
    /// Anomaly figures (when anomalies were given).
    pub anomalies: Option<AnomalyFigures>,
    /// Incident figures (when incidents were given).
    pub incidents: Option<IncidentFigures>,
    /// One row per fault.
    pub per_fault: Vec<FaultScore>,
    /// Champion and challengers as episodes (with --truth and --anomalies).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<crate::compare::DetectorRow>,
    /// What responders' labels say (with --feedback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<crate::feedback::FeedbackFigures>,
    /// Whether a ground truth was given (without one, only the feedback is reported).
    #[serde(skip)]
    pub with_truth: bool,
}

/// Anomaly-level figures.
#[derive(Clone, Debug, Serialize)]
pub struct AnomalyFigures {
    /// Anomalies read.
    pub total: u64,
    /// Anomalies matching a fault.
    pub matching: u64,
    /// matching / total.
    pub precision: f64,
    /// Faults detected / faults.
    pub recall: f64,
    /// Affected services detected / affected services.
    pub service_recall: f64,
    /// Anomalies by detector.
    pub by_detector: BTreeMap<String, u64>,
    /// Detection delay percentiles (ms).
    pub delay_p50_ms: Option<u64>,
    /// 90th percentile.
    pub delay_p90_ms: Option<u64>,
}

/// Incident-level figures.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentFigures {
    /// Distinct incidents (merged ones counted as their survivor).
    pub total: u64,
    /// Incidents resolved as merged into another.
    pub merged: u64,
    /// Incidents matching a fault.
    pub matching: u64,
    /// matching / total.
    pub precision: f64,
    /// Faults with a matching incident / faults.
    pub recall: f64,
    /// Incidents matching a fault beyond its first, summed over faults.
    pub duplicates: u64,
    /// Anomalies per incident (when anomalies were given).
    pub compression: Option<f64>,
    /// Root ranked first, over faults with a matching incident.
    pub root_cause_top1: f64,
    /// Root in the first three.
    pub root_cause_top3: f64,
    /// The same two over faults that reached more than their root.
    pub propagating_top1: f64,
    /// Top-3 over propagating faults.
    pub propagating_top3: f64,
}

/// Scores `anomalies` and `incidents` (either may be absent) against `truth`.
pub fn evaluate(
    truth: &[TruthFault],
    anomalies: Option<&[AnomalyRef]>,
    incidents: Option<&[IncidentVersion]>,
    grace_ms: u64,
) -> Result<EvalReport, String> {
    let spans: Vec<(Time, Time)> = truth
        .iter()
        .map(|f| {
            Ok((
                parse_rfc3339(&f.start).map_err(|e| format!("{}: {e:?}", f.fault_id))?,
                parse_rfc3339(&f.end).map_err(|e| format!("{}: {e:?}", f.fault_id))? + grace_ms,
            ))
        })
        .collect::<Result<_, String>>()?;
    let mut per_fault: Vec<FaultScore> = truth
        .iter()
        .map(|f| FaultScore {
            fault_id: f.fault_id.clone(),
            kind: f.kind.clone(),
            root_service: f.root_service.clone(),
            anomalies: 0,
            services_detected: (0, f.affected_services.len()),
            detection_delay_ms: None,
            incidents: 0,
            root_rank: None,
        })
        .collect();

    let anomaly_figures = anomalies.map(|anomalies| {
        let mut matching = 0u64;
        let mut detected: Vec<Vec<&str>> = vec![Vec::new(); truth.len()];
        for a in anomalies {
            let mut hit = false;
            for (k, f) in truth.iter().enumerate() {
                let (start, end) = spans[k];
                if a.timestamp >= start
                    && a.timestamp <= end
                    && f.affected_services.contains(&a.service)
                {
                    hit = true;
                    let row = &mut per_fault[k];
                    row.anomalies += 1;
                    let delay = a.timestamp - start;
                    row.detection_delay_ms =
                        Some(row.detection_delay_ms.map_or(delay, |d| d.min(delay)));
                    if !detected[k].contains(&a.service.as_str()) {
                        detected[k].push(&a.service);
                    }
                }
            }
            matching += u64::from(hit);
        }
        let (mut services, mut affected) = (0usize, 0usize);
        for (k, row) in per_fault.iter_mut().enumerate() {
            row.services_detected.0 = detected[k].len();
            services += detected[k].len();
            affected += row.services_detected.1;
        }
        let mut delays: Vec<u64> = per_fault
            .iter()
            .filter_map(|r| r.detection_delay_ms)
            .collect();
        delays.sort_unstable();
        AnomalyFigures {
            total: anomalies.len() as u64,
            matching,
            precision: ratio(matching, anomalies.len() as u64),
            recall: ratio(delays.len() as u64, truth.len() as u64),
            service_recall: ratio(services as u64, affected as u64),
            by_detector: anomalies.iter().fold(BTreeMap::new(), |mut m, a| {
                *m.entry(a.detector.clone()).or_insert(0) += 1;
                m
            }),
            delay_p50_ms: percentile(&delays, 0.5),
            delay_p90_ms: percentile(&delays, 0.9),
        }
    });

    let incident_figures = incidents.map(|versions| {
        // The newest version of each incident, with the span of all its versions.
        let mut latest: BTreeMap<&str, (IncidentVersion, Time, Time)> = BTreeMap::new();
        for v in versions {
            let entry = latest
                .entry(&v.incident_id)
                .or_insert_with(|| (v.clone(), v.created_at, v.updated_at));
            entry.1 = entry.1.min(v.created_at);
            entry.2 = entry.2.max(v.updated_at);
            if (v.version, v.updated_at) >= (entry.0.version, entry.0.updated_at) {
                entry.0 = v.clone();
            }
        }
        // Merged incidents fold into the incident that survived them.
        let survivor = |id: &str| -> String {
            let mut id = id.to_string();
            for _ in 0..latest.len() {
                match latest
                    .get(id.as_str())
                    .and_then(|l| l.0.merged_into.clone())
                {
                    Some(next) if latest.contains_key(next.as_str()) => id = next,
                    _ => break,
                }
            }
            id
        };
        let mut merged = 0u64;
        let mut folded: BTreeMap<String, (IncidentVersion, Time, Time)> = BTreeMap::new();
        for (id, (_, from, to)) in &latest {
            let target = survivor(id);
            if target != *id {
                merged += 1;
            }
            let (newest, target_from, target_to) = &latest[target.as_str()];
            let entry = folded
                .entry(target.clone())
                .or_insert_with(|| (newest.clone(), *target_from, *target_to));
            entry.1 = entry.1.min(*from);
            entry.2 = entry.2.max(*to);
        }
        let latest = folded;
        let mut matching = 0u64;
        let mut first: Vec<Option<(Time, &IncidentVersion)>> = vec![None; truth.len()];
        for (incident, from, to) in latest.values() {
            let mut hit = false;
            for (k, f) in truth.iter().enumerate() {
                let (start, end) = spans[k];
                if *from <= end && *to >= start && incident.services.contains(&f.root_service) {
                    hit = true;
                    per_fault[k].incidents += 1;
                    if first[k].is_none_or(|(t, _)| *from < t) {
                        first[k] = Some((*from, incident));
                    }
                }
            }
            matching += u64::from(hit);
        }
        let (mut top1, mut top3, mut found, mut p1, mut p3, mut pfound) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        for (k, f) in truth.iter().enumerate() {
            let Some((_, incident)) = first[k] else {
                continue;
            };
            let rank = incident
                .causes
                .iter()
                .position(|c| *c == f.root_service)
                .map(|r| r + 1);
            per_fault[k].root_rank = rank;
            let propagates = f.affected_services.len() > 1;
            found += 1;
            pfound += u64::from(propagates);
            if rank == Some(1) {
                top1 += 1;
                p1 += u64::from(propagates);
            }
            if rank.is_some_and(|r| r <= 3) {
                top3 += 1;
                p3 += u64::from(propagates);
            }
        }
        let total = latest.len() as u64;
        IncidentFigures {
            total,
            merged,
            matching,
            precision: ratio(matching, total),
            recall: ratio(found, truth.len() as u64),
            duplicates: per_fault
                .iter()
                .map(|r| r.incidents.saturating_sub(1))
                .sum(),
            compression: anomalies
                .filter(|_| total > 0)
                .map(|a| a.len() as f64 / total as f64),
            root_cause_top1: ratio(top1, found),
            root_cause_top3: ratio(top3, found),
            propagating_top1: ratio(p1, pfound),
            propagating_top3: ratio(p3, pfound),
        }
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

/// The report for a person.
pub fn render(report: &EvalReport) -> String {
    let mut s = String::new();
    if let Some(f) = &report.feedback {
        s += &crate::feedback::render(f);
    }
    if !report.with_truth {
        return s;
    }
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let ms = |x: Option<u64>| x.map_or("-".to_string(), format_duration);
    let _ = writeln!(
        s,
        "incidentflow eval: {} faults (grace after a fault's end: {})",
        report.faults,
        format_duration(report.grace_ms)
    );
    if let Some(a) = &report.anomalies {
        let _ = writeln!(
            s,
            "anomalies: {} ({} matching a fault)",
            a.total, a.matching
        );
        let _ = writeln!(
            s,
            "  precision {}   recall {} of faults, {} of affected services",
            pct(a.precision),
            pct(a.recall),
            pct(a.service_recall)
        );
        let _ = writeln!(
            s,
            "  detection delay p50 {}  p90 {}",
            ms(a.delay_p50_ms),
            ms(a.delay_p90_ms)
        );
    }
    if let Some(i) = &report.incidents {
        let _ = writeln!(
            s,
            "incidents: {} ({} matching a fault; {} more were merged into them)",
            i.total, i.matching, i.merged
        );
        let _ = writeln!(
            s,
            "  precision {}   recall {}   duplicates {}   compression {}",
            pct(i.precision),
            pct(i.recall),
            i.duplicates,
            i.compression
                .map_or("-".into(), |c| format!("{c:.1} anomalies/incident"))
        );
        let _ = writeln!(
            s,
            "  root cause top-1 {}  top-3 {}   (faults that propagate: top-1 {}  top-3 {})",
            pct(i.root_cause_top1),
            pct(i.root_cause_top3),
            pct(i.propagating_top1),
            pct(i.propagating_top3)
        );
    }
    if !report.detectors.is_empty() {
        s += &crate::compare::render(&report.detectors);
    }
    let _ = writeln!(
        s,
        "  {:<10} {:<15} {:<16} {:>9} {:>9} {:>8} {:>9} {:>5}",
        "fault", "type", "root", "anomalies", "services", "delay", "incidents", "rank"
    );
    for r in &report.per_fault {
        let _ = writeln!(
            s,
            "  {:<10} {:<15} {:<16} {:>9} {:>9} {:>8} {:>9} {:>5}",
            r.fault_id,
            r.kind,
            r.root_service,
            r.anomalies,
            format!("{}/{}", r.services_detected.0, r.services_detected.1),
            ms(r.detection_delay_ms),
            r.incidents,
            r.root_rank.map_or("-".into(), |x| x.to_string())
        );
    }
    s
}

/// The records of a JSON Lines file as `T`, each with its line number; a line that is not one
/// stops the evaluation with its position.
fn read_records<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
    refused: &str,
) -> Result<Vec<(usize, T)>, EvalError> {
    let text = std::fs::read(path).map_err(|source| EvalError::Input {
        what,
        name: path.display().to_string(),
        source,
    })?;
    incidentflow_dataflows::decode::json_lines(&text)
        .map(|(number, l)| {
            serde_json::from_slice(l)
                .map(|v| (number as usize, v))
                .map_err(|e| {
                    EvalError::InvalidFile(format!(
                        "{} line {number}: {refused}{e}",
                        path.display()
                    ))
                })
        })
        .collect()
}

/// What eval reads of an anomaly line (the job writes more; serde skips the rest).
#[derive(serde::Deserialize)]
struct AnomalyLine {
    timestamp: String,
    namespace: String,
    service: String,
    metric_name: String,
    detector: String,
    #[serde(default)]
    episode: Option<EpisodeLine>,
}

/// An anomaly's episode, as eval reads it.
#[derive(serde::Deserialize)]
struct EpisodeLine {
    episode_id: String,
    started_at: String,
}

/// A time field of line `line` of `path`, or why it is not one.
fn field_time(path: &Path, line: usize, key: &str, text: &str) -> Result<Time, EvalError> {
    parse_rfc3339(text).map_err(|_| {
        EvalError::InvalidFile(format!(
            "{} line {line}: `{key}` must be an RFC 3339 time",
            path.display()
        ))
    })
}

/// An anomaly line as eval scores it.
fn anomaly_ref(a: AnomalyLine, path: &Path, line: usize) -> Result<AnomalyRef, EvalError> {
    let time = |key: &str, text: &str| field_time(path, line, key, text);
    let episode = match a.episode {
        Some(e) => Some((e.episode_id, time("started_at", &e.started_at)?)),
        None => None,
    };
    Ok(AnomalyRef {
        series: format!("{}/{}/{}", a.namespace, a.service, a.metric_name),
        timestamp: time("timestamp", &a.timestamp)?,
        service: a.service,
        detector: a.detector,
        episode,
    })
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
        Some(truth) => read_records::<TruthFault>(truth, "ground truth", "")?
            .into_iter()
            .map(|(_, fault)| fault)
            .collect(),
    };
    let anomalies = match anomalies {
        None => None,
        Some(path) => Some(
            read_records::<AnomalyLine>(path, "anomalies", "")?
                .into_iter()
                .map(|(line, a)| anomaly_ref(a, path, line))
                .collect::<Result<Vec<_>, EvalError>>()?,
        ),
    };
    let incidents = match incidents {
        None => None,
        Some(path) => Some(read_incidents(path)?),
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
        let mut all = champion.clone();
        if let Some(path) = challengers {
            for (line, a) in read_records::<AnomalyLine>(path, "challengers", "")? {
                all.push(anomaly_ref(a, path, line)?);
            }
        }
        let spans: Vec<(Time, Time)> = faults
            .iter()
            .filter_map(|f| {
                let start = parse_rfc3339(&f.start).ok()?;
                Some((start, parse_rfc3339(&f.end).ok()? + grace_ms))
            })
            .collect();
        if spans.len() == faults.len() {
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
            report.detectors =
                crate::compare::compare(&faults, &spans, &episodes, &champion, interval_ms, days);
        }
    }
    if let (Some(path), Some(incidents)) = (feedback, &incidents) {
        report.feedback = Some(feedback_figures(path, incidents)?);
    }
    if let Some(out) = out {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(out, json + "\n").map_err(|source| EvalError::Output {
            what: "the evaluation",
            name: out.display().to_string(),
            source,
        })?;
    }
    Ok(render(&report))
}

/// The incident versions of an incidents file, as eval needs them.
fn read_incidents(path: &Path) -> Result<Vec<IncidentVersion>, EvalError> {
    read_records::<IncidentRecord>(path, "incidents", "not an incident version: ")?
        .into_iter()
        .map(|(line, v)| {
            Ok(IncidentVersion {
                created_at: field_time(path, line, "created_at", &v.created_at)?,
                updated_at: field_time(path, line, "updated_at", &v.updated_at)?,
                causes: v
                    .hypothesis
                    .ranked_causes
                    .into_iter()
                    .map(|c| c.service)
                    .collect(),
                incident_id: v.incident_id,
                version: v.version,
                services: v.services,
                merged_into: v.merged_into,
            })
        })
        .collect()
}

/// Reads the labels (a bad line is skipped, said with its line, and counted) and joins them to the incidents
/// (the newest version of each gives its causes).
fn feedback_figures(
    path: &Path,
    incidents: &[IncidentVersion],
) -> Result<crate::feedback::FeedbackFigures, EvalError> {
    let text = std::fs::read(path).map_err(|source| EvalError::Input {
        what: "feedback",
        name: path.display().to_string(),
        source,
    })?;
    let mut labels = BTreeMap::new();
    let mut invalid = 0;
    for (number, line) in incidentflow_dataflows::decode::json_lines(&text) {
        match crate::feedback::parse(line) {
            Ok(label) => {
                labels.insert(label.incident_id.clone(), label);
            }
            Err(reason) => {
                invalid += 1;
                eprintln!(
                    "incidentflow eval: {} line {number}: label skipped: {reason}",
                    path.display(),
                );
            }
        }
    }
    let mut newest: BTreeMap<&str, &IncidentVersion> = BTreeMap::new();
    for v in incidents {
        let e = newest.entry(&v.incident_id).or_insert(v);
        if v.version >= e.version {
            *e = v;
        }
    }
    let causes = newest
        .into_iter()
        .map(|(id, v)| (id.to_string(), v.causes.clone()))
        .collect();
    Ok(crate::feedback::FeedbackFigures {
        invalid,
        ..crate::feedback::figures(&labels, &causes)
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
