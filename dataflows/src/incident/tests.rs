//! The tracker's rules on hand-made episode events.

use std::sync::Arc;

use super::*;
use crate::records::{
    Anomaly, DeployEvent, Detector, Direction, EdgeChange, EpisodeInfo, EpisodeStatus, Evidence,
    SeriesInfo, F64,
};
use crate::time::Time;

const MIN: Time = 60_000;
const T0: Time = 1_795_392_000_000;

/// An episode event of `service`'s `metric` that began at `started`, at `t`, scoring `score`.
pub(super) fn event(
    service: &str,
    metric: &str,
    started: Time,
    t: Time,
    status: EpisodeStatus,
    score: f64,
) -> Anomaly {
    Anomaly {
        timestamp: t,
        series: Arc::new(SeriesInfo::new("shop", service, metric)),
        value: F64(2.0),
        expected: F64(1.0),
        lower_bound: F64(0.5),
        upper_bound: F64(1.5),
        anomaly_score: F64(score),
        detector: Detector::Change,
        window_ms: 0,
        evidence: Evidence {
            baseline_points: 50,
            baseline_stddev: F64(0.1),
            z: None,
            direction: Direction::Up,
            flat_baseline: false,
            statistic: None,
            change: None,
        },
        episode: Some(EpisodeInfo {
            status,
            started_at: started,
            samples: 2,
        }),
    }
}

fn open(service: &str, metric: &str, t: Time, score: f64) -> Anomaly {
    event(service, metric, t, t, EpisodeStatus::Open, score)
}

fn close(service: &str, metric: &str, started: Time, t: Time) -> Anomaly {
    event(service, metric, started, t, EpisodeStatus::Close, 0.8)
}

fn edge(caller: &str, callee: &str, t: Time, add: bool) -> EdgeChange {
    EdgeChange {
        timestamp: t,
        caller: caller.into(),
        callee: callee.into(),
        add,
        namespace: None,
    }
}

/// Runs the tracker over `events` (time, changes), stepping every minute until `until` so that
/// timers fire; returns every version.
fn run(config: CorrelationConfig, events: Vec<(Time, Changes)>, until: Time) -> Vec<Incident> {
    let mut tracker = Tracker::new(config);
    let mut out = Vec::new();
    let mut events = events.into_iter().peekable();
    let mut t = T0;
    while t <= until {
        let mut changes = Changes::default();
        while events.peek().is_some_and(|(at, _)| *at <= t) {
            if let Some((_, c)) = events.next() {
                changes.anomalies.extend(c.anomalies);
                changes.edges.extend(c.edges);
                changes.deploys.extend(c.deploys);
            }
        }
        out.extend(tracker.step(t, changes));
        t += 15_000;
    }
    out
}

fn anomalies(list: Vec<Anomaly>) -> Changes {
    Changes {
        anomalies: list,
        ..Default::default()
    }
}

fn ids(versions: &[Incident]) -> std::collections::BTreeSet<String> {
    versions.iter().map(|v| v.incident_id.clone()).collect()
}

#[test]
fn a_weak_anomaly_alone_opens_nothing_and_each_kind_of_evidence_opens_one() {
    let config = CorrelationConfig::default;
    // One weak episode: nothing.
    let weak = run(
        config(),
        vec![(T0, anomalies(vec![open("api", "latency", T0, 0.6)]))],
        T0 + 10 * MIN,
    );
    assert!(weak.is_empty(), "{weak:#?}");
    // A strong one: an incident, opened at once.
    let strong = run(
        config(),
        vec![(T0, anomalies(vec![open("api", "latency", T0, 0.8)]))],
        T0 + 10 * MIN,
    );
    assert_eq!(strong[0].status, Status::Open);
    assert_eq!(strong[0].created_at, T0);
    assert!(
        strong[0].change.contains("a strong anomaly"),
        "{}",
        strong[0].change
    );
    assert_eq!(strong[0].namespace.as_deref(), Some("shop"));
    // Two weak ones on two metrics of one service.
    let metrics = run(
        config(),
        vec![
            (T0, anomalies(vec![open("api", "latency", T0, 0.6)])),
            (
                T0 + MIN,
                anomalies(vec![open("api", "errors", T0 + MIN, 0.6)]),
            ),
        ],
        T0 + 10 * MIN,
    );
    assert_eq!(metrics[0].created_at, T0 + MIN);
    assert!(
        metrics[0].change.contains("2 metrics of api"),
        "{}",
        metrics[0].change
    );
    // Two weak ones on two connected services.
    let services = run(
        config(),
        vec![
            (
                T0,
                Changes {
                    edges: vec![edge("web", "api", 0, true)],
                    anomalies: vec![open("api", "latency", T0, 0.6)],
                    ..Default::default()
                },
            ),
            (
                T0 + MIN,
                anomalies(vec![open("web", "latency", T0 + MIN, 0.6)]),
            ),
        ],
        T0 + 10 * MIN,
    );
    assert_eq!(services[0].services.len(), 2, "{services:#?}");
    // ...but not two unconnected ones.
    let apart = run(
        config(),
        vec![
            (T0, anomalies(vec![open("api", "latency", T0, 0.6)])),
            (
                T0 + MIN,
                anomalies(vec![open("web", "latency", T0 + MIN, 0.6)]),
            ),
        ],
        T0 + 10 * MIN,
    );
    assert!(apart.is_empty(), "{apart:#?}");
    // A weak one right after a deploy of its service.
    let deployed = run(
        config(),
        vec![
            (
                T0,
                Changes {
                    deploys: vec![DeployEvent {
                        timestamp: T0,
                        service: "api".into(),
                        version: "v2".into(),
                        namespace: None,
                    }],
                    ..Default::default()
                },
            ),
            (
                T0 + 2 * MIN,
                anomalies(vec![open("api", "latency", T0 + 2 * MIN, 0.6)]),
            ),
        ],
        T0 + 10 * MIN,
    );
    assert!(
        deployed[0].change.contains("deployed v2 2m before"),
        "{deployed:#?}"
    );
}

#[test]
fn two_faults_five_minutes_apart_in_one_neighbourhood_are_two_incidents() {
    // db fails at 00:00 and its caller api with it; both recover at 00:03. Then at 00:05, while
    // api's episode has not yet closed, db fails again.
    let events = vec![
        (
            T0,
            Changes {
                edges: vec![edge("api", "db", 0, true)],
                anomalies: vec![open("db", "cpu", T0, 0.9), open("api", "latency", T0, 0.8)],
                ..Default::default()
            },
        ),
        (
            T0 + 4 * MIN,
            anomalies(vec![close("db", "cpu", T0, T0 + 4 * MIN)]),
        ),
        (
            T0 + 5 * MIN,
            anomalies(vec![open("db", "cpu", T0 + 5 * MIN, 0.9)]),
        ),
        (
            T0 + 6 * MIN,
            anomalies(vec![close("api", "latency", T0, T0 + 6 * MIN)]),
        ),
        (
            T0 + 9 * MIN,
            anomalies(vec![close("db", "cpu", T0 + 5 * MIN, T0 + 9 * MIN)]),
        ),
    ];
    let versions = run(CorrelationConfig::default(), events, T0 + 20 * MIN);
    let incidents = ids(&versions);
    assert_eq!(incidents.len(), 2, "{versions:#?}");
    let opened: Vec<&Incident> = versions
        .iter()
        .filter(|v| v.status == Status::Open)
        .collect();
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[0].created_at, T0);
    assert_eq!(opened[1].created_at, T0 + 5 * MIN);
    assert_eq!(opened[1].services, vec![Service::from("db")]);
    // Neither is merged into the other.
    assert!(versions.iter().all(|v| v.merged_into.is_none()));
}

#[test]
fn an_incident_resolves_within_the_grace_after_its_last_member_recovers() {
    let config = CorrelationConfig::default();
    let grace = config.grace_ms;
    let events = vec![
        (
            T0,
            Changes {
                edges: vec![edge("api", "db", 0, true)],
                anomalies: vec![open("db", "cpu", T0, 0.9)],
                ..Default::default()
            },
        ),
        (
            T0 + MIN,
            anomalies(vec![open("api", "latency", T0 + MIN, 0.7)]),
        ),
        (
            T0 + 4 * MIN,
            anomalies(vec![close("db", "cpu", T0, T0 + 4 * MIN)]),
        ),
        (
            T0 + 7 * MIN,
            anomalies(vec![close("api", "latency", T0 + MIN, T0 + 7 * MIN)]),
        ),
    ];
    let versions = run(config, events, T0 + 30 * MIN);
    let last = versions.last().unwrap();
    assert_eq!(last.status, Status::Resolved, "{versions:#?}");
    assert!(last.updated_at >= T0 + 7 * MIN);
    assert!(
        last.updated_at <= T0 + 7 * MIN + grace,
        "{}",
        last.updated_at - T0
    );
    assert!(
        last.change.contains("every member recovered"),
        "{}",
        last.change
    );
    assert_eq!(last.services.len(), 2);
    assert_eq!(&*last.ranked_causes[0].service, "db");
}

#[test]
fn weak_anomalies_alone_do_not_keep_an_incident_open() {
    // A strong episode opens it and closes at 00:03; a weak one on the same service, joined at
    // 00:01, stays open till 00:30: the incident resolves after the grace anyway.
    let config = CorrelationConfig::default();
    let events = vec![
        (T0, anomalies(vec![open("db", "cpu", T0, 0.9)])),
        (
            T0 + MIN,
            anomalies(vec![open("db", "latency", T0 + MIN, 0.55)]),
        ),
        (
            T0 + 3 * MIN,
            anomalies(vec![close("db", "cpu", T0, T0 + 3 * MIN)]),
        ),
        (
            T0 + 30 * MIN,
            anomalies(vec![close("db", "latency", T0 + MIN, T0 + 30 * MIN)]),
        ),
    ];
    let grace = config.grace_ms;
    let versions = run(config, events, T0 + 40 * MIN);
    let last = versions.last().unwrap();
    assert_eq!(last.status, Status::Resolved);
    assert!(last.updated_at <= T0 + 3 * MIN + grace, "{versions:#?}");
    assert_eq!(ids(&versions).len(), 1);
}

#[test]
fn a_late_edge_merges_incidents_that_began_together_and_a_removed_one_splits() {
    let events = vec![
        (T0, anomalies(vec![open("api", "latency", T0, 0.9)])),
        (T0 + MIN, anomalies(vec![open("db", "cpu", T0 + MIN, 0.9)])),
        (
            T0 + 2 * MIN,
            Changes {
                edges: vec![edge("api", "db", T0 + 2 * MIN, true)],
                ..Default::default()
            },
        ),
    ];
    let versions = run(CorrelationConfig::default(), events, T0 + 3 * MIN);
    let merged: Vec<&Incident> = versions
        .iter()
        .filter(|v| v.merged_into.is_some())
        .collect();
    assert_eq!(merged.len(), 1, "{versions:#?}");
    let survivor = merged[0].merged_into.clone().unwrap();
    let last = versions
        .iter()
        .rev()
        .find(|v| v.incident_id == survivor)
        .unwrap();
    assert_eq!(last.services.len(), 2);
    assert!(last.change.contains("merged"), "{}", last.change);

    // Onsets twenty minutes apart: the edge does not merge them.
    let events = vec![
        (T0, anomalies(vec![open("api", "latency", T0, 0.9)])),
        (
            T0 + 20 * MIN,
            anomalies(vec![open("db", "cpu", T0 + 20 * MIN, 0.9)]),
        ),
        (
            T0 + 21 * MIN,
            Changes {
                edges: vec![edge("api", "db", T0 + 21 * MIN, true)],
                ..Default::default()
            },
        ),
    ];
    let versions = run(CorrelationConfig::default(), events, T0 + 22 * MIN);
    assert!(
        versions.iter().all(|v| v.merged_into.is_none()),
        "{versions:#?}"
    );

    // One incident over an edge that is then removed: split, the earliest part keeps the id.
    let events = vec![
        (
            T0,
            Changes {
                edges: vec![edge("api", "db", 0, true)],
                anomalies: vec![open("api", "latency", T0, 0.9)],
                ..Default::default()
            },
        ),
        (T0 + MIN, anomalies(vec![open("db", "cpu", T0 + MIN, 0.9)])),
        (
            T0 + 2 * MIN,
            Changes {
                edges: vec![edge("api", "db", T0 + 2 * MIN, false)],
                ..Default::default()
            },
        ),
    ];
    let versions = run(CorrelationConfig::default(), events, T0 + 3 * MIN);
    let first = versions[0].incident_id.clone();
    let split: Vec<&Incident> = versions.iter().filter(|v| v.split_from.is_some()).collect();
    assert_eq!(split.len(), 1, "{versions:#?}");
    assert_eq!(split[0].split_from.as_deref(), Some(first.as_str()));
    assert_eq!(split[0].services, vec![Service::from("db")]);
    let kept = versions
        .iter()
        .rev()
        .find(|v| v.incident_id == first)
        .unwrap();
    assert_eq!(kept.services, vec![Service::from("api")]);
}

#[test]
fn an_incident_lasts_at_most_its_longest_life() {
    let config = CorrelationConfig {
        max_duration_ms: 30 * MIN,
        ..CorrelationConfig::default()
    };
    let events = vec![(T0, anomalies(vec![open("db", "cpu", T0, 0.9)]))];
    let versions = run(config, events, T0 + 60 * MIN);
    let last = versions.last().unwrap();
    assert_eq!(last.status, Status::Resolved);
    assert_eq!(last.updated_at, T0 + 30 * MIN);
    assert!(last.change.contains("still anomalous"), "{}", last.change);
    // Its episode, still open, opens nothing new.
    assert_eq!(ids(&versions).len(), 1);
}

#[test]
fn the_same_input_gives_the_same_versions() {
    let events = || {
        vec![
            (
                T0,
                Changes {
                    edges: vec![edge("a", "b", 0, true), edge("b", "c", 0, true)],
                    anomalies: vec![open("c", "cpu", T0, 0.9), open("a", "latency", T0, 0.6)],
                    ..Default::default()
                },
            ),
            (
                T0 + MIN,
                anomalies(vec![open("b", "latency", T0 + MIN, 0.8)]),
            ),
        ]
    };
    let one = run(CorrelationConfig::default(), events(), T0 + 20 * MIN);
    let two = run(CorrelationConfig::default(), events(), T0 + 20 * MIN);
    assert_eq!(one, two);
    assert_eq!(ids(&one).len(), 1, "{one:#?}");
    assert_eq!(&*one[0].ranked_causes[0].service, "c");
}

#[test]
fn one_quantity_reported_in_two_units_is_one_metric() {
    assert_eq!(tracker::quantity("cpu_usage_m"), "cpu_usage");
    assert_eq!(tracker::quantity("cpu_usage_rate_pct"), "cpu_usage");
    assert_eq!(tracker::quantity("client_latency_p99_s"), "client_latency");
    assert_eq!(tracker::quantity("http_requests_total"), "http_requests");
    assert_eq!(tracker::quantity("m05"), "m05");
    assert_eq!(tracker::quantity("error_rate"), "error");
    assert_eq!(tracker::quantity("rate"), "rate");
    assert_eq!(tracker::quantity("_p99"), "_p99");
    // Two names of one quantity are not two metrics' evidence; two quantities are.
    let versions = run(
        CorrelationConfig::default(),
        vec![(
            T0,
            anomalies(vec![
                open("api", "cpu_usage_m", T0, 0.6),
                open("api", "cpu_usage_rate_pct", T0, 0.6),
            ]),
        )],
        T0 + 10 * MIN,
    );
    assert!(versions.is_empty(), "{versions:#?}");
    let versions = run(
        CorrelationConfig::default(),
        vec![(
            T0,
            anomalies(vec![
                open("api", "cpu_usage_m", T0, 0.6),
                open("api", "latency_p99_s", T0, 0.6),
            ]),
        )],
        T0 + 10 * MIN,
    );
    assert_eq!(ids(&versions).len(), 1);
}

/// An episode of the change detector (its series' interval known), at `t`.
fn open_every(service: &str, metric: &str, t: Time, score: f64, interval_ms: u64) -> Anomaly {
    let mut a = open(service, metric, t, score);
    a.evidence.change = Some(crate::records::ChangeEvidence {
        reference: F64(1.0),
        threshold: F64(0.5),
        usual_change: F64(0.3),
        samples: 50,
        interval_ms,
    });
    a
}

#[test]
fn an_episode_whose_series_stops_reporting_stops_keeping_its_incident_open() {
    // A pod's latency jumps at 00:00 and the pod restarts at once under a new name: its episode
    // never closes. The incident resolves once the episode has been silent for two heartbeats
    // (5 minutes at a sample a minute) and the grace, not after the longest life.
    let config = CorrelationConfig::default();
    let (heartbeat, grace) = (config.heartbeat_ms, config.grace_ms);
    let events = vec![(
        T0,
        anomalies(vec![open_every("api", "latency", T0, 0.9, MIN)]),
    )];
    let versions = run(config.clone(), events, T0 + 60 * MIN);
    let last = versions.last().unwrap();
    assert_eq!(last.status, Status::Resolved, "{versions:#?}");
    assert!(
        last.updated_at >= T0 + 2 * heartbeat + grace
            && last.updated_at <= T0 + 2 * heartbeat + grace + MIN,
        "{}",
        last.updated_at - T0
    );
    assert!(last.change.contains("stopped reporting"), "{}", last.change);
    // One that keeps reporting keeps it open.
    let mut events = vec![(
        T0,
        anomalies(vec![open_every("api", "latency", T0, 0.9, MIN)]),
    )];
    for k in 1..=20 {
        let mut update = open_every("api", "latency", T0 + k * 150_000, 0.9, MIN);
        update.timestamp = T0 + k * 150_000;
        update.episode = Some(EpisodeInfo {
            status: EpisodeStatus::Update,
            started_at: T0,
            samples: 2 + k as u32,
        });
        events.push((T0 + k * 150_000, anomalies(vec![update])));
    }
    let versions = run(config.clone(), events, T0 + 50 * MIN);
    assert!(
        versions.iter().all(|v| v.status != Status::Resolved),
        "{versions:#?}"
    );
    // At five minutes a sample, silence is three intervals: still open after ten quiet minutes.
    let events = vec![(
        T0,
        anomalies(vec![open_every("api", "latency", T0, 0.9, 5 * MIN)]),
    )];
    let versions = run(config, events, T0 + 12 * MIN);
    assert!(
        versions.iter().all(|v| v.status != Status::Resolved),
        "{versions:#?}"
    );
}
