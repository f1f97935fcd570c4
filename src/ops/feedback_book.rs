//! A running job's feedback book (`--feedback`): the incidents the job wrote (each one's first
//! ranked causes) and the labels responders gave them, for the feedback figures on `/metrics`.
//! It exists only when feedback is asked for, and it is bounded: every open incident is kept,
//! and of the resolved ones the newest [`RESOLVED_KEPT`] (with their labels); older ones are
//! forgotten, so a job that runs for months holds a window of its recent incidents, not all.
//! Labels for incidents the book does not know (another job's, or forgotten ones) are kept too,
//! since a label may come before its incident is written, but only the newest as many as that.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use incidentflow_dataflows::incident::{Incident, Status};

use crate::ops::metrics::Metrics;
use incidentflow_eval::feedback::{figures, parse, FeedbackFigures, Label};

/// Resolved incidents the book remembers (the figures describe them and every open one).
pub const RESOLVED_KEPT: usize = 10_000;

/// The book: the incident writer fills one side, the feedback reader the other.
pub struct FeedbackBook {
    inner: Mutex<Pages>,
    resolved_kept: usize,
}

#[derive(Default)]
struct Pages {
    /// Incident id -> its latest version's first ranked causes.
    incidents: BTreeMap<String, Vec<String>>,
    /// Resolved incidents, oldest first (forgotten from the front).
    resolved: VecDeque<String>,
    /// Incident id -> the last label read for it.
    labels: BTreeMap<String, Label>,
    /// Labels read for incidents not in the book, oldest first (forgotten from the front).
    unmatched: VecDeque<String>,
    /// Lines refused.
    invalid: u64,
}

impl FeedbackBook {
    /// An empty book that keeps `resolved_kept` resolved incidents.
    pub fn new(resolved_kept: usize) -> Self {
        FeedbackBook {
            inner: Mutex::new(Pages::default()),
            resolved_kept,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pages> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An incident version was written: remember its ranked causes (the latest version's).
    pub fn saw(&self, incident: &Incident) {
        let causes = incident
            .ranked_causes
            .iter()
            .take(3)
            .map(|c| c.service.to_string())
            .collect();
        let mut pages = self.lock();
        pages.incidents.insert(incident.incident_id.clone(), causes);
        if incident.status == Status::Resolved {
            pages.resolved.push_back(incident.incident_id.clone());
            while pages.resolved.len() > self.resolved_kept {
                if let Some(old) = pages.resolved.pop_front() {
                    pages.incidents.remove(&old);
                    pages.labels.remove(&old);
                }
            }
        }
    }

    /// A feedback line: a label, or refused (logged with its position and reason, counted).
    pub fn line(&self, line: &[u8], position: &str, metrics: &Metrics) {
        match parse(line) {
            Ok(label) => {
                let mut pages = self.lock();
                let id = label.incident_id.clone();
                if !pages.incidents.contains_key(&id) && !pages.labels.contains_key(&id) {
                    pages.unmatched.push_back(id.clone());
                }
                pages.labels.insert(id, label);
                while pages.unmatched.len() > self.resolved_kept {
                    if let Some(old) = pages.unmatched.pop_front() {
                        if !pages.incidents.contains_key(&old) {
                            pages.labels.remove(&old);
                        }
                    }
                }
            }
            Err(reason) => {
                self.lock().invalid += 1;
                metrics.side_input_refused("feedback");
                tracing::warn!(position, "feedback refused: {reason}");
            }
        }
    }

    /// What the labels say so far.
    pub fn figures(&self) -> FeedbackFigures {
        let inner = self.lock();
        FeedbackFigures {
            invalid: inner.invalid,
            ..figures(&inner.labels, &inner.incidents)
        }
    }

    /// How many incidents the book remembers.
    pub fn remembered(&self) -> usize {
        self.lock().incidents.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn version(id: &str, status: Status) -> Incident {
        Incident {
            incident_id: id.to_owned(),
            status,
            version: 1,
            created_at: 0,
            updated_at: 0,
            namespace: None,
            severity: incidentflow_dataflows::incident::Severity::Low,
            services: Vec::new(),
            silent_services: Vec::new(),
            event_count: 0,
            anomalies: Vec::new(),
            deploys: Vec::new(),
            ranked_causes: Vec::new(),
            confidence_milli: 0,
            change: String::new(),
            merged_into: None,
            split_from: None,
            notes: Default::default(),
        }
    }

    #[test]
    fn resolved_incidents_are_forgotten_beyond_the_bound_and_open_ones_kept() {
        let book = FeedbackBook::new(2);
        book.saw(&version("open-one", Status::Open));
        for k in 0..5 {
            book.saw(&version(&format!("r{k}"), Status::Open));
            book.saw(&version(&format!("r{k}"), Status::Resolved));
        }
        assert_eq!(
            book.remembered(),
            3,
            "the open one and the last two resolved"
        );
        let metrics = Metrics::new();
        book.line(br#"{"incident_id":"r4","label":"useful"}"#, "f:1", &metrics);
        book.line(br#"{"incident_id":"r0","label":"noisy"}"#, "f:2", &metrics);
        book.line(b"not json", "f:3", &metrics);
        let f = book.figures();
        assert_eq!((f.incidents, f.labelled, f.unmatched_labels), (3, 1, 1));
        assert_eq!(f.invalid, 1);
    }

    #[test]
    fn labels_for_unknown_incidents_are_kept_only_up_to_the_bound() {
        let book = FeedbackBook::new(2);
        let metrics = Metrics::new();
        // One label comes before its incident; a thousand name incidents the book never sees.
        book.line(
            br#"{"incident_id":"early","label":"useful"}"#,
            "f:0",
            &metrics,
        );
        book.saw(&version("early", Status::Open));
        for k in 0..1000 {
            let line = format!(r#"{{"incident_id":"stray-{k}","label":"noisy"}}"#);
            book.line(line.as_bytes(), "f", &metrics);
        }
        let f = book.figures();
        assert_eq!((f.labelled, f.unmatched_labels), (1, 2), "{f:?}");
    }
}
