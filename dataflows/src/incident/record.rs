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

impl Severity {
    /// The name used in records and alerts: serde's (a test ties the two).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
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
        serde_json::to_string(&self.record()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The version as its JSON line's record (what [`Incident::to_json`] writes).
    pub fn record(&self) -> IncidentRecord {
        let milli = |m: u32| m as f64 / 1000.0;
        IncidentRecord {
            schema_version: crate::records::SCHEMA_VERSION,
            incident_id: self.incident_id.clone(),
            status: self.status,
            version: self.version,
            created_at: format_rfc3339(self.created_at),
            updated_at: format_rfc3339(self.updated_at),
            namespace: self.namespace.as_deref().map(str::to_owned),
            severity: self.severity,
            services: self.services.iter().map(|s| s.to_string()).collect(),
            silent_services: self.silent_services.iter().map(|s| s.to_string()).collect(),
            event_count: self.event_count,
            change: self.change.clone(),
            merged_into: self.merged_into.clone(),
            split_from: self.split_from.clone(),
            runbook: self
                .notes
                .runbook
                .as_ref()
                .map(|(name, url, action)| RunbookRecord {
                    name: name.clone(),
                    url: url.clone(),
                    recommended_action: action.clone(),
                }),
            suppressed_by: self.notes.suppressed_by.clone(),
            hypothesis: HypothesisRecord {
                ranked_causes: self
                    .ranked_causes
                    .iter()
                    .map(|c| CauseRecord {
                        service: c.service.to_string(),
                        score: milli(c.score_milli),
                        metric: c.metric.as_deref().map(str::to_owned),
                        strength: c.metric.as_ref().map(|_| milli(c.strength_milli)),
                        reasons: c.reasons.clone(),
                    })
                    .collect(),
                confidence: milli(self.confidence_milli),
            },
            anomalies: self
                .anomalies
                .iter()
                .map(|a| SupportRecord {
                    anomaly_id: a.anomaly_id.to_string(),
                    service: a.service.to_string(),
                    metric_name: a.metric_name.to_string(),
                    timestamp: format_rfc3339(a.timestamp),
                    anomaly_score: milli(a.score_milli),
                    direction: a.direction,
                })
                .collect(),
            deploys: self
                .deploys
                .iter()
                .map(|(service, version, t)| DeployRecord {
                    service: service.to_string(),
                    version: version.to_string(),
                    timestamp: format_rfc3339(*t),
                })
                .collect(),
        }
    }
}

/// An incident version as its JSON line: what the job writes and what `review`, `eval` and the
/// tests read back (one type for both sides).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// The record contract's version.
    pub schema_version: u32,
    /// Stable id.
    pub incident_id: String,
    /// open, updated or resolved.
    pub status: Status,
    /// 1, 2, ...
    pub version: u64,
    /// When it opened (RFC 3339).
    pub created_at: String,
    /// This version's time (RFC 3339).
    pub updated_at: String,
    /// Its services' namespace, when they share one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How bad.
    pub severity: Severity,
    /// Its services.
    pub services: Vec<String>,
    /// Services with no anomaly that link two of its services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silent_services: Vec<String>,
    /// Anomaly events it holds.
    #[serde(default)]
    pub event_count: u64,
    /// What this version changed.
    #[serde(default)]
    pub change: String,
    /// The incident it merged into (on its last version).
    #[serde(default)]
    pub merged_into: Option<String>,
    /// The incident it split from.
    #[serde(default)]
    pub split_from: Option<String>,
    /// The matching runbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<RunbookRecord>,
    /// The silence that suppressed its alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<String>,
    /// The ranked root-cause hypothesis.
    #[serde(default)]
    pub hypothesis: HypothesisRecord,
    /// Its strongest anomalies.
    #[serde(default)]
    pub anomalies: Vec<SupportRecord>,
    /// Deploys of its services before their onsets.
    #[serde(default)]
    pub deploys: Vec<DeployRecord>,
}

/// A runbook on an incident version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunbookRecord {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub url: String,
    /// Advisory: what a responder should do first. Nothing is executed.
    pub recommended_action: String,
}

/// The ranked causes and the confidence in the first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HypothesisRecord {
    /// Most likely first.
    pub ranked_causes: Vec<CauseRecord>,
    /// Confidence in the first, in [0, 1].
    pub confidence: f64,
}

/// One ranked cause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CauseRecord {
    /// The service.
    pub service: String,
    /// Its score in [0, 1].
    pub score: f64,
    /// Its strongest metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// That metric's strength against its threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f64>,
    /// Why it ranks there.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// One of an incident's anomalies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupportRecord {
    /// The anomaly's id.
    pub anomaly_id: String,
    /// Its service.
    pub service: String,
    /// Its metric.
    pub metric_name: String,
    /// When (RFC 3339).
    pub timestamp: String,
    /// Its score.
    pub anomaly_score: f64,
    /// Which way.
    pub direction: Direction,
}

/// A deploy before a service's onset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// The service.
    pub service: String,
    /// The version deployed.
    pub version: String,
    /// When (RFC 3339).
    pub timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::{Severity, Status};

    #[test]
    fn a_status_and_a_severity_have_one_name_serde_s() {
        for status in [Status::Open, Status::Updated, Status::Resolved] {
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        for severity in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            let json = serde_json::to_string(&severity).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", severity.as_str()));
        }
    }
}
