//! Correlation on hand-made fixtures, through the binary: which anomalies become one incident,
//! which cause ranks first, when an incident resolves, and the exact sequence of incident
//! versions when a late edge merges two incidents or a removed edge splits one. A fault here is
//! a latency at 9x its level for two minutes or more (a lone one-minute spike opens nothing).

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// The job file of the fixtures: the defaults (with [`job_with`], more settings).
fn job(dir: &Path) -> String {
    job_with(dir, "")
}

/// [`job`] with more settings (TOML appended).
fn job_with(dir: &Path, extra: &str) -> String {
    let path = dir.join("job.toml");
    std::fs::write(&path, extra).unwrap();
    path.to_str().unwrap().to_string()
}

/// Runs the job on the fixture and returns the incident versions.
fn incidents(
    dir: &Path,
    samples: &str,
    topology: &str,
    deploys: &str,
    workers: &str,
) -> Vec<Value> {
    incidents_with(dir, samples, topology, deploys, workers, "")
}

/// [`incidents`] with more job settings.
fn incidents_with(
    dir: &Path,
    samples: &str,
    topology: &str,
    deploys: &str,
    workers: &str,
    config: &str,
) -> Vec<Value> {
    std::fs::write(dir.join("samples.jsonl"), samples).unwrap();
    std::fs::write(dir.join("topology.jsonl"), topology).unwrap();
    std::fs::write(dir.join("deploys.jsonl"), deploys).unwrap();
    let out = dir.join(format!("incidents-{workers}.jsonl"));
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    run_ok(&[
        "--config",
        &job_with(dir, config),
        "--input",
        &p("samples.jsonl"),
        "--topology",
        &p("topology.jsonl"),
        "--deploys",
        &p("deploys.jsonl"),
        "--incidents-out",
        out.to_str().unwrap(),
        "--workers",
        workers,
    ]);
    json_lines(&out)
}

fn ids(versions: &[Value]) -> std::collections::BTreeSet<String> {
    versions
        .iter()
        .map(|v| v["incident_id"].as_str().unwrap().to_string())
        .collect()
}

fn causes(v: &Value) -> Vec<String> {
    v["hypothesis"]["ranked_causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["service"].as_str().unwrap().to_string())
        .collect()
}

fn services(v: &Value) -> Vec<String> {
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_connected_anomalous_services_are_one_incident_and_unconnected_ones_two() {
    let dir = scratch("correlation-pair");
    let s = samples(&[("api", &[10, 11, 12]), ("db", &[10, 11, 12])]);
    let one = incidents(&dir, &s, &edge("api", "db", None, "add"), "", "1");
    assert_eq!(ids(&one).len(), 1, "{one:#?}");
    assert_eq!(services(&one[0]), ["api", "db"]);
    assert_eq!(one[0]["status"], "open");
    assert_eq!(
        causes(&one[0])[0],
        "db",
        "the callee whose dependencies are healthy comes first"
    );
    let two = incidents(&dir, &s, &edge("web", "cache", None, "add"), "", "1");
    assert_eq!(ids(&two).len(), 2, "{two:#?}");
    let lone = &two[0];
    assert!(
        lone["hypothesis"]["confidence"].as_f64().unwrap() <= 0.35,
        "a lone anomaly is not a confident diagnosis"
    );
}

#[test]
fn in_a_chain_the_anomalous_dependency_ranks_first() {
    let dir = scratch("correlation-chain");
    let topology =
        edge("a", "b", None, "add") + &edge("b", "c", None, "add") + &edge("c", "d", None, "add");
    let versions = incidents(
        &dir,
        &samples(&[("a", &[]), ("b", &[]), ("c", &[10, 11]), ("d", &[10, 11])]),
        &topology,
        "",
        "1",
    );
    assert_eq!(ids(&versions).len(), 1);
    let first = &versions[0];
    assert_eq!(services(first), ["c", "d"]);
    assert_eq!(causes(first), ["d", "c"]);
    let reasons = first["hypothesis"]["ranked_causes"][0]["reasons"].to_string();
    assert!(
        reasons.contains("calls no other service") && reasons.contains("earliest anomaly (00:10:"),
        "{reasons}"
    );
    assert!(first["hypothesis"]["ranked_causes"][1]["reasons"]
        .to_string()
        .contains("depends on anomalous d"));
}

#[test]
fn a_deploy_shortly_before_the_onset_raises_the_service() {
    let dir = scratch("correlation-deploy");
    let topology = edge("a", "b", None, "add") + &edge("a", "c", None, "add");
    let s = samples(&[("a", &[10, 11]), ("b", &[10, 11]), ("c", &[10, 11])]);
    let without = incidents(&dir, &s, &topology, "", "1");
    let ranked = causes(&without[0]);
    assert_eq!(ranked.len(), 3);
    assert_eq!(ranked[2], "a", "a calls two anomalous services");
    let second = ranked[1].clone();
    let deploy = format!(
        "{{\"timestamp\":\"{}\",\"service\":\"{second}\",\"version\":\"v2.0.1\"}}\n",
        rfc3339(T0 + 6 * MIN)
    );
    let with = incidents(&dir, &s, &topology, &deploy, "1");
    assert_eq!(
        causes(&with[0])[0],
        second,
        "the deploy lifts the second leaf to first"
    );
    let reasons = with[0]["hypothesis"]["ranked_causes"][0]["reasons"].to_string();
    assert!(reasons.contains("deployed v2.0.1 4m before"), "{reasons}");
    assert_eq!(with[0]["deploys"][0]["service"], second.as_str());
}

#[test]
fn an_incident_resolves_within_the_grace_after_its_last_member_recovers() {
    let dir = scratch("correlation-grace");
    let versions = incidents(&dir, &samples(&[("api", &[8, 9])]), "", "", "1");
    assert_eq!(versions.len(), 2, "{versions:#?}");
    // Opened at 00:09, its second anomalous minute (a strong anomaly that lasts).
    assert_eq!(
        (
            versions[0]["status"].as_str(),
            versions[0]["version"].as_u64(),
            versions[0]["created_at"].as_str()
        ),
        (Some("open"), Some(1), Some(rfc3339(T0 + 9 * MIN).as_str()))
    );
    assert_eq!(
        (
            versions[1]["status"].as_str(),
            versions[1]["version"].as_u64()
        ),
        (Some("resolved"), Some(2))
    );
    // api is back at 00:10; its episode closes after three calm minutes (00:12), and the
    // incident two minutes of grace later.
    assert_eq!(versions[1]["updated_at"], rfc3339(T0 + 14 * MIN));
    assert!(
        versions[1]["change"]
            .as_str()
            .unwrap()
            .contains("every member recovered 2m ago"),
        "{}",
        versions[1]["change"]
    );
}

#[test]
fn a_lone_spike_opens_no_incident_and_two_faults_minutes_apart_are_two() {
    let dir = scratch("correlation-apart");
    let spike = incidents(&dir, &samples(&[("api", &[8])]), "", "", "1");
    assert!(spike.is_empty(), "{spike:#?}");
    // db fails at 00:02 and its caller with it; db again at 00:08, before api has recovered.
    let s = samples(&[("api", &[2, 3, 4, 5, 6, 7, 8]), ("db", &[2, 3, 8, 9])]);
    let versions = incidents(&dir, &s, &edge("api", "db", None, "add"), "", "1");
    let opened: Vec<&Value> = versions.iter().filter(|v| v["status"] == "open").collect();
    assert_eq!(opened.len(), 2, "{versions:#?}");
    assert_eq!(services(opened[0]), ["api", "db"]);
    assert_eq!(services(opened[1]), ["db"]);
    assert!(versions.iter().all(|v| v["merged_into"].is_null()));
}

#[test]
fn a_late_edge_merges_two_open_incidents_and_a_removed_edge_splits_one() {
    let dir = scratch("correlation-merge");
    // api and db fail at 00:08 for two minutes, in no known relation: two incidents, opened at
    // 00:09. The edge api -> db appears at 00:10: they began together, so they are one.
    let s = samples(&[("api", &[8, 9]), ("db", &[8, 9])]);
    let merge = incidents(
        &dir,
        &s,
        &edge("api", "db", Some(T0 + 10 * MIN), "add"),
        "",
        "1",
    );
    let seq: Vec<(String, String, u64, Option<String>)> = merge
        .iter()
        .map(|v| {
            (
                v["incident_id"].as_str().unwrap().into(),
                v["status"].as_str().unwrap().into(),
                v["version"].as_u64().unwrap(),
                v["merged_into"].as_str().map(String::from),
            )
        })
        .collect();
    // Opened at one time, the lesser id first; it survives the merge.
    let (older, younger) = (seq[0].0.clone(), seq[1].0.clone());
    assert_ne!(older, younger);
    let mut at_edge = vec![
        (older.clone(), "updated".to_string(), 2, None),
        (
            younger.clone(),
            "resolved".to_string(),
            2,
            Some(older.clone()),
        ),
    ];
    at_edge.sort();
    let mut expected = vec![
        (older.clone(), "open".to_string(), 1, None),
        (younger.clone(), "open".to_string(), 1, None),
    ];
    expected.extend(at_edge);
    expected.push((older.clone(), "resolved".into(), 3, None));
    assert_eq!(seq, expected, "{merge:#?}");
    let survivor = merge
        .iter()
        .find(|v| v["incident_id"] == older.as_str() && v["version"] == 2)
        .unwrap();
    assert_eq!(survivor["updated_at"], rfc3339(T0 + 10 * MIN));
    assert_eq!(services(survivor), ["api", "db"]);
    assert!(survivor["change"].as_str().unwrap().contains("merged"));
    let merged = merge
        .iter()
        .find(|v| v["incident_id"] == younger.as_str() && v["version"] == 2)
        .unwrap();
    assert!(merged["change"].as_str().unwrap().contains("merged into"));

    // The edge present from the start and removed at 00:12: api fails at 00:08, db joins it at
    // 00:10; then the removal splits db off.
    let s = samples(&[("api", &[8, 9]), ("db", &[10, 11])]);
    let topology =
        edge("api", "db", None, "add") + &edge("api", "db", Some(T0 + 12 * MIN), "remove");
    let split = incidents(&dir, &s, &topology, "", "1");
    let first = split[0]["incident_id"].as_str().unwrap().to_string();
    assert_eq!(services(&split[0]), ["api"]);
    assert_eq!(
        services(&split[1]),
        ["api", "db"],
        "db joins at 00:10: {split:#?}"
    );
    let at_removal: Vec<&Value> = split
        .iter()
        .filter(|v| v["updated_at"] == rfc3339(T0 + 12 * MIN))
        .collect();
    assert_eq!(at_removal.len(), 2, "{split:#?}");
    let kept = at_removal
        .iter()
        .find(|v| v["incident_id"] == first.as_str())
        .unwrap();
    let new = at_removal
        .iter()
        .find(|v| v["incident_id"] != first.as_str())
        .unwrap();
    assert_eq!(
        services(kept),
        ["api"],
        "the part with the earliest anomaly keeps the id"
    );
    assert_eq!(new["split_from"], first.as_str());
    assert_eq!(services(new), ["db"]);
    assert_eq!(new["status"], "open");
}

#[test]
fn incidents_are_the_same_at_one_and_four_workers() {
    let dir = scratch("correlation-workers");
    let topology = edge("a", "b", None, "add")
        + &edge("b", "c", Some(T0 + 9 * MIN), "add")
        + &edge("a", "b", Some(T0 + 12 * MIN), "remove");
    let s = samples(&[
        ("a", &[8, 9, 11, 12]),
        ("b", &[9, 10]),
        ("c", &[10, 11, 13, 14]),
        ("d", &[10, 11]),
    ]);
    let one = incidents(&dir, &s, &topology, "", "1");
    let four = incidents(&dir, &s, &topology, "", "4");
    assert!(one.len() >= 4);
    assert_eq!(
        std::fs::read(dir.join("incidents-1.jsonl")).unwrap(),
        std::fs::read(dir.join("incidents-4.jsonl")).unwrap()
    );
    assert_eq!(one, four);
}

#[test]
fn a_static_yaml_topology_reads_like_the_jsonl_one() {
    let dir = scratch("correlation-yaml");
    let s = samples(&[("api", &[10, 11]), ("db", &[10, 11]), ("web", &[10, 11])]);
    let jsonl = incidents(
        &dir,
        &s,
        &(edge("api", "db", None, "add") + &edge("web", "api", None, "add")),
        "",
        "1",
    );
    std::fs::write(dir.join("topology.yaml"), "edges:\n  - caller: api\n    callee: db\n  - {caller: web, callee: api, namespace: shop}\n").unwrap();
    std::fs::write(dir.join("samples.jsonl"), &s).unwrap();
    let out = dir.join("yaml-incidents.jsonl");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    run_ok(&[
        "--config",
        &job(&dir),
        "--input",
        &p("samples.jsonl"),
        "--topology",
        &p("topology.yaml"),
        "--incidents-out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(json_lines(&out), jsonl);
    assert_eq!(ids(&jsonl).len(), 1);

    std::fs::write(
        dir.join("bad.yaml"),
        "edges:\n  - caller: api\n    calee: db\n",
    )
    .unwrap();
    let failed = incidentflow()
        .args([
            "run",
            "--input",
            &p("samples.jsonl"),
            "--topology",
            &p("bad.yaml"),
        ])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("bad.yaml") && err.contains("calee"), "{err}");
}

#[test]
fn incidents_on_stdout_are_only_json() {
    let dir = scratch("correlation-stdout");
    std::fs::write(
        dir.join("samples.jsonl"),
        samples(&[("api", &[10, 11]), ("db", &[10, 11])]),
    )
    .unwrap();
    std::fs::write(dir.join("topology.jsonl"), edge("api", "db", None, "add")).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let out = run_ok(&[
        "--config",
        &job(&dir),
        "--input",
        &p("samples.jsonl"),
        "--topology",
        &p("topology.jsonl"),
        "--incidents-out",
        "-",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
        assert!(v["incident_id"].is_string());
    }
}

#[test]
fn a_silent_intermediate_links_two_anomalous_services_only_when_configured() {
    let dir = scratch("correlation-silent");
    // api -> cache -> db: cache has no anomaly.
    let s = samples(&[("api", &[10, 11]), ("db", &[10, 11]), ("cache", &[])]);
    let topology = edge("api", "cache", None, "add") + &edge("cache", "db", None, "add");
    let off = incidents(&dir, &s, &topology, "", "1");
    assert_eq!(ids(&off).len(), 2, "off by default: {off:#?}");
    assert!(off.iter().all(|v| v.get("silent_services").is_none()));
    let on = incidents_with(
        &dir,
        &s,
        &topology,
        "",
        "1",
        "[correlation]\nsilent_intermediates = true\n",
    );
    assert_eq!(ids(&on).len(), 1, "{on:#?}");
    assert_eq!(
        services(&on[0]),
        ["api", "db"],
        "the silent service is no member"
    );
    assert_eq!(on[0]["silent_services"], serde_json::json!(["cache"]));
    assert!(!causes(&on[0]).contains(&"cache".to_string()));
}

#[test]
fn runbooks_attach_to_matching_causes_and_silences_mark_versions_in_their_window() {
    let dir = scratch("correlation-notes");
    let s = samples(&[("api", &[10, 11]), ("db", &[10, 11])]);
    let settings = r#"
[[runbooks]]
name = "not this one"
services = ["db"]
direction = "down"
url = "https://runbooks.example.com/db-drop"
action = "nothing"

[[runbooks]]
name = "database latency"
services = ["d*"]
metrics = ["latency_*"]
direction = "up"
url = "https://runbooks.example.com/db-latency"
action = "Check the slow query log"

[[silences]]
name = "other maintenance"
services = ["api"]
start = "2026-11-25T00:00:00Z"
end = "2026-11-25T01:00:00Z"

[[silences]]
name = "db maintenance"
services = ["db"]
start = "2026-11-25T00:05:00Z"
end = "2026-11-25T00:15:00Z"
"#;
    let versions = incidents_with(&dir, &s, &edge("api", "db", None, "add"), "", "1", settings);
    assert!(versions.len() >= 2, "{versions:#?}");
    for v in &versions {
        assert_eq!(causes(v)[0], "db");
        assert_eq!(v["runbook"]["name"], "database latency", "{v}");
        assert_eq!(
            v["runbook"]["url"],
            "https://runbooks.example.com/db-latency"
        );
        assert_eq!(
            v["runbook"]["recommended_action"],
            "Check the slow query log"
        );
        let at = v["updated_at"].as_str().unwrap();
        let inside = ("2026-11-25T00:05:00".."2026-11-25T00:15:00").contains(&at);
        let expected = if inside {
            Value::from("db maintenance")
        } else {
            Value::Null
        };
        assert_eq!(v["suppressed_by"], expected, "{at}");
    }
    assert!(versions.iter().any(|v| v["suppressed_by"].is_null()));
    assert!(versions.iter().any(|v| !v["suppressed_by"].is_null()));
    // Without settings, neither field is written.
    let plain = incidents(&dir, &s, &edge("api", "db", None, "add"), "", "1");
    assert!(plain
        .iter()
        .all(|v| v.get("runbook").is_none() && v.get("suppressed_by").is_none()));
}
