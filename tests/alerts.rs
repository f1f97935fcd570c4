//! Alert outputs against real HTTP servers on 127.0.0.1 that record what they receive: the
//! payloads of Alertmanager, PagerDuty, the webhook and Slack, the resolve, the retries when a
//! receiver answers 500 or is down, no duplicate trigger, suppression, and silence in replays.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    content_type: String,
    body: Value,
}

/// An HTTP server on loopback that records every POST and answers with the next of `answers`
/// (then 200).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(answers: &[u16]) -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap(), answers)
    }

    fn on(listener: TcpListener, answers: &[u16]) -> Receiver {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.to_vec()));
        let record = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let status = {
                    let mut a = answers.lock().unwrap();
                    if a.is_empty() {
                        200
                    } else {
                        a.remove(0)
                    }
                };
                answer(stream, status, &record);
            }
        });
        Receiver { url, got }
    }

    /// What was accepted (answered 200), in arrival order.
    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Reads one request (Content-Length body), records it when `status` is 200 (before answering,
/// so that the sender cannot finish before the record is there), answers `status` and closes.
fn answer(stream: TcpStream, status: u16, record: &Mutex<Vec<Received>>) -> Option<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => content_type = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    if status == 200 {
        record.lock().unwrap().push(Received {
            path,
            content_type,
            body: serde_json::from_slice(&body).ok()?,
        });
    }
    let text = match status {
        200 => "ok".to_string(),
        // A refusal whose text has a character across byte 300 (where a cut once panicked).
        400 => format!("{}€ is not a valid amount", "x".repeat(299)),
        _ => "try later".to_string(),
    };
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
    .ok()
}

/// Runs the two-service fixture (one incident: opened, updated from medium to high, resolved) with `settings`
/// and the environment `env`; returns the incident versions written and the run's summary.
fn run_with_alerts(
    dir: &Path,
    settings: &str,
    env: &[(&str, String)],
    extra: &[&str],
) -> (Vec<Value>, Value, String) {
    std::fs::write(
        dir.join("samples.jsonl"),
        samples(&[("api", &[11, 12]), ("db", &[9, 10, 11, 12])]),
    )
    .unwrap();
    std::fs::write(dir.join("topology.jsonl"), edge("api", "db", None, "add")).unwrap();
    std::fs::write(dir.join("job.toml"), settings).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let out = incidentflow()
        .args([
            "run",
            "--config",
            &p("job.toml"),
            "--input",
            &p("samples.jsonl"),
        ])
        .args(["--topology", &p("topology.jsonl")])
        .args(["--incidents-out", &p("incidents.jsonl")])
        .args(["--summary-out", &p("summary.json")])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    (
        json_lines(&dir.join("incidents.jsonl")),
        summary(&dir.join("summary.json")),
        stderr,
    )
}

/// The same job read from standard input with `/metrics` served: its scrape once every alert
/// output has failed or been refused (what a scrape shows of outputs whose secrets are set).
fn scrape_while_alerting(dir: &Path, env: &[(&str, String)]) -> String {
    let addr = format!("127.0.0.1:{}", free_port());
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let mut job = KillOnDrop(
        incidentflow()
            .args(["run", "--config", &p("job.toml"), "--input", "-"])
            .args(["--topology", &p("topology.jsonl"), "--metrics-addr", &addr])
            .args(["--dead-letter", &p("dead-scraped.jsonl")])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let input = std::fs::read(dir.join("samples.jsonl")).unwrap();
    let mut stdin = job.0.stdin.take().unwrap();
    stdin.write_all(&input).unwrap();
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let tried = |scrape: &str| {
        [
            ("hook", "rejected"),
            ("pager", "failed"),
            ("chat", "failed"),
        ]
        .iter()
        .all(|(output, outcome)| {
            scrape.lines().any(|l| {
                l.starts_with("incidentflow_alert_deliveries_total")
                    && l.contains(&format!("output=\"{output}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
        })
    };
    let scrape = loop {
        if let Some((200, body)) = get(&addr, "/metrics") {
            if tried(&body) {
                break body;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the outputs were not tried"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    job.0.wait().unwrap();
    scrape
}

fn ids_of(versions: &[Value]) -> BTreeSet<String> {
    versions
        .iter()
        .map(|v| v["incident_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_alert_output_gets_its_documented_payloads_and_one_trigger_per_incident() {
    let dir = scratch("alerts-payloads");
    let (am, pd, hook, slack) = (
        Receiver::start(&[]),
        Receiver::start(&[]),
        Receiver::start(&[]),
        Receiver::start(&[]),
    );
    let settings = format!(
        "[alerts.am]\nkind = \"alertmanager\"\nurl = \"{}\"\n\
         [alerts.pager]\nkind = \"pagerduty\"\nurl = \"{}/v2/enqueue\"\n\
         [alerts.hook]\nkind = \"webhook\"\n\
         [alerts.chat]\nkind = \"slack\"\n\
         [[runbooks]]\nname = \"db latency\"\nservices = [\"db\"]\nurl = \"https://runbooks.example.com/db\"\naction = \"Check the slow query log\"\n",
        am.url, pd.url
    );
    let env = [
        (
            "INCIDENTFLOW__ALERTS__PAGER__ROUTING_KEY",
            "R0UTE-KEY-1234".to_string(),
        ),
        (
            "INCIDENTFLOW__ALERTS__HOOK__WEBHOOK_URL",
            format!("{}/hook/T0KEN", hook.url),
        ),
        (
            "INCIDENTFLOW__ALERTS__CHAT__WEBHOOK_URL",
            format!("{}/services/T0/B0/X0", slack.url),
        ),
    ];
    let (versions, summary, stderr) = run_with_alerts(&dir, &settings, &env, &[]);
    let ids = ids_of(&versions);
    assert_eq!(ids.len(), 1, "{versions:#?}");
    let id = ids.iter().next().unwrap().clone();
    assert!(
        versions.len() >= 3,
        "open, update(s), resolve: {versions:#?}"
    );
    let resolved = versions.last().unwrap();
    assert_eq!(resolved["status"], "resolved");
    // Secrets never reach the log.
    for secret in ["R0UTE-KEY-1234", "T0KEN", "T0/B0/X0"] {
        assert!(!stderr.contains(secret), "{secret} leaked: {stderr}");
    }

    // The webhook: every version, exactly as the incidents file has it.
    let got = hook.got();
    assert!(got
        .iter()
        .all(|r| r.path == "/hook/T0KEN" && r.content_type == "application/json"));
    let bodies: Vec<Value> = got.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, versions);

    // PagerDuty: one trigger, one resolve, dedup_key = incident id.
    let got = pd.got();
    let actions: Vec<&str> = got
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "resolve"], "{got:#?}");
    for r in &got {
        assert_eq!(r.path, "/v2/enqueue");
        assert_eq!(r.body["dedup_key"], id.as_str());
        assert_eq!(r.body["routing_key"], "R0UTE-KEY-1234");
    }
    let trigger = &got[0].body;
    let payload = trigger["payload"].as_object().unwrap();
    let fields: BTreeSet<&str> = payload.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "summary",
            "source",
            "severity",
            "timestamp",
            "component",
            "class",
            "custom_details"
        ])
    );
    assert_eq!(payload["source"], "incidentflow");
    assert_eq!(payload["component"], "db");
    assert_eq!(payload["timestamp"], versions[0]["created_at"]);
    assert!(
        ["critical", "error", "warning", "info"].contains(&payload["severity"].as_str().unwrap())
    );
    assert_eq!(
        trigger["links"][0]["href"],
        "https://runbooks.example.com/db"
    );

    // Alertmanager: every version as an alert with the same labels, firing until a time to come,
    // then ended at the resolve time.
    let got = am.got();
    assert!(got.len() >= versions.len(), "{got:#?}");
    let now = rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let mut labels = BTreeSet::new();
    for r in &got {
        assert_eq!(r.path, "/api/v2/alerts");
        for alert in r.body.as_array().unwrap() {
            let keys: BTreeSet<&str> = alert
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                BTreeSet::from(["labels", "annotations", "startsAt", "endsAt"])
            );
            assert_eq!(alert["labels"]["incident_id"], id.as_str());
            assert_eq!(alert["labels"]["alertname"], "IncidentflowIncident");
            assert_eq!(alert["startsAt"], versions[0]["created_at"]);
            assert_eq!(
                alert["annotations"]["runbook_url"],
                "https://runbooks.example.com/db"
            );
            labels.insert(alert["labels"].to_string());
        }
    }
    assert_eq!(labels.len(), 1, "labels stay fixed: {labels:?}");
    let (last, firing) = got.split_last().unwrap();
    for r in firing {
        assert!(
            r.body[0]["endsAt"].as_str().unwrap() > now.as_str(),
            "{r:?}"
        );
    }
    assert_eq!(last.body[0]["endsAt"], resolved["updated_at"]);
    assert_eq!(last.body[0]["annotations"]["status"], "resolved");

    // Slack: a readable opening and resolve.
    let got = slack.got();
    let texts: Vec<&str> = got
        .iter()
        .map(|r| r.body["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 3, "opened, severity up, resolved: {texts:?}");
    assert!(
        texts[0].contains("Incident opened") && texts[0].contains(&id),
        "{texts:?}"
    );
    assert!(texts[0].contains("*Likely cause:* db"), "{texts:?}");
    assert!(
        texts.last().unwrap().contains("Incident resolved"),
        "{texts:?}"
    );

    // The summary counts what each receiver accepted.
    let delivered = |o: &str| summary["alerts"][o]["delivered"].as_u64().unwrap_or(0) as usize;
    assert_eq!(delivered("hook"), hook.got().len());
    assert_eq!(delivered("pager"), 2);
    assert_eq!(delivered("am"), am.got().len());
    assert_eq!(delivered("chat"), slack.got().len());
}

#[test]
fn a_receiver_that_fails_or_is_down_costs_retries_not_incidents() {
    let dir = scratch("alerts-retries");
    // Answers 500 twice, then accepts.
    let flaky = Receiver::start(&[500, 500]);
    // Nothing listens there for the whole run.
    let gone = format!("http://127.0.0.1:{}", free_port());
    // Refuses every request (a 4xx is not retried).
    let refusing = Receiver::start(&[400; 20]);
    // Down at the start, up 1.5 s later on the same port.
    let late_port = free_port();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let listener = TcpListener::bind(("127.0.0.1", late_port)).unwrap();
        let r = Receiver::on(listener, &[]);
        std::thread::sleep(Duration::from_secs(60));
        drop(r);
    });
    let settings = "[alerts.flaky]\nkind = \"webhook\"\nbackoff = \"50ms\"\n\
         [alerts.gone]\nkind = \"webhook\"\nretries = 2\nbackoff = \"50ms\"\n\
         [alerts.refusing]\nkind = \"webhook\"\nbackoff = \"50ms\"\n\
         [alerts.late]\nkind = \"webhook\"\nretries = 8\nbackoff = \"300ms\"\n";
    let env = [
        (
            "INCIDENTFLOW__ALERTS__FLAKY__WEBHOOK_URL",
            format!("{}/flaky", flaky.url),
        ),
        (
            "INCIDENTFLOW__ALERTS__GONE__WEBHOOK_URL",
            format!("{gone}/gone"),
        ),
        (
            "INCIDENTFLOW__ALERTS__REFUSING__WEBHOOK_URL",
            format!("{}/refusing", refusing.url),
        ),
        (
            "INCIDENTFLOW__ALERTS__LATE__WEBHOOK_URL",
            format!("http://127.0.0.1:{late_port}/late"),
        ),
    ];
    let (versions, summary, stderr) = run_with_alerts(&dir, settings, &env, &[]);
    let n = versions.len() as u64;
    assert!(n >= 3, "{versions:#?}");
    // The incidents are all there, whatever the receivers did.
    let (plain, _, _) = run_with_alerts(&scratch("alerts-retries-plain"), "", &[], &[]);
    assert_eq!(versions, plain);
    let counts = |o: &str| -> BTreeMap<String, u64> {
        serde_json::from_value(summary["alerts"][o].clone()).unwrap()
    };
    let expect = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(counts("flaky"), expect(&[("delivered", n), ("retries", 2)]));
    assert_eq!(flaky.got().len() as u64, n);
    assert_eq!(counts("gone"), expect(&[("failed", n), ("retries", 2 * n)]));
    // A refusal answered with non-ASCII text is logged cut at a character, not a panic.
    assert_eq!(counts("refusing"), expect(&[("rejected", n)]));
    assert!(refusing.got().is_empty());
    assert!(stderr.contains("HTTP 400: xxxxxxxxxx"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let late = counts("late");
    assert_eq!(late["delivered"], n, "{late:?}");
    assert!(late["retries"] >= 1, "{late:?}");
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(stderr.contains("giving up"), "{stderr}");
}

#[test]
fn suppressed_versions_are_written_not_sent_and_replays_send_nothing() {
    let dir = scratch("alerts-suppressed");
    let hook = Receiver::start(&[]);
    let pd = Receiver::start(&[]);
    // The silence covers the whole incident: written, marked, never sent.
    let settings = format!(
        "[alerts.hook]\nkind = \"webhook\"\n[alerts.pager]\nkind = \"pagerduty\"\nurl = \"{}\"\n\
         [[silences]]\nname = \"db maintenance\"\nservices = [\"db\"]\nstart = \"2026-11-25T00:00:00Z\"\nend = \"2026-11-26T00:00:00Z\"\n",
        pd.url
    );
    let env = [
        (
            "INCIDENTFLOW__ALERTS__HOOK__WEBHOOK_URL",
            format!("{}/hook", hook.url),
        ),
        (
            "INCIDENTFLOW__ALERTS__PAGER__ROUTING_KEY",
            "KEY".to_string(),
        ),
    ];
    let (versions, summary, _) = run_with_alerts(&dir, &settings, &env, &[]);
    assert!(versions.len() >= 3);
    assert!(versions
        .iter()
        .all(|v| v["suppressed_by"] == "db maintenance"));
    assert!(hook.got().is_empty() && pd.got().is_empty());
    // Every version, and the resolve of an incident never alerted, is counted as suppressed.
    assert_eq!(
        summary["alerts"]["hook"]["suppressed"].as_u64(),
        Some(versions.len() as u64)
    );

    // A silence over its first minutes only: the later versions and the resolve go out.
    let first = versions[0]["updated_at"].as_str().unwrap().to_string();
    let second = versions[1]["updated_at"].as_str().unwrap().to_string();
    let partial = settings.replace(
        "start = \"2026-11-25T00:00:00Z\"\nend = \"2026-11-26T00:00:00Z\"",
        &format!("start = \"{first}\"\nend = \"{second}\""),
    );
    let (versions, _, _) = run_with_alerts(&dir, &partial, &env, &[]);
    let sent: Vec<Value> = hook.got().iter().map(|r| r.body.clone()).collect();
    let unsuppressed: Vec<Value> = versions
        .iter()
        .filter(|v| v.get("suppressed_by").is_none())
        .cloned()
        .collect();
    assert_eq!(versions[0]["suppressed_by"], "db maintenance");
    assert_eq!(sent, unsuppressed);
    let actions: Vec<Value> = pd
        .got()
        .iter()
        .map(|r| r.body["event_action"].clone())
        .collect();
    assert_eq!(actions, ["trigger", "resolve"]);

    // A replay recomputes the past and pages nobody.
    let before = hook.got().len();
    let (replayed, summary, stderr) = run_with_alerts(
        &dir,
        "[alerts.hook]\nkind = \"webhook\"\n",
        &env[..1],
        &["--from-time", "2026-11-25T00:00:00Z"],
    );
    assert!(!replayed.is_empty());
    assert_eq!(hook.got().len(), before);
    assert!(
        summary["alerts"].as_object().unwrap().is_empty(),
        "{summary}"
    );
    assert!(
        stderr.contains("alert outputs are off during a replay"),
        "{stderr}"
    );
}

/// A receiver on loopback that refuses every request with `status`, answering with the request
/// itself (its line, headers and body): the worst a receiver can do with what it is sent.
fn echoing_receiver(status: u16) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream);
            let (mut request, mut length) = (Vec::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                request.extend_from_slice(line.as_bytes());
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            request.extend_from_slice(&body);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                request.len()
            );
            let _ = stream.write_all(&request);
        }
    });
    url
}

#[test]
fn no_secret_appears_in_any_output_log_line_or_error() {
    let dir = scratch("alerts-secrets");
    let (refusing, failing) = (echoing_receiver(400), echoing_receiver(500));
    let gone = free_port();
    let settings = format!(
        "[kafka]\nsecurity_protocol = \"sasl_plaintext\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"job\"\n\
         [alerts.hook]\nkind = \"webhook\"\nretries = 0\n\
         [alerts.pager]\nkind = \"pagerduty\"\nurl = \"{failing}/v2/enqueue\"\nretries = 1\nbackoff = \"10ms\"\n\
         [alerts.chat]\nkind = \"slack\"\nretries = 1\nbackoff = \"10ms\"\n"
    );
    let env = [
        (
            "INCIDENTFLOW__KAFKA__SASL_PASSWORD",
            "S3CRET-SASL-PASSWORD".to_string(),
        ),
        (
            "INCIDENTFLOW__ALERTS__HOOK__WEBHOOK_URL",
            format!("{refusing}/hooks/S3CRET-WEBHOOK-PATH"),
        ),
        (
            "INCIDENTFLOW__ALERTS__PAGER__ROUTING_KEY",
            "S3CRET-ROUTING-KEY".to_string(),
        ),
        (
            "INCIDENTFLOW__ALERTS__CHAT__WEBHOOK_URL",
            format!("http://127.0.0.1:{gone}/services/S3CRET-SLACK-PATH"),
        ),
    ];
    let (anomalies, dead) = (dir.join("anomalies.jsonl"), dir.join("dead.jsonl"));
    let extra = [
        "--anomalies-out",
        anomalies.to_str().unwrap(),
        "--dead-letter",
        dead.to_str().unwrap(),
    ];
    let (versions, summary, stderr) = run_with_alerts(&dir, &settings, &env, &extra);
    assert!(!versions.is_empty());
    // Every output went through its error path: refused, failed after retries, not reachable.
    let outcomes = &summary["alerts"];
    assert!(
        outcomes["hook"]["rejected"].as_u64() > Some(0),
        "{outcomes}"
    );
    assert!(outcomes["pager"]["failed"].as_u64() > Some(0), "{outcomes}");
    assert!(outcomes["chat"]["failed"].as_u64() > Some(0), "{outcomes}");
    assert!(
        stderr.contains("<the output's url>") || stderr.contains("<the routing key>"),
        "{stderr}"
    );
    // The validation command sees them all too.
    let validate = incidentflow()
        .args(["config", "validate", dir.join("job.toml").to_str().unwrap()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let mut everything = stderr.clone();
    everything += &scrape_while_alerting(&dir, &env);
    everything += &String::from_utf8_lossy(&validate.stdout);
    everything += &String::from_utf8_lossy(&validate.stderr);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        everything += &std::fs::read_to_string(&path).unwrap_or_default();
    }
    for secret in [
        "S3CRET-SASL-PASSWORD",
        "S3CRET-WEBHOOK-PATH",
        "S3CRET-ROUTING-KEY",
        "S3CRET-SLACK-PATH",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} in an output:\n{everything}"
        );
    }
}
