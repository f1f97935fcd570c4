//! The same seed gives byte-identical output; different seeds differ. And what the generator
//! promises about its scenarios holds: faults propagate upstream with lag and attenuation, some
//! follow a deploy, some overlap, the topology changes over time.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

use incidentflow_loadgen::scenario::{Scenario, ScenarioConfig};

fn everything(seed: u64) -> Vec<String> {
    let s = Scenario::new(ScenarioConfig::named("small", seed).unwrap());
    s.samples()
        .chain(s.edges())
        .chain(s.deploy_lines())
        .chain(s.truth())
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_other_seeds_differ() {
    let a = everything(1);
    assert_eq!(a, everything(1));
    assert_ne!(a, everything(2));
    assert!(a.len() > 40_000);
}

#[test]
fn scenarios_have_what_they_promise() {
    let s = Scenario::new(ScenarioConfig::named("small", 1).unwrap());
    assert_eq!(s.faults.len(), 4);
    assert!(
        s.faults.iter().any(|f| f.truth.deploy_before)
            && s.faults.iter().any(|f| !f.truth.deploy_before)
    );
    assert!(
        s.faults.iter().any(|f| f.truth.affected.len() > 1),
        "some fault propagates"
    );
    for f in &s.faults {
        assert_eq!(f.truth.affected[0].service, f.truth.root_service);
        for a in &f.truth.affected[1..] {
            assert!(
                a.hops >= 1 && a.intensity < 1.0 && a.start > f.truth.start,
                "{a:?}"
            );
        }
    }
    let overlapping = s
        .faults
        .windows(2)
        .any(|w| w[1].truth.start < w[0].truth.end);
    assert!(overlapping, "some faults overlap in time");
    assert!(
        s.topology.changes.iter().any(|c| !c.add),
        "an edge is removed over time"
    );
    assert!(
        s.topology
            .services
            .iter()
            .any(|x| x.added_at > s.config.start),
        "a service is added over time"
    );
    let large = ScenarioConfig::named("large", 1).unwrap();
    let large = Scenario::new(large);
    assert!(large.series() >= 100_000, "{}", large.series());
}

#[test]
fn every_sample_is_valid_for_the_job() {
    let s = Scenario::new(ScenarioConfig::named("small", 3).unwrap());
    let mut decoder = incidentflow_dataflows::decode::Decoder::new();
    for line in s.samples().take(5000) {
        decoder.decode(line.as_bytes()).unwrap();
    }
}

/// The realistic scenarios have what production has: pods (a `pod` label) that restart under a
/// new name, a p99 read from histogram buckets, now and then the p99 of many services at the top
/// bucket at once, near-constant thread counts, heavy-tailed outliers, faults every few minutes
/// (a third barely showing) in the 1-minute one, and a 5-minute one over weeks.
#[test]
fn realistic_scenarios_are_not_textbook_ones() {
    let s = Scenario::new(ScenarioConfig::named("ops-1m", 1).unwrap());
    assert_eq!(s.config.interval, 60_000);
    let samples: Vec<serde_json::Value> = s
        .samples()
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    let of = |metric: &str| {
        samples
            .iter()
            .filter(move |v| v["metric_name"] == metric)
            .collect::<Vec<_>>()
    };
    // Two pods per service for latency, and restarts: a service's pods have more than two names
    // over the run.
    let web_pods: std::collections::BTreeSet<&str> = of("latency_p99")
        .iter()
        .filter(|v| v["service"] == "web")
        .map(|v| v["labels"]["pod"].as_str().unwrap())
        .collect();
    assert!(web_pods.len() > 2, "{web_pods:?}");
    // The p99 lands on bucket bounds; at some minute at least a fifth of the services are at the
    // top bucket at once.
    let buckets = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    assert!(of("latency_p99")
        .iter()
        .all(|v| buckets.contains(&v["value"].as_f64().unwrap())));
    let mut at_top: std::collections::BTreeMap<u64, std::collections::BTreeSet<&str>> =
        Default::default();
    for v in of("latency_p99") {
        if v["value"] == 10.0 {
            let minute =
                incidentflow_dataflows::time::parse_rfc3339(v["timestamp"].as_str().unwrap())
                    .unwrap()
                    / 60_000;
            at_top
                .entry(minute)
                .or_default()
                .insert(v["service"].as_str().unwrap());
        }
    }
    assert!(
        at_top.values().any(|s| s.len() >= 6),
        "a histogram artefact across services"
    );
    // Threads: whole numbers that hardly move.
    let threads = of("threads");
    assert!(threads
        .iter()
        .all(|v| v["value"].as_f64().unwrap().fract() == 0.0));
    // Heavy tails: some p50 samples far above their service's median.
    let p50 = of("latency_p50");
    let outliers = p50
        .windows(2)
        .filter(|w| w[1]["value"].as_f64().unwrap() > 4.0 * w[0]["value"].as_f64().unwrap())
        .count();
    assert!(outliers > 0);
    // A train of faults, eight minutes apart give or take, a third of them a code path that
    // returns errors at the root alone.
    assert_eq!(s.faults.len(), 24);
    let gaps: Vec<u64> = s
        .faults
        .windows(2)
        .map(|w| {
            let t = |f: &incidentflow_loadgen::scenario::Fault| {
                incidentflow_dataflows::time::parse_rfc3339(&f.truth.start).unwrap()
            };
            (t(&w[1]) - t(&w[0])) / 60_000
        })
        .collect();
    assert!(gaps.iter().all(|g| (6..=10).contains(g)), "{gaps:?}");
    let silent: Vec<_> = s
        .faults
        .iter()
        .filter(|f| f.truth.affected_services.len() == 1 && s.truth().count() > 0)
        .collect();
    assert!(silent.len() >= 8, "{}", silent.len());
    // Every sample is valid for the job.
    let mut decoder = incidentflow_dataflows::decode::Decoder::new();
    for line in s.samples().take(5000) {
        decoder.decode(line.as_bytes()).unwrap();
    }

    let five = Scenario::new(ScenarioConfig::named("ops-5m", 1).unwrap());
    assert_eq!(five.config.interval, 300_000);
    assert!(five.config.duration >= 14 * 86_400_000);
    assert!(five.faults.len() >= 20);
}
