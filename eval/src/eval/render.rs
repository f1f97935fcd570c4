//! The evaluation as text for a person: the feedback, the anomaly and incident figures, the
//! detectors side by side, then one line per fault.

use std::fmt::Write as _;

use incidentflow_dataflows::time::format_duration;

use crate::eval::report::{AnomalyFigures, EvalReport, FaultScore, IncidentFigures};

/// The report for a person.
pub fn render(report: &EvalReport) -> String {
    let mut s = String::new();
    if let Some(f) = &report.feedback {
        s += &crate::feedback::render(f);
    }
    if !report.with_truth {
        return s;
    }
    let _ = writeln!(
        s,
        "incidentflow eval: {} faults (grace after a fault's end: {})",
        report.faults,
        format_duration(report.grace_ms)
    );
    if let Some(a) = &report.anomalies {
        render_anomalies(&mut s, a);
    }
    if let Some(i) = &report.incidents {
        render_incidents(&mut s, i);
    }
    if !report.detectors.is_empty() {
        s += &crate::compare::render(&report.detectors);
    }
    render_faults(&mut s, &report.per_fault);
    s
}

/// A ratio as a percentage with one decimal.
fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// A duration in ms, or `-` when there is none.
fn ms(x: Option<u64>) -> String {
    x.map_or("-".to_string(), format_duration)
}

/// The anomaly lines.
fn render_anomalies(s: &mut String, a: &AnomalyFigures) {
    let _ = writeln!(
        s,
        "anomalies: {} ({} matching a fault)",
        a.total, a.matching
    );
    let _ = writeln!(
        s,
        "  precision {}   recall {} of faults, {} of affected services",
        pct(a.precision),
        pct(a.recall),
        pct(a.service_recall)
    );
    let _ = writeln!(
        s,
        "  detection delay p50 {}  p90 {}",
        ms(a.delay_p50_ms),
        ms(a.delay_p90_ms)
    );
}

/// The incident lines.
fn render_incidents(s: &mut String, i: &IncidentFigures) {
    let _ = writeln!(
        s,
        "incidents: {} ({} matching a fault; {} more were merged into them)",
        i.total, i.matching, i.merged
    );
    let _ = writeln!(
        s,
        "  precision {}   recall {}   duplicates {}   compression {}",
        pct(i.precision),
        pct(i.recall),
        i.duplicates,
        i.compression
            .map_or("-".into(), |c| format!("{c:.1} anomalies/incident"))
    );
    let _ = writeln!(
        s,
        "  root cause top-1 {}  top-3 {}   (faults that propagate: top-1 {}  top-3 {})",
        pct(i.root_cause_top1),
        pct(i.root_cause_top3),
        pct(i.propagating_top1),
        pct(i.propagating_top3)
    );
}

/// The per-fault table: a header, then one line per fault.
fn render_faults(s: &mut String, per_fault: &[FaultScore]) {
    let _ = writeln!(
        s,
        "  {:<10} {:<15} {:<16} {:>9} {:>9} {:>8} {:>9} {:>5}",
        "fault", "type", "root", "anomalies", "services", "delay", "incidents", "rank"
    );
    for r in per_fault {
        let _ = writeln!(
            s,
            "  {:<10} {:<15} {:<16} {:>9} {:>9} {:>8} {:>9} {:>5}",
            r.fault_id,
            r.kind,
            r.root_service,
            r.anomalies,
            format!("{}/{}", r.services_detected.0, r.services_detected.1),
            ms(r.detection_delay_ms),
            r.incidents,
            r.root_rank.map_or("-".into(), |x| x.to_string())
        );
    }
}
