//! Against a real Prometheus (Debian's package, started on loopback ports): it scrapes a fixture
//! exporter and the job's own `/metrics`, and remote-writes everything it scrapes into the job.
//! The job's anomalies come from those samples with the series keys the labels give; Prometheus
//! sees the job `up`, and `promtool check metrics` accepts the job's scrape.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Serves `queue_depth` for the shop's api on `listener`: about 1 for the first `quiet`, then 40.
fn fixture_exporter(listener: TcpListener, quiet: Duration) {
    let started = Instant::now();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let value = if started.elapsed() < quiet {
                1.0 + (n % 3) as f64 * 0.01
            } else {
                40.0
            };
            let body = format!(
                "# TYPE queue_depth gauge\nqueue_depth{{namespace=\"shop\",service=\"api\"}} {value}\n"
            );
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_real_prometheus_remote_writes_into_the_job_and_scrapes_it() {
    let dir = scratch("prometheus");
    let exporter = TcpListener::bind("127.0.0.1:0").unwrap();
    let exporter_addr = exporter.local_addr().unwrap().to_string();
    fixture_exporter(exporter, Duration::from_secs(20));
    let (receiver, metrics, web) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let mut job = KillOnDrop(
        incidentflow()
            .args(["run", "--input", &format!("remote-write://{receiver}")])
            .args([
                "--metrics-addr",
                &metrics,
                "--anomalies-out",
                &p("anomalies.jsonl"),
            ])
            .args(["--dead-letter", &p("dead.jsonl")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("job.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "the job never served /metrics",
        Duration::from_secs(30),
        || get(&metrics, "/metrics").is_some(),
    );
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
         scrape_configs:\n\
         - job_name: fixture\n  static_configs: [{{targets: ['{exporter_addr}']}}]\n\
         - job_name: incidentflow\n  static_configs: [{{targets: ['{metrics}']}}]\n\
         remote_write:\n\
         - url: http://{receiver}/api/v1/write\n  queue_config: {{batch_send_deadline: 500ms, min_backoff: 100ms}}\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let _prometheus = KillOnDrop(
        Command::new("prometheus")
            .args(["--config.file", &p("prometheus.yml")])
            .args([
                "--storage.tsdb.path",
                &p("data"),
                "--web.listen-address",
                &web,
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );

    // The job's own counter, scraped by Prometheus, comes back to it by remote write.
    let read = || {
        value(
            &get(&metrics, "/metrics").unwrap().1,
            "incidentflow_records_read_total",
        )
    };
    wait_for(
        "no sample came by remote write",
        Duration::from_secs(60),
        || read().is_some_and(|n| n > 0.0),
    );
    // Prometheus sees the job up, and a counter that follows what the job reads.
    let query = |q: &str| get(&web, &format!("/api/v1/query?query={q}")).map(|(_, body)| body);
    wait_for(
        "Prometheus never saw the job up",
        Duration::from_secs(60),
        || {
            query("up%7Bjob%3D%22incidentflow%22%7D")
                .is_some_and(|b| b.contains("\"value\":[") && b.contains(",\"1\"]"))
        },
    );
    wait_for(
        "the job's counter never moved in Prometheus",
        Duration::from_secs(60),
        || {
            query("incidentflow_records_read_total").is_some_and(|b| {
                let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .is_some_and(|n| n > 0.0)
            })
        },
    );
    // promtool accepts the job's scrape.
    let scrape = get(&metrics, "/metrics").unwrap().1;
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The fixture's jump is an anomaly of shop/api/queue_depth, with Prometheus's labels.
    wait_for(
        "no anomaly of the fixture's series",
        Duration::from_secs(90),
        || {
            std::fs::read_to_string(dir.join("anomalies.jsonl"))
                .is_ok_and(|t| t.contains("\"metric_name\":\"queue_depth\""))
        },
    );
    let anomalies = json_lines(&dir.join("anomalies.jsonl"));
    let found = anomalies
        .iter()
        .find(|a| a["metric_name"] == "queue_depth")
        .unwrap();
    assert_eq!(found["namespace"], "shop", "{found}");
    assert_eq!(found["service"], "api", "{found}");
    assert_eq!(
        found["labels"]["instance"],
        exporter_addr.as_str(),
        "{found}"
    );
    assert!(found["value"].as_f64().unwrap() > 30.0, "{found}");

    sigterm(&job.0);
    let status = job.0.wait().unwrap();
    let log = std::fs::read_to_string(dir.join("job.log")).unwrap();
    assert!(status.success(), "{status}: {log}");
}

/// Runs promtool with `args` in `dir`; its output when it succeeded, else the test fails.
fn promtool(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

/// The PrometheusRule's rules pass `promtool check rules`, and on made-up series of the job's own
/// metrics `promtool test rules` fires its alerts for lag, no progress and the dead-letter rate,
/// with the labels and the annotations as rendered, and not for the process that is well.
#[test]
fn the_jobs_own_alerts_pass_promtool_and_fire_on_made_up_series() {
    let dir = scratch("prometheus-rules");
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes/prometheusrule.yaml");
    let rule: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    // JSON is YAML: the rule file is the resource's spec as it stands.
    std::fs::write(dir.join("rules.yml"), rule["spec"].to_string()).unwrap();
    let checked = promtool(&dir, &["check", "rules", "rules.yml"]);
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");

    let tests = serde_json::json!({
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                // p0: far behind its Kafka input and reading nothing.
                {"series": "incidentflow_kafka_lag_messages{pod=\"p0\"}", "values": "200000x40"},
                {"series": "incidentflow_records_read_total{pod=\"p0\"}", "values": "5000x40"},
                // p1: reading, and dead-lettering a tenth of it.
                {"series": "incidentflow_kafka_lag_messages{pod=\"p1\"}", "values": "10x40"},
                {"series": "incidentflow_records_read_total{pod=\"p1\"}", "values": "0+1000x40"},
                {"series": "incidentflow_dead_letters_written_total{pod=\"p1\"}", "values": "0+100x40"},
                // p2: well.
                {"series": "incidentflow_kafka_lag_messages{pod=\"p2\"}", "values": "10x40"},
                {"series": "incidentflow_records_read_total{pod=\"p2\"}", "values": "0+1000x40"},
                {"series": "incidentflow_dead_letters_written_total{pod=\"p2\"}", "values": "0+1x40"},
            ],
            "alert_rule_test": [
                {"eval_time": "30m", "alertname": "IncidentflowKafkaLag", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "pod": "p0"},
                    "exp_annotations": {
                        "summary": "incidentflow on p0 is 200000 messages behind its Kafka input",
                        "description": "Anomalies and incidents come late. Add replicas (deploy/README.md, Scale out) or look for a slow output.",
                    },
                }]},
                {"eval_time": "30m", "alertname": "IncidentflowNoProgress", "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "pod": "p0"},
                    "exp_annotations": {
                        "summary": "incidentflow on p0 reads nothing although its input has records",
                        "description": "The job is stuck or cannot reach Kafka: see its log (RUST_LOG=info) and /healthz.",
                    },
                }]},
                {"eval_time": "30m", "alertname": "IncidentflowDeadLetterRate", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "pod": "p1"},
                    "exp_annotations": {
                        "summary": "More than 1% of incidentflow's input is dead-lettered on p1",
                        "description": "A producer sends records the job refuses; the .dlq topics say which and why.",
                    },
                }]},
                // Not yet: each waits its `for`.
                {"eval_time": "5m", "alertname": "IncidentflowKafkaLag", "exp_alerts": []},
            ],
        }],
    });
    std::fs::write(dir.join("tests.yml"), tests.to_string()).unwrap();
    let tested = promtool(&dir, &["test", "rules", "tests.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");

    // And the test can fail: a wrong expectation is reported as one.
    let mut wrong = tests.clone();
    wrong["tests"][0]["alert_rule_test"][2]["exp_alerts"][0]["exp_labels"]["pod"] = "p2".into();
    std::fs::write(dir.join("wrong.yml"), wrong.to_string()).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "wrong.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Sends `body` (JSON) to `path` of `addr` with `method`; the status and the answer's body.
fn send_json(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
}

/// Minute samples of api and db around `t0` (a wall-clock time): six hours steady before, both
/// anomalous at minutes 9 to 12 after `t0` (db first), over `minutes`.
fn around(t0: u64, minutes: std::ops::Range<u64>) -> String {
    let mut text = String::new();
    for minute in minutes {
        for (k, service) in ["api", "db"].iter().enumerate() {
            let spike = (9..=12).contains(&(minute as i64 - 360)) && (k == 1 || minute >= 371);
            let value = if spike {
                9.0
            } else {
                1.0 + ((minute + k as u64) % 7) as f64 * 0.01
            };
            let at = t0 + minute * MIN - 360 * MIN;
            text += &sample(at, "shop", service, "latency_p99", value);
            text += "\n";
        }
    }
    text
}

/// The job's Alertmanager output against a real Alertmanager: a live incident appears in
/// `/api/v2/alerts` with its labels and annotations, is re-sent while open, still delivered once
/// a silence made in Alertmanager covers it, and is gone (resolved) when the incident resolves.
#[test]
fn a_live_incident_fires_is_resent_survives_a_silence_and_resolves_in_a_real_alertmanager() {
    let dir = scratch("alertmanager");
    let am = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        dir.join("am.yml"),
        "route: {receiver: log, group_wait: 1s}\nreceivers: [{name: log}]\n",
    )
    .unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let _alertmanager = KillOnDrop(
        Command::new("prometheus-alertmanager")
            .args(["--config.file", &p("am.yml"), "--storage.path", &p("am")])
            .args(["--web.listen-address", &am, "--cluster.listen-address="])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("am.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "Alertmanager never got ready",
        Duration::from_secs(30),
        || get(&am, "/-/ready").is_some_and(|(s, _)| s == 200),
    );
    std::fs::write(
        dir.join("job.toml"),
        format!("[alerts.am]\nkind = \"alertmanager\"\nurl = \"http://{am}\"\nresend_interval = \"1s\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join("topology.jsonl"), edge("api", "db", None, "add")).unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut job = KillOnDrop(
        incidentflow()
            .args(["run", "--input", "-", "--config", &p("job.toml")])
            .args([
                "--topology",
                &p("topology.jsonl"),
                "--metrics-addr",
                &metrics,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("job.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    // Live: the fault began 21 minutes ago, the samples run to 17 minutes ago for now.
    let t0 = incidentflow_loadgen::live::wall_ms() / MIN * MIN - 30 * MIN;
    let mut stdin = job.0.stdin.take().unwrap();
    stdin.write_all(around(t0, 0..360 + 13).as_bytes()).unwrap();
    stdin.flush().unwrap();

    let alerts = || -> Vec<serde_json::Value> {
        let body = get(&am, "/api/v2/alerts")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        all.into_iter()
            .filter(|a| a["labels"]["alertname"] == "IncidentflowIncident")
            .collect()
    };
    wait_for(
        "no incident in Alertmanager",
        Duration::from_secs(30),
        || !alerts().is_empty(),
    );
    let alert = alerts().remove(0);
    let id = alert["labels"]["incident_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("inc-"), "{alert}");
    assert!(alert["labels"]["severity"].is_string(), "{alert}");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("db"),
        "{alert}"
    );
    assert_eq!(alert["status"]["state"], "active", "{alert}");
    // Re-sent while open: Alertmanager's copy is updated.
    let updated = alert["updatedAt"].clone();
    wait_for(
        "the open incident was not re-sent",
        Duration::from_secs(10),
        || alerts().first().is_some_and(|a| a["updatedAt"] != updated),
    );

    // A silence made in Alertmanager: the alert is suppressed, delivery goes on.
    let now = incidentflow_loadgen::live::wall_ms();
    let silence = serde_json::json!({
        "matchers": [{"name": "incident_id", "value": id, "isRegex": false, "isEqual": true}],
        "startsAt": incidentflow_dataflows::time::format_rfc3339(now),
        "endsAt": incidentflow_dataflows::time::format_rfc3339(now + 3_600_000),
        "createdBy": "test", "comment": "looking at it",
    });
    let (status, answer) = send_json(&am, "POST", "/api/v2/silences", &silence.to_string());
    assert_eq!(status, 200, "{answer}");
    wait_for(
        "the alert was not silenced",
        Duration::from_secs(10),
        || {
            alerts()
                .first()
                .is_some_and(|a| a["status"]["state"] == "suppressed")
        },
    );
    let delivered = || {
        value(
            &get(&metrics, "/metrics").unwrap().1,
            "incidentflow_alert_deliveries_total{output=\"am\",outcome=\"delivered\"}",
        )
        .unwrap_or(0.0)
    };
    let before = delivered();
    wait_for(
        "delivery stopped under the silence",
        Duration::from_secs(10),
        || delivered() > before,
    );
    let scrape = get(&metrics, "/metrics").unwrap().1;
    assert!(
        !scrape.contains("output=\"am\",outcome=\"failed\"")
            && !scrape.contains("output=\"am\",outcome=\"rejected\""),
        "{scrape}"
    );

    // The rest: the services recover, the incident resolves, and Alertmanager drops the alert.
    stdin
        .write_all(around(t0, 360 + 13..360 + 28).as_bytes())
        .unwrap();
    drop(stdin);
    assert!(job.0.wait().unwrap().success());
    wait_for(
        "the incident was not resolved in Alertmanager",
        Duration::from_secs(15),
        || {
            !alerts()
                .iter()
                .any(|a| a["labels"]["incident_id"] == id.as_str())
        },
    );
}
