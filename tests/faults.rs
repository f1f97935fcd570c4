//! Faults injected into real runs of the job: an output whose disk is full (`/dev/full`: every
//! write fails with ENOSPC, for root too), a corrupt checkpoint, an alert receiver that accepts
//! connections and never answers. Each: a clear message, nothing silently lost, no stall.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

/// Writes the two-service fixture (api and db anomalous, api calls db) into `dir`.
fn fixture(dir: &Path) {
    let text = samples(&[("api", &[11, 12]), ("db", &[9, 10, 11, 12])]);
    std::fs::write(dir.join("samples.jsonl"), text).unwrap();
    std::fs::write(dir.join("topology.jsonl"), edge("api", "db", None, "add")).unwrap();
}

/// Runs the job on `dir`'s fixture with `args` added.
fn run(dir: &Path, args: &[&str]) -> Output {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    incidentflow()
        .args([
            "run",
            "--input",
            &p("samples.jsonl"),
            "--topology",
            &p("topology.jsonl"),
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_stops_the_job_clearly_and_a_restart_with_space_loses_nothing() {
    let dir = scratch("fault-disk-full");
    fixture(&dir);
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    // The reference: a run with room.
    let clean = run(
        &dir,
        &[
            "--anomalies-out",
            &p("clean-anomalies.jsonl"),
            "--incidents-out",
            &p("clean-incidents.jsonl"),
        ],
    );
    assert!(clean.status.success());
    let expected = lines(&dir.join("clean-anomalies.jsonl"));
    assert!(!expected.is_empty());

    // The anomalies' disk is full.
    let full = run(
        &dir,
        &[
            "--anomalies-out",
            "/dev/full",
            "--incidents-out",
            &p("incidents.jsonl"),
            "--checkpoint",
            &p("checkpoint.json"),
        ],
    );
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot write anomalies to /dev/full"),
        "{stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // The checkpoint does not claim what was not written.
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("checkpoint.json")).unwrap())
            .unwrap();
    let mark = &checkpoint["outputs"]["anomalies"];
    let first: serde_json::Value = serde_json::from_str(&expected[0]).unwrap();
    let first_at =
        incidentflow_dataflows::time::parse_rfc3339(first["timestamp"].as_str().unwrap()).unwrap();
    assert!(
        mark.is_null()
            || (mark["bytes"].as_u64().unwrap_or(0) == 0
                && mark["durable_before"].as_u64().unwrap() <= first_at),
        "{checkpoint:#}"
    );

    // Space again (the same file, empty): the restart writes every anomaly, once.
    std::fs::write(dir.join("anomalies.jsonl"), "").unwrap();
    let again = run(
        &dir,
        &[
            "--anomalies-out",
            &p("anomalies.jsonl"),
            "--incidents-out",
            &p("incidents.jsonl"),
            "--checkpoint",
            &p("checkpoint.json"),
        ],
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(lines(&dir.join("anomalies.jsonl")), expected);
    assert_eq!(
        lines(&dir.join("incidents.jsonl")),
        lines(&dir.join("clean-incidents.jsonl"))
    );
}

#[test]
fn a_corrupt_or_truncated_checkpoint_is_a_clear_error_never_a_fresh_start() {
    let dir = scratch("fault-checkpoint");
    fixture(&dir);
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    for damaged in [
        "{\"version\":1,\"outputs\":{\"anomal",
        "",
        "\u{0}\u{1}garbage",
    ] {
        std::fs::write(dir.join("checkpoint.json"), damaged).unwrap();
        let _ = std::fs::remove_file(dir.join("anomalies.jsonl"));
        let out = run(
            &dir,
            &[
                "--anomalies-out",
                &p("anomalies.jsonl"),
                "--checkpoint",
                &p("checkpoint.json"),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{damaged:?}: {stderr}");
        assert!(
            stderr.contains("checkpoint.json") && stderr.contains("not a checkpoint"),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            !dir.join("anomalies.jsonl").exists(),
            "nothing written on a checkpoint it cannot read"
        );
    }
}

#[test]
fn an_alert_receiver_that_never_answers_costs_its_timeouts_not_the_run() {
    let dir = scratch("fault-silent-receiver");
    fixture(&dir);
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    // Accepts every connection and holds it, saying nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    std::fs::write(
        dir.join("job.toml"),
        "[alerts.hook]\nkind = \"webhook\"\ntimeout = \"500ms\"\nretries = 1\nbackoff = \"100ms\"\n",
    )
    .unwrap();
    let plain = run(&dir, &["--incidents-out", &p("plain.jsonl")]);
    assert!(plain.status.success());
    let started = Instant::now();
    let out = incidentflow()
        .args([
            "run",
            "--input",
            &p("samples.jsonl"),
            "--topology",
            &p("topology.jsonl"),
        ])
        .args([
            "--config",
            &p("job.toml"),
            "--incidents-out",
            &p("incidents.jsonl"),
        ])
        .args(["--summary-out", &p("summary.json")])
        .env("INCIDENTFLOW__ALERTS__HOOK__WEBHOOK_URL", &url)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every version written as without the receiver; each delivery failed after its tries.
    assert_eq!(
        lines(&dir.join("incidents.jsonl")),
        lines(&dir.join("plain.jsonl"))
    );
    let s = summary(&dir.join("summary.json"));
    let n = lines(&dir.join("incidents.jsonl")).len() as u64;
    assert_eq!(s["alerts"]["hook"]["failed"], n, "{s:#}");
    // Bounded: the deliveries wait out their timeouts within the job's grace, not for ever.
    assert!(took < Duration::from_secs(60), "{took:?}");
}
