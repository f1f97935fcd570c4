//! The golden test: two services whose latency is steady and then spikes give exactly the two
//! anomalies expected (each the opening of an episode), with their evidence, and nothing else. The exact output is kept in
//! `tests/fixtures/golden/` and compared byte for byte; `UPDATE_GOLDEN=1` rewrites it on purpose.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use common::*;

/// Twenty steady minutes of each service (the champion judges from the eleventh), then a spike.
const API_STEADY: [f64; 10] = [0.42, 0.41, 0.43, 0.42, 0.44, 0.40, 0.42, 0.43, 0.41, 0.42];
const DB_STEADY: [f64; 10] = [0.30, 0.31, 0.29, 0.30, 0.32, 0.28, 0.30, 0.31, 0.29, 0.30];

fn fixture() -> String {
    let api = [&API_STEADY[..], &API_STEADY, &[1.86]].concat();
    let db = [&DB_STEADY[..], &DB_STEADY, &[0.81]].concat();
    let mut text = String::new();
    for i in 0..api.len() {
        let ts = T0 + i as u64 * 60_000;
        text += &sample(ts, "shop", "payment-api", "latency_p99", api[i]);
        text += "\n";
        text += &sample(ts + 5_000, "shop", "payments-db", "latency_p99", db[i]);
        text += "\n";
    }
    text
}

/// The largest minute-to-minute change of a steady history.
fn largest_change(values: &[f64]) -> f64 {
    values
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f64::max)
}

#[test]
fn two_spikes_give_exactly_two_anomalies_with_their_evidence() {
    let dir = scratch("golden");
    let input = dir.join("two-services.jsonl");
    std::fs::write(&input, fixture()).unwrap();
    let out = dir.join("anomalies.jsonl");
    run_ok(&[
        "--input",
        input.to_str().unwrap(),
        "--anomalies-out",
        out.to_str().unwrap(),
    ]);

    let anomalies = json_lines(&out);
    assert_eq!(anomalies.len(), 2, "{anomalies:#?}");
    let expectations = [
        ("payment-api", 1.86, API_STEADY.repeat(2), T0 + 20 * 60_000),
        (
            "payments-db",
            0.81,
            DB_STEADY.repeat(2),
            T0 + 20 * 60_000 + 5_000,
        ),
    ];
    for (a, (service, value, history, ts)) in anomalies.iter().zip(expectations) {
        let previous = *history.last().unwrap();
        assert_eq!(a["service"], service);
        assert_eq!(a["namespace"], "shop");
        assert_eq!(a["metric_name"], "latency_p99");
        assert_eq!(a["timestamp"], rfc3339(ts));
        assert_eq!(a["value"], value);
        assert_eq!(a["detector"], "change");
        assert_eq!(a["schema_version"], 1);
        // The reference is the sample before; the band is the threshold either side of it, a
        // change beyond anything the history made (in twenty samples, the floor of 7.5 median
        // changes, widened for a young series) and short of the spike.
        let ev = &a["evidence"];
        let threshold = ev["threshold"].as_f64().unwrap();
        assert_eq!(a["expected"], previous);
        assert_eq!(ev["reference"], previous);
        assert!((a["upper_bound"].as_f64().unwrap() - (previous + threshold)).abs() < 1e-12);
        assert!((a["lower_bound"].as_f64().unwrap() - (previous - threshold)).abs() < 1e-12);
        let largest = largest_change(&history);
        assert!(
            threshold > largest && threshold < value - previous,
            "threshold {threshold}, largest change {largest}"
        );
        assert!(ev["usual_change"].as_f64().unwrap() <= largest * 1.1);
        assert_eq!(ev["baseline_points"], 20);
        assert_eq!(ev["interval_ms"], 60_000);
        assert_eq!(ev["direction"], "up");
        assert_eq!(ev["flat_baseline"], false);
        assert!(ev.get("baseline_stddev").is_none());
        // Graded and calibrated: the score is the strength's s / (1 + s), strength being the
        // change over the threshold (the relative view, with its veto, can only lower it).
        let strength = ev["statistic"].as_f64().unwrap();
        assert!(strength > 1.5 && strength <= (value - previous) / threshold + 1e-9);
        let score = a["anomaly_score"].as_f64().unwrap();
        assert!((score - strength / (1.0 + strength)).abs() < 1e-12 && score < 1.0);
        assert!(a["anomaly_id"].as_str().unwrap().starts_with("an-"));
        // Each spike opens an episode (the input ends before it could close).
        assert_eq!(a["episode"]["status"], "open");
        assert_eq!(a["episode"]["started_at"], rfc3339(ts));
        assert_eq!(a["episode"]["samples"], 1);
        assert!(a["episode"]["episode_id"]
            .as_str()
            .unwrap()
            .starts_with("ep-"));
    }

    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden/two-services.anomalies.jsonl");
    let produced = std::fs::read_to_string(&out).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &produced).unwrap();
    }
    let expected =
        std::fs::read_to_string(&golden).expect("golden file (rewrite with UPDATE_GOLDEN=1)");
    assert_eq!(
        produced,
        expected,
        "output differs from {}",
        golden.display()
    );
}

#[test]
fn the_demo_runs_with_no_input_and_names_the_bad_service() {
    let out = run_ok(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("payments-db"), "{stdout}");
    assert!(stdout.contains("Found"), "{stdout}");
    assert!(
        stderr.contains("read") && stderr.contains("2883"),
        "{stderr}"
    );
    assert!(
        stdout.contains("1 incident") && stdout.contains("1. payments-db"),
        "{stdout}"
    );
    assert!(stderr.contains("incidents"), "{stderr}");
}
