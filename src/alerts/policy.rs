//! What one alert output sends for each incident version, and what it remembers to do so:
//!
//! - Alertmanager: every version of an alerted incident as a firing alert, the open ones again
//!   every `resend_interval` (Alertmanager forgets alerts that are not re-sent), and the resolve
//!   with `endsAt` = the resolve time. The labels are fixed at the first alert: Alertmanager
//!   tells alerts apart by them.
//! - PagerDuty: one trigger per incident (`dedup_key` = incident id), then one resolve.
//! - Webhook: every version, as the incidents output has it.
//! - Slack: the opening, a change of severity or of likely cause, and the resolve.
//!
//! A suppressed version is not sent (and counted as suppressed). A resolve is sent for every
//! incident this output alerted, suppressed or not, and for incidents it has not seen at all (a
//! restarted job does not know what the earlier run alerted; a resolve of an unknown incident
//! is harmless to every receiver); it is not sent for an incident whose every version was
//! suppressed. Pure: no I/O, no clock (the caller passes the time).

use std::collections::{BTreeMap, BTreeSet};

use incidentflow_dataflows::incident::{Incident, Status};
use serde_json::Value;

use super::payload;
use crate::config::AlertKind;

/// One request to the receiver: what it is (for logs) and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// trigger, resolve, alert, resend, version or message.
    pub what: &'static str,
    /// The incident it is about (None: a resend of several).
    pub incident_id: Option<String>,
    /// The JSON body.
    pub body: String,
}

/// What an output remembers of an incident it has alerted.
struct Alerted {
    /// Alertmanager: the labels of its first alert.
    labels: Value,
    /// The latest version sent.
    last: Incident,
}

/// One output's memory of the incidents it alerted.
pub struct Policy {
    kind: AlertKind,
    routing_key: String,
    /// Alertmanager: how long an open alert stays firing without being sent again.
    firing_for_ms: u64,
    alerted: BTreeMap<String, Alerted>,
    /// Incidents whose every version so far was suppressed.
    only_suppressed: BTreeSet<String>,
}

/// What the policy made of a version.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Send these.
    Send(Vec<Request>),
    /// Not sent: suppressed by a silence.
    Suppressed,
    /// Not sent: nothing new for this receiver (PagerDuty's updates, Slack's small changes).
    Unchanged,
}

impl Policy {
    /// A policy for an output of `kind`; `resend_ms` is Alertmanager's resend interval.
    pub fn new(kind: AlertKind, routing_key: &str, resend_ms: u64) -> Self {
        Policy {
            kind,
            routing_key: routing_key.to_owned(),
            // As Prometheus does: an alert not heard of for four resend intervals has ended.
            firing_for_ms: resend_ms.saturating_mul(4),
            alerted: BTreeMap::new(),
            only_suppressed: BTreeSet::new(),
        }
    }

    /// Incidents alerted and not yet resolved.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.alerted.len()
    }

    /// What to send for `incident` at wall time `now_ms`.
    pub fn on_version(&mut self, incident: &Incident, now_ms: u64) -> Decision {
        let id = &incident.incident_id;
        let suppressed = incident.notes.suppressed_by.is_some();
        if incident.status == Status::Resolved {
            let alerted = self.alerted.remove(id);
            let only_suppressed = self.only_suppressed.remove(id);
            if alerted.is_none() && (only_suppressed || suppressed) {
                return Decision::Suppressed;
            }
            return Decision::Send(vec![self.resolve(incident, alerted)]);
        }
        if suppressed {
            if !self.alerted.contains_key(id) {
                self.only_suppressed.insert(id.clone());
            }
            return Decision::Suppressed;
        }
        self.only_suppressed.remove(id);
        let previous = self.alerted.get(id);
        let request = match self.kind {
            AlertKind::Alertmanager => {
                let labels = previous.map_or_else(
                    || payload::alertmanager_labels(incident),
                    |a| a.labels.clone(),
                );
                let alert = payload::alertmanager_alert(
                    incident,
                    &labels,
                    now_ms.saturating_add(self.firing_for_ms),
                );
                self.remember(incident, labels);
                self.request("alert", incident, Value::Array(vec![alert]))
            }
            AlertKind::Pagerduty => {
                if previous.is_some() {
                    self.remember(incident, Value::Null);
                    return Decision::Unchanged;
                }
                self.remember(incident, Value::Null);
                let event = payload::pagerduty_trigger(incident, &self.routing_key);
                self.request("trigger", incident, event)
            }
            AlertKind::Webhook => {
                self.remember(incident, Value::Null);
                self.version(incident)
            }
            AlertKind::Slack => {
                let news = previous.is_none_or(|a| {
                    a.last.severity != incident.severity
                        || a.last.ranked_causes.first().map(|c| &c.service)
                            != incident.ranked_causes.first().map(|c| &c.service)
                });
                if !news {
                    return Decision::Unchanged;
                }
                self.remember(incident, Value::Null);
                self.request("message", incident, payload::slack_message(incident))
            }
        };
        Decision::Send(vec![request])
    }

    /// Alertmanager: every open alert again, firing for another while (None: nothing open, or
    /// another kind of output).
    pub fn resend(&self, now_ms: u64) -> Option<Request> {
        if self.kind != AlertKind::Alertmanager || self.alerted.is_empty() {
            return None;
        }
        let ends_at = now_ms.saturating_add(self.firing_for_ms);
        let alerts = self
            .alerted
            .values()
            .map(|a| payload::alertmanager_alert(&a.last, &a.labels, ends_at))
            .collect();
        Some(Request {
            what: "resend",
            incident_id: None,
            body: Value::Array(alerts).to_string(),
        })
    }

    fn remember(&mut self, incident: &Incident, labels: Value) {
        self.alerted.insert(
            incident.incident_id.clone(),
            Alerted {
                labels,
                last: incident.clone(),
            },
        );
    }

    fn resolve(&self, incident: &Incident, alerted: Option<Alerted>) -> Request {
        match self.kind {
            AlertKind::Alertmanager => {
                let labels =
                    alerted.map_or_else(|| payload::alertmanager_labels(incident), |a| a.labels);
                let alert = payload::alertmanager_alert(incident, &labels, incident.updated_at);
                self.request("resolve", incident, Value::Array(vec![alert]))
            }
            AlertKind::Pagerduty => self.request(
                "resolve",
                incident,
                payload::pagerduty_resolve(incident, &self.routing_key),
            ),
            AlertKind::Webhook => self.version(incident),
            AlertKind::Slack => self.request("resolve", incident, payload::slack_message(incident)),
        }
    }

    fn version(&self, incident: &Incident) -> Request {
        Request {
            what: "version",
            incident_id: Some(incident.incident_id.clone()),
            body: incident.to_json(),
        }
    }

    fn request(&self, what: &'static str, incident: &Incident, body: Value) -> Request {
        Request {
            what,
            incident_id: Some(incident.incident_id.clone()),
            body: body.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::alerts::payload::tests::incident;
    use incidentflow_dataflows::incident::Severity;

    fn sent(d: Decision) -> Vec<Value> {
        match d {
            Decision::Send(r) => r
                .iter()
                .map(|r| serde_json::from_str(&r.body).unwrap())
                .collect(),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn version(status: Status, v: u64) -> Incident {
        Incident {
            version: v,
            ..incident(status)
        }
    }

    #[test]
    fn pagerduty_triggers_once_and_resolves_once() {
        let mut p = Policy::new(AlertKind::Pagerduty, "KEY", 60_000);
        let first = sent(p.on_version(&version(Status::Open, 1), 0));
        assert_eq!(first[0]["event_action"], "trigger");
        assert_eq!(
            p.on_version(&version(Status::Updated, 2), 0),
            Decision::Unchanged
        );
        let last = sent(p.on_version(&version(Status::Resolved, 3), 0));
        assert_eq!(last[0]["event_action"], "resolve");
        assert_eq!(p.open(), 0);
    }

    #[test]
    fn suppressed_versions_are_not_sent_and_neither_is_their_resolve() {
        let mut p = Policy::new(AlertKind::Webhook, "", 60_000);
        let mut quiet = version(Status::Open, 1);
        quiet.notes.suppressed_by = Some("maintenance".into());
        assert_eq!(p.on_version(&quiet, 0), Decision::Suppressed);
        assert_eq!(
            p.on_version(&version(Status::Resolved, 2), 0),
            Decision::Suppressed
        );
        // Alerted first, then silenced: the resolve still goes out.
        let mut p = Policy::new(AlertKind::Webhook, "", 60_000);
        sent(p.on_version(&version(Status::Open, 1), 0));
        let mut quiet = version(Status::Updated, 2);
        quiet.notes.suppressed_by = Some("maintenance".into());
        assert_eq!(p.on_version(&quiet, 0), Decision::Suppressed);
        let mut resolved = version(Status::Resolved, 3);
        resolved.notes.suppressed_by = Some("maintenance".into());
        assert_eq!(sent(p.on_version(&resolved, 0))[0]["status"], "resolved");
    }

    #[test]
    fn alertmanager_keeps_first_labels_resends_open_alerts_and_ends_them_at_resolve() {
        let mut p = Policy::new(AlertKind::Alertmanager, "", 60_000);
        let first = sent(p.on_version(&version(Status::Open, 1), 1_000));
        assert_eq!(first[0][0]["labels"]["severity"], "high");
        assert_eq!(first[0][0]["endsAt"], "1970-01-01T00:04:01.000Z");
        let mut worse = version(Status::Updated, 2);
        worse.severity = Severity::Critical;
        let second = sent(p.on_version(&worse, 2_000));
        assert_eq!(second[0][0]["labels"]["severity"], "high");
        assert_eq!(second[0][0]["annotations"]["severity"], "critical");
        let again: Value = serde_json::from_str(&p.resend(70_000).unwrap().body).unwrap();
        assert_eq!(again[0]["annotations"]["version"], "2");
        let resolved = version(Status::Resolved, 3);
        let end = sent(p.on_version(&resolved, 80_000));
        assert_eq!(end[0][0]["endsAt"], "2026-11-25T00:05:00.000Z");
        assert!(p.resend(140_000).is_none());
    }

    #[test]
    fn slack_speaks_on_news_only() {
        let mut p = Policy::new(AlertKind::Slack, "", 60_000);
        sent(p.on_version(&version(Status::Open, 1), 0));
        assert_eq!(
            p.on_version(&version(Status::Updated, 2), 0),
            Decision::Unchanged
        );
        let mut worse = version(Status::Updated, 3);
        worse.severity = Severity::Critical;
        let text = sent(p.on_version(&worse, 0))[0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("*Incident updated*") && text.contains("critical"),
            "{text}"
        );
    }
}
