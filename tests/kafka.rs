//! Kafka end to end, against a real tansu broker process on a loopback port: a loadgen scenario
//! produced to the topics and consumed by the job gives the same anomalies and incidents as the
//! same scenario read from files, at 1 worker and at 2 processes x 2 workers; the keyed output
//! topics hold the same records; invalid records in the topic are dead-lettered with their topic,
//! partition, offset and line, and the counts add up; a broker stopped in the middle of a run and
//! started again costs time, not records.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use incidentflow_loadgen::files::write_dir;
use incidentflow_loadgen::kafka::{
    create_topics, produce_keyed, produce_lines, produce_raw, produce_scenario, KafkaTarget,
};
use incidentflow_loadgen::scenario::{Scenario, ScenarioConfig};

/// A job file naming this test's topics.
fn job(dir: &Path, prefix: &str) -> String {
    let path = dir.join("job.toml");
    std::fs::write(
        &path,
        format!(
            "[kafka]\nsamples_topic = \"{prefix}.metrics\"\ntopology_topic = \"{prefix}.topology\"\n\
             deploys_topic = \"{prefix}.deploys\"\nanomalies_topic = \"{prefix}.anomalies\"\n\
             incidents_topic = \"{prefix}.incidents\"\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn a_scenario_through_kafka_equals_the_same_scenario_from_files() {
    let broker = Broker::start("scenario");
    let dir = scratch("kafka-scenario");
    let scenario = Scenario::new(ScenarioConfig::named("small", 1).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let target = KafkaTarget {
        samples_topic: "t.metrics".into(),
        topology_topic: "t.topology".into(),
        deploys_topic: "t.deploys".into(),
        partitions: 4,
        batch: 50,
        ..KafkaTarget::new(&broker.address)
    };
    let produced = produce_scenario(&scenario, &target, 0).unwrap();
    assert_eq!(produced.samples, scenario.samples().count() as u64);
    create_topics(&broker.address, &[("t.anomalies", 2), ("t.incidents", 2)]).unwrap();
    let config = job(&dir, "t");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();

    // From files.
    run_on_scenario_files(&dir, "anomalies-file.jsonl", "incidents-file.jsonl");
    let anomalies = std::fs::read(dir.join("anomalies-file.jsonl")).unwrap();
    let incidents = std::fs::read(dir.join("incidents-file.jsonl")).unwrap();
    assert!(anomalies.len() > 1000 && incidents.len() > 1000);

    // From Kafka, one worker, files out and Kafka out.
    let kafka_args = |tag: &str| -> Vec<String> {
        [
            "run",
            "--config",
            &config,
            "--kafka-brokers",
            &broker.address,
            "--input",
            "kafka",
            "--topology",
            "kafka",
            "--deploys",
            "kafka",
            "--until-end",
            "--anomalies-out",
            &p(&format!("anomalies-{tag}.jsonl")),
            "--incidents-out",
            &p(&format!("incidents-{tag}.jsonl")),
        ]
        .map(String::from)
        .to_vec()
    };
    let checkpoint = dir.join("checkpoint.json");
    let mut args = kafka_args("k1");
    args.extend([
        "--checkpoint".to_string(),
        checkpoint.to_str().unwrap().to_string(),
    ]);
    succeeded(incidentflow().args(&args).output().unwrap());
    assert_eq!(
        std::fs::read(dir.join("anomalies-k1.jsonl")).unwrap(),
        anomalies
    );
    assert_eq!(
        std::fs::read(dir.join("incidents-k1.jsonl")).unwrap(),
        incidents
    );
    // With every output durable at the end, the consumer group's offsets are the partitions'
    // ends, committed to the broker and recorded in the checkpoint.
    {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", &broker.address)
            .set("group.id", "incidentflow")
            .create()
            .unwrap();
        let timeout = std::time::Duration::from_secs(10);
        let mut list = rdkafka::TopicPartitionList::new();
        for p in 0..4 {
            list.add_partition("t.metrics", p);
        }
        let committed = consumer.committed_offsets(list, timeout).unwrap();
        let recorded: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
        for p in 0..4 {
            let (_, high) = consumer.fetch_watermarks("t.metrics", p, timeout).unwrap();
            let offset = committed.find_partition("t.metrics", p).map(|e| e.offset());
            assert_eq!(offset, Some(rdkafka::Offset::Offset(high)), "partition {p}");
            assert_eq!(recorded["committed"][format!("t.metrics[{p}]")], high);
        }
    }

    // Two processes of two workers each.
    run_two_by_two(&dir, &kafka_args("k22"));
    assert_eq!(
        std::fs::read(dir.join("anomalies-k22.jsonl")).unwrap(),
        anomalies
    );
    assert_eq!(
        std::fs::read(dir.join("incidents-k22.jsonl")).unwrap(),
        incidents
    );

    // Kafka out: the topics hold the same records, keyed by series and by incident id.
    let mut a = kafka_args("kout");
    let n = a.len();
    a[n - 3] = "kafka".into();
    a[n - 1] = "kafka".into();
    succeeded(incidentflow().args(&a).output().unwrap());
    let mut from_topic: Vec<(String, String)> = read_topic(&broker.address, "t.anomalies");
    let mut expected: Vec<(String, String)> = String::from_utf8(anomalies)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            // The series key: namespace/service/metric{label="value",...}, labels by name.
            let labels: Vec<String> = v["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let mut key = format!(
                "{}/{}/{}",
                v["namespace"].as_str().unwrap(),
                v["service"].as_str().unwrap(),
                v["metric_name"].as_str().unwrap()
            );
            if !labels.is_empty() {
                key += &format!("{{{}}}", labels.join(","));
            }
            (key, l.to_string())
        })
        .collect();
    from_topic.sort();
    expected.sort();
    assert_eq!(from_topic, expected);
    let mut versions = read_topic(&broker.address, "t.incidents");
    let mut expected: Vec<(String, String)> = String::from_utf8(incidents)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["incident_id"].as_str().unwrap().to_string(),
                l.to_string(),
            )
        })
        .collect();
    versions.sort();
    expected.sort();
    assert_eq!(versions, expected);
}

#[test]
fn invalid_records_in_the_topic_are_dead_lettered_with_their_position() {
    let broker = Broker::start("invalid");
    let dir = scratch("kafka-invalid");
    create_topics(
        &broker.address,
        &[
            ("b.metrics", 1),
            ("b.topology", 1),
            ("b.deploys", 1),
            ("b.metrics.dlq", 1),
        ],
    )
    .unwrap();
    let good = |minute: u64, v: f64| sample(T0 + minute * 60_000, "shop", "api", "latency_p99", v);
    let batch = format!("{}\nnot json\n{}\n", good(0, 1.0), good(1, 1.1));
    let (missing, sample_2) = (
        b"{\"timestamp\":\"2026-11-25T00:02:00Z\",\"service\":\"api\"}".to_vec(),
        good(2, 0.9).into_bytes(),
    );
    // Keyed as a producer keys by series (the last message has no key).
    let messages: Vec<(&str, &[u8])> = vec![
        ("shop/api/batch", batch.as_bytes()),
        ("shop/api/latency_p99", &missing),
        ("shop/api/latency_p99", &sample_2),
        ("", b"\xff\xfe"),
    ];
    produce_keyed(&broker.address, "b.metrics", 0, &messages).unwrap();
    let config = job(&dir, "b");
    let dead = dir.join("dead.jsonl");
    let summary_path = dir.join("summary.json");
    run_ok(&[
        "--config",
        &config,
        "--kafka-brokers",
        &broker.address,
        "--input",
        "kafka",
        "--until-end",
        "--dead-letter",
        dead.to_str().unwrap(),
        "--summary-out",
        summary_path.to_str().unwrap(),
    ]);
    let letters = json_lines(&dead);
    let positions: Vec<(String, u64, u64, String)> = letters
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap().to_string(),
                l["offset"].as_u64().unwrap(),
                l["line"].as_u64().unwrap(),
                l["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let keys: Vec<Option<&str>> = letters.iter().map(|l| l["key"].as_str()).collect();
    assert_eq!(
        keys,
        [Some("shop/api/batch"), Some("shop/api/latency_p99"), None]
    );
    assert_eq!(
        positions,
        vec![
            (
                "kafka:b.metrics[0]".to_string(),
                0,
                2,
                "not_json".to_string()
            ),
            (
                "kafka:b.metrics[0]".to_string(),
                1,
                1,
                "missing_field".to_string()
            ),
            (
                "kafka:b.metrics[0]".to_string(),
                3,
                1,
                "invalid_utf8".to_string()
            ),
        ],
        "{letters:#?}"
    );
    let s = summary(&summary_path);
    assert_eq!(
        (
            s["read"].as_u64(),
            s["valid"].as_u64(),
            s["dead_lettered"].as_u64()
        ),
        (Some(6), Some(3), Some(3))
    );

    // The same to the dead-letter topic: the original record, and where and why in headers.
    run_ok(&[
        "--config",
        &config,
        "--kafka-brokers",
        &broker.address,
        "--input",
        "kafka",
        "--until-end",
        "--dead-letter",
        "kafka",
    ]);
    let dlq = read_topic_with_headers(&broker.address, "b.metrics.dlq");
    let keys: Vec<&str> = dlq.iter().map(|(key, _, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        ["shop/api/batch", "shop/api/latency_p99", ""],
        "the original keys"
    );
    let seen: Vec<(String, String, String, String, String, String)> = dlq
        .iter()
        .map(|(_, value, h)| {
            (
                value.clone(),
                h["incidentflow.topic"].clone(),
                h["incidentflow.partition"].clone(),
                h["incidentflow.offset"].clone(),
                h["incidentflow.stage"].clone(),
                h["incidentflow.reason"].clone(),
            )
        })
        .collect();
    let row = |value: &str, offset: &str, reason: &str| {
        (
            value.to_string(),
            "b.metrics".to_string(),
            "0".to_string(),
            offset.to_string(),
            "decode".to_string(),
            reason.to_string(),
        )
    };
    assert_eq!(
        seen,
        vec![
            row("not json", "0", "not_json"),
            row(
                "{\"timestamp\":\"2026-11-25T00:02:00Z\",\"service\":\"api\"}",
                "1",
                "missing_field"
            ),
            row(&String::from_utf8_lossy(b"\xff\xfe"), "3", "invalid_utf8"),
        ]
    );
    assert!(dlq
        .iter()
        .all(|(_, _, h)| h.contains_key("incidentflow.detail")));
}

#[test]
fn a_broker_stopped_in_the_middle_of_a_run_costs_time_not_records() {
    let mut broker = Broker::start("restart");
    let dir = scratch("kafka-restart");
    let scenario = Scenario::new(ScenarioConfig::named("medium", 2).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let target = KafkaTarget {
        samples_topic: "r.metrics".into(),
        topology_topic: "r.topology".into(),
        deploys_topic: "r.deploys".into(),
        partitions: 4,
        batch: 100,
        ..KafkaTarget::new(&broker.address)
    };
    produce_scenario(&scenario, &target, 0).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    run_ok(&[
        "--input",
        &p("samples.jsonl"),
        "--anomalies-out",
        &p("file.jsonl"),
    ]);
    let expected = std::fs::read(dir.join("file.jsonl")).unwrap();
    assert!(!expected.is_empty());

    let config = job(&dir, "r");
    let summary_path = dir.join("summary.json");
    let metrics = format!("127.0.0.1:{}", free_port());
    let job = incidentflow()
        .args([
            "run",
            "--config",
            &config,
            "--kafka-brokers",
            &broker.address,
            "--metrics-addr",
            &metrics,
        ])
        .args([
            "--input",
            "kafka",
            "--until-end",
            "--anomalies-out",
            &p("kafka.jsonl"),
        ])
        .args(["--summary-out", summary_path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the broker once the job has read a tenth of the samples (its /metrics say), for a
    // few seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let tenth = scenario.samples().count() as f64 / 10.0;
    while get(&metrics, "/metrics")
        .and_then(|(_, body)| value(&body, "incidentflow_records_read_total"))
        .is_none_or(|read| read < tenth)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the job read too little"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    broker.stop();
    std::thread::sleep(std::time::Duration::from_secs(3));
    broker.restart();
    let out = succeeded(job.wait_with_output().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("retrying"),
        "the job should have seen the broker go: {stderr}"
    );
    assert_eq!(std::fs::read(dir.join("kafka.jsonl")).unwrap(), expected);
    let s = summary(&summary_path);
    assert_eq!(s["read"].as_u64(), Some(scenario.samples().count() as u64));
    assert_eq!(s["dead_lettered"].as_u64(), Some(0));
}

/// With the default champion, whose state is its history, a restart reads the topic again from
/// its beginning.
#[test]
fn a_job_killed_mid_stream_resumes_from_its_checkpoint_and_loses_nothing() {
    stop_mid_stream_and_resume("kill", "KILL", None);
}

/// With the z-score as champion, which judges from its window alone, a restart re-reads only the
/// stretch its state at the checkpoint depends on.
#[test]
fn a_job_stopped_by_sigterm_drains_checkpoints_and_resumes_without_duplicates() {
    stop_mid_stream_and_resume("term", "TERM", Some("zscore"));
}

/// A medium scenario half produced to Kafka (topics under `prefix`): the topology, the deploys
/// and the first half of the samples; the job is stopped while it waits for the rest.
struct HalfStream {
    dir: std::path::PathBuf,
    scenario: Scenario,
    target: KafkaTarget,
    samples: Vec<String>,
    half: usize,
    /// The job file: the topics, and no partition idle while the job waits for the rest.
    config: String,
}

impl HalfStream {
    /// A file in the stream's directory.
    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// The uninterrupted run, from the scenario's files with the same job file; `outputs`: the
    /// output flags and file names.
    fn run_from_files(&self, outputs: &[&str]) {
        let (samples, topology, deploys) = (
            self.path("samples.jsonl"),
            self.path("topology.jsonl"),
            self.path("deploys.jsonl"),
        );
        let mut args = vec!["--config", &self.config, "--input", &samples];
        args.extend(["--topology", &topology, "--deploys", &deploys]);
        let outputs: Vec<String> = (outputs.iter())
            .map(|o| {
                if o.starts_with("--") {
                    o.to_string()
                } else {
                    self.path(o)
                }
            })
            .collect();
        args.extend(outputs.iter().map(String::as_str));
        run_ok(&args);
    }

    /// The flags of a job that follows the stream from `brokers`, anomalies to
    /// `anomalies.jsonl`, checkpointing to `checkpoint` every 100 ms.
    fn kafka_args(&self, brokers: &str, checkpoint: &Path) -> Vec<String> {
        [
            "run",
            "--config",
            &self.config,
            "--kafka-brokers",
            brokers,
            "--input",
            "kafka",
            "--topology",
            "kafka",
            "--deploys",
            "kafka",
            "--anomalies-out",
            &self.path("anomalies.jsonl"),
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--checkpoint-every",
            "100ms",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// The time before which a checkpoint file says the outputs are durable (0: none yet).
fn durable_before(checkpoint: &Path) -> u64 {
    std::fs::read_to_string(checkpoint)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["output_time"].as_u64())
        .unwrap_or(0)
}

fn half_stream(broker: &Broker, dir_name: &str, prefix: &str, seed: u64) -> HalfStream {
    let dir = scratch(dir_name);
    let scenario = Scenario::new(ScenarioConfig::named("medium", seed).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let topic = |kind: &str| format!("{prefix}.{kind}");
    let target = KafkaTarget {
        samples_topic: topic("metrics"),
        topology_topic: topic("topology"),
        deploys_topic: topic("deploys"),
        partitions: 4,
        batch: 100,
        ..KafkaTarget::new(&broker.address)
    };
    let samples: Vec<String> = scenario.samples().collect();
    let half = samples.len() / 2;
    let topics = [
        ("metrics", 4),
        ("topology", 1),
        ("deploys", 1),
        ("incidents", 2),
    ];
    let topics: Vec<(String, i32)> = topics.iter().map(|(k, n)| (topic(k), *n)).collect();
    let topics: Vec<(&str, i32)> = topics.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    create_topics(&broker.address, &topics).unwrap();
    let edges: Vec<Vec<u8>> = scenario.edges().map(String::into_bytes).collect();
    let deploys: Vec<Vec<u8>> = scenario.deploy_lines().map(String::into_bytes).collect();
    produce_raw(&broker.address, &topic("topology"), 0, &edges).unwrap();
    produce_raw(&broker.address, &topic("deploys"), 0, &deploys).unwrap();
    produce_lines(&target, samples[..half].iter().cloned(), 0).unwrap();
    let config = job(&dir, prefix);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += "idle_timeout = \"1h\"\n";
    std::fs::write(&config, text).unwrap();
    HalfStream {
        dir,
        scenario,
        target,
        samples,
        half,
        config,
    }
}

/// Runs the medium scenario through Kafka with a checkpoint, stops the job with `signal` while it
/// waits for the second half of the samples, produces that half, restarts it, and checks that the
/// outputs are the uninterrupted run's. After SIGKILL, versions written after the last checkpoint
/// may come twice; after SIGTERM the job drains, checkpoints and exits by itself, and nothing
/// comes twice. `champion` sets the champion (default: the job's).
fn stop_mid_stream_and_resume(name: &str, signal: &str, champion: Option<&str>) {
    let broker = Broker::start(name);
    let stream = half_stream(&broker, &format!("kafka-{name}"), "k", 3);
    let (dir, config) = (&stream.dir, &stream.config);
    let (scenario, target, samples, half) = (
        &stream.scenario,
        &stream.target,
        &stream.samples,
        stream.half,
    );
    let mut text = std::fs::read_to_string(config).unwrap();
    if let Some(champion) = champion {
        text += &format!("[detectors]\nchampion = \"{champion}\"\n");
    }
    std::fs::write(config, text).unwrap();
    // The uninterrupted run, from files, with the same settings.
    stream.run_from_files(&[
        "--anomalies-out",
        "anomalies-file.jsonl",
        "--incidents-out",
        "incidents-file.jsonl",
    ]);
    let checkpoint = dir.join("checkpoint.json");
    let mut args = stream.kafka_args(&broker.address, &checkpoint);
    args.extend(["--incidents-out".to_string(), "kafka".to_string()]);
    let first_log = dir.join("first.log");
    let mut first = KillOnDrop(
        incidentflow()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&first_log).unwrap())
            .spawn()
            .unwrap(),
    );
    // Stop it once a checkpoint says the outputs are durable past 2.5 h of the 3 h it
    // has (it follows the topic and has only half of it), so that a restart has a long stretch
    // it need not read again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let far_enough = scenario.config.start + 150 * 60_000;
    loop {
        assert!(std::time::Instant::now() < deadline, "no checkpoint came");
        if durable_before(&checkpoint) >= far_enough {
            break;
        }
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "the job ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = Command::new("kill")
        .args([format!("-{signal}"), first.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = first.0.wait().unwrap();
    let first_stderr = std::fs::read_to_string(&first_log).unwrap();
    if signal == "TERM" {
        assert!(status.success(), "{status}: {first_stderr}");
        assert!(first_stderr.contains("asked to stop"), "{first_stderr}");
    }
    produce_lines(target, samples[half..].iter().cloned(), 0).unwrap();
    let expected = std::fs::read_to_string(dir.join("anomalies-file.jsonl")).unwrap();
    // Killed in the middle: its checkpoint is short of the last incident version.
    let checkpointed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let last_version = lines(&dir.join("incidents-file.jsonl"))
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["updated_at"].as_str().unwrap().to_string()
        })
        .max()
        .unwrap();
    let durable = checkpointed["output_time"].as_u64().unwrap();
    assert!(
        rfc3339(durable) < last_version,
        "killed in the middle, not at the end"
    );

    let summary_path = dir.join("summary.json");
    args.extend(
        [
            "--until-end",
            "--summary-out",
            summary_path.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let out = incidentflow().args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming from checkpoint"), "{stderr}");
    let read = summary(&summary_path)["read"].as_u64().unwrap();
    eprintln!("the restart re-read {read} of {} samples", samples.len());
    if champion == Some("zscore") {
        // It re-read only the stretch the state at the checkpoint depends on, not the whole
        // topic.
        assert!(stderr.contains("re-reading k.metrics from"), "{stderr}");
        assert!(
            read < samples.len() as u64 * 9 / 10,
            "re-read {read} of {} samples",
            samples.len()
        );
    } else {
        assert!(
            stderr.contains("reading the input again from its start"),
            "{stderr}"
        );
        // Every sample again (read also counts the topology and deploy records).
        assert!(read >= samples.len() as u64, "re-read {read}");
    }
    // The file output is the uninterrupted run's, byte for byte.
    let resumed = std::fs::read_to_string(dir.join("anomalies.jsonl")).unwrap();
    assert!(
        resumed == expected,
        "the resumed anomalies differ from the uninterrupted run's: {} lines against {}",
        resumed.lines().count(),
        expected.lines().count()
    );
    // The topic holds every incident version of the uninterrupted run, and nothing else: after
    // SIGKILL some may come twice (sent by the killed run after its last checkpoint), identical,
    // with their key; after SIGTERM none does.
    let mut union: Vec<(String, String)> = read_topic(&broker.address, "k.incidents");
    union.sort();
    let written = union.len();
    union.dedup();
    if signal == "TERM" {
        assert_eq!(written, union.len(), "a drained job wrote a version twice");
    }
    let mut uninterrupted: Vec<(String, String)> =
        std::fs::read_to_string(dir.join("incidents-file.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["incident_id"].as_str().unwrap().to_string(),
                    l.to_string(),
                )
            })
            .collect();
    uninterrupted.sort();
    assert!(!uninterrupted.is_empty());
    assert_eq!(union, uninterrupted);
}

/// The lines of a JSON Lines file whose `field` (an RFC 3339 time) lies in [from, until).
fn slice(path: &Path, field: &str, from: &str, until: &str) -> Vec<String> {
    lines(path)
        .into_iter()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let t = v[field].as_str().unwrap();
            from <= t && t < until
        })
        .collect()
}

#[test]
fn a_replay_from_a_time_or_from_offsets_equals_the_live_run_over_the_same_range() {
    let broker = Broker::start("replay");
    let dir = scratch("kafka-replay");
    let scenario = Scenario::new(ScenarioConfig::named("small", 2).unwrap());
    let target = KafkaTarget {
        samples_topic: "p.metrics".into(),
        topology_topic: "p.topology".into(),
        deploys_topic: "p.deploys".into(),
        partitions: 3,
        batch: 20,
        ..KafkaTarget::new(&broker.address)
    };
    produce_scenario(&scenario, &target, 0).unwrap();
    let config = job(&dir, "p");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let run_with = |config: &str, tag: &str, extra: &[&str]| {
        let mut args = vec![
            "--config",
            config,
            "--kafka-brokers",
            &broker.address,
            "--input",
            "kafka",
            "--topology",
            "kafka",
            "--deploys",
            "kafka",
            "--until-end",
        ];
        let (a, i) = (p(&format!("a-{tag}.jsonl")), p(&format!("i-{tag}.jsonl")));
        args.extend(["--anomalies-out", &a, "--incidents-out", &i]);
        args.extend(extra);
        run_ok(&args);
    };
    let run = |tag: &str, extra: &[&str]| run_with(&config, tag, extra);
    run("live", &[]);
    let live = |kind: &str, field: &str, from: &str, until: &str| {
        slice(&dir.join(format!("{kind}-live.jsonl")), field, from, until)
    };

    // From a time to a time: every anomaly and incident version in the range, byte for byte.
    let (from, until) = ("2026-11-23T01:00:00.000Z", "2026-11-23T04:30:00.000Z");
    run("time", &["--from-time", from, "--until", until]);
    let anomalies = lines(&dir.join("a-time.jsonl"));
    let versions = lines(&dir.join("i-time.jsonl"));
    assert!(!anomalies.is_empty() && !versions.is_empty());
    assert_eq!(anomalies, live("a", "timestamp", from, until));
    assert_eq!(versions, live("i", "updated_at", from, until));
    assert!(
        anomalies.len() < lines(&dir.join("a-live.jsonl")).len(),
        "the range is a slice, not the whole run"
    );

    // With a bounded warm-up: read from an hour before the start (offsets-for-times on the event
    // time the loadgen stamps its messages with), not from the beginning. With the z-score as
    // champion the anomalies are the same (the warm-up covers its 30-minute window), from fewer
    // records; the change detector's state is its whole history, so with it a warm-up replay is
    // approximate (docs/kafka.md says so) and it is not compared here.
    let (from, until) = ("2026-11-23T03:00:00.000Z", "2026-11-23T05:00:00.000Z");
    let summary_path = p("summary-warm.json");
    let zscore = dir.join("zscore.toml");
    std::fs::write(
        &zscore,
        std::fs::read_to_string(&config).unwrap() + "[detectors]\nchampion = \"zscore\"\n",
    )
    .unwrap();
    let zscore_run = |tag: &str, extra: &[&str]| run_with(zscore.to_str().unwrap(), tag, extra);
    zscore_run("zlive", &[]);
    zscore_run(
        "warm",
        &[
            "--from-time",
            from,
            "--until",
            until,
            "--warm-up",
            "1h",
            "--summary-out",
            &summary_path,
        ],
    );
    let warm = lines(&dir.join("a-warm.jsonl"));
    assert!(!warm.is_empty());
    assert_eq!(
        warm,
        slice(&dir.join("a-zlive.jsonl"), "timestamp", from, until)
    );
    let read = summary(Path::new(&summary_path))["read"].as_u64().unwrap();
    let total = scenario.samples().count() as u64;
    assert!(
        read < total * 3 / 4,
        "read {read} of {total}: the warm-up should skip the first two hours"
    );

    // From offsets to offsets: the replay runs from the earliest timestamp at the first and
    // stops at the earliest at the second.
    run(
        "offsets",
        &[
            "--from-offsets",
            "p.metrics:0:100,p.metrics:2:120",
            "--until",
            "p.metrics:1:300",
        ],
    );
    let start = |partition: i32, offset: usize| -> String {
        let values: Vec<String> = read_partition(&broker.address, "p.metrics", partition);
        let first = values[offset].lines().next().unwrap().to_string();
        let v: serde_json::Value = serde_json::from_str(&first).unwrap();
        v["timestamp"].as_str().unwrap().to_string()
    };
    let from = start(0, 100).min(start(2, 120));
    let until = start(1, 300);
    assert!(from < until);
    let anomalies = lines(&dir.join("a-offsets.jsonl"));
    assert!(!anomalies.is_empty());
    assert_eq!(anomalies, live("a", "timestamp", &from, &until));
    assert_eq!(
        lines(&dir.join("i-offsets.jsonl")),
        live("i", "updated_at", &from, &until)
    );
    assert!(
        !live("a", "timestamp", &until, "9999").is_empty(),
        "stopped before the end"
    );
}

/// The values of one partition of a topic, in offset order.
fn read_partition(brokers: &str, topic: &str, partition: i32) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "incidentflow-test")
        .create()
        .unwrap();
    let timeout = std::time::Duration::from_secs(10);
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    let mut out = Vec::new();
    while (out.len() as i64) < high {
        if let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(200)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

#[test]
fn an_edge_produced_while_the_job_follows_the_topics_joins_two_incidents() {
    let broker = Broker::start("follow");
    let dir = scratch("kafka-follow");
    create_topics(
        &broker.address,
        &[("f.metrics", 1), ("f.topology", 1), ("f.deploys", 1)],
    )
    .unwrap();
    job(&dir, "f");
    // api and db, steady for 25 minutes, both failing at minutes 14 and 15.
    let line = |minute: u64, service: &str| {
        let steady = [1.0, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97];
        let v = if minute == 14 || minute == 15 {
            9.0
        } else {
            steady[minute as usize % steady.len()]
        };
        sample(T0 + minute * 60_000, "shop", service, "latency_p99", v).into_bytes()
    };
    let minutes = |range: std::ops::Range<u64>| -> Vec<Vec<u8>> {
        range
            .flat_map(|m| [line(m, "api"), line(m, "db")])
            .collect()
    };
    produce_raw(&broker.address, "f.metrics", 0, &minutes(0..12)).unwrap();
    let until = rfc3339(T0 + 24 * 60_000);
    let incidents = dir.join("incidents.jsonl");
    let job = incidentflow()
        .args(["run", "--config", dir.join("job.toml").to_str().unwrap()])
        .args(["--kafka-brokers", &broker.address, "--input", "kafka"])
        .args([
            "--topology",
            "kafka",
            "--deploys",
            "kafka",
            "--until",
            &until,
        ])
        .args(["--incidents-out", incidents.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3)); // the job follows the topics now
    let edge = format!(
        "{{\"timestamp\":\"{}\",\"caller\":\"api\",\"callee\":\"db\"}}",
        rfc3339(T0 + 13 * 60_000)
    );
    produce_raw(&broker.address, "f.topology", 0, &[edge.into_bytes()]).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    produce_raw(&broker.address, "f.metrics", 0, &minutes(12..26)).unwrap();
    succeeded(job.wait_with_output().unwrap());
    let versions = json_lines(&incidents);
    let ids: std::collections::BTreeSet<&str> = versions
        .iter()
        .map(|v| v["incident_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "the followed edge joins api and db: {versions:#?}"
    );
    assert_eq!(versions[0]["services"], serde_json::json!(["api", "db"]));
}

#[test]
fn a_job_started_while_the_broker_is_down_waits_says_so_and_then_runs() {
    let mut broker = Broker::start("down-at-start");
    let dir = scratch("kafka-down-at-start");
    let scenario = Scenario::new(ScenarioConfig::named("small", 2).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let target = KafkaTarget {
        samples_topic: "d.metrics".into(),
        topology_topic: "d.topology".into(),
        deploys_topic: "d.deploys".into(),
        partitions: 2,
        batch: 50,
        ..KafkaTarget::new(&broker.address)
    };
    produce_scenario(&scenario, &target, 0).unwrap();
    let config = job(&dir, "d");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    run_on_scenario_files(&dir, "anomalies-file.jsonl", "incidents-file.jsonl");
    // The broker goes down; the job starts.
    broker.stop();
    let port = free_port();
    let log = dir.join("job.log");
    let mut job = KillOnDrop(
        incidentflow()
            .args([
                "run",
                "--config",
                &config,
                "--kafka-brokers",
                &broker.address,
            ])
            .args([
                "--input",
                "kafka",
                "--topology",
                "kafka",
                "--deploys",
                "kafka",
                "--until-end",
            ])
            .args([
                "--anomalies-out",
                &p("anomalies.jsonl"),
                "--incidents-out",
                &p("incidents.jsonl"),
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // It waits, says so, and is not ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("waiting for the brokers")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(
            job.0.try_wait().unwrap().is_none(),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (status, body) = get(&format!("127.0.0.1:{port}"), "/ready").unwrap();
    assert_eq!(status, 503, "{body}");
    // The broker comes back: the job reads everything, as from files.
    broker.restart();
    let status = job.0.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("the brokers answer"), "{stderr}");
    assert_eq!(
        lines(&dir.join("anomalies.jsonl")),
        lines(&dir.join("anomalies-file.jsonl"))
    );
    assert_eq!(
        lines(&dir.join("incidents.jsonl")),
        lines(&dir.join("incidents-file.jsonl"))
    );
}

/// Starts `args` as a cluster of 2 processes x 2 workers with a fresh hostfile in `dir`; the
/// processes' logs go to `dir/<tag>-<index>.log`.
fn spawn_cluster(dir: &Path, args: &[String], tag: &str) -> Vec<KillOnDrop> {
    let commands = two_by_two(dir, args, &format!("hosts-{tag}.txt"));
    (commands.into_iter().enumerate())
        .map(|(i, mut command)| {
            let log = std::fs::File::create(dir.join(format!("{tag}-{i}.log"))).unwrap();
            KillOnDrop(command.stdout(Stdio::null()).stderr(log).spawn().unwrap())
        })
        .collect()
}

/// One process of a cluster whose output fails (its disk full) stops the whole cluster: the other
/// process, following its topics with no end, hears the stop through the dataflow and ends too,
/// instead of reading on for ever beside a process that can write nothing.
#[test]
fn an_output_that_fails_in_one_process_stops_the_whole_cluster() {
    let broker = Broker::start("cluster-full");
    let stream = half_stream(&broker, "kafka-cluster-full", "f", 6);
    let checkpoint = stream.dir.join("checkpoint.json");
    let args: Vec<String> = (stream.kafka_args(&broker.address, &checkpoint).into_iter())
        .map(|a| {
            if a.ends_with("anomalies.jsonl") {
                "/dev/full".to_string()
            } else {
                a
            }
        })
        .collect();
    let mut cluster = spawn_cluster(&stream.dir, &args, "full");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut ended = [None, None];
    while ended.iter().any(Option::is_none) {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster did not stop: {ended:?}"
        );
        for (i, process) in cluster.iter_mut().enumerate() {
            if ended[i].is_none() {
                ended[i] = process.0.try_wait().unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = |i: usize| std::fs::read_to_string(stream.dir.join(format!("full-{i}.log"))).unwrap();
    assert!(!ended[0].unwrap().success(), "{}", log(0));
    assert!(
        log(0).contains("cannot write anomalies to /dev/full"),
        "{}",
        log(0)
    );
    assert!(log(1).contains("asked to stop"), "{}", log(1));
}

// It once lost 10 anomalies in 4 runs: the second process closed its inputs on a fixed wait, and
// the first then checkpointed past records the second had not read. The second process now waits
// for the first's word that it has drained (`ops::shutdown::ClusterSignals`).
#[test]
fn sigterm_to_a_two_process_cluster_drains_both_checkpoints_once_and_resumes() {
    let broker = Broker::start("cluster-term");
    let stream = half_stream(&broker, "kafka-cluster-term", "c", 5);
    let (dir, scenario, target) = (&stream.dir, &stream.scenario, &stream.target);
    let (samples, half) = (&stream.samples, stream.half);
    stream.run_from_files(&["--anomalies-out", "anomalies-file.jsonl"]);
    let checkpoint = dir.join("checkpoint.json");
    let args = stream.kafka_args(&broker.address, &checkpoint);
    let mut cluster = spawn_cluster(dir, &args, "first");
    // Once the outputs are durable well into the first half, both processes get SIGTERM.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let far_enough = scenario.config.start + 100 * 60_000;
    loop {
        assert!(std::time::Instant::now() < deadline, "no checkpoint came");
        if durable_before(&checkpoint) >= far_enough {
            break;
        }
        for process in cluster.iter_mut() {
            assert!(
                process.0.try_wait().unwrap().is_none(),
                "a process ended before the signal"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for process in &cluster {
        let sent = Command::new("kill")
            .args(["-TERM", &process.0.id().to_string()])
            .status();
        assert!(sent.unwrap().success());
    }
    for (i, process) in cluster.iter_mut().enumerate() {
        let status = process.0.wait().unwrap();
        let log = std::fs::read_to_string(dir.join(format!("first-{i}.log"))).unwrap();
        assert!(status.success(), "process {i}: {status}: {log}");
        assert!(log.contains("asked to stop"), "process {i}: {log}");
    }
    // One checkpoint, by process 0, short of the end.
    assert!(checkpoint.exists());
    produce_lines(target, samples[half..].iter().cloned(), 0).unwrap();
    let mut args = args;
    args.push("--until-end".into());
    let mut again = spawn_cluster(dir, &args, "again");
    for (i, process) in again.iter_mut().enumerate() {
        let status = process.0.wait().unwrap();
        let log = std::fs::read_to_string(dir.join(format!("again-{i}.log"))).unwrap();
        assert!(status.success(), "process {i}: {status}: {log}");
    }
    let log = std::fs::read_to_string(dir.join("again-0.log")).unwrap();
    assert!(log.contains("resuming from checkpoint"), "{log}");
    // Every anomaly once, as the uninterrupted run wrote them.
    assert_eq!(
        lines(&dir.join("anomalies.jsonl")),
        lines(&dir.join("anomalies-file.jsonl"))
    );
}

/// Spans from a topic (`--spans kafka`, OTLP JSON as the Collector's Kafka exporter writes):
/// the same edges as from the topology file, so the same incidents.
#[test]
fn spans_from_a_topic_give_the_topology_files_incidents() {
    let broker = Broker::start("spans");
    let dir = scratch("kafka-spans");
    let scenario = Scenario::new(ScenarioConfig::named("small", 1).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    create_topics(&broker.address, &[("sp.spans", 1)]).unwrap();
    let spans: Vec<Vec<u8>> = scenario.spans().map(String::into_bytes).collect();
    produce_raw(&broker.address, "sp.spans", 0, &spans).unwrap();
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        "[traces]\nedge_expiry = \"1m\"\n[kafka]\nspans_topic = \"sp.spans\"\n",
    )
    .unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let run = |topology: &[&str], out: &str| {
        succeeded(
            incidentflow()
                .args([
                    "run",
                    "--input",
                    &p("samples.jsonl"),
                    "--deploys",
                    &p("deploys.jsonl"),
                ])
                .args([
                    "--config",
                    &p("job.toml"),
                    "--kafka-brokers",
                    &broker.address,
                ])
                .args(topology)
                .args(["--incidents-out", &p(out)])
                .output()
                .unwrap(),
        );
        lines(&dir.join(out))
    };
    let from_file = run(
        &["--topology", &p("topology.jsonl")],
        "incidents-file.jsonl",
    );
    assert!(from_file.len() > 5);
    assert_eq!(
        run(&["--spans", "kafka"], "incidents-spans.jsonl"),
        from_file
    );
}

/// The live load generator to Kafka (`incidentflow-loadgen --live --kafka`): samples, edges,
/// deploys and spans produced to their topics when the wall clock reaches their times, stamped
/// with them; a job following the topics meanwhile sees the live run's anomalies, and the topics
/// read afterwards give exactly what the same live run's files give.
#[test]
fn the_live_load_generator_produces_every_stream_when_due_and_a_following_job_sees_it() {
    use incidentflow_loadgen::live::{wall_ms, Clock};
    let broker = Broker::start("live");
    let dir = scratch("kafka-live");
    // Six hours at 2,000 times: 10.8 s, from the next second.
    let start = wall_ms() / 1000 * 1000 + 1000;
    let mut config = ScenarioConfig::named("small", 1).unwrap();
    config.start = start;
    let scenario = Scenario::new(config);
    let clock = Clock::new(start, 2000.0);
    incidentflow_loadgen::files::write_dir_stamped(&scenario, &dir, 0, Some(clock)).unwrap();
    let target = KafkaTarget {
        samples_topic: "l.metrics".into(),
        topology_topic: "l.topology".into(),
        deploys_topic: "l.deploys".into(),
        spans_topic: Some("l.spans".into()),
        partitions: 4,
        batch: 200,
        ..KafkaTarget::new(&broker.address)
    };
    create_topics(
        &broker.address,
        &[
            ("l.metrics", 4),
            ("l.topology", 1),
            ("l.deploys", 1),
            ("l.anomalies", 2),
            ("l.incidents", 2),
        ],
    )
    .unwrap();
    let config = job(&dir, "l");
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let kafka_run = |tag: &str| -> Vec<String> {
        [
            "run",
            "--config",
            &config,
            "--kafka-brokers",
            &broker.address,
            "--input",
            "kafka",
            "--topology",
            "kafka",
            "--deploys",
            "kafka",
            "--anomalies-out",
            &p(&format!("anomalies-{tag}.jsonl")),
            "--incidents-out",
            &p(&format!("incidents-{tag}.jsonl")),
        ]
        .map(String::from)
        .to_vec()
    };
    // A job following the topics while the generator runs.
    let mut following = KillOnDrop(
        incidentflow()
            .args(kafka_run("following"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let produced = incidentflow_loadgen::kafka::produce_live(&scenario, &target, clock).unwrap();
    let finished = wall_ms();
    assert_eq!(produced.samples, scenario.samples().count() as u64);
    assert_eq!(produced.edges, scenario.edges().count() as u64);
    assert_eq!(produced.deploys, scenario.deploys.len() as u64);
    assert_eq!(produced.spans, scenario.spans().count() as u64);
    assert!(
        finished >= start + 10_700,
        "played over 10.8 s, not sent at once: done {} ms after the start",
        finished.saturating_sub(start)
    );

    // Each event went out when due: its message's timestamp is its (restamped) time, which is
    // the line's own, between the start and the end of the run.
    let spans = read_topic(&broker.address, "l.spans");
    assert_eq!(spans.len() as u64, produced.spans);
    let edges = read_topic(&broker.address, "l.topology");
    assert_eq!(
        edges.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        lines(&dir.join("topology.jsonl")),
        "the edges the live run's file holds, in order"
    );
    for (_, span) in &spans {
        let v: serde_json::Value = serde_json::from_str(span).unwrap();
        let nanos: u64 = v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (start..=start + 10_800).contains(&(nanos / 1_000_000)),
            "{span}"
        );
    }

    // The following job, once its partitions have been idle and its watermark has followed the
    // clock past the end, has written every anomaly the live run's files give.
    let from_file = {
        run_on_scenario_files(&dir, "anomalies-file.jsonl", "incidents-file.jsonl");
        lines(&dir.join("anomalies-file.jsonl"))
    };
    assert!(from_file.len() > 20, "{} anomalies", from_file.len());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while lines(&dir.join("anomalies-following.jsonl")).len() < from_file.len()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    sigterm(&following.0);
    assert!(following.0.wait().unwrap().success());
    assert_eq!(lines(&dir.join("anomalies-following.jsonl")), from_file);
    assert!(!lines(&dir.join("incidents-following.jsonl")).is_empty());

    // The topics read to their ends afterwards: the files' anomalies and incidents, exactly.
    let mut args = kafka_run("after");
    args.push("--until-end".into());
    succeeded(incidentflow().args(&args).output().unwrap());
    assert_eq!(lines(&dir.join("anomalies-after.jsonl")), from_file);
    assert_eq!(
        lines(&dir.join("incidents-after.jsonl")),
        lines(&dir.join("incidents-file.jsonl"))
    );
}
