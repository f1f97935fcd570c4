//! The ground-truth record: one injected fault per line, as `incidentflow-loadgen` writes it and
//! `incidentflow eval` and the tests read it. One type for both sides, so that a field added on
//! one is read on the other.

use serde::{Deserialize, Serialize};

/// One injected fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TruthFault {
    /// Stable id.
    pub fault_id: String,
    /// What went wrong (`latency_spike`, `error_burst`, `cpu_saturation`, `memory_leak`,
    /// `traffic_drop`, `error_path`).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Where it started.
    pub root_service: String,
    /// The root's namespace.
    #[serde(default)]
    pub namespace: String,
    /// Every service it reached, the root first.
    pub affected_services: Vec<String>,
    /// The same with hops, onset and strength.
    #[serde(default)]
    pub affected: Vec<AffectedService>,
    /// Onset at the root (RFC 3339).
    pub start: String,
    /// End at the root (RFC 3339; callers recover one lag later each).
    pub end: String,
    /// Whether a deploy of the root preceded it.
    #[serde(default)]
    pub deploy_before: bool,
}

/// A service a fault reached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AffectedService {
    /// Service name.
    pub service: String,
    /// Calls between it and the root (0 for the root).
    pub hops: u8,
    /// When the fault reached it (RFC 3339).
    pub start: String,
    /// Strength relative to the root (1 at the root).
    pub intensity: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_reads_back_as_written_and_old_files_still_read() {
        let fault = TruthFault {
            fault_id: "fault-001".into(),
            kind: "cpu_saturation".into(),
            root_service: "db".into(),
            namespace: "shop".into(),
            affected_services: vec!["db".into(), "api".into()],
            affected: vec![AffectedService {
                service: "api".into(),
                hops: 1,
                start: "2026-11-23T00:01:00.000Z".into(),
                intensity: 0.6,
            }],
            start: "2026-11-23T00:00:00.000Z".into(),
            end: "2026-11-23T00:05:00.000Z".into(),
            deploy_before: true,
        };
        let line = serde_json::to_string(&fault).unwrap_or_default();
        assert!(
            line.starts_with(r#"{"fault_id":"fault-001","type":"cpu_saturation""#),
            "{line}"
        );
        let back: Result<TruthFault, _> = serde_json::from_str(&line);
        assert_eq!(back.ok(), Some(fault));
        // The fields eval needs are enough.
        let minimal: Result<TruthFault, _> = serde_json::from_str(
            r#"{"fault_id":"f","root_service":"db","affected_services":["db"],"start":"a","end":"b"}"#,
        );
        assert!(minimal.is_ok_and(|f| f.kind.is_empty() && !f.deploy_before));
    }
}
