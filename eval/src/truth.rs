//! What every evaluation reads: the ground truth's faults, the anomalies as eval sees them, and
//! the two figures all of them compute (a ratio and a nearest-rank percentile).

use incidentflow_dataflows::time::Time;

/// A fault from the ground truth (the load generator's type).
pub use incidentflow_dataflows::truth::TruthFault;

/// What eval reads of an anomaly.
#[derive(Clone, Debug)]
pub struct AnomalyRef {
    /// Service.
    pub service: String,
    /// Series: namespace/service/metric_name.
    pub series: String,
    /// The episode it belongs to (id, start), when its detector reports episodes.
    pub episode: Option<(String, Time)>,
    /// Event time.
    pub timestamp: Time,
    /// Detector.
    pub detector: String,
}

/// a / b, or 0 when b is 0.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The `p` quantile of `sorted` (nearest rank), None when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
