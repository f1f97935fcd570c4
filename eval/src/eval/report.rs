//! What an evaluation says: the report and its parts (anomaly figures, incident figures, one row
//! per fault), in one place so that the scoring modules fill them and the text and JSON forms
//! read them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::truth::TruthFault;

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

impl FaultScore {
    /// The row of `fault` before anything is scored against it.
    pub(crate) fn unscored(fault: &TruthFault) -> FaultScore {
        FaultScore {
            fault_id: fault.fault_id.clone(),
            kind: fault.kind.clone(),
            root_service: fault.root_service.clone(),
            anomalies: 0,
            services_detected: (0, fault.affected_services.len()),
            detection_delay_ms: None,
            incidents: 0,
            root_rank: None,
        }
    }
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
