//! Runbooks and silences: what the job's settings add to an incident version before it is
//! written. A pure function of the version and the settings (silences are in event time), so a
//! replay annotates exactly as the live run did. Silences may also come from a side input
//! (`--silences FILE|kafka`, see `side_input`): those read at start are in force from the start,
//! like the settings'; one that arrives later applies to the versions made after it (as an
//! Alertmanager silence applies to notifications after it), so a replay, which reads it at
//! start, may mark earlier versions than the live run did.
//!
//! Both match the likely cause (the first ranked cause): its service, and for runbooks the metric
//! and direction of its strongest anomaly. Remediation stays advisory: the runbook's action is a
//! recommendation for a person; incidentflow never executes anything, because a wrong root cause
//! acted on automatically turns one outage into two.

use incidentflow_dataflows::incident::Incident;
use incidentflow_dataflows::records::Direction;
use incidentflow_dataflows::time::{parse_rfc3339, Time};

use std::sync::{Arc, RwLock};

use crate::config::operations::{matches_any, Runbook, Silence};
use crate::ops::metrics::Metrics;

/// Silences from the side input (`--silences`), with their parsed times: one list shared by the
/// reader's thread, which adds them, and the annotators, which match them.
#[derive(Clone, Default)]
pub struct LiveSilences(Arc<RwLock<Vec<(Silence, Time, Time)>>>);

impl LiveSilences {
    /// A silence line from the side input: added, or refused with its position and reason (and
    /// counted in `metrics`).
    pub fn line(&self, line: &[u8], position: &str, metrics: &Metrics) {
        match parse_silence(line) {
            Ok(silence) => {
                tracing::info!(position, name = %silence.0.name, "silence added");
                self.0
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(silence);
            }
            Err(reason) => {
                metrics.side_input_refused("silences");
                tracing::warn!(position, "silence refused: {reason}");
            }
        }
    }

    /// The name of the first silence in force that `matching` accepts.
    fn find(&self, matching: impl Fn(&(Silence, Time, Time)) -> bool) -> Option<String> {
        let live = self.0.read().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .find(|s| matching(s))
            .map(|(s, _, _)| s.name.clone())
    }
}

/// A silence line, checked: its times parsed and in order, its name set.
fn parse_silence(line: &[u8]) -> Result<(Silence, Time, Time), String> {
    let s = serde_json::from_slice::<Silence>(line).map_err(|e| e.to_string())?;
    let time = |key: &str, v: &str| {
        parse_rfc3339(v).map_err(|_| format!("{key} {v:?} is not an RFC 3339 time"))
    };
    let (start, end) = (time("start", &s.start)?, time("end", &s.end)?);
    if start >= end {
        return Err(format!("start {} is not before end {}", s.start, s.end));
    }
    if s.name.is_empty() {
        return Err("name is empty".into());
    }
    Ok((s, start, end))
}

/// The runbooks and silences, ready to match.
#[derive(Clone, Default)]
pub struct Annotator {
    runbooks: Vec<Runbook>,
    silences: Vec<(Silence, Time, Time)>,
    live: Option<LiveSilences>,
}

impl Annotator {
    /// From checked settings (`JobConfig::check` has parsed the silences' times).
    /// `live`: the side input's silences, when `--silences` is given.
    pub fn new(runbooks: &[Runbook], silences: &[Silence], live: Option<LiveSilences>) -> Self {
        Annotator {
            runbooks: runbooks.to_vec(),
            silences: silences
                .iter()
                .filter_map(|s| {
                    let start = parse_rfc3339(&s.start).ok()?;
                    let end = parse_rfc3339(&s.end).ok()?;
                    Some((s.clone(), start, end))
                })
                .collect(),
            live,
        }
    }

    /// Whether there is anything to add.
    pub fn is_empty(&self) -> bool {
        self.runbooks.is_empty() && self.silences.is_empty() && self.live.is_none()
    }

    /// Sets the version's runbook and suppression.
    pub fn annotate(&self, incident: &mut Incident) {
        let Some(cause) = incident.ranked_causes.first() else {
            return;
        };
        let service = &*cause.service;
        // The cause's strongest anomaly (the supports are strongest first).
        let strongest = incident.anomalies.iter().find(|a| &*a.service == service);
        let metric = strongest.map_or("", |a| &*a.metric_name);
        let direction = strongest.map_or("", |a| match a.direction {
            Direction::Up => "up",
            Direction::Down => "down",
        });
        incident.notes.runbook = self
            .runbooks
            .iter()
            .find(|r| {
                matches_any(&r.services, service)
                    && matches_any(&r.metrics, metric)
                    && (r.direction.is_empty() || r.direction == direction)
            })
            .map(|r| (r.name.clone(), r.url.clone(), r.action.clone()));
        let matching = |(s, start, end): &(Silence, Time, Time)| {
            (*start..*end).contains(&incident.updated_at) && matches_any(&s.services, service)
        };
        incident.notes.suppressed_by = self
            .silences
            .iter()
            .find(|s| matching(s))
            .map(|(s, _, _)| s.name.clone())
            .or_else(|| self.live.as_ref()?.find(matching));
    }
}
