//! The root-cause hypothesis: every member service of an incident ranked by the evidence that it
//! is where the problem began, each with the metric and the figures that drove its rank.
//!
//! A service scores up to 1 from five kinds of evidence (weights in brackets):
//!
//! * **Its call graph position** (0.30): none of the services it calls is anomalous about as
//!   strongly (at least a fifth of its own deviation: deviations against different series' noise compare only roughly) by the time it is: a caller inherits its
//!   callee's latency and errors, so the deepest anomalous service is the likelier cause.
//! * **Its onset** (0.25): the earliest member (within a minute: samples a minute apart cannot
//!   tell closer onsets apart) gets it all, later ones less, nothing from five minutes behind.
//! * **Its deviation against its own noise** (0.25): the strongest of its anomalies, as strength
//!   (1.0 at its detector's threshold, which each series sets from its own history), on a log
//!   scale that is full at 20.
//! * **The kind of metric** (0.10): saturation of a resource (CPU, memory, disk, threads, file
//!   descriptors, garbage collection...) is what a root cause shows; latency or errors seen from
//!   the client side of a call (a metric named `client`) are what its callers show.
//! * **A deploy** (0.15) of it within the look-back before its onset.
//!
//! Ties go to the earlier onset, then the name. Confidence grows with the margin between the
//! first two causes; a lone service stays at or below 0.35.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::record::{Cause, Service};
use crate::records::Direction;
use crate::time::{format_clock, format_duration, Time};

/// Onsets closer than this are the same onset.
const TIE_MS: Time = 60_000;
/// An onset this far behind the first earns nothing.
const LATE_MS: Time = 5 * 60_000;
/// The strength at which the deviation's part is full.
const FULL_STRENGTH: f64 = 20.0;
/// A callee anomalous at least this share of a caller's deviation explains it.
const EXPLAINS: f64 = 0.2;

const W_GRAPH: f64 = 0.30;
const W_ONSET: f64 = 0.25;
const W_DEVIATION: f64 = 0.25;
const W_KIND: f64 = 0.10;
const W_DEPLOY: f64 = 0.15;

/// One metric's strongest anomaly in an incident.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricView {
    /// When its first episode began.
    pub started: Time,
    /// Its strongest deviation, as strength (1.0 at the threshold).
    pub strength: f64,
    /// Its best anomaly score, in thousandths.
    pub score_milli: u32,
    /// Which way it moved.
    pub direction: Direction,
    /// The value it moved from and to at its strongest.
    pub from: f64,
    /// See `from`.
    pub to: f64,
}

/// What the ranking reads of a member service.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    /// Its first anomaly's start.
    pub onset: Time,
    /// Its metrics' strongest anomalies.
    pub metrics: BTreeMap<Arc<str>, MetricView>,
    /// A deploy of it within the look-back before its onset: (time, version).
    pub deploy: Option<(Time, Arc<str>)>,
}

impl MemberView {
    /// Its strongest metric: (name, view).
    fn strongest(&self) -> Option<(&Arc<str>, &MetricView)> {
        self.metrics
            .iter()
            .max_by(|a, b| a.1.strength.total_cmp(&b.1.strength).then(b.0.cmp(a.0)))
    }

    fn strength(&self) -> f64 {
        self.strongest().map_or(0.0, |(_, v)| v.strength)
    }
}

/// The kind of a metric, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A resource saturating: what a root cause shows.
    Resource,
    /// What a service shows of itself (its latency, errors, traffic).
    Own,
    /// What a caller sees of its calls: inherited from the callee.
    ClientSide,
}

fn kind_of(metric: &str) -> Kind {
    let m = metric.to_ascii_lowercase();
    if m.contains("client") {
        return Kind::ClientSide;
    }
    const RESOURCES: [&str; 14] = [
        "cpu",
        "memory",
        "mem_",
        "heap",
        "disk",
        "fs_",
        "filesystem",
        "thread",
        "fd",
        "file_desc",
        "gc_",
        "oom",
        "load",
        "saturation",
    ];
    if RESOURCES.iter().any(|r| m.contains(r)) {
        Kind::Resource
    } else {
        Kind::Own
    }
}

/// Edges with their counts (present while above zero), by (from, to).
pub type EdgeCounts = BTreeMap<(Service, Service), i64>;

/// Ranks the members (most likely cause first) over the topology's `edges` (caller, callee) and
/// `callers` (callee, caller); returns the causes and the confidence in the first, in
/// thousandths.
pub fn rank(
    members: &BTreeMap<Service, MemberView>,
    edges: &EdgeCounts,
    callers: &EdgeCounts,
) -> (Vec<Cause>, u32) {
    let first = members.values().map(|m| m.onset).min().unwrap_or(0);
    let mut causes: Vec<(u32, Time, Cause)> = Vec::new();
    for (s, m) in members {
        let mut reasons = Vec::new();
        let strength = m.strength();
        let (metric, view) = match m.strongest() {
            Some((name, view)) => (Some(name.clone()), Some(*view)),
            None => (None, None),
        };
        if let (Some(name), Some(v)) = (&metric, view) {
            let verb = match v.direction {
                Direction::Up => "rose",
                Direction::Down => "fell",
            };
            reasons.push(format!(
                // The strength is the anomaly's score as odds: 1 at its detector's threshold for
                // one sample, more the further past it and the longer it lasts.
                "{name} {verb} from {} to {} at {} (strength {:.1}; 1 is its threshold)",
                short(v.from),
                short(v.to),
                format_clock(v.started),
                strength
            ));
        }
        let graph = graph_evidence(s, m, members, edges, callers, &mut reasons);
        let onset = onset_evidence(m.onset, first, &mut reasons);
        let deviation = ((1.0 + strength).ln() / (1.0 + FULL_STRENGTH).ln()).clamp(0.0, 1.0);
        let kind = kind_evidence(metric.as_deref(), &mut reasons);
        let deploy = deploy_evidence(m, &mut reasons);
        let score = W_GRAPH * graph
            + W_ONSET * onset
            + W_DEVIATION * deviation
            + W_KIND * kind
            + W_DEPLOY * deploy;
        let milli = (score.min(1.0) * 1000.0).round() as u32;
        causes.push((
            milli,
            m.onset,
            Cause {
                service: s.clone(),
                score_milli: milli,
                metric,
                strength_milli: (strength.clamp(0.0, 1e6) * 1000.0).round() as u32,
                reasons,
            },
        ));
    }
    causes.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.service.cmp(&b.2.service))
    });
    let ranked: Vec<Cause> = causes.into_iter().map(|c| c.2).collect();
    let confidence = confidence_milli(&ranked);
    (ranked, confidence)
}

/// The services `s` has edges to in `map` (callees in `edges`, callers in `callers`).
fn related(map: &EdgeCounts, s: &Service) -> Vec<Service> {
    map.range((s.clone(), Service::from(""))..)
        .take_while(|((a, _), _)| a == s)
        .filter(|(_, n)| **n > 0)
        .map(|((_, b), _)| b.clone())
        .collect()
}

/// The call graph: 1 when no callee anomalous about as strongly, by the time `s` was, explains
/// it; 0 when one does.
fn graph_evidence(
    s: &Service,
    m: &MemberView,
    members: &BTreeMap<Service, MemberView>,
    edges: &EdgeCounts,
    callers: &EdgeCounts,
    reasons: &mut Vec<String>,
) -> f64 {
    let strength = m.strength();
    let calls = related(edges, s);
    let sick: Vec<&Service> = calls
        .iter()
        .filter(|c| {
            members
                .get(*c)
                .is_some_and(|d| d.strength() >= EXPLAINS * strength && d.onset <= m.onset + TIE_MS)
        })
        .collect();
    if sick.is_empty() {
        reasons.push(if calls.is_empty() {
            "calls no other service".to_string()
        } else {
            "all its dependencies healthy".to_string()
        });
        let callers_sick: Vec<&Service> = related(callers, s)
            .iter()
            .filter_map(|c| members.get_key_value(c).map(|(k, _)| k))
            .collect();
        if !callers_sick.is_empty() {
            reasons.push(format!(
                "explains anomalous callers {}",
                join(&callers_sick)
            ));
        }
        1.0
    } else {
        reasons.push(format!("depends on anomalous {}", join(&sick)));
        0.0
    }
}

/// The onset, at minute resolution: 1 for the earliest, less the later after the first.
fn onset_evidence(onset: Time, first: Time, reasons: &mut Vec<String>) -> f64 {
    let behind = onset.saturating_sub(first);
    if behind <= TIE_MS {
        reasons.push(format!("earliest anomaly ({})", format_clock(onset)));
        1.0
    } else {
        reasons.push(format!(
            "anomalous {} after the first",
            format_duration(behind)
        ));
        0.5 * (1.0 - behind as f64 / LATE_MS as f64).max(0.0)
    }
}

/// The kind of the strongest metric: a resource saturating, the service's own, or its client side.
fn kind_evidence(metric: Option<&str>, reasons: &mut Vec<String>) -> f64 {
    match metric.map(kind_of) {
        Some(Kind::Resource) => {
            reasons.push("a resource saturating".to_string());
            1.0
        }
        Some(Kind::Own) => 0.5,
        Some(Kind::ClientSide) => {
            reasons.push("seen from the client side of its calls".to_string());
            0.0
        }
        None => 0.0,
    }
}

/// A deploy of the service within the look-back before its onset.
fn deploy_evidence(m: &MemberView, reasons: &mut Vec<String>) -> f64 {
    match &m.deploy {
        Some((at, version)) => {
            reasons.push(format!(
                "deployed {version} {} before",
                format_duration(m.onset.saturating_sub(*at))
            ));
            1.0
        }
        None => 0.0,
    }
}

/// The confidence in the first cause, in thousandths: its score, and its margin over the second.
fn confidence_milli(ranked: &[Cause]) -> u32 {
    let confidence = match ranked {
        [] => 0.0,
        [only] => 0.35 * only.score_milli as f64 / 1000.0,
        [top, second, ..] => {
            let margin = top.score_milli.saturating_sub(second.score_milli) as f64
                / top.score_milli.max(1) as f64;
            (0.35 + 0.45 * margin + 0.15 * top.score_milli as f64 / 1000.0).min(0.95)
        }
    };
    (confidence * 1000.0).round() as u32
}

/// A value as a responder reads it: a few significant digits.
fn short(v: f64) -> String {
    if !v.is_finite() {
        return "?".to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn join(services: &[&Service]) -> String {
    services
        .iter()
        .map(|s| &***s)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(onset: Time, metrics: &[(&str, f64)]) -> MemberView {
        MemberView {
            onset,
            metrics: metrics
                .iter()
                .map(|(name, strength)| {
                    (
                        Arc::from(*name),
                        MetricView {
                            started: onset,
                            strength: *strength,
                            score_milli: (1000.0 * strength / (1.0 + strength)) as u32,
                            direction: Direction::Up,
                            from: 1.0,
                            to: 2.0,
                        },
                    )
                })
                .collect(),
            deploy: None,
        }
    }

    fn graph(pairs: &[(&str, &str)]) -> (EdgeCounts, EdgeCounts) {
        let edges = pairs
            .iter()
            .map(|(a, b)| ((Service::from(*a), Service::from(*b)), 1))
            .collect();
        let callers = pairs
            .iter()
            .map(|(a, b)| ((Service::from(*b), Service::from(*a)), 1))
            .collect();
        (edges, callers)
    }

    #[test]
    fn a_caller_inherits_its_callees_latency() {
        let (edges, callers) = graph(&[("frontend", "cart")]);
        let members = BTreeMap::from([
            (
                Service::from("frontend"),
                member(60_000, &[("latency_p99", 30.0)]),
            ),
            (
                Service::from("cart"),
                member(60_000, &[("latency_p99", 8.0)]),
            ),
        ]);
        let (causes, confidence) = rank(&members, &edges, &callers);
        assert_eq!(&*causes[0].service, "cart", "{causes:#?}");
        assert!(causes[1]
            .reasons
            .iter()
            .any(|r| r.contains("depends on anomalous cart")));
        assert!(causes[0]
            .reasons
            .iter()
            .any(|r| r.contains("explains anomalous callers frontend")));
        assert!(confidence > 350);
    }

    #[test]
    fn onsets_a_minute_apart_tie_and_saturation_breaks_the_tie() {
        let (edges, callers) = graph(&[]);
        let members = BTreeMap::from([
            (Service::from("a"), member(0, &[("latency_p99", 5.0)])),
            (Service::from("b"), member(30_000, &[("cpu_usage", 5.0)])),
        ]);
        let (causes, _) = rank(&members, &edges, &callers);
        assert_eq!(&*causes[0].service, "b", "{causes:#?}");
        assert_eq!(causes[0].metric.as_deref(), Some("cpu_usage"));
        assert_eq!(causes[0].strength_milli, 5000);
        // Five minutes behind earns no onset.
        let late = BTreeMap::from([
            (Service::from("a"), member(0, &[("latency_p99", 5.0)])),
            (Service::from("b"), member(300_000, &[("cpu_usage", 5.0)])),
        ]);
        let (causes, _) = rank(&late, &edges, &callers);
        assert_eq!(&*causes[0].service, "a");
        assert!(causes[1]
            .reasons
            .iter()
            .any(|r| r.contains("5m after the first")));
    }

    #[test]
    fn client_side_latency_points_away_from_the_caller() {
        assert_eq!(kind_of("client_latency_p90_s"), Kind::ClientSide);
        assert_eq!(kind_of("cpu_usage_rate_pct"), Kind::Resource);
        assert_eq!(kind_of("server_latency_p99_s"), Kind::Own);
        assert_eq!(kind_of("http_errors_total"), Kind::Own);
    }
}
