//! Equality across shapes: `--workers 1`, `--workers 4` and 2 processes x 2 workers on 127.0.0.1
//! produce byte-identical anomaly, challenger and incident files, the same dead letters and the
//! same counts; and challengers in shadow change nothing of the champion's output.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::path::Path;

use common::*;

const JOB: &str = "[baseline]\nwindow = \"10m\"\nmin_points = 5\n[zscore]\nthreshold = 3.0\n[time]\nallowed_lateness = \"30s\"\n[input]\npartition_bytes = 16384\n";
/// Every other detector in shadow.
const CHALLENGERS: &str =
    "[detectors]\nchallengers = [\"robust\", \"level_shift\", \"trend\", \"seasonal\"]\n";

fn args<'a>(dir: &'a Path, tag: &str, input: &'a Path) -> Vec<String> {
    vec![
        "run".into(),
        "--input".into(),
        input.to_str().unwrap().into(),
        "--config".into(),
        dir.join("job.toml").to_str().unwrap().into(),
        "--anomalies-out".into(),
        dir.join(format!("anomalies-{tag}.jsonl"))
            .to_str()
            .unwrap()
            .into(),
        "--dead-letter".into(),
        dir.join(format!("dead-{tag}.jsonl"))
            .to_str()
            .unwrap()
            .into(),
        "--summary-out".into(),
        dir.join(format!("summary-{tag}.json"))
            .to_str()
            .unwrap()
            .into(),
        "--topology".into(),
        dir.join("topology.jsonl").to_str().unwrap().into(),
        "--incidents-out".into(),
        dir.join(format!("incidents-{tag}.jsonl"))
            .to_str()
            .unwrap()
            .into(),
        "--challengers-out".into(),
        dir.join(format!("challengers-{tag}.jsonl"))
            .to_str()
            .unwrap()
            .into(),
    ]
}

/// The input's services `svc-0`..`svc-49` as a binary tree of calls, with an edge that comes
/// late and one that goes, so that incidents merge and split while the shapes are compared.
fn topology() -> String {
    let mut text = String::new();
    for k in 0..50u64 {
        for child in [2 * k + 1, 2 * k + 2].into_iter().filter(|c| *c < 50) {
            text += &format!("{{\"caller\":\"svc-{k}\",\"callee\":\"svc-{child}\"}}\n");
        }
    }
    text += &format!(
        "{{\"timestamp\":\"{}\",\"caller\":\"svc-7\",\"callee\":\"svc-40\"}}\n",
        rfc3339(T0 + 20 * 60_000)
    );
    text += &format!(
        "{{\"timestamp\":\"{}\",\"caller\":\"svc-0\",\"callee\":\"svc-1\",\"op\":\"remove\"}}\n",
        rfc3339(T0 + 30 * 60_000)
    );
    text
}

fn counts(dir: &Path, tag: &str) -> (u64, u64, u64, u64) {
    let s = summary(&dir.join(format!("summary-{tag}.json")));
    let n = |k: &str| s[k].as_u64().unwrap();
    (n("read"), n("valid"), n("dead_lettered"), n("anomalies"))
}

#[test]
fn one_four_and_two_by_two_workers_give_the_same_output() {
    let dir = scratch("workers");
    std::fs::write(dir.join("job.toml"), format!("{JOB}{CHALLENGERS}")).unwrap();
    std::fs::write(dir.join("topology.jsonl"), topology()).unwrap();
    let input = dir.join("messy.jsonl");
    std::fs::write(&input, messy_input(7, 150, 40)).unwrap();

    for workers in ["1", "4"] {
        let mut a = args(&dir, &format!("w{workers}"), &input);
        a.extend(["--workers".into(), workers.into()]);
        succeeded(incidentflow().args(&a).output().unwrap());
    }

    run_two_by_two(&dir, &args(&dir, "p2", &input));

    let reference = std::fs::read(dir.join("anomalies-w1.jsonl")).unwrap();
    let (read, valid, dead, anomalies) = counts(&dir, "w1");
    assert!(
        anomalies > 20,
        "the input should hold anomalies, got {anomalies}"
    );
    assert!(dead > 5 && read == valid + dead, "{read} {valid} {dead}");
    let incidents = std::fs::read(dir.join("incidents-w1.jsonl")).unwrap();
    let versions = lines(&dir.join("incidents-w1.jsonl"));
    let ids: std::collections::BTreeSet<String> = versions
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["incident_id"].to_string())
        .collect();
    assert!(
        ids.len() >= 3 && versions.len() > ids.len(),
        "the input should open and update incidents: {} versions of {} incidents",
        versions.len(),
        ids.len()
    );
    // The challengers found episodes, each tagged with its detector.
    let challengers = std::fs::read(dir.join("challengers-w1.jsonl")).unwrap();
    let detectors: std::collections::BTreeSet<String> = lines(&dir.join("challengers-w1.jsonl"))
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|a| assert!(a["episode"]["episode_id"].is_string(), "{a}"))
        .map(|a| a["detector"].as_str().unwrap().to_string())
        .collect();
    assert!(
        detectors.len() >= 2 && !detectors.contains("zscore"),
        "{detectors:?}"
    );
    // Without them, the champion's anomalies and the incidents are the same bytes.
    std::fs::write(dir.join("job.toml"), JOB).unwrap();
    let mut alone = args(&dir, "alone", &input);
    alone.truncate(alone.len() - 2);
    succeeded(incidentflow().args(&alone).output().unwrap());
    assert_eq!(
        std::fs::read(dir.join("anomalies-alone.jsonl")).unwrap(),
        reference
    );
    assert_eq!(
        std::fs::read(dir.join("incidents-alone.jsonl")).unwrap(),
        incidents
    );
    for tag in ["w4", "p2"] {
        assert_eq!(
            std::fs::read(dir.join(format!("challengers-{tag}.jsonl"))).unwrap(),
            challengers,
            "challengers of {tag} differ"
        );
        assert_eq!(
            std::fs::read(dir.join(format!("incidents-{tag}.jsonl"))).unwrap(),
            incidents,
            "incidents of {tag} differ"
        );
        assert_eq!(
            std::fs::read(dir.join(format!("anomalies-{tag}.jsonl"))).unwrap(),
            reference,
            "anomalies of {tag} differ"
        );
        assert_eq!(
            sorted_lines(&dir.join(format!("dead-{tag}.jsonl"))),
            sorted_lines(&dir.join("dead-w1.jsonl")),
            "dead letters of {tag} differ"
        );
        assert_eq!(
            counts(&dir, tag),
            (read, valid, dead, anomalies),
            "counts of {tag} differ"
        );
    }
}
