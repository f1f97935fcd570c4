//! The files eval reads: ground truth, anomalies (the champion's and the challengers'), incident
//! versions and responder labels, each line checked, and a bad one reported with its position.

use std::collections::BTreeMap;
use std::path::Path;

use incidentflow_dataflows::incident::IncidentRecord;
use incidentflow_dataflows::time::{parse_rfc3339, Time};
use incidentflow_dataflows::wire::AnomalyRecord;

use crate::eval::incidents::IncidentVersion;
use crate::truth::{AnomalyRef, TruthFault};
use crate::EvalError;

/// The faults of a ground-truth file.
pub(crate) fn read_truth(path: &Path) -> Result<Vec<TruthFault>, EvalError> {
    Ok(read_records::<TruthFault>(path, "ground truth", "")?
        .into_iter()
        .map(|(_, fault)| fault)
        .collect())
}

/// The anomalies of an anomalies file (`what` names it in errors: anomalies, challengers), read
/// as the job writes them ([`AnomalyRecord`]).
pub(crate) fn read_anomalies(
    path: &Path,
    what: &'static str,
) -> Result<Vec<AnomalyRef>, EvalError> {
    read_records::<AnomalyRecord>(path, what, "not an anomaly: ")?
        .into_iter()
        .map(|(line, a)| anomaly_ref(a, path, line))
        .collect()
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
fn anomaly_ref(a: AnomalyRecord, path: &Path, line: usize) -> Result<AnomalyRef, EvalError> {
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

/// The incident versions of an incidents file, as eval needs them.
pub(crate) fn read_incidents(path: &Path) -> Result<Vec<IncidentVersion>, EvalError> {
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
pub(crate) fn feedback_figures(
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
