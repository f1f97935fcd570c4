//! The golden test: two services whose latency is steady and then spikes give exactly the two
//! anomalies expected (each the opening of an episode), with their evidence, and nothing else. The exact output is kept in
//! `tests/fixtures/golden/` and compared byte for byte; `UPDATE_GOLDEN=1` rewrites it on purpose.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use common::*;

/// Twenty steady minutes (the default `min_points`) of each service, then a spike.
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

fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
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
    for (a, (service, value, baseline, ts)) in anomalies.iter().zip(expectations) {
        let (mean, sd) = mean_sd(&baseline);
        let z = (value - mean) / sd;
        assert_eq!(a["service"], service);
        assert_eq!(a["namespace"], "shop");
        assert_eq!(a["metric_name"], "latency_p99");
        assert_eq!(a["timestamp"], rfc3339(ts));
        assert_eq!(a["value"], value);
        assert_eq!(a["detector"], "zscore");
        assert_eq!(a["schema_version"], 1);
        assert!((a["expected"].as_f64().unwrap() - mean).abs() < 1e-12);
        assert!((a["upper_bound"].as_f64().unwrap() - (mean + 4.0 * sd)).abs() < 1e-12);
        assert!((a["lower_bound"].as_f64().unwrap() - (mean - 4.0 * sd)).abs() < 1e-12);
        let ev = &a["evidence"];
        assert_eq!(ev["baseline_points"], 20);
        assert_eq!(ev["direction"], "up");
        assert_eq!(ev["flat_baseline"], false);
        assert!(
            (ev["z"].as_f64().unwrap() - z).abs() < 1e-9,
            "z {} vs {z}",
            ev["z"]
        );
        assert!((ev["baseline_stddev"].as_f64().unwrap() - sd).abs() < 1e-12);
        let score = a["anomaly_score"].as_f64().unwrap();
        assert!((score - z / (z + 4.0)).abs() < 1e-12 && score < 1.0);
        assert_eq!(a["window"]["duration_ms"], 1_800_000);
        assert_eq!(a["window"]["end"], rfc3339(ts));
        assert!(a["anomaly_id"].as_str().unwrap().starts_with("an-"));
        // Each spike opens an episode (the input ends before it could close).
        assert_eq!(a["episode"]["status"], "open");
        assert_eq!(a["episode"]["started_at"], rfc3339(ts));
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
