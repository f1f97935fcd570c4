//! The tracker on seeded random anomaly and edge streams, each output checked against a naive
//! recomputation of what the rules promise: versions numbered from 1 with nothing after the
//! resolve; throttled updates at least `update_interval` apart; every incident's services
//! connected in the topology as it stands (recomputed by a plain search over every edge change
//! so far); a merged incident's services in its survivor at that moment; a split part disjoint
//! from its parent; every incident resolved within `max_duration`, and within `grace` of the last
//! event of its services once they have all closed; and the same bytes from the same stream.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::tests::event;
use super::*;
use crate::records::{Anomaly, EdgeChange, EpisodeStatus};
use crate::rng::Rng;
use crate::time::Time;

const T0: Time = 1_795_392_000_000;
const STEP: Time = 15_000;
const SERVICES: usize = 8;

/// One stream: at each step, the changes that arrive.
struct Stream {
    steps: Vec<(Time, Vec<Anomaly>, Vec<EdgeChange>)>,
}

fn service(k: usize) -> String {
    format!("s{k}")
}

/// A random stream of `minutes`: a sparse call graph over eight services whose edges come and
/// go, and episodes (open, a few updates, a close) of two metrics per service, of random scores
/// and lengths, in bursts so that faults overlap and spread; then quiet until every incident has
/// resolved.
fn random_stream(seed: u64, minutes: u64) -> Stream {
    let mut rng = Rng::new(seed, 0);
    let mut steps = Vec::new();
    // Episodes open now: (service, metric) -> (started, ends at, score).
    let mut open: BTreeMap<(usize, &str), (Time, Time, f64)> = BTreeMap::new();
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    let end = T0 + minutes * 60_000;
    let mut t = T0;
    while t <= end + 6 * 3_600_000 {
        let mut anomalies = Vec::new();
        let mut changes = Vec::new();
        let live = t <= end;
        // The topology: an edge added or removed now and then.
        if live && (t == T0 || rng.chance(0.04)) {
            let (a, b) = (
                rng.below(SERVICES as u64) as usize,
                rng.below(SERVICES as u64) as usize,
            );
            if a != b {
                let add = !edges.contains(&(a, b)) || t == T0;
                if add {
                    edges.insert((a, b));
                } else {
                    edges.remove(&(a, b));
                }
                changes.push(EdgeChange {
                    timestamp: t,
                    caller: service(a).into(),
                    callee: service(b).into(),
                    add,
                    namespace: None,
                });
            }
        }
        // Episodes: a burst now and then starts several at once on connected services.
        if live && rng.chance(0.06) {
            let seed_service = rng.below(SERVICES as u64) as usize;
            let mut hit = vec![seed_service];
            for (a, b) in &edges {
                if (*a == seed_service || *b == seed_service) && rng.chance(0.6) {
                    hit.push(if *a == seed_service { *b } else { *a });
                }
            }
            for s in hit {
                let metric = if rng.chance(0.5) { "latency" } else { "errors" };
                if open.contains_key(&(s, metric)) {
                    continue;
                }
                let score = rng.range(0.5, 0.95);
                let length = (1 + rng.below(12)) * 60_000;
                open.insert((s, metric), (t, t + length, score));
                anomalies.push(event(&service(s), metric, t, t, EpisodeStatus::Open, score));
            }
        }
        // Open episodes report every minute and close at their end.
        let mut closed = Vec::new();
        for ((s, metric), (started, ends, score)) in &open {
            if t >= *ends {
                anomalies.push(event(
                    &service(*s),
                    metric,
                    *started,
                    t,
                    EpisodeStatus::Close,
                    *score,
                ));
                closed.push((*s, *metric));
            } else if t > *started && (t - started) % 60_000 == 0 {
                anomalies.push(event(
                    &service(*s),
                    metric,
                    *started,
                    t,
                    EpisodeStatus::Open,
                    *score,
                ));
            }
        }
        for k in closed {
            open.remove(&k);
        }
        steps.push((t, anomalies, changes));
        t += STEP;
    }
    Stream { steps }
}

fn run(config: &CorrelationConfig, stream: &Stream) -> Vec<(Time, Incident)> {
    let mut tracker = Tracker::new(config.clone());
    let mut out = Vec::new();
    for (t, anomalies, edges) in &stream.steps {
        let changes = Changes {
            anomalies: anomalies.clone(),
            edges: edges.clone(),
            deploys: Vec::new(),
        };
        out.extend(tracker.step(*t, changes).into_iter().map(|v| (*t, v)));
    }
    out
}

/// The undirected call graph at `t`, from every edge change up to it (the last change of an
/// edge wins).
fn topology_at(stream: &Stream, t: Time) -> BTreeMap<String, BTreeSet<String>> {
    let mut present: BTreeMap<(String, String), bool> = BTreeMap::new();
    for (at, _, edges) in stream.steps.iter().take_while(|(at, _, _)| *at <= t) {
        for e in edges {
            debug_assert_eq!(e.timestamp, *at);
            present.insert((e.caller.to_string(), e.callee.to_string()), e.add);
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((a, b), _) in present.into_iter().filter(|(_, up)| *up) {
        graph.entry(a.clone()).or_default().insert(b.clone());
        graph.entry(b).or_default().insert(a);
    }
    graph
}

fn connected(graph: &BTreeMap<String, BTreeSet<String>>, services: &[Service]) -> bool {
    let wanted: BTreeSet<String> = services.iter().map(|s| s.to_string()).collect();
    let Some(first) = wanted.iter().next().cloned() else {
        return true;
    };
    let mut seen = BTreeSet::from([first.clone()]);
    let mut queue = VecDeque::from([first]);
    while let Some(s) = queue.pop_front() {
        for n in graph.get(&s).into_iter().flatten() {
            if wanted.contains(n) && seen.insert(n.clone()) {
                queue.push_back(n.clone());
            }
        }
    }
    seen == wanted
}

/// The last event time of any episode of `services` (every one has closed by then).
fn last_event_of(stream: &Stream, services: &BTreeSet<String>) -> Time {
    stream
        .steps
        .iter()
        .filter(|(_, anomalies, _)| {
            anomalies
                .iter()
                .any(|a| services.contains(&*a.series.service))
        })
        .map(|(t, _, _)| *t)
        .max()
        .unwrap_or(T0)
}

fn check(
    versions: &[(Time, Incident)],
    config: &CorrelationConfig,
    stream: &Stream,
    seed: u64,
) -> usize {
    let mut by_id: BTreeMap<&str, Vec<&(Time, Incident)>> = BTreeMap::new();
    for v in versions {
        by_id.entry(&v.1.incident_id).or_default().push(v);
    }
    for (id, list) in &by_id {
        let what = format!("seed {seed}, {id}");
        // Numbered from 1, opened first, resolved last and once.
        for (k, (_, v)) in list.iter().enumerate() {
            assert_eq!(v.version, k as u64 + 1, "{what}: version numbers");
            assert_eq!(v.status == Status::Open, k == 0, "{what}: open only first");
            assert_eq!(
                v.status == Status::Resolved,
                k + 1 == list.len(),
                "{what}: resolved only last"
            );
        }
        let (created, last) = (list[0].1.created_at, list[list.len() - 1]);
        assert!(
            list.iter()
                .all(|(_, v)| v.split_from == list[0].1.split_from),
            "{what}: split_from is the first version's"
        );
        assert_eq!(last.1.status, Status::Resolved, "{what}: never resolved");
        // The longest life.
        assert!(
            last.0 - created <= config.max_duration_ms + STEP,
            "{what}: open {} ms",
            last.0 - created
        );
        for pair in list.windows(2) {
            let ((t0, _), (t1, v1)) = (pair[0], pair[1]);
            // Throttled changes come at most once per update interval.
            let throttled = v1.change.starts_with("services added")
                || v1.change == "the first cause changed"
                || v1.change == "severity changed";
            if v1.status == Status::Updated && throttled {
                assert!(
                    t1 - t0 >= config.update_interval_ms,
                    "{what}: updates {t0} and {t1} closer than the interval"
                );
            }
        }
        for (t, v) in list.iter() {
            // Services connected in the topology as it stands.
            if v.status != Status::Resolved {
                assert!(
                    connected(&topology_at(stream, *t), &v.services),
                    "{what} at {t}: {:?} not connected",
                    v.services
                );
            }
            // A merge: the survivor holds the services at that moment.
            if let Some(into) = &v.merged_into {
                assert_eq!(v.status, Status::Resolved, "{what}");
                let survivor = versions
                    .iter()
                    .find(|(at, s)| at == t && &s.incident_id == into)
                    .unwrap_or_else(|| panic!("{what}: no version of {into} at its merge"));
                for s in &v.services {
                    assert!(survivor.1.services.contains(s), "{what}: {s} not in {into}");
                }
            }
            // A split: a new incident (its every version names the parent), disjoint from its
            // parent's version at that moment.
            if let Some(parent) = v.split_from.as_ref().filter(|_| v.version == 1) {
                let rest = versions
                    .iter()
                    .find(|(at, p)| at == t && &p.incident_id == parent)
                    .unwrap_or_else(|| panic!("{what}: no version of {parent} at its split"));
                assert!(
                    v.services.iter().all(|s| !rest.1.services.contains(s)),
                    "{what}: shares services with {parent}"
                );
            }
        }
        // It ends with the fault: within the grace (and a step) of its services' last event.
        if last.1.merged_into.is_none() && last.0 - created < config.max_duration_ms {
            let services: BTreeSet<String> =
                last.1.services.iter().map(|s| s.to_string()).collect();
            let quiet = last_event_of(stream, &services);
            assert!(
                last.0 <= quiet + config.grace_ms + 2 * STEP,
                "{what}: resolved at {} though its services were quiet from {quiet}",
                last.0
            );
        }
    }
    by_id.len()
}

#[test]
fn random_streams_keep_every_rule_of_the_tracker() {
    let mut incidents = 0;
    let mut merged = 0;
    let mut split = 0;
    for seed in 1..=40 {
        let stream = random_stream(seed, 240);
        let config = CorrelationConfig {
            max_duration_ms: if seed % 4 == 0 {
                20 * 60_000
            } else {
                4 * 3_600_000
            },
            ..CorrelationConfig::default()
        };
        let versions = run(&config, &stream);
        incidents += check(&versions, &config, &stream, seed);
        merged += versions
            .iter()
            .filter(|(_, v)| v.merged_into.is_some())
            .count();
        split += versions
            .iter()
            .filter(|(_, v)| v.split_from.is_some())
            .count();
        // The same stream, the same versions.
        let again = run(&config, &stream);
        assert_eq!(versions, again, "seed {seed}: not deterministic");
    }
    // The streams exercised what is checked.
    assert!(incidents > 100, "{incidents} incidents");
    assert!(merged > 5, "{merged} merges");
    assert!(split > 5, "{split} splits");
}
