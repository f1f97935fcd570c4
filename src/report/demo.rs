//! The embedded demo scenario that `incidentflow run` uses when given no input: a small shop
//! (web -> checkout -> payment-api -> payments-db) sampled every 30 s for three hours, in which
//! the database's disk saturates for ten minutes and its latency spike travels up to its callers.
//! Deterministic: the same bytes on every run.

use std::fmt::Write as _;
use std::sync::Arc;

use incidentflow_dataflows::time::{format_rfc3339, parse_rfc3339};

/// Start of the scenario.
const START: &str = "2026-11-25T00:00:00Z";
const INTERVAL_MS: u64 = 30_000;
const STEPS: u64 = 360;
/// The fault: from step 210 (01:45:00) to step 230.
const FAULT: std::ops::Range<u64> = 210..230;

/// (service, metric, normal level, noise amplitude, how much of the fault reaches it)
const SERIES: &[(&str, &str, f64, f64, f64)] = &[
    ("web", "latency_p99", 0.180, 0.010, 0.3),
    ("web", "error_rate", 0.002, 0.0005, 0.0),
    ("checkout", "latency_p99", 0.240, 0.012, 0.6),
    ("checkout", "cpu", 0.35, 0.03, 0.0),
    ("payment-api", "latency_p99", 0.120, 0.008, 0.9),
    ("payment-api", "error_rate", 0.001, 0.0004, 0.0),
    ("payments-db", "latency_p99", 0.030, 0.002, 1.0),
    ("payments-db", "disk_util", 0.40, 0.02, 1.0),
];

/// The scenario as JSON Lines.
pub fn scenario() -> (String, Arc<[u8]>) {
    let start = parse_rfc3339(START).unwrap_or_default();
    let mut out = String::with_capacity(200 * SERIES.len() * STEPS as usize);
    let mut noise = incidentflow_dataflows::rng::Rng::new(1, 0);
    for step in 0..STEPS {
        let ts = format_rfc3339(start + step * INTERVAL_MS);
        for &(service, metric, level, amplitude, reach) in SERIES {
            let jitter = noise.range(-1.0, 1.0);
            let mut value = level + amplitude * jitter;
            if FAULT.contains(&step) && reach > 0.0 {
                value += if metric == "disk_util" {
                    0.55
                } else {
                    level * 6.0 * reach
                };
            }
            let _ = writeln!(
                out,
                r#"{{"schema_version":1,"timestamp":"{ts}","namespace":"shop","service":"{service}","metric_name":"{metric}","value":{value:.6}}}"#
            );
        }
    }
    ("demo".to_string(), Arc::from(out.into_bytes()))
}

/// The demo's call graph, as a static edge list.
const TOPOLOGY: &str = r#"{"caller":"web","callee":"checkout"}
{"caller":"checkout","callee":"payment-api"}
{"caller":"payment-api","callee":"payments-db"}
"#;

/// Writes the demo topology to a temporary file and returns its path.
pub fn topology_file() -> Result<std::path::PathBuf, crate::error::JobError> {
    let path = std::env::temp_dir().join(format!(
        "incidentflow-demo-topology-{}.jsonl",
        std::process::id()
    ));
    std::fs::write(&path, TOPOLOGY).map_err(|source| crate::error::JobError::Output {
        what: "the demo topology",
        name: path.display().to_string(),
        source,
    })?;
    Ok(path)
}
