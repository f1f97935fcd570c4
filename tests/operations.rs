//! Running it beside the rest of the stack: the self-monitoring endpoints of a running job over
//! real HTTP, and the `config` commands.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Polls `/metrics` until `name` reaches `want` (or fails after 30 s).
fn wait_for(addr: &str, name: &str, want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, body)) = get(addr, "/metrics") {
            if value(&body, name) == Some(want) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {want}:\n{body}"
            );
        }
        assert!(Instant::now() < deadline, "no /metrics on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_health_and_readiness_of_a_running_job_follow_its_input() {
    let dir = scratch("operations-metrics");
    let addr = format!("127.0.0.1:{}", free_port());
    let anomalies = dir.join("anomalies.jsonl");
    // The z-score as a challenger keeps the shared window baseline (an arrangement) too.
    std::fs::write(
        dir.join("job.toml"),
        "[detectors]\nchallengers = [\"zscore\"]\n",
    )
    .unwrap();
    let mut job = KillOnDrop(
        incidentflow()
            .args([
                "run",
                "--config",
                dir.join("job.toml").to_str().unwrap(),
                "--input",
                "-",
                "--metrics-addr",
                &addr,
                "--anomalies-out",
                anomalies.to_str().unwrap(),
                "--dead-letter",
                dir.join("dead.jsonl").to_str().unwrap(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = job.0.stdin.take().unwrap();
    // 40 steady samples a minute apart, then a spike: one anomaly.
    let mut text = String::new();
    for minute in 0..40u64 {
        let v = 1.0 + 0.01 * (minute % 5) as f64;
        text += &sample(T0 + minute * 60_000, "shop", "api", "latency_p99", v);
        text += "\n";
    }
    stdin.write_all(text.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let first = wait_for(&addr, "incidentflow_records_read_total", 40.0);
    assert_eq!(
        value(&first, "incidentflow_records_valid_total"),
        Some(40.0)
    );
    assert_eq!(
        value(&first, "incidentflow_records_in_total{source=\"samples\"}"),
        Some(40.0)
    );
    // The baselines hold the samples (those the watermark has passed) in an arrangement.
    let held = value(&first, "incidentflow_arrangement_records").unwrap();
    assert!(held > 0.0, "{held}");
    assert_eq!(get(&addr, "/healthz").unwrap(), (200, "ok\n".to_string()));
    assert_eq!(get(&addr, "/ready").unwrap().0, 200);
    assert_eq!(get(&addr, "/nothing").unwrap().0, 404);
    // The classic text format to a client that does not ask for OpenMetrics; OpenMetrics to one
    // that does (as Prometheus does).
    assert!(first.contains("# TYPE incidentflow_records_read_total counter"));
    assert!(first.contains("# TYPE incidentflow_output_delay_seconds histogram"));
    assert!(!first.contains("# EOF"));
    let open = openmetrics_scrape(&addr);
    assert!(
        open.contains("# TYPE incidentflow_records_read counter"),
        "{open}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");

    // More input moves the counters: a spike (an anomaly once a later sample closes its time),
    // two lines that are not JSON.
    let mut more = String::new();
    more += &sample(T0 + 40 * 60_000, "shop", "api", "latency_p99", 50.0);
    more += "\nnot json\n{also not\n";
    more += &sample(T0 + 41 * 60_000, "shop", "api", "latency_p99", 1.0);
    more += "\n";
    stdin.write_all(more.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let second = wait_for(&addr, "incidentflow_records_read_total", 44.0);
    assert_eq!(
        value(
            &second,
            "incidentflow_records_invalid_total{reason=\"not_json\"}"
        ),
        Some(2.0)
    );
    wait_for(&addr, "incidentflow_dead_letters_written_total", 2.0);
    wait_for(
        &addr,
        "incidentflow_anomalies_total{detector=\"change\"}",
        1.0,
    );
    drop(stdin); // the end of the input: the job finishes
    let status = job.0.wait().unwrap();
    assert!(status.success());
    let written = std::fs::read_to_string(&anomalies).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
    assert!(written.contains("\"detector\":\"change\""), "{written}");
}

/// `incidentflow config validate FILE` with `env` set.
fn validate(file: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    incidentflow()
        .args(["config", "validate", file.to_str().unwrap()])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn config_validate_says_what_is_wrong_and_print_default_is_a_valid_file() {
    let dir = scratch("operations-config");
    let out = incidentflow()
        .args(["config", "print-default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let default = dir.join("default.toml");
    std::fs::write(&default, &out.stdout).unwrap();
    let out = validate(&default, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[kafka]\nsamples_topic = \"raw metrics\"\n").unwrap();
    let out = validate(&bad, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("kafka.samples_topic is \"raw metrics\""),
        "{stderr}"
    );
    // The environment lies over the file: a good value fixes it, a misspelt key is named.
    let out = validate(
        &bad,
        &[("INCIDENTFLOW__KAFKA__SAMPLES_TOPIC", "raw.metrics")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = validate(
        &default,
        &[("INCIDENTFLOW__KAFKA__SAMPLE_TOPIC", "raw.metrics")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("environment") && stderr.contains("sample_topic"),
        "{stderr}"
    );
}

#[test]
fn feedback_labels_and_silences_are_followed_while_the_job_runs_and_reported() {
    let dir = scratch("operations-feedback");
    let addr = format!("127.0.0.1:{}", free_port());
    let (labels, silences) = (dir.join("labels.jsonl"), dir.join("silences.jsonl"));
    std::fs::write(&labels, "").unwrap();
    std::fs::write(&silences, "").unwrap();
    std::fs::write(dir.join("topology.jsonl"), edge("api", "db", None, "add")).unwrap();
    std::fs::write(dir.join("job.toml"), "").unwrap();
    let incidents = dir.join("incidents.jsonl");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let mut job = KillOnDrop(
        incidentflow()
            .args(["run", "--input", "-", "--metrics-addr", &addr])
            .args([
                "--config",
                &p("job.toml"),
                "--topology",
                &p("topology.jsonl"),
            ])
            .args(["--incidents-out", incidents.to_str().unwrap()])
            .args(["--feedback", labels.to_str().unwrap()])
            .args(["--silences", silences.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("job.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut stdin = job.0.stdin.take().unwrap();
    // A silence for the database from minute 30 on, and one that is not a silence.
    let silence = format!(
        "{{\"name\":\"db work\",\"services\":[\"db\"],\"start\":\"{}\",\"end\":\"{}\"}}\nnot a silence\n",
        rfc3339(T0 + 30 * MIN),
        rfc3339(T0 + 60 * MIN)
    );
    std::fs::write(&silences, silence).unwrap();
    wait_for(
        &addr,
        "incidentflow_side_input_refused_total{input=\"silences\"}",
        1.0,
    );
    // One incident: opened at minute 10 (db's second anomalous minute), updated at 11 when api
    // joins (resolved once later samples pass its grace).
    let text = samples(&[("api", &[11, 12]), ("db", &[9, 10, 11, 12])]);
    stdin.write_all(text.as_bytes()).unwrap();
    stdin.flush().unwrap();
    wait_for(
        &addr,
        "incidentflow_incident_versions_total{status=\"updated\"}",
        1.0,
    );
    let id = json_lines(&incidents)[0]["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        value(
            &get(&addr, "/metrics").unwrap().1,
            "incidentflow_feedback_coverage_ratio"
        ),
        Some(0.0)
    );
    // A responder says the cause was wrong (it was api), and another line is not a label.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&labels)
        .unwrap();
    writeln!(
        file,
        "{{\"incident_id\":\"{id}\",\"label\":\"wrong-cause\",\"root_cause_service\":\"api\",\"by\":\"oncall\"}}"
    )
    .unwrap();
    writeln!(file, "{{\"incident_id\":\"{id}\",\"label\":\"meh\"}}").unwrap();
    drop(file);
    let scrape = wait_for(&addr, "incidentflow_feedback_coverage_ratio", 1.0);
    assert_eq!(
        value(
            &scrape,
            "incidentflow_records_in_total{source=\"topology\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &scrape,
            "incidentflow_feedback_labels{label=\"wrong-cause\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &scrape,
            "incidentflow_feedback_root_cause_accuracy_ratio{label=\"all\"}"
        ),
        Some(0.0)
    );
    wait_for(
        &addr,
        "incidentflow_side_input_refused_total{input=\"feedback\"}",
        1.0,
    );
    // Samples past minute 30: a new database incident, marked by the silence read while running.
    let mut later = String::new();
    for minute in 20..40u64 {
        for (service, spike) in [("api", false), ("db", minute == 33 || minute == 34)] {
            // Far above a baseline that still holds the first incident's spikes.
            let v = if spike {
                100.0
            } else {
                1.0 + 0.01 * (minute % 5) as f64
            };
            later += &sample(T0 + minute * MIN, "shop", service, "latency_p99", v);
            later += "\n";
        }
    }
    stdin.write_all(later.as_bytes()).unwrap();
    drop(stdin);
    assert!(job.0.wait().unwrap().success());
    let versions = json_lines(&incidents);
    let silenced: Vec<&Value> = versions
        .iter()
        .filter(|v| v["incident_id"] != id.as_str())
        .collect();
    assert!(!silenced.is_empty(), "{versions:#?}");
    assert!(
        silenced.iter().all(|v| v["suppressed_by"] == "db work"),
        "{silenced:#?}"
    );
    assert!(versions
        .iter()
        .filter(|v| v["incident_id"] == id.as_str())
        .all(|v| v.get("suppressed_by").is_none()));
}

#[test]
fn eval_joins_feedback_labels_to_the_incidents() {
    let dir = scratch("operations-eval-feedback");
    let incidents = dir.join("incidents.jsonl");
    let version = |id: &str, v: u64, cause: &str| {
        format!(
            "{{\"schema_version\":1,\"incident_id\":\"{id}\",\"status\":\"{}\",\"version\":{v},\"created_at\":\"2026-11-25T00:00:00Z\",\"updated_at\":\"2026-11-25T00:0{v}:00Z\",\"severity\":\"low\",\"services\":[\"{cause}\"],\"hypothesis\":{{\"ranked_causes\":[{{\"service\":\"{cause}\",\"score\":0.5}}],\"confidence\":0.5}}}}\n",
            if v == 1 { "open" } else { "updated" }
        )
    };
    let text = version("inc-a", 1, "api")
        + &version("inc-a", 2, "db")
        + &version("inc-b", 1, "cache")
        + &version("inc-c", 1, "web");
    std::fs::write(&incidents, text).unwrap();
    let labels = dir.join("labels.jsonl");
    std::fs::write(
        &labels,
        "{\"incident_id\":\"inc-a\",\"label\":\"useful\",\"root_cause_service\":\"db\"}\n\
         {\"incident_id\":\"inc-b\",\"label\":\"noisy\"}\n\
         {\"incident_id\":\"inc-zzz\",\"label\":\"late\"}\n\
         {\"incident_id\":\"inc-c\",\"label\":\"useless\"}\n",
    )
    .unwrap();
    let out = incidentflow()
        .args(["eval", "--incidents", incidents.to_str().unwrap()])
        .args(["--feedback", labels.to_str().unwrap()])
        .args(["--out", dir.join("eval.json").to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("labels.jsonl line 4: label skipped: unknown variant `useless`"),
        "{stderr}"
    );
    assert!(
        stdout.contains("feedback: 2 of 3 incidents labelled (coverage 66.7%)"),
        "{stdout}"
    );
    let report = summary(&dir.join("eval.json"));
    let f = &report["feedback"];
    assert_eq!(f["labelled"], 2);
    assert_eq!(f["unmatched_labels"], 1);
    assert_eq!(f["invalid"], 1);
    assert_eq!(f["noisy_rate"], 0.5);
    // The newest version ranks db first: the label's root cause.
    assert_eq!(f["root_cause"]["all"]["right"], 1);
    assert_eq!(f["root_cause"]["all"]["accuracy"], 1.0);
}

/// A scrape asking for OpenMetrics, as Prometheus asks.
fn openmetrics_scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text; version=1.0.0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}
