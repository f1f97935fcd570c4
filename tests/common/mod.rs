//! Helpers shared by the end-to-end tests: run the real binary on real files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory under the target dir, emptied for each test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The `incidentflow` binary under test, run in the target's scratch area so that a default
/// output (`./dead-letter.jsonl`) never lands in the source tree.
pub fn incidentflow() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_incidentflow"));
    command.current_dir(env!("CARGO_TARGET_TMPDIR"));
    command
}

/// Runs `incidentflow run` with `args`, panicking with its stderr if it fails.
pub fn run_ok(args: &[&str]) -> Output {
    let out = incidentflow()
        .arg("run")
        .args(args)
        .output()
        .expect("spawn incidentflow");
    assert!(
        out.status.success(),
        "incidentflow run {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the job on a loadgen scenario directory's files (samples, topology, deploys), writing
/// anomalies and incidents to the files `anomalies` and `incidents` in it.
pub fn run_on_scenario_files(dir: &Path, anomalies: &str, incidents: &str) -> Output {
    let p = |n: &str| dir.join(n).to_str().expect("utf-8 path").to_string();
    run_ok(&[
        "--input",
        &p("samples.jsonl"),
        "--topology",
        &p("topology.jsonl"),
        "--deploys",
        &p("deploys.jsonl"),
        "--anomalies-out",
        &p(anomalies),
        "--incidents-out",
        &p(incidents),
    ])
}

/// The lines of a file.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The lines of a file, sorted.
pub fn sorted_lines(path: &Path) -> Vec<String> {
    let mut l = lines(path);
    l.sort();
    l
}

/// The JSON summary a run wrote with `--summary-out`.
pub fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("summary written"))
        .expect("summary is JSON")
}

/// Parses every line of a JSON Lines file.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The lines of a JSON Lines file as the records the job writes (`AnomalyRecord`,
/// `DeadLetterRecord`, `IncidentRecord`): a field renamed on either side fails here.
pub fn records<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// RFC 3339 UTC text of epoch milliseconds.
pub fn rfc3339(ms: u64) -> String {
    incidentflow_dataflows::time::format_rfc3339(ms)
}

/// A sample line.
pub fn sample(ts: u64, namespace: &str, service: &str, metric: &str, value: f64) -> String {
    format!(
        r#"{{"schema_version":1,"timestamp":"{}","namespace":"{namespace}","service":"{service}","metric_name":"{metric}","value":{value}}}"#,
        rfc3339(ts)
    )
}

/// `out`, once it is known to be a success (else the test fails, showing its stderr).
pub fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The workspace's seeded random numbers.
pub use incidentflow_dataflows::rng::Rng;

/// 2026-11-25T00:00:00Z
pub const T0: u64 = 1_795_564_800_000;

/// A seeded messy input: `series` series sampled every 60 s for `steps` steps, with jitter and
/// records out of order within 20 s, gaps (missing samples), spikes (one on a counter's rate for
/// sure), a flat series that moves,
/// a few records 15 minutes late and a few invalid lines. Returns the file text.
pub fn messy_input(seed: u64, series: u64, steps: u64) -> String {
    let mut rng = Rng::new(seed, 0);
    let mut records: Vec<(u64, String)> = Vec::new();
    let mut totals = vec![0.0; series as usize];
    for step in 0..steps {
        for s in 0..series {
            if rng.below(20) == 0 {
                continue; // a gap
            }
            let ts = T0 + step * 60_000 + s * 37 + rng.below(20_000);
            // Every seventh series is a counter (one per service at most).
            let (service, metric) = (
                format!("svc-{}", s / 3),
                if s % 7 == 6 {
                    "requests_total"
                } else {
                    ["latency_p99", "error_rate", "cpu"][(s % 3) as usize]
                },
            );
            let mut value = if s == 0 {
                if step == steps / 2 {
                    7.0
                } else {
                    5.0
                } // flat, then a change
            } else {
                let level = 1.0 + s as f64;
                // Random spikes, and a sure one on the first counter's rate two thirds in.
                let sure = s == 6 && step == steps * 2 / 3;
                let spike = if rng.below(60) == 0 || sure {
                    4.0 + rng.unit() * 6.0
                } else {
                    1.0
                };
                (level * (1.0 + (rng.unit() - 0.5) * 0.2) * spike * 1e4).round() / 1e4
            };
            if s % 7 == 6 {
                // A counter climbs by the value; now and then its process restarts from 0.
                let total = &mut totals[s as usize];
                *total = if rng.below(150) == 0 {
                    value
                } else {
                    *total + value * 100.0
                };
                value = *total;
            }
            records.push((
                ts,
                sample(ts, &format!("ns-{}", s % 2), &service, metric, value),
            ));
        }
    }
    // Out of order within the allowed lateness: sort by a key jittered by up to 20 s.
    let mut keyed: Vec<(u64, String)> = records
        .into_iter()
        .map(|(ts, l)| (ts + rng.below(20_000), l))
        .collect();
    keyed.sort();
    let mut text = String::new();
    for (i, (_, line)) in keyed.iter().enumerate() {
        text += line;
        text += "\n";
        if i % 997 == 500 {
            text += &sample(
                T0 + (i as u64 / series) * 60_000 / 2,
                "ns-0",
                "svc-late",
                "cpu",
                1.0,
            ); // late
            text += "\n";
        }
        if i % 1499 == 700 {
            text += "{\"timestamp\": \"garbage\"}\n";
        }
    }
    text
}

/// A real Kafka broker for a test: tansu with SQLite storage in a scratch directory, on a free
/// loopback port, stopped (killed) when dropped. `./scripts/test` installs tansu when missing.
pub struct Broker {
    child: std::process::Child,
    /// `127.0.0.1:port`.
    pub address: String,
    /// Its working directory (the SQLite file lives there).
    pub dir: PathBuf,
}

impl Broker {
    /// Starts a broker and waits until it accepts connections.
    pub fn start(name: &str) -> Broker {
        let dir = scratch(&format!("broker-{name}"));
        let address = format!("127.0.0.1:{}", free_port());
        let child = spawn_tansu(&dir, &address);
        let mut broker = Broker {
            child,
            address,
            dir,
        };
        broker.wait_listening();
        broker
    }

    /// Kills the broker (its data stays in its directory).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port and storage. The port may stay taken for a while
    /// after a kill (connections in TIME_WAIT): it retries until tansu can listen.
    pub fn restart(&mut self) {
        self.child = spawn_tansu(&self.dir, &self.address);
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while std::net::TcpStream::connect(&self.address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tansu did not listen on {} within 120 s",
                self.address
            );
            if let Ok(Some(_)) = self.child.try_wait() {
                // It gave up (the port still taken): try again.
                std::thread::sleep(std::time::Duration::from_secs(1));
                self.child = spawn_tansu(&self.dir, &self.address);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

fn spawn_tansu(dir: &Path, address: &str) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .expect("broker log");
    incidentflow_loadgen::kafka::tansu_broker(address, dir)
        .expect("tansu is not installed: ./scripts/test installs it")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start tansu (run ./scripts/test, which installs it)")
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every (key, value) of a topic up to its end, in partition and offset order.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<(String, String)> {
    read_topic_with_headers(brokers, topic)
        .into_iter()
        .map(|(k, v, _)| (k, v))
        .collect()
}

/// Every (key, value, headers) of a topic up to its end, in partition and offset order.
pub fn read_topic_with_headers(
    brokers: &str,
    topic: &str,
) -> Vec<(String, String, std::collections::BTreeMap<String, String>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "incidentflow-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let timeout = std::time::Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut list = rdkafka::TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .expect("watermarks");
        ends.push(high);
        list.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&list).expect("assign");
    type Row = (
        i32,
        i64,
        String,
        String,
        std::collections::BTreeMap<String, String>,
    );
    let mut out: Vec<Row> = Vec::new();
    let mut left: usize = ends.iter().filter(|e| **e > 0).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut done = vec![false; partitions as usize];
    for (p, e) in ends.iter().enumerate() {
        done[p] = *e == 0;
    }
    while left > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(200)) {
            let p = m.partition() as usize;
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                headers,
            ));
            if !done[p] && m.offset() + 1 >= ends[p] {
                done[p] = true;
                left -= 1;
            }
        }
    }
    out.sort_by_key(|(p, o, _, _, _)| (*p, *o));
    out.into_iter().map(|(_, _, k, v, h)| (k, v, h)).collect()
}

/// A child process killed when dropped, so that a failing test leaves no job running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The commands of a cluster of 2 processes x 2 workers on 127.0.0.1 running `args` (which
/// start with `run`), with a fresh hostfile `dir/<hostfile>`.
pub fn two_by_two(dir: &Path, args: &[String], hostfile: &str) -> Vec<Command> {
    let hostfile = dir.join(hostfile);
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .expect("hostfile");
    (0..2)
        .map(|i| {
            let mut command = incidentflow();
            command
                .args(args)
                .args(["--workers", "2", "--processes", "2"])
                .args(["--process-index", &i.to_string()])
                .args(["--hostfile", hostfile.to_str().expect("utf-8 path")]);
            command
        })
        .collect()
}

/// Runs `args` (which start with `run`) as a cluster of 2 processes x 2 workers on 127.0.0.1,
/// with a hostfile in `dir`, and waits for both processes to succeed.
pub fn run_two_by_two(dir: &Path, args: &[String]) {
    let cluster: Vec<_> = two_by_two(dir, args, "hosts.txt")
        .into_iter()
        .map(|mut command| {
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn incidentflow")
        })
        .collect();
    for child in cluster {
        succeeded(child.wait_with_output().expect("wait for incidentflow"));
    }
}

pub const MIN: u64 = 60_000;

/// Samples every minute on the minute for each service, steady around 1.0, from 00:00 to 00:19
/// after six hours of the same steady history before (so that every series is judged from 00:00
/// on, against a history where one fault is a rare move), with the value at 9.0 at the given
/// minutes (of 00:00..00:19). A fault of two minutes or more is an anomaly that lasts; one minute
/// is a lone spike.
pub fn samples(spikes: &[(&str, &[u64])]) -> String {
    const HISTORY: u64 = 360;
    let steady = [1.0, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97];
    let mut out = String::new();
    for minute in 0..HISTORY + 20 {
        for (k, (service, at)) in spikes.iter().enumerate() {
            let value = if minute >= HISTORY && at.contains(&(minute - HISTORY)) {
                9.0
            } else {
                steady[(minute as usize + k) % steady.len()]
            };
            out += &sample(
                T0 + minute * MIN - HISTORY * MIN,
                "shop",
                service,
                "latency_p99",
                value,
            );
            out += "\n";
        }
    }
    out
}

/// A topology edge as JSON Lines: static (no time) or an `add`/`remove` at a time.
pub fn edge(caller: &str, callee: &str, at: Option<u64>, op: &str) -> String {
    match at {
        None => format!("{{\"caller\":\"{caller}\",\"callee\":\"{callee}\"}}\n"),
        Some(t) => format!("{{\"timestamp\":\"{}\",\"caller\":\"{caller}\",\"callee\":\"{callee}\",\"op\":\"{op}\"}}\n", rfc3339(t)),
    }
}

/// GET `path` from `addr`: (status code, body).
pub fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The value of a metric line `name` (with its labels) in a scrape.
pub fn value(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Sends SIGTERM to `child`.
pub fn sigterm(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Waits (up to 30 s) until something listens on `addr`.
pub fn wait_listening(addr: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listened on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
