//! The incident record: one version of an incident, and its JSON (the output contract).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::records::Direction;
use crate::time::{format_rfc3339, Time};

/// A service name.
pub type Service = Arc<str>;

/// open, updated or resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The first version.
    Open,
    /// A later version of an open incident.
    Updated,
    /// The last version.
    Resolved,
}

impl Status {
    /// The name used in records, metrics and alerts: serde's (a test ties the two).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Updated => "updated",
            Status::Resolved => "resolved",
        }
    }
}

/// How bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// One service, mild deviations.
    Low,
    /// Worth a look.
    Medium,
    /// Several services or strong deviations.
    High,
    /// Many services and strong deviations.
    Critical,
}

/// One possible cause.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cause {
    /// The service.
    pub service: Service,
    /// Score in [0, 1], in thousandths (integers keep the record comparable and exact).
    pub score_milli: u32,
    /// The metric that drove its rank (its strongest deviation), if it has one.
    pub metric: Option<Arc<str>>,
    /// That metric's deviation against its own noise (1.0 at its threshold), in thousandths.
    pub strength_milli: u32,
    /// Why, for a responder: the figures behind the rank.
    pub reasons: Vec<String>,
}

/// An anomaly supporting an incident.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Support {
    /// The anomaly's id.
    pub anomaly_id: String,
    /// Its service.
    pub service: Service,
    /// Its metric.
    pub metric_name: Arc<str>,
    /// Its time.
    pub timestamp: Time,
    /// Its score, in thousandths.
    pub score_milli: u32,
    /// Which way it left its baseline.
    pub direction: Direction,
}

/// One version of an incident.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id.
    pub incident_id: String,
    /// open, updated, resolved.
    pub status: Status,
    /// 1, 2, ...
    pub version: u64,
    /// When it opened.
    pub created_at: Time,
    /// This version's time.
    pub updated_at: Time,
    /// The namespace of its services, when they share one.
    pub namespace: Option<Arc<str>>,
    /// How bad.
    pub severity: Severity,
    /// Every service it has held, by name.
    pub services: Vec<Service>,
    /// With silent intermediates on: services with no anomaly that link two of its services
    /// (not members, not causes).
    pub silent_services: Vec<Service>,
    /// Anomaly events it has gathered.
    pub event_count: u64,
    /// The anomalies behind it (the strongest per service and metric, at most 50).
    pub anomalies: Vec<Support>,
    /// Deploys of member services within the look-back before their onset.
    pub deploys: Vec<(Service, Arc<str>, Time)>,
    /// Ranked causes, most likely first.
    pub ranked_causes: Vec<Cause>,
    /// Confidence in the first cause, in thousandths.
    pub confidence_milli: u32,
    /// What this version changed.
    pub change: String,
    /// When resolved by a merge: the incident it joined.
    pub merged_into: Option<String>,
    /// When opened by a split: the incident it came from.
    pub split_from: Option<String>,
    /// Added outside the dataflow from the job's settings (runbooks, silences).
    pub notes: Notes,
}

/// What the job's settings add to an incident version: the matching runbook and silence.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Notes {
    /// The runbook whose pattern the likely cause matches: (name, url, recommended action).
    pub runbook: Option<(String, String, String)>,
    /// The silence or maintenance window that suppresses it (written, not alerted).
    pub suppressed_by: Option<String>,
}

impl Incident {
    /// The incident version as one line of JSON (the output contract).
    pub fn to_json(&self) -> String {
        let milli = |m: u32| m as f64 / 1000.0;
        let out = IncidentJson {
            schema_version: crate::records::SCHEMA_VERSION,
            incident_id: &self.incident_id,
            status: self.status,
            version: self.version,
            created_at: format_rfc3339(self.created_at),
            updated_at: format_rfc3339(self.updated_at),
            namespace: self.namespace.as_deref(),
            severity: self.severity,
            services: &self.services,
            silent_services: &self.silent_services,
            event_count: self.event_count,
            change: &self.change,
            merged_into: self.merged_into.as_deref(),
            split_from: self.split_from.as_deref(),
            runbook: self
                .notes
                .runbook
                .as_ref()
                .map(|(name, url, action)| RunbookJson {
                    name,
                    url,
                    recommended_action: action,
                }),
            suppressed_by: self.notes.suppressed_by.as_deref(),
            hypothesis: HypothesisJson {
                ranked_causes: self
                    .ranked_causes
                    .iter()
                    .map(|c| CauseJson {
                        service: &c.service,
                        score: milli(c.score_milli),
                        metric: c.metric.as_deref(),
                        strength: c.metric.as_ref().map(|_| milli(c.strength_milli)),
                        reasons: &c.reasons,
                    })
                    .collect(),
                confidence: milli(self.confidence_milli),
            },
            anomalies: self
                .anomalies
                .iter()
                .map(|a| SupportJson {
                    anomaly_id: &a.anomaly_id,
                    service: &a.service,
                    metric_name: &a.metric_name,
                    timestamp: format_rfc3339(a.timestamp),
                    anomaly_score: milli(a.score_milli),
                    direction: a.direction,
                })
                .collect(),
            deploys: self
                .deploys
                .iter()
                .map(|(service, version, t)| DeployJson {
                    service,
                    version,
                    timestamp: format_rfc3339(*t),
                })
                .collect(),
        };
        serde_json::to_string(&out).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[derive(Serialize)]
struct IncidentJson<'a> {
    schema_version: u32,
    incident_id: &'a str,
    status: Status,
    version: u64,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    severity: Severity,
    services: &'a [Service],
    #[serde(skip_serializing_if = "<[Service]>::is_empty")]
    silent_services: &'a [Service],
    event_count: u64,
    change: &'a str,
    merged_into: Option<&'a str>,
    split_from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runbook: Option<RunbookJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed_by: Option<&'a str>,
    hypothesis: HypothesisJson<'a>,
    anomalies: Vec<SupportJson<'a>>,
    deploys: Vec<DeployJson<'a>>,
}

#[derive(Serialize)]
struct RunbookJson<'a> {
    name: &'a str,
    url: &'a str,
    /// Advisory: what a responder should do first. Nothing is executed.
    recommended_action: &'a str,
}

#[derive(Serialize)]
struct HypothesisJson<'a> {
    ranked_causes: Vec<CauseJson<'a>>,
    confidence: f64,
}

#[derive(Serialize)]
struct CauseJson<'a> {
    service: &'a str,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strength: Option<f64>,
    reasons: &'a [String],
}

#[derive(Serialize)]
struct SupportJson<'a> {
    anomaly_id: &'a str,
    service: &'a str,
    metric_name: &'a str,
    timestamp: String,
    anomaly_score: f64,
    direction: Direction,
}

#[derive(Serialize)]
struct DeployJson<'a> {
    service: &'a str,
    version: &'a str,
    timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[test]
    fn a_status_has_one_name_serde_s() {
        for status in [Status::Open, Status::Updated, Status::Resolved] {
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }
}
