//! Prometheus remote write as an input, end to end over loopback HTTP: real `WriteRequest`s
//! (protobuf, snappy) posted to the job give the same anomalies as the same samples as JSON
//! Lines; a body that cannot be decoded is answered 400 and dead-lettered as `bad_payload`; a
//! stale marker is skipped, a NaN refused; a stop processes every request answered 204.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

use common::*;
use incidentflow::ingest::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use incidentflow::ingest::remote_write::STALE_NAN;

/// POSTs `body` to the job's receiver as a sender does: again after a 503 (the job is behind:
/// its queue is full, as it is at times in a debug build); the first other answer's status.
fn post(addr: &str, body: &[u8], encoding: &str) -> u16 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = post_once(addr, body, encoding);
        if status != 503 || std::time::Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// POSTs `body` to the job's receiver once; the answer's status.
fn post_once(addr: &str, body: &[u8], encoding: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: {encoding}\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A request as Prometheus sends it: protobuf, snappy block compressed.
fn compressed(request: &WriteRequest) -> Vec<u8> {
    incidentflow::ingest::remote_write::encode(request)
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.into(),
        value: value.into(),
    }
}

/// The JSON sample lines as remote write requests: one per minute, every series' sample of that
/// minute in it (as Prometheus sends what it scraped together).
fn requests(text: &str) -> Vec<WriteRequest> {
    let mut by_minute: std::collections::BTreeMap<u64, Vec<TimeSeries>> = Default::default();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let at = v["timestamp"].as_str().unwrap();
        let ms = incidentflow_dataflows::time::parse_rfc3339(at).unwrap();
        by_minute.entry(ms / MIN).or_default().push(TimeSeries {
            labels: vec![
                label("__name__", v["metric_name"].as_str().unwrap()),
                label("namespace", v["namespace"].as_str().unwrap()),
                label("job", v["service"].as_str().unwrap()),
            ],
            samples: vec![Sample {
                value: v["value"].as_f64().unwrap(),
                timestamp: ms as i64,
            }],
        });
    }
    (by_minute.into_values())
        .map(|timeseries| WriteRequest { timeseries })
        .collect()
}

#[test]
fn remote_write_gives_the_json_paths_anomalies_refuses_what_it_cannot_decode_and_loses_nothing() {
    let dir = scratch("remote-write");
    let text = samples(&[("api", &[11, 12, 13]), ("db", &[9, 10, 11, 12])]);
    std::fs::write(dir.join("samples.jsonl"), &text).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    succeeded(
        incidentflow()
            .args(["run", "--input", &p("samples.jsonl")])
            .args(["--anomalies-out", &p("anomalies-json.jsonl")])
            .output()
            .unwrap(),
    );

    let addr = format!("127.0.0.1:{}", free_port());
    let mut job = KillOnDrop(
        incidentflow()
            .args(["run", "--input", &format!("remote-write://{addr}")])
            .args(["--anomalies-out", &p("anomalies.jsonl")])
            .args([
                "--dead-letter",
                &p("dead.jsonl"),
                "--summary-out",
                &p("summary.json"),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("job.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_listening(&addr);
    let all = requests(&text);
    let sent = all.iter().map(|r| r.timeseries.len()).sum::<usize>();
    for (i, request) in all.iter().enumerate() {
        assert_eq!(
            post(&addr, &compressed(request), "snappy"),
            204,
            "request {i}"
        );
        if i == 100 {
            // Damaged bodies: refused with 400, dead-lettered, counted.
            assert_eq!(post(&addr, b"not snappy at all", "snappy"), 400);
            let truncated = compressed(request);
            assert_eq!(
                post(&addr, &truncated[..truncated.len() / 2], "snappy"),
                400
            );
            // A stale marker is skipped; a NaN that is not one is refused like any.
            let series = |value: f64| TimeSeries {
                labels: vec![label("__name__", "queue_depth"), label("job", "worker")],
                samples: vec![Sample {
                    value,
                    timestamp: request.timeseries[0].samples[0].timestamp,
                }],
            };
            let odd = WriteRequest {
                timeseries: vec![series(f64::from_bits(STALE_NAN)), series(f64::NAN)],
            };
            assert_eq!(post(&addr, &compressed(&odd), "snappy"), 204);
        }
    }
    // Asked to stop: every request answered 204 is processed before the job ends.
    sigterm(&job.0);
    let status = job.0.wait().unwrap();
    let log = std::fs::read_to_string(dir.join("job.log")).unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("receiving Prometheus remote write"), "{log}");

    let anomalies = lines(&dir.join("anomalies.jsonl"));
    assert!(anomalies.len() > 2, "{anomalies:?}");
    assert_eq!(anomalies, lines(&dir.join("anomalies-json.jsonl")));

    let letters = json_lines(&dir.join("dead.jsonl"));
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "bad_payload").count(),
        2,
        "{letters:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| **r == "non_finite_value").count(),
        1,
        "{letters:?}"
    );
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(letters
        .iter()
        .any(|l| l["detail"].as_str().unwrap().contains("snappy")));

    let s = summary(&dir.join("summary.json"));
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(n("read"), n("valid") + n("dead_lettered"), "{s}");
    // Every sample sent, the NaN, and the two bodies: the stale marker is not a record.
    assert_eq!(n("read"), sent as u64 + 3, "{s}");
    assert_eq!(n("valid"), sent as u64, "{s}");
}

/// In a cluster every process receives (`remote-write://A0,A1`: one address per process): half
/// the requests to each process of 2 x 2 give the anomalies of the same samples as one file.
#[test]
fn every_process_of_a_cluster_receives_and_the_anomalies_are_the_files() {
    let dir = scratch("remote-write-cluster");
    let text = samples(&[("api", &[11, 12, 13]), ("db", &[9, 10, 11, 12])]);
    std::fs::write(dir.join("samples.jsonl"), &text).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    succeeded(
        incidentflow()
            .args(["run", "--input", &p("samples.jsonl")])
            .args(["--anomalies-out", &p("anomalies-json.jsonl")])
            .output()
            .unwrap(),
    );
    let addrs = [0, 1].map(|_| format!("127.0.0.1:{}", free_port()));
    // Two addresses for one process: which would it take? Refused, saying why.
    let wrong = incidentflow()
        .args([
            "run",
            "--input",
            &format!("remote-write://{},{}", addrs[0], addrs[1]),
        ])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("one per process (1 here"), "{said}");
    let args = [
        "run",
        "--input",
        &format!("remote-write://{},{}", addrs[0], addrs[1]),
        "--anomalies-out",
        &p("anomalies.jsonl"),
    ]
    .map(String::from);
    let mut cluster: Vec<KillOnDrop> = two_by_two(&dir, &args, "hosts.txt")
        .into_iter()
        .enumerate()
        .map(|(i, mut command)| {
            let log = std::fs::File::create(dir.join(format!("job-{i}.log"))).unwrap();
            KillOnDrop(command.stdout(Stdio::null()).stderr(log).spawn().unwrap())
        })
        .collect();
    addrs.iter().for_each(|a| wait_listening(a));
    for (i, request) in requests(&text).iter().enumerate() {
        assert_eq!(post(&addrs[i % 2], &compressed(request), "snappy"), 204);
    }
    for job in &cluster {
        sigterm(&job.0);
    }
    for (i, job) in cluster.iter_mut().enumerate() {
        let status = job.0.wait().unwrap();
        let log = std::fs::read_to_string(dir.join(format!("job-{i}.log"))).unwrap();
        assert!(status.success(), "process {i}: {status}: {log}");
        assert!(log.contains("receiving Prometheus remote write"), "{log}");
    }
    let anomalies = lines(&dir.join("anomalies.jsonl"));
    assert!(anomalies.len() > 2, "{anomalies:?}");
    assert_eq!(anomalies, lines(&dir.join("anomalies-json.jsonl")));
}

/// The load generator live into the job by remote write: a small scenario of 20 minutes played
/// 400 times faster, every sample stamped with the wall clock and sent when due, all received.
#[test]
fn the_load_generator_live_feeds_the_job_by_remote_write() {
    use incidentflow_loadgen::scenario::{Scenario, ScenarioConfig};
    let dir = scratch("remote-write-live");
    let addr = format!("127.0.0.1:{}", free_port());
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let mut job = KillOnDrop(
        incidentflow()
            .args(["run", "--input", &format!("remote-write://{addr}")])
            .args([
                "--dead-letter",
                &p("dead.jsonl"),
                "--summary-out",
                &p("summary.json"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(&addr);
    let mut config = ScenarioConfig::named("small", 1).unwrap();
    config.duration = 20 * MIN;
    config.start = incidentflow_loadgen::live::wall_ms() / 1000 * 1000;
    let scenario = Scenario::new(config);
    let clock = incidentflow_loadgen::live::Clock::new(scenario.config.start, 400.0);
    let started = std::time::Instant::now();
    let url = format!("http://{addr}/api/v1/write");
    let sent =
        incidentflow_loadgen::remote_write::send_live(scenario.samples(), clock, &url).unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "sent when due"
    );
    assert_eq!(sent.samples, scenario.samples().count() as u64);
    sigterm(&job.0);
    assert!(job.0.wait().unwrap().success());
    // Every sample received and judged: none late, none ahead of the clock.
    let s = summary(&dir.join("summary.json"));
    assert_eq!(s["read"].as_u64().unwrap(), sent.samples, "{s}");
    assert_eq!(s["valid"].as_u64().unwrap(), sent.samples, "{s}");
}
