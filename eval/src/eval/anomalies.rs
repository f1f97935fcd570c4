//! Anomalies scored against the ground truth: which match a fault, each fault's matching
//! anomalies, detected services and detection delay, and the anomaly-level figures (see the
//! rules in [`crate::eval`]).

use std::collections::BTreeMap;

use incidentflow_dataflows::time::Time;

use crate::eval::report::{AnomalyFigures, FaultScore};
use crate::truth::{percentile, ratio, AnomalyRef, TruthFault};

/// Scores `anomalies` against `truth` (`spans`: each fault's [start, end + grace]), filling the
/// anomaly columns of `per_fault`.
pub(crate) fn score_anomalies(
    truth: &[TruthFault],
    spans: &[(Time, Time)],
    anomalies: &[AnomalyRef],
    per_fault: &mut [FaultScore],
) -> AnomalyFigures {
    let (matching, detected) = match_anomalies(truth, spans, anomalies, per_fault);
    let (services, affected) = count_detected_services(&detected, per_fault);
    let delays = sorted_delays(per_fault);
    AnomalyFigures {
        total: anomalies.len() as u64,
        matching,
        precision: ratio(matching, anomalies.len() as u64),
        recall: ratio(delays.len() as u64, truth.len() as u64),
        service_recall: ratio(services as u64, affected as u64),
        by_detector: count_by_detector(anomalies),
        delay_p50_ms: percentile(&delays, 0.5),
        delay_p90_ms: percentile(&delays, 0.9),
    }
}

/// Matches every anomaly to the faults it falls in, counting it and its delay in each fault's
/// row. Returns how many anomalies matched a fault, and per fault the services detected.
fn match_anomalies<'a>(
    truth: &[TruthFault],
    spans: &[(Time, Time)],
    anomalies: &'a [AnomalyRef],
    per_fault: &mut [FaultScore],
) -> (u64, Vec<Vec<&'a str>>) {
    let mut matching = 0u64;
    let mut detected: Vec<Vec<&str>> = vec![Vec::new(); truth.len()];
    for a in anomalies {
        let mut hit = false;
        for (k, f) in truth.iter().enumerate() {
            let (start, end) = spans[k];
            if a.timestamp >= start
                && a.timestamp <= end
                && f.affected_services.contains(&a.service)
            {
                hit = true;
                let row = &mut per_fault[k];
                row.anomalies += 1;
                let delay = a.timestamp - start;
                row.detection_delay_ms =
                    Some(row.detection_delay_ms.map_or(delay, |d| d.min(delay)));
                if !detected[k].contains(&a.service.as_str()) {
                    detected[k].push(&a.service);
                }
            }
        }
        matching += u64::from(hit);
    }
    (matching, detected)
}

/// Writes each fault's detected services into its row; returns (services detected, services
/// affected) over all faults.
fn count_detected_services(detected: &[Vec<&str>], per_fault: &mut [FaultScore]) -> (usize, usize) {
    let (mut services, mut affected) = (0usize, 0usize);
    for (k, row) in per_fault.iter_mut().enumerate() {
        row.services_detected.0 = detected[k].len();
        services += detected[k].len();
        affected += row.services_detected.1;
    }
    (services, affected)
}

/// The detection delays of the detected faults, sorted.
fn sorted_delays(per_fault: &[FaultScore]) -> Vec<u64> {
    let mut delays: Vec<u64> = per_fault
        .iter()
        .filter_map(|r| r.detection_delay_ms)
        .collect();
    delays.sort_unstable();
    delays
}

/// How many anomalies each detector reported.
fn count_by_detector(anomalies: &[AnomalyRef]) -> BTreeMap<String, u64> {
    anomalies.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.detector.clone()).or_insert(0) += 1;
        m
    })
}
