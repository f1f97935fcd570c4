//! Neighbourhoods on exact updates: anomalous services connected by an edge form one group, an
//! unconnected one its own, a later edge merges two groups at its own time, a removed edge splits
//! one, and an anomaly's service leaves when its window ends. Checked against a brute-force
//! union-find at every time.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use differential_dataflow::consolidation::consolidate_updates;
use differential_dataflow::input::InputSession;
use incidentflow_dataflows::neighbourhood::{active_services, neighbourhoods, Service};
use incidentflow_dataflows::records::{Anomaly, Detector, Direction, Evidence, SeriesInfo, F64};
use incidentflow_dataflows::time::Time;

fn anomaly(service: &str, t: Time) -> Anomaly {
    Anomaly {
        timestamp: t,
        series: Arc::new(SeriesInfo::new("ns", service, "latency")),
        value: F64(1.0),
        expected: F64(0.0),
        lower_bound: F64(0.0),
        upper_bound: F64(0.0),
        anomaly_score: F64(0.9),
        detector: Detector::ZScore,
        window_ms: 0,
        evidence: Evidence {
            baseline_points: 5,
            baseline_stddev: F64(0.1),
            z: None,
            direction: Direction::Up,
            flat_baseline: false,
            statistic: None,
        },
        episode: None,
    }
}

type Updates = Vec<((Service, Service), Time, isize)>;

/// Runs the stage on anomalies and edge changes; returns every label update.
fn run(
    anomalies: Vec<(&'static str, Time)>,
    edges: Vec<(&'static str, &'static str, Time, isize)>,
    window: u64,
) -> Updates {
    run_with(anomalies, edges, window, false)
}

/// [`run`], choosing whether silent intermediates link.
fn run_with(
    anomalies: Vec<(&'static str, Time)>,
    edges: Vec<(&'static str, &'static str, Time, isize)>,
    window: u64,
    silent: bool,
) -> Updates {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    timely::execute_directly(move |worker| {
        let sink = sink.clone();
        let (mut a_in, mut e_in) = worker.dataflow::<Time, _, _>(|scope| {
            let mut a_in = InputSession::<Time, Anomaly, isize>::new();
            let mut e_in = InputSession::<Time, (Service, Service), isize>::new();
            let active = active_services(a_in.to_collection(scope), window);
            neighbourhoods(active, e_in.to_collection(scope), silent)
                .inspect(move |(d, t, r)| sink.lock().unwrap().push((d.clone(), *t, *r)));
            (a_in, e_in)
        });
        for (s, t) in &anomalies {
            a_in.update_at(anomaly(s, *t), *t, 1);
        }
        for (a, b, t, r) in &edges {
            e_in.update_at((Arc::from(*a), Arc::from(*b)), *t, *r);
        }
    });
    let mut v = Arc::try_unwrap(out).unwrap().into_inner().unwrap();
    consolidate_updates(&mut v);
    v
}

/// The labels at time `t`, from the updates.
fn labels_at(updates: &Updates, t: Time) -> BTreeMap<String, String> {
    let mut acc: BTreeMap<(String, String), isize> = BTreeMap::new();
    for ((s, l), time, r) in updates {
        if *time <= t {
            *acc.entry((s.to_string(), l.to_string())).or_default() += r;
        }
    }
    acc.into_iter()
        .filter(|(_, r)| *r != 0)
        .map(|((s, l), r)| {
            assert_eq!(r, 1);
            (s, l)
        })
        .collect()
}

/// Brute force: active services at t, edges valid at t, union-find, least name as label.
fn naive(
    anomalies: &[(&str, Time)],
    edges: &[(&str, &str, Time, isize)],
    window: u64,
    t: Time,
) -> BTreeMap<String, String> {
    naive_with(anomalies, edges, window, t, false)
}

/// [`naive`], where with `silent` two active services with an edge each to the same inactive
/// service are linked too.
fn naive_with(
    anomalies: &[(&str, Time)],
    edges: &[(&str, &str, Time, isize)],
    window: u64,
    t: Time,
    silent: bool,
) -> BTreeMap<String, String> {
    let active: BTreeSet<&str> = anomalies
        .iter()
        .filter(|(_, at)| *at <= t && t < at + window)
        .map(|(s, _)| *s)
        .collect();
    let mut count: BTreeMap<(&str, &str), isize> = BTreeMap::new();
    for (a, b, at, r) in edges {
        if *at <= t {
            *count.entry((a, b)).or_default() += r;
        }
    }
    let mut links: Vec<(&str, &str)> = count
        .iter()
        .filter(|(_, r)| **r > 0)
        .map(|((a, b), _)| (*a, *b))
        .collect();
    if silent {
        let present = links.clone();
        for (a, w) in present.iter().flat_map(|(x, y)| [(*x, *y), (*y, *x)]) {
            for (c, v) in present.iter().flat_map(|(x, y)| [(*x, *y), (*y, *x)]) {
                if c == w && v != a && !active.contains(w) {
                    links.push((a, v));
                }
            }
        }
    }
    let mut label: BTreeMap<&str, &str> = active.iter().map(|s| (*s, *s)).collect();
    loop {
        let mut changed = false;
        for (a, b) in &links {
            if a != b && active.contains(a) && active.contains(b) {
                let m = label[a].min(label[b]);
                for x in [*a, *b] {
                    if label[x] != m {
                        label.insert(x, m);
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    label
        .into_iter()
        .map(|(s, l)| (s.to_string(), l.to_string()))
        .collect()
}

#[test]
fn groups_form_merge_split_and_expire_at_their_own_times() {
    let window = 300;
    let anomalies = vec![
        ("api", 100),
        ("db", 110),
        ("web", 120),
        ("cache", 130),
        ("db", 400),
    ];
    let edges = vec![
        ("api", "db", 0, 1),      // api - db: one group from the start
        ("web", "cache", 200, 1), // a later edge: web and cache join at 200
        ("api", "web", 250, 1),   // and then merge with api/db at 250
        ("api", "web", 350, -1),  // removed at 350: split again
    ];
    let updates = run(anomalies.clone(), edges.clone(), window);
    let l = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        labels_at(&updates, 115),
        l(&[("api", "api"), ("db", "api")])
    );
    assert_eq!(
        labels_at(&updates, 199),
        l(&[
            ("api", "api"),
            ("cache", "cache"),
            ("db", "api"),
            ("web", "web")
        ])
    );
    assert_eq!(
        labels_at(&updates, 200),
        l(&[
            ("api", "api"),
            ("cache", "cache"),
            ("db", "api"),
            ("web", "cache")
        ])
    );
    assert_eq!(
        labels_at(&updates, 250),
        l(&[
            ("api", "api"),
            ("cache", "api"),
            ("db", "api"),
            ("web", "api")
        ])
    );
    assert_eq!(
        labels_at(&updates, 350),
        l(&[
            ("api", "api"),
            ("cache", "cache"),
            ("db", "api"),
            ("web", "cache")
        ])
    );
    // api's window ends at 400; db fired again at 400 and stays, alone.
    assert_eq!(
        labels_at(&updates, 410),
        l(&[("cache", "cache"), ("db", "db"), ("web", "cache")])
    );
    // web's window [120, 420) has ended; cache's runs to 430.
    assert_eq!(
        labels_at(&updates, 420),
        l(&[("cache", "cache"), ("db", "db")])
    );
    assert!(
        labels_at(&updates, 800).is_empty(),
        "every window has ended"
    );
    for t in (0..800).step_by(5) {
        assert_eq!(
            labels_at(&updates, t),
            naive(&anomalies, &edges, window, t),
            "at {t}"
        );
    }
}

#[test]
fn random_graphs_match_union_find() {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for _ in 0..5 {
        let anomalies: Vec<(&'static str, Time)> = (0..30)
            .map(|_| (names[next(8) as usize], next(1000)))
            .collect();
        let mut edges: Vec<(&'static str, &'static str, Time, isize)> = Vec::new();
        for _ in 0..12 {
            let (a, b) = (names[next(8) as usize], names[next(8) as usize]);
            let from = next(800);
            edges.push((a, b, from, 1));
            if next(2) == 0 {
                edges.push((a, b, from + 1 + next(400), -1));
            }
        }
        let updates = run(anomalies.clone(), edges.clone(), 150);
        for t in (0..1300).step_by(7) {
            assert_eq!(
                labels_at(&updates, t),
                naive(&anomalies, &edges, 150, t),
                "at {t}"
            );
        }
    }
}

/// Random services, anomalies and edge changes on a coarse clock (many changes at the same
/// time), checked against union-find every 10 time units.
fn busy_random_graphs_match_union_find(
    seed: u64,
    services: u64,
    anomalies: usize,
    edge_changes: usize,
    silent: bool,
) {
    let names: Vec<&'static str> = (0..services)
        .map(|i| &*Box::leak(format!("s{i:02}").into_boxed_str()))
        .collect();
    let mut rng = seed;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for _ in 0..3 {
        let anomalies: Vec<(&'static str, Time)> = (0..anomalies)
            .map(|_| (names[next(services) as usize], next(100) * 10))
            .collect();
        let mut edges: Vec<(&'static str, &'static str, Time, isize)> = Vec::new();
        for _ in 0..edge_changes {
            let (a, b) = (
                names[next(services) as usize],
                names[next(services) as usize],
            );
            let from = next(80) * 10;
            edges.push((a, b, from, 1));
            if next(2) == 0 {
                edges.push((a, b, from + 10 + next(40) * 10, -1));
            }
        }
        let updates = run_with(anomalies.clone(), edges.clone(), 60, silent);
        for t in (0..1200).step_by(10) {
            assert_eq!(
                labels_at(&updates, t),
                naive_with(&anomalies, &edges, 60, t, silent),
                "at {t}"
            );
        }
    }
}

#[test]
fn busy_random_graphs_with_many_changes_at_once_match_union_find() {
    // Forty services, hundreds of anomalies and edge changes on a coarse clock, so that many
    // services join, leave and relink at the same time: merges, splits, leaves that do and do not
    // hold their group together, and groups losing their least name.
    busy_random_graphs_match_union_find(0x9e37_79b9_7f4a_7c15, 40, 400, 70, false);
}

#[test]
fn silent_intermediates_link_only_when_asked_and_only_one_hop() {
    // api and db both call cache, which has no anomaly; web -> queue -> worker is two silent
    // hops away from nothing. Off, api and db are apart; on, they are one group.
    let anomalies = vec![("api", 100), ("db", 110), ("web", 120), ("worker", 130)];
    let edges = vec![
        ("api", "cache", 0, 1),
        ("db", "cache", 0, 1),
        ("web", "queue", 0, 1),
        ("queue", "broker", 0, 1),
        ("broker", "worker", 0, 1),
        ("db", "cache", 200, -1), // the silent link goes at 200
    ];
    let off = run_with(anomalies.clone(), edges.clone(), 300, false);
    let on = run_with(anomalies.clone(), edges.clone(), 300, true);
    assert_eq!(labels_at(&off, 150)["db"], "db");
    assert_eq!(labels_at(&on, 150)["db"], "api");
    assert_eq!(
        labels_at(&on, 150)["worker"],
        "worker",
        "two silent hops do not link"
    );
    assert_eq!(labels_at(&on, 210)["db"], "db");
    for t in (0..500).step_by(5) {
        assert_eq!(
            labels_at(&on, t),
            naive_with(&anomalies, &edges, 300, t, true),
            "at {t}"
        );
    }
}

#[test]
fn busy_random_graphs_with_silent_intermediates_match_union_find() {
    busy_random_graphs_match_union_find(0x2545_f491_4f6c_dd1d, 30, 150, 40, true);
}
