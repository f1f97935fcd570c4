//! Regression tests on slices of real labelled operations data (`tests/fixtures/realdata`, with
//! their licences): the job with its defaults must keep finding what it finds there today, on
//! time, without paging more, and must keep separate faults separate.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use incidentflow_dataflows::time::parse_rfc3339;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/realdata")
        .join(name)
}

fn time(v: &Value) -> u64 {
    parse_rfc3339(v.as_str().unwrap()).unwrap()
}

/// Incident versions folded by id: (first version's created_at, every version's time).
fn pages(versions: &[Value]) -> BTreeMap<String, (u64, Vec<u64>)> {
    let mut out: BTreeMap<String, (u64, Vec<u64>)> = BTreeMap::new();
    for v in versions {
        let id = v["incident_id"].as_str().unwrap().to_string();
        let entry = out
            .entry(id)
            .or_insert_with(|| (time(&v["created_at"]), Vec::new()));
        entry.1.push(time(&v["updated_at"]));
    }
    out
}

/// ASD server omi-1 over two and a half days at five minutes, three labelled segments: every
/// segment gets an incident while it lasts, at least two within seven intervals of their start
/// (the KPI-challenge rule), and at most two pages fall outside the segments (plus six intervals)
/// in the day and a half that is scored.
#[test]
fn asd_segments_are_paged_in_time_and_false_pages_stay_few() {
    let dir = scratch("realdata-asd");
    let incidents = dir.join("incidents.jsonl");
    run_ok(&[
        "--input",
        fixture("asd-omi-1.jsonl").to_str().unwrap(),
        "--incidents-out",
        incidents.to_str().unwrap(),
    ]);
    let segments: Vec<(u64, u64)> = json_lines(&fixture("asd-omi-1.labels.jsonl"))
        .iter()
        .map(|l| (time(&l["start"]), time(&l["end"])))
        .collect();
    assert_eq!(segments.len(), 3);
    let scored_from = parse_rfc3339("2021-02-09T00:00:00Z").unwrap();
    let interval = 300_000;
    let pages = pages(&json_lines(&incidents));
    let detected = |s: u64, e: u64| {
        pages
            .values()
            .flat_map(|(_, times)| times)
            .any(|t| (s..=e).contains(t))
    };
    for (s, e) in &segments {
        assert!(
            detected(*s, *e),
            "segment at {} not paged: {pages:?}",
            rfc3339(*s)
        );
    }
    let timely = segments
        .iter()
        .filter(|(s, e)| detected(*s, (*e).min(s + 7 * interval)))
        .count();
    assert!(timely >= 2, "{timely} of 3 in time: {pages:?}");
    let false_pages = pages
        .values()
        .filter(|(created, _)| *created >= scored_from)
        .filter(|(created, _)| {
            !segments
                .iter()
                .any(|(s, e)| (*s..=e + 6 * interval).contains(created))
        })
        .count();
    assert!(false_pages <= 2, "{false_pages} false pages: {pages:?}");
}

/// Nezha, Online Boutique, 74 minutes in which nine faults were injected (one every eight
/// minutes or so, most of them barely showing): every incident matches a fault (by the scorer's
/// rule: opened from a minute before the fault to ten minutes after, or the next fault), the
/// frontend's failed requests and the two CPU contentions (cart, then checkout eight minutes
/// later, services that call each other) are each found with the right root cause first, and
/// the two contentions are two incidents, not one chain.
#[test]
fn nezha_faults_minutes_apart_are_separate_incidents_with_their_root_first() {
    let dir = scratch("realdata-nezha");
    let incidents = dir.join("incidents.jsonl");
    run_ok(&[
        "--input",
        fixture("nezha-ob.jsonl").to_str().unwrap(),
        "--topology",
        fixture("nezha-ob.topology.jsonl").to_str().unwrap(),
        "--incidents-out",
        incidents.to_str().unwrap(),
    ]);
    let faults = json_lines(&fixture("nezha-ob.faults.jsonl"));
    let starts: Vec<u64> = faults.iter().map(|f| time(&f["fault_start"])).collect();
    let versions = json_lines(&incidents);
    // The last version of each incident, and when it opened.
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for v in &versions {
        last.insert(v["incident_id"].as_str().unwrap().to_string(), v);
    }
    let mut matched: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (id, v) in &last {
        let created = time(&v["created_at"]);
        let case = (0..faults.len()).find(|k| {
            let end = (starts[*k] + 600_000).min(
                starts
                    .get(k + 1)
                    .map_or(u64::MAX, |next| next.saturating_sub(60_000)),
            );
            (starts[*k] - 60_000..end).contains(&created)
        });
        let Some(k) = case else {
            panic!(
                "incident {id} at {} matches no fault: {v}",
                rfc3339(created)
            );
        };
        assert_eq!(v["namespace"], "online-boutique");
        let first = v["hypothesis"]["ranked_causes"][0]["service"]
            .as_str()
            .unwrap()
            .to_string();
        matched.insert(
            faults[k]["case_id"].as_str().unwrap().to_string(),
            (id.clone(), first),
        );
    }
    for (case, root) in [
        ("ob-2022-08-22-01", "frontend"),
        ("ob-2022-08-22-05", "cartservice"),
        ("ob-2022-08-22-06", "checkoutservice"),
    ] {
        let (_, first) = matched
            .get(case)
            .unwrap_or_else(|| panic!("{case} has no incident: {matched:?}"));
        assert_eq!(first, root, "{case}: {matched:?}");
    }
    let ids: BTreeSet<&String> = matched.values().map(|(id, _)| id).collect();
    assert_eq!(
        ids.len(),
        matched.len(),
        "one incident per fault: {matched:?}"
    );
    // The first ranked cause names its metric and figure.
    let cause = &last[&matched["ob-2022-08-22-06"].0]["hypothesis"]["ranked_causes"][0];
    assert!(cause["metric"].is_string() && cause["strength"].as_f64().unwrap() > 1.0);
    assert!(
        cause["reasons"][0]
            .as_str()
            .unwrap()
            .contains("; 1 is its threshold"),
        "{cause}"
    );
}
