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
    assert!(s.faults.iter().any(|f| f.deploy_before) && s.faults.iter().any(|f| !f.deploy_before));
    assert!(
        s.faults.iter().any(|f| f.affected.len() > 1),
        "some fault propagates"
    );
    for f in &s.faults {
        assert_eq!(f.affected[0].service, f.root_service);
        for a in &f.affected[1..] {
            assert!(
                a.hops >= 1 && a.intensity < 1.0 && a.start > f.start,
                "{a:?}"
            );
        }
    }
    let overlapping = s.faults.windows(2).any(|w| w[1].start < w[0].end);
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
