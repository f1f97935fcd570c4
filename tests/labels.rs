//! A series is what its labels say: two pods of one service reporting the same metric are two
//! series, each judged against its own history, while incidents still group them by service.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use common::*;

/// A sample of `service`'s latency from `pod`.
fn pod_sample(t: u64, pod: &str, value: f64) -> String {
    format!(
        r#"{{"timestamp":"{}","namespace":"shop","service":"api","metric_name":"latency_ms","value":{value},"labels":{{"pod":"{pod}","zone":"eu-1"}}}}"#,
        rfc3339(t)
    )
}

#[test]
fn two_pods_are_two_series_and_a_spike_on_one_is_found() {
    let dir = scratch("labels-pods");
    // Pod a at 100 ms with noise of 1 ms; pod b at 500 ms (five times a's level) with its own
    // noise. At minute 60 pod a's latency rises by half (fifty times its noise) for three
    // minutes. Mixed into one series, b's level would hide it.
    let mut rng = Rng::new(3, 0);
    let mut text = String::new();
    for minute in 0..80u64 {
        let t = T0 + minute * MIN;
        let fault = if (60..63).contains(&minute) {
            50.0
        } else {
            0.0
        };
        let a = 100.0 + (rng.unit() - 0.5) * 2.0 + fault;
        let b = 500.0 + (rng.unit() - 0.5) * 10.0;
        // b's labels written in the other order: the same series whatever the order.
        text += &pod_sample(t, "a", a);
        text += "\n";
        text += &format!(
            r#"{{"timestamp":"{}","namespace":"shop","service":"api","metric_name":"latency_ms","value":{b},"labels":{{"zone":"eu-1","pod":"b"}}}}"#,
            rfc3339(t + 1000)
        );
        text += "\n";
    }
    let input = dir.join("pods.jsonl");
    std::fs::write(&input, text).unwrap();
    let (anomalies, incidents) = (dir.join("anomalies.jsonl"), dir.join("incidents.jsonl"));
    run_ok(&[
        "--input",
        input.to_str().unwrap(),
        "--anomalies-out",
        anomalies.to_str().unwrap(),
        "--incidents-out",
        incidents.to_str().unwrap(),
    ]);
    let found = json_lines(&anomalies);
    let opened: Vec<&serde_json::Value> = found
        .iter()
        .filter(|a| a["episode"]["status"] == "open")
        .collect();
    assert_eq!(opened.len(), 1, "{found:#?}");
    let spike = opened[0];
    assert_eq!(spike["timestamp"], rfc3339(T0 + 60 * MIN));
    assert_eq!(spike["labels"]["pod"], "a");
    assert_eq!(spike["labels"]["zone"], "eu-1");
    assert!(
        (spike["expected"].as_f64().unwrap() - 100.0).abs() < 2.0,
        "{spike}"
    );
    // One episode on pod a's series, none on b's, and the same episode id throughout.
    assert!(found.iter().all(|a| a["labels"]["pod"] == "a"));
    let episodes: std::collections::BTreeSet<&str> = found
        .iter()
        .map(|a| a["episode"]["episode_id"].as_str().unwrap())
        .collect();
    assert_eq!(episodes.len(), 1);
    // The incident names the service (the fault lasts three minutes: a strong anomaly that
    // lasts), not the pod.
    let versions = json_lines(&incidents);
    assert!(!versions.is_empty(), "{versions:#?}");
    assert_eq!(versions[0]["services"], serde_json::json!(["api"]));
}
