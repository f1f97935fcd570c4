//! What each receiver is sent, as pure functions of an incident version: the Alertmanager v2
//! alert, the PagerDuty Events v2 event, the generic webhook body and the Slack message. The
//! field lists are the ones docs/operating.md documents; the tests pin them.

use incidentflow_dataflows::incident::{Incident, Severity, Status};
use incidentflow_dataflows::time::format_rfc3339;
use serde_json::{json, Map, Value};

/// The severity word every receiver gets (Alertmanager labels, Slack, webhook).
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// PagerDuty's severities: critical, error, warning, info.
fn pagerduty_severity(s: Severity) -> &'static str {
    match s {
        Severity::Low => "info",
        Severity::Medium => "warning",
        Severity::High => "error",
        Severity::Critical => "critical",
    }
}

fn likely_cause(incident: &Incident) -> &str {
    incident
        .ranked_causes
        .first()
        .map_or("unknown", |c| &*c.service)
}

fn confidence(incident: &Incident) -> String {
    format!("{:.2}", incident.confidence_milli as f64 / 1000.0)
}

/// One line a responder reads first.
pub fn summary(incident: &Incident) -> String {
    let services = incident.services.len();
    format!(
        "{} incident: likely cause {} (confidence {}), {} service{} affected",
        severity(incident.severity),
        likely_cause(incident),
        confidence(incident),
        services,
        if services == 1 { "" } else { "s" },
    )
}

/// The likely cause's reasons, joined.
fn reasons(incident: &Incident) -> String {
    incident
        .ranked_causes
        .first()
        .map_or(String::new(), |c| c.reasons.join("; "))
}

/// The labels an incident's Alertmanager alert keeps for its whole life (Alertmanager tells
/// alerts apart by their labels): fixed at the first alert sent for it.
pub fn alertmanager_labels(incident: &Incident) -> Value {
    json!({
        "alertname": "IncidentflowIncident",
        "incident_id": incident.incident_id,
        "severity": severity(incident.severity),
        "likely_cause": likely_cause(incident),
        "job": "incidentflow",
    })
}

/// One Alertmanager v2 alert (an element of the array POSTed to `/api/v2/alerts`). `labels` come
/// from the first alert sent for the incident; `ends_at` is the resolve time for a resolved
/// version, and for an open one a time in the future the alert stays firing until (it is sent
/// again before then).
pub fn alertmanager_alert(incident: &Incident, labels: &Value, ends_at_ms: u64) -> Value {
    let mut annotations = Map::new();
    annotations.insert("summary".into(), summary(incident).into());
    annotations.insert("description".into(), reasons(incident).into());
    annotations.insert("status".into(), incident.status.as_str().into());
    annotations.insert("version".into(), incident.version.to_string().into());
    annotations.insert("severity".into(), severity(incident.severity).into());
    annotations.insert("likely_cause".into(), likely_cause(incident).into());
    annotations.insert("confidence".into(), confidence(incident).into());
    annotations.insert("services".into(), incident.services.join(", ").into());
    if let Some((_, url, action)) = &incident.notes.runbook {
        annotations.insert("runbook_url".into(), url.as_str().into());
        annotations.insert("recommended_action".into(), action.as_str().into());
    }
    json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": format_rfc3339(incident.created_at),
        "endsAt": format_rfc3339(ends_at_ms),
    })
}

/// The PagerDuty Events v2 trigger for an incident (`dedup_key` = incident id).
pub fn pagerduty_trigger(incident: &Incident, routing_key: &str) -> Value {
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": incident.incident_id,
        "payload": {
            "summary": summary(incident),
            "source": "incidentflow",
            "severity": pagerduty_severity(incident.severity),
            "timestamp": format_rfc3339(incident.created_at),
            "component": likely_cause(incident),
            "class": "incident",
            "custom_details": {
                "incident_id": incident.incident_id,
                "version": incident.version,
                "services": incident.services,
                "confidence": confidence(incident),
                "reasons": reasons(incident),
                "recommended_action": incident.notes.runbook.as_ref().map(|r| r.2.as_str()),
            },
        },
    });
    if let Some((name, url, _)) = &incident.notes.runbook {
        event["links"] = json!([{ "href": url, "text": format!("Runbook: {name}") }]);
    }
    event
}

/// The PagerDuty Events v2 resolve for an incident.
pub fn pagerduty_resolve(incident: &Incident, routing_key: &str) -> Value {
    json!({
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": incident.incident_id,
    })
}

/// A Slack incoming-webhook message: one readable paragraph (Slack's mrkdwn).
pub fn slack_message(incident: &Incident) -> Value {
    let headline = match incident.status {
        Status::Open => format!(
            ":rotating_light: *Incident opened* `{}`",
            incident.incident_id
        ),
        Status::Updated => format!(":pencil2: *Incident updated* `{}`", incident.incident_id),
        Status::Resolved => format!(
            ":white_check_mark: *Incident resolved* `{}`",
            incident.incident_id
        ),
    };
    let mut text = format!(
        "{headline}\n*Severity:* {} · *Likely cause:* {} (confidence {})\n*Services:* {}",
        severity(incident.severity),
        likely_cause(incident),
        confidence(incident),
        incident.services.join(", "),
    );
    let why = reasons(incident);
    if !why.is_empty() {
        text += &format!("\n*Why:* {why}");
    }
    if let Some((name, url, action)) = &incident.notes.runbook {
        text += &format!("\n*Runbook:* <{url}|{name}>: {action}");
    }
    if let Some(into) = &incident.merged_into {
        text += &format!("\n_Merged into `{into}`._");
    }
    json!({ "text": text })
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use incidentflow_dataflows::incident::{Cause, Notes};
    use std::sync::Arc;

    pub(crate) fn incident(status: Status) -> Incident {
        Incident {
            incident_id: "inc-0123456789abcdef".into(),
            status,
            version: 2,
            created_at: 1_795_564_800_000,
            updated_at: 1_795_565_100_000,
            namespace: Some(Arc::from("shop")),
            severity: Severity::High,
            services: vec![Arc::from("shop/api"), Arc::from("shop/db")],
            silent_services: vec![],
            event_count: 7,
            anomalies: vec![],
            deploys: vec![],
            ranked_causes: vec![Cause {
                service: Arc::from("shop/db"),
                score_milli: 820,
                metric: Some(Arc::from("latency_p99")),
                strength_milli: 4200,
                reasons: vec!["first to deviate".into(), "called by shop/api".into()],
            }],
            confidence_milli: 820,
            change: "opened".into(),
            merged_into: None,
            split_from: None,
            notes: Notes {
                runbook: Some((
                    "database latency".into(),
                    "https://runbooks.example.com/db".into(),
                    "Check the slow query log".into(),
                )),
                suppressed_by: None,
            },
        }
    }

    #[test]
    fn alertmanager_alert_has_the_documented_fields() {
        let i = incident(Status::Open);
        let labels = alertmanager_labels(&i);
        let alert = alertmanager_alert(&i, &labels, 1_795_565_400_000);
        assert_eq!(alert["labels"]["incident_id"], "inc-0123456789abcdef");
        assert_eq!(alert["labels"]["alertname"], "IncidentflowIncident");
        assert_eq!(alert["labels"]["severity"], "high");
        assert_eq!(alert["startsAt"], "2026-11-25T00:00:00.000Z");
        assert_eq!(alert["endsAt"], "2026-11-25T00:10:00.000Z");
        assert_eq!(
            alert["annotations"]["summary"],
            "high incident: likely cause shop/db (confidence 0.82), 2 services affected"
        );
        assert_eq!(
            alert["annotations"]["runbook_url"],
            "https://runbooks.example.com/db"
        );
        assert_eq!(
            alert["annotations"]["description"],
            "first to deviate; called by shop/api"
        );
    }

    #[test]
    fn pagerduty_events_carry_the_incident_id_as_dedup_key() {
        let i = incident(Status::Open);
        let t = pagerduty_trigger(&i, "KEY");
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["dedup_key"], "inc-0123456789abcdef");
        assert_eq!(t["routing_key"], "KEY");
        assert_eq!(t["payload"]["severity"], "error");
        assert_eq!(t["payload"]["source"], "incidentflow");
        assert_eq!(t["payload"]["component"], "shop/db");
        assert_eq!(t["links"][0]["href"], "https://runbooks.example.com/db");
        let r = pagerduty_resolve(&incident(Status::Resolved), "KEY");
        assert_eq!(
            r,
            json!({"routing_key": "KEY", "event_action": "resolve", "dedup_key": "inc-0123456789abcdef"})
        );
    }

    #[test]
    fn slack_message_reads_as_a_sentence() {
        let text = slack_message(&incident(Status::Resolved))["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(text.starts_with(":white_check_mark: *Incident resolved* `inc-0123456789abcdef`"));
        assert!(text.contains("*Likely cause:* shop/db (confidence 0.82)"));
        assert!(text.contains("<https://runbooks.example.com/db|database latency>"));
    }
}
