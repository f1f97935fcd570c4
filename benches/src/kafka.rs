//! The Kafka part of the benchmark, against a real tansu broker started for it: the scenario
//! produced to a topic and replayed by the job (`--until-end`) with 1 and 2 workers, checked
//! against the file run; then end-to-end latency through Kafka, the samples produced on an
//! open-loop schedule while the job follows the topic. Skipped (and said so) when tansu is not
//! installed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use incidentflow_dataflows::time::Time;
use incidentflow_loadgen::kafka::{create_topics, produce_lines, KafkaTarget};

use crate::cli::Options;
use crate::measure::{best, count_lines, run_job, Measured};

/// Kafka: the scenario produced to a real tansu broker (4 partitions, 500 samples a message) and
/// replayed by the job with 1 and 2 workers (`--until-end`), checked to find the same anomalies as
/// the file run; then end-to-end latency through Kafka: the samples produced on an open-loop
/// schedule at `--rate` while the job follows the topic, each anomaly timed from its sample's due
/// time. Skipped (and said so) when tansu is not installed.
pub fn kafka_bench(
    o: &Options,
    job: &Path,
    lines: &[String],
    file_anomalies: &Path,
) -> Result<(String, serde_json::Value), String> {
    if incidentflow_loadgen::kafka::tansu_binary().is_none() {
        eprintln!("[kafka] skipped: tansu is not installed (cargo install tansu --version 0.6.0 --features libsql)");
        return Ok((
            "\n**Kafka**: skipped, tansu is not installed.\n".into(),
            serde_json::Value::Null,
        ));
    }
    let dir = o.dir.join("kafka");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let brokers = format!("127.0.0.1:{port}");
    let mut broker = incidentflow_loadgen::kafka::tansu_broker(&brokers, &dir)
        .ok_or("tansu is not installed")?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start tansu: {e}"))?;
    let cluster = Cluster {
        brokers: &brokers,
        dir: &dir,
    };
    let result = wait_for_broker(&brokers)
        .and_then(|()| replay_and_latency(o, job, lines, file_anomalies, &cluster));
    let _ = broker.kill();
    let _ = broker.wait();
    result
}

/// The tansu broker the Kafka runs use: its bootstrap address, and the folder of its data and of
/// the job files.
struct Cluster<'a> {
    brokers: &'a str,
    dir: &'a Path,
}

/// Waits (up to 30 s) until the broker accepts connections.
fn wait_for_broker(brokers: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(brokers).is_err() {
        if Instant::now() > deadline {
            return Err("tansu did not start".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The replay, then the latency through Kafka: the Markdown section and the JSON figures.
fn replay_and_latency(
    o: &Options,
    job: &Path,
    lines: &[String],
    file_anomalies: &Path,
    cluster: &Cluster<'_>,
) -> Result<(String, serde_json::Value), String> {
    let replay = replay(o, job, lines, file_anomalies, cluster)?;
    let mut md = format!(
        "\n**Kafka** (tansu 0.6.0 with SQLite storage on the same machine; the scenario's {} samples in 4 partitions, 500 samples a message, produced at {:.0} samples/s): replay with `--until-end`, best of {}:\n\n| workers | wall s | samples/s | anomalies |\n|---|---|---|---|\n",
        lines.len(), replay.produce_rate, o.runs
    );
    for (workers, rate, m) in &replay.rows {
        md += &format!(
            "| {workers} | {:.2} | {rate:.0} | {} |\n",
            m.wall, m.anomalies
        );
    }
    let (histogram, unmatched) = latency_through_kafka(o, job, lines, cluster)?;
    let rate = o.rate;
    let expected = replay.expected;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    md += &format!(
        "\nLatency through Kafka: samples produced at {rate} samples/s on an open-loop schedule (librdkafka linger 20 ms, 500 samples a message at most) while the job follows the topic, each anomaly timed from its sample's due time to the job's stdout ({} anomalies timed of {expected}, 1 worker): p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms.\n",
        histogram.len(), ms(0.5), ms(0.99), ms(0.999), histogram.max() as f64 / 1000.0
    );
    let json = serde_json::json!({
        "produce_samples_per_s": replay.produce_rate,
        "replay": replay.rows.iter().map(|(w, r, m)| serde_json::json!({"workers": w, "samples_per_s": r, "wall_s": m.wall, "anomalies": m.anomalies})).collect::<Vec<_>>(),
        "latency": {"offered_rate": rate, "timed": histogram.len(), "unmatched": unmatched, "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": histogram.max() as f64 / 1000.0},
    });
    Ok((md, json))
}

/// What the replay measured.
struct Replay {
    /// Samples produced per second.
    produce_rate: f64,
    /// Per worker count: (workers, samples/s, the best run).
    rows: Vec<(usize, f64, Measured)>,
    /// The anomalies of the file run, which every replay must find.
    expected: u64,
}

/// Replay throughput: the samples produced to `bench.metrics` (4 partitions, 500 samples a
/// message), then read by the job to their end with 1 and 2 workers, best of `--runs`, each
/// required to find as many anomalies as the file run.
fn replay(
    o: &Options,
    job: &Path,
    lines: &[String],
    file_anomalies: &Path,
    cluster: &Cluster<'_>,
) -> Result<Replay, String> {
    let Cluster { brokers, dir } = *cluster;
    let target = KafkaTarget {
        samples_topic: "bench.metrics".into(),
        partitions: 4,
        batch: 500,
        ..KafkaTarget::new(brokers)
    };
    create_topics(brokers, &[("bench.metrics", 4)])?;
    eprintln!("[kafka] producing {} samples...", lines.len());
    let started = Instant::now();
    produce_lines(&target, lines.iter().cloned(), 0)?;
    let produce_rate = lines.len() as f64 / started.elapsed().as_secs_f64();
    let config = dir.join("job.toml");
    std::fs::write(&config, "[kafka]\nsamples_topic = \"bench.metrics\"\n")
        .map_err(|e| e.to_string())?;
    let extra: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "--kafka-brokers".into(),
        brokers.to_string(),
        "--until-end".into(),
    ];
    let expected = count_lines(file_anomalies)?;
    let mut rows = Vec::new();
    for workers in [1usize, 2] {
        eprintln!("[kafka] incidentflow --workers {workers} --input kafka --until-end...");
        let m = best(o.runs, || {
            run_job(job, Path::new("kafka"), dir, "kafka", workers, &extra)
        })?;
        if m.anomalies != expected {
            return Err(format!(
                "[kafka] {workers} workers found {} anomalies, the file run {expected}",
                m.anomalies
            ));
        }
        rows.push((workers, lines.len() as f64 / m.wall, m));
    }
    Ok(Replay {
        produce_rate,
        rows,
        expected,
    })
}

/// Latency through Kafka: the job follows `latency.metrics` while the samples (and a trailer)
/// are produced to it at `--rate` on an open-loop schedule; each anomaly on the job's stdout is
/// timed from its sample's due time. Returns the latencies (µs) and the anomalies that matched
/// no sample.
fn latency_through_kafka(
    o: &Options,
    job: &Path,
    lines: &[String],
    cluster: &Cluster<'_>,
) -> Result<(hdrhistogram::Histogram<u64>, u64), String> {
    let Cluster { brokers, dir } = *cluster;
    create_topics(brokers, &[("latency.metrics", 4)])?;
    let config = dir.join("latency.toml");
    std::fs::write(&config, "[kafka]\nsamples_topic = \"latency.metrics\"\n")
        .map_err(|e| e.to_string())?;
    let mut child = Command::new(job)
        .args(["run", "--config"])
        .arg(&config)
        .args([
            "--kafka-brokers",
            brokers,
            "--input",
            "kafka",
            "--anomalies-out",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    // Each sample's due time on the schedule (sample i at start + i / rate).
    std::thread::sleep(Duration::from_secs(2)); // the job has assigned its partitions
    let rate = o.rate;
    let target = KafkaTarget {
        samples_topic: "latency.metrics".into(),
        partitions: 4,
        batch: 500,
        ..KafkaTarget::new(brokers)
    };
    let owned = with_trailer(lines, last_event_time(lines));
    let start = Instant::now();
    let producer = std::thread::spawn(move || produce_lines(&target, owned.into_iter(), rate));
    let due = due_times(lines, start, rate)?;
    let (tx, rx) = std::sync::mpsc::channel::<(String, Instant)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send((line, Instant::now()));
        }
    });
    producer
        .join()
        .map_err(|_| "the producer panicked".to_string())??;
    let produced = Instant::now();
    let timed = time_anomalies(&rx, &due, produced)?;
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    Ok(timed)
}

/// A sample or anomaly as matched: series and event time.
fn anomaly_key(v: &serde_json::Value) -> String {
    format!(
        "{}/{}/{}",
        v["service"].as_str().unwrap_or(""),
        v["metric_name"].as_str().unwrap_or(""),
        v["timestamp"].as_str().unwrap_or("")
    )
}

/// The latest event time among the last 100,000 samples (0 when none can be read).
fn last_event_time(lines: &[String]) -> Time {
    lines
        .iter()
        .rev()
        .take(100_000)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            v["timestamp"]
                .as_str()
                .and_then(|t| incidentflow_dataflows::time::parse_rfc3339(t).ok())
        })
        .max()
        .unwrap_or(0)
}

/// The samples, then a trailer of 16 series sampled every second for two minutes past `end`, so
/// that event time keeps moving when the scenario's samples stop, as it does in production;
/// without it the last samples wait for the idle timeout.
fn with_trailer(lines: &[String], end: Time) -> Vec<String> {
    let mut owned: Vec<String> = lines.to_vec();
    for second in 1..=120u64 {
        for k in 0..16 {
            owned.push(format!(
                r#"{{"timestamp":{},"namespace":"trailer","service":"trailer-{k}","metric_name":"tick","value":1}}"#,
                end + second * 1000
            ));
        }
    }
    owned
}

/// Each sample's due time on the schedule started at `start` (sample i at start + i / rate), by
/// its key (its time written as the job writes it).
fn due_times(
    lines: &[String],
    start: Instant,
    rate: u64,
) -> Result<HashMap<String, Instant>, String> {
    let mut due: HashMap<String, Instant> = HashMap::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let t = incidentflow_dataflows::time::parse_rfc3339(v["timestamp"].as_str().unwrap_or(""))
            .map(incidentflow_dataflows::time::format_rfc3339)
            .unwrap_or_default();
        let mut v = v;
        v["timestamp"] = serde_json::Value::String(t);
        due.insert(
            anomaly_key(&v),
            start + Duration::from_secs_f64(i as f64 / rate as f64),
        );
    }
    Ok(due)
}

/// Times each anomaly the job writes (`outputs`: line and arrival) from its sample's `due` time,
/// until the job has been quiet for 5 s at least 15 s after the last sample was `produced` (the
/// last samples are scored once their partitions go idle, 5 s, and time moves on). Returns the
/// latencies (µs) and the anomalies that matched no sample.
fn time_anomalies(
    outputs: &Receiver<(String, Instant)>,
    due: &HashMap<String, Instant>,
    produced: Instant,
) -> Result<(hdrhistogram::Histogram<u64>, u64), String> {
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| e.to_string())?;
    let mut unmatched = 0u64;
    let mut last_output = Instant::now();
    loop {
        match outputs.recv_timeout(Duration::from_millis(200)) {
            Ok((line, arrived)) => {
                last_output = arrived;
                let v: serde_json::Value =
                    serde_json::from_str(&line).map_err(|e| e.to_string())?;
                match due.get(&anomaly_key(&v)) {
                    Some(d) => {
                        histogram.saturating_record(
                            arrived.saturating_duration_since(*d).as_micros() as u64,
                        )
                    }
                    None => unmatched += 1,
                }
            }
            Err(_) => {
                if produced.elapsed() > Duration::from_secs(15)
                    && last_output.elapsed() > Duration::from_secs(5)
                {
                    break;
                }
            }
        }
    }
    Ok((histogram, unmatched))
}
