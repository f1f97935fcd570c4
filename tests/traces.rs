//! Topology from traces (`--spans`): the load generator's spans along its call graph (OTLP
//! JSON, one call per edge a minute) give the edges of its topology file, so the incidents are
//! the same bytes as with the file, at 1 and 4 workers; Zipkin v2 spans give the same edges;
//! lines that are not spans are dead-lettered and counted. (When an edge expires is tested in
//! `ingest::spans`.)

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::path::Path;

use common::*;
use incidentflow_loadgen::files::write_dir;
use incidentflow_loadgen::scenario::{Scenario, ScenarioConfig};

fn run(dir: &Path, tag: &str, topology: &[&str], config: &str, workers: &str) -> Vec<String> {
    let job = dir.join(format!("job-{tag}.toml"));
    std::fs::write(&job, config).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let out = p(&format!("incidents-{tag}.jsonl"));
    succeeded(
        incidentflow()
            .args([
                "run",
                "--input",
                &p("samples.jsonl"),
                "--deploys",
                &p("deploys.jsonl"),
            ])
            .args(topology)
            .args(["--config", job.to_str().unwrap(), "--workers", workers])
            .args([
                "--incidents-out",
                &out,
                "--summary-out",
                &p(&format!("summary-{tag}.json")),
            ])
            .args(["--dead-letter", &p(&format!("dead-{tag}.jsonl"))])
            .output()
            .unwrap(),
    );
    lines(Path::new(&out))
}

/// The OTLP lines as Zipkin v2: each line's client and server spans as one JSON array.
fn as_zipkin(otlp: &str) -> String {
    let mut out = String::new();
    for line in otlp.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let spans: Vec<serde_json::Value> = (v["resourceSpans"].as_array().unwrap().iter())
            .map(|r| {
                let service = &r["resource"]["attributes"][0]["value"]["stringValue"];
                let s = &r["scopeSpans"][0]["spans"][0];
                let nanos: u64 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
                let kind = if s["kind"] == 3 { "CLIENT" } else { "SERVER" };
                let mut z = serde_json::json!({"traceId": s["traceId"], "id": s["spanId"],
                    "kind": kind, "timestamp": nanos / 1000, "localEndpoint": {"serviceName": service}});
                if s["parentSpanId"] != "" {
                    z["parentId"] = s["parentSpanId"].clone();
                }
                z
            })
            .collect();
        out += &serde_json::Value::Array(spans).to_string();
        out += "\n";
    }
    out
}

#[test]
fn spans_give_the_topology_files_edges_and_its_incidents() {
    let dir = scratch("traces");
    let scenario = Scenario::new(ScenarioConfig::named("small", 1).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let otlp = std::fs::read_to_string(dir.join("spans.jsonl")).unwrap();
    assert!(otlp.lines().count() > 1000);
    // Zipkin, with two lines that are not spans among them.
    let mut zipkin = as_zipkin(&otlp);
    zipkin.insert_str(
        0,
        "not json\n[{\"traceId\":\"t\",\"id\":\"s\",\"timestamp\":1}]\n",
    );
    std::fs::write(dir.join("zipkin.jsonl"), zipkin).unwrap();

    // An edge lives as long as a minute without a call (the spans call each edge every minute,
    // from its add on): the derived changes are the file's.
    let minute = "[traces]\nedge_expiry = \"1m\"\n";
    let file = ["--topology", dir.join("topology.jsonl").to_str().unwrap()].map(String::from);
    let file: Vec<&str> = file.iter().map(String::as_str).collect();
    let from_file = run(&dir, "file", &file, minute, "1");
    assert!(from_file.len() > 5, "{from_file:?}");
    let spans = dir.join("spans.jsonl").to_str().unwrap().to_string();
    let zipkin = dir.join("zipkin.jsonl").to_str().unwrap().to_string();
    assert_eq!(
        run(&dir, "otlp", &["--spans", &spans], minute, "1"),
        from_file
    );
    assert_eq!(
        run(&dir, "otlp-w4", &["--spans", &spans], minute, "4"),
        from_file
    );
    assert_eq!(
        run(&dir, "zipkin", &["--spans", &zipkin], minute, "1"),
        from_file
    );

    // The two lines that are not spans: dead-lettered with their reasons, and counted.
    let letters = json_lines(&dir.join("dead-zipkin.jsonl"));
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["not_json", "missing_field"], "{letters:?}");
    let s = summary(&dir.join("summary-zipkin.json"));
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(n("read"), n("valid") + n("dead_lettered"), "{s}");

    // With the default expiry (an hour) the one edge the graph drops stays an hour longer than
    // in the file; no incident of this scenario falls in that hour, so they are the same.
    let removed = std::fs::read_to_string(dir.join("topology.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"op\":\"remove\""))
        .count();
    assert_eq!(removed, 1, "the small scenario drops one edge");
    assert_eq!(
        run(&dir, "otlp-1h", &["--spans", &spans], "", "1"),
        from_file
    );
}

/// Spans on standard input (`--spans -`, the samples from elsewhere): read to its end before
/// the samples when they are a file, followed as they come when the samples arrive live (here
/// by remote write); the same incidents as the topology file either way, and a line that is not
/// spans dead-lettered with its place on standard input.
#[test]
fn spans_on_standard_input_read_whole_or_followed_give_the_topology_files_incidents() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = scratch("traces-stdin");
    let scenario = Scenario::new(ScenarioConfig::named("small", 1).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let minute = "[traces]\nedge_expiry = \"1m\"\n";
    let topology = dir.join("topology.jsonl").to_str().unwrap().to_string();
    let from_file = run(&dir, "file", &["--topology", &topology], minute, "1");
    assert!(from_file.len() > 5);
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let spans = format!(
        "not spans\n{}",
        std::fs::read_to_string(dir.join("spans.jsonl")).unwrap()
    );
    let span_lines = spans.lines().count() as f64;

    // The samples from a file: standard input is read to its end first.
    let mut job = incidentflow()
        .args(["run", "--input", &p("samples.jsonl")])
        .args(["--deploys", &p("deploys.jsonl"), "--spans", "-"])
        .args(["--config", &p("job-file.toml")])
        .args(["--incidents-out", &p("incidents-whole.jsonl")])
        .args(["--dead-letter", &p("dead-whole.jsonl")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    job.stdin
        .take()
        .unwrap()
        .write_all(spans.as_bytes())
        .unwrap();
    assert!(job.wait().unwrap().success());
    assert_eq!(lines(&dir.join("incidents-whole.jsonl")), from_file);
    let letters = json_lines(&dir.join("dead-whole.jsonl"));
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["source"], "stdin");
    assert_eq!(letters[0]["line"], 1);
    assert_eq!(letters[0]["reason"], "not_json");

    // The samples by remote write, live: standard input is followed. Every span line is taken
    // in (the job's /metrics counts them) before the samples are sent.
    let addr = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut job = KillOnDrop(
        incidentflow()
            .args(["run", "--input", &format!("remote-write://{addr}")])
            .args(["--deploys", &p("deploys.jsonl"), "--spans", "-"])
            .args(["--config", &p("job-file.toml"), "--metrics-addr", &metrics])
            .args(["--incidents-out", &p("incidents-followed.jsonl")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = job.0.stdin.take().unwrap();
    stdin.write_all(spans.as_bytes()).unwrap();
    stdin.flush().unwrap();
    wait_listening(&metrics);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let taken = || {
        get(&metrics, "/metrics")
            .and_then(|(_, scrape)| {
                value(
                    &scrape,
                    "incidentflow_records_in_total{source=\"topology\"}",
                )
            })
            .unwrap_or(0.0)
    };
    while taken() < span_lines && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(taken(), span_lines, "every span line taken in");
    let url = format!("http://{addr}/api/v1/write");
    let sent = incidentflow_loadgen::remote_write::send_all(scenario.samples(), &url).unwrap();
    assert_eq!(sent.samples, scenario.samples().count() as u64);
    sigterm(&job.0);
    drop(stdin);
    assert!(job.0.wait().unwrap().success());
    assert_eq!(lines(&dir.join("incidents-followed.jsonl")), from_file);
}
