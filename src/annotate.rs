//! Runbooks and silences: what the job's settings add to an incident version before it is
//! written. A pure function of the version and the settings (silences are in event time), so a
//! replay annotates exactly as the live run did.
//!
//! Both match the likely cause (the first ranked cause): its service, and for runbooks the metric
//! and direction of its strongest anomaly. Remediation stays advisory: the runbook's action is a
//! recommendation for a person; incidentflow never executes anything, because a wrong root cause
//! acted on automatically turns one outage into two.

use incidentflow_dataflows::incident::Incident;
use incidentflow_dataflows::records::Direction;
use incidentflow_dataflows::time::{parse_rfc3339, Time};

use crate::config::operations::{matches_any, Runbook, Silence};

/// The runbooks and silences, ready to match.
#[derive(Clone, Default)]
pub struct Annotator {
    runbooks: Vec<Runbook>,
    silences: Vec<(Silence, Time, Time)>,
}

impl Annotator {
    /// From checked settings (`JobConfig::check` has parsed the silences' times).
    pub fn new(runbooks: &[Runbook], silences: &[Silence]) -> Self {
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
        }
    }

    /// Whether there is anything to add.
    pub fn is_empty(&self) -> bool {
        self.runbooks.is_empty() && self.silences.is_empty()
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
        incident.notes.suppressed_by = self
            .silences
            .iter()
            .find(|(s, start, end)| {
                (*start..*end).contains(&incident.updated_at) && matches_any(&s.services, service)
            })
            .map(|(s, _, _)| s.name.clone());
    }
}
