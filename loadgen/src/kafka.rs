//! The Kafka driver: a scenario's samples, topology and deploys produced to topics, as fast as
//! possible or at a target rate.
//!
//! A sample goes to the partition given by a hash of its series key (namespace/service/metric),
//! so a series always lands on the same partition and keeps its order there. Samples are batched
//! per partition, `batch` JSON lines to a message (the job reads a message as JSON Lines); with
//! `batch = 1` each message is one sample keyed by its series.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::scenario::Scenario;

/// Where and how to produce.
#[derive(Clone, Debug)]
pub struct KafkaTarget {
    /// Bootstrap servers.
    pub brokers: String,
    /// Samples topic.
    pub samples_topic: String,
    /// Topology topic.
    pub topology_topic: String,
    /// Deploys topic.
    pub deploys_topic: String,
    /// Spans topic (OTLP JSON, the job's `kafka.spans_topic`); None: no spans are produced.
    pub spans_topic: Option<String>,
    /// Partitions of the samples topic when this driver creates it.
    pub partitions: i32,
    /// Samples per message.
    pub batch: usize,
}

impl KafkaTarget {
    /// The job's default topics on `brokers`, 4 partitions, 200 samples per message.
    pub fn new(brokers: &str) -> Self {
        KafkaTarget {
            brokers: brokers.to_owned(),
            samples_topic: "raw.metrics".into(),
            topology_topic: "raw.topology".into(),
            deploys_topic: "raw.deploys".into(),
            spans_topic: None,
            partitions: 4,
            batch: 200,
        }
    }
}

/// Creates `topics` (name, partitions) unless they exist.
pub fn create_topics(brokers: &str, topics: &[(&str, i32)]) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| format!("cannot reach {brokers}: {e}"))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(&new, &options))
        .map_err(|e| format!("cannot create topics on {brokers}: {e}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("cannot create topic {name}: {code}")),
        }
    }
    Ok(())
}

/// FNV-1a: a stable hash of a series key, the same in every run and on every machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A sample line's series key and event time (ms), when it has them.
fn sample_fields(line: &str) -> (String, Option<u64>) {
    #[derive(serde::Deserialize)]
    struct Key<'a> {
        #[serde(borrow)]
        namespace: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        service: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        metric_name: std::borrow::Cow<'a, str>,
        #[serde(default)]
        timestamp: serde_json::Value,
    }
    match serde_json::from_str::<Key<'_>>(line) {
        Ok(k) => {
            let time = match &k.timestamp {
                serde_json::Value::String(s) => incidentflow_dataflows::time::parse_rfc3339(s).ok(),
                v => v.as_u64(),
            };
            (
                format!("{}/{}/{}", k.namespace, k.service, k.metric_name),
                time,
            )
        }
        Err(_) => (String::new(), None), // not a sample: any partition will do
    }
}

/// A producer that counts what it sends and waits when librdkafka's queue is full.
struct Sender {
    producer: BaseProducer,
    messages: u64,
}

impl Sender {
    fn new(brokers: &str) -> Result<Self, String> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .set("message.timeout.ms", "300000")
            .create()
            .map_err(|e| format!("cannot create a producer for {brokers}: {e}"))?;
        Ok(Sender {
            producer,
            messages: 0,
        })
    }

    fn send(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: &str,
        value: &[u8],
        timestamp: Option<u64>,
    ) -> Result<(), String> {
        let mut record = BaseRecord::to(topic).payload(value);
        if !key.is_empty() {
            record = record.key(key);
        }
        if let Some(t) = timestamp {
            // The message's timestamp is its first sample's event time, so that a replay can
            // find where to start with offsets-for-times.
            record = record.timestamp(t as i64);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(20));
                }
                Err((e, _)) => return Err(format!("cannot produce to {topic}: {e}")),
            }
        }
        self.producer.poll(Duration::ZERO);
        self.messages += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.producer
            .flush(Duration::from_secs(300))
            .map_err(|e| format!("cannot deliver: {e}"))
    }
}

/// The topics a scenario is produced to, with their partitions: samples, topology, deploys,
/// and the job's output and dead-letter topics, so that a first run can write to them.
fn job_topics(target: &KafkaTarget) -> Vec<(String, i32)> {
    [
        (target.samples_topic.clone(), target.partitions),
        (target.topology_topic.clone(), 1),
        (target.deploys_topic.clone(), 1),
        ("aiops.anomalies".into(), target.partitions),
        ("aiops.incidents".into(), target.partitions),
        (format!("{}.dlq", target.samples_topic), 1),
        (format!("{}.dlq", target.topology_topic), 1),
        (format!("{}.dlq", target.deploys_topic), 1),
    ]
    .into_iter()
    .chain(target.spans_topic.iter().map(|t| (t.clone(), 1)))
    .collect()
}

/// Produces the scenario: topology, deploys and spans (with a spans topic) first (one message
/// per event), then the samples at `rate` samples per second (0: as fast as possible). Creates
/// the topics when missing. Returns what it produced.
pub fn produce_scenario(
    scenario: &Scenario,
    target: &KafkaTarget,
    rate: u64,
) -> Result<Produced, String> {
    let topics = job_topics(target);
    let topics: Vec<(&str, i32)> = topics.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    create_topics(&target.brokers, &topics)?;
    let mut sender = Sender::new(&target.brokers)?;
    let mut produced = Produced::default();
    for line in scenario.edges() {
        sender.send(&target.topology_topic, Some(0), "", line.as_bytes(), None)?;
        produced.edges += 1;
    }
    for line in scenario.deploy_lines() {
        sender.send(&target.deploys_topic, Some(0), "", line.as_bytes(), None)?;
        produced.deploys += 1;
    }
    if let Some(topic) = &target.spans_topic {
        for line in scenario.spans() {
            sender.send(topic, Some(0), "", line.as_bytes(), None)?;
            produced.spans += 1;
        }
    }
    produced.samples = produce_samples(&mut sender, scenario.samples(), target, rate)?;
    sender.flush()?;
    Ok(produced)
}

/// Produces sample lines to the samples topic, batched per partition.
pub fn produce_lines(
    target: &KafkaTarget,
    lines: impl Iterator<Item = String>,
    rate: u64,
) -> Result<(), String> {
    let mut sender = Sender::new(&target.brokers)?;
    produce_samples(&mut sender, lines, target, rate)?;
    sender.flush()
}

/// Produces raw payloads (one message each) to `topic`'s `partition`: for tests that need
/// records the driver would not write, invalid ones among them.
pub fn produce_raw(
    brokers: &str,
    topic: &str,
    partition: i32,
    payloads: &[Vec<u8>],
) -> Result<(), String> {
    let keyed: Vec<(&str, &[u8])> = payloads.iter().map(|p| ("", p.as_slice())).collect();
    produce_keyed(brokers, topic, partition, &keyed)
}

/// Produces (key, value) messages as they are (an empty key: none) to one partition of `topic`.
pub fn produce_keyed(
    brokers: &str,
    topic: &str,
    partition: i32,
    messages: &[(&str, &[u8])],
) -> Result<(), String> {
    let mut sender = Sender::new(brokers)?;
    for (key, value) in messages {
        sender.send(topic, Some(partition), key, value, None)?;
    }
    sender.flush()
}

fn produce_samples(
    sender: &mut Sender,
    lines: impl Iterator<Item = String>,
    target: &KafkaTarget,
    rate: u64,
) -> Result<u64, String> {
    let mut batches = SampleBatches::new(target);
    let start = Instant::now();
    let mut count = 0u64;
    for (i, line) in lines.enumerate() {
        count += 1;
        if rate > 0 && i % 256 == 0 {
            // Open loop: sample i is due at start + i / rate; what is held back goes out first.
            batches.send_all(sender)?;
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        batches.add(sender, &line)?;
    }
    batches.send_all(sender)?;
    Ok(count)
}

/// Sample lines batched per partition of the samples topic, `batch` to a message.
struct SampleBatches<'a> {
    target: &'a KafkaTarget,
    pending: Vec<Batch>,
}

/// One partition's batch: its key (batch = 1 only), its JSON lines, its size and the event time
/// of its first sample (the message's timestamp).
#[derive(Default)]
struct Batch {
    key: String,
    buffer: Vec<u8>,
    n: usize,
    first: Option<u64>,
}

impl<'a> SampleBatches<'a> {
    fn new(target: &'a KafkaTarget) -> Self {
        let partitions = target.partitions.max(1) as usize;
        SampleBatches {
            target,
            pending: (0..partitions).map(|_| Batch::default()).collect(),
        }
    }

    /// Adds a line to its series' partition's batch, sending the batch once it is full.
    fn add(&mut self, sender: &mut Sender, line: &str) -> Result<(), String> {
        let (key, time) = sample_fields(line);
        let p = (fnv1a(key.as_bytes()) % self.pending.len() as u64) as usize;
        let batch = self.target.batch.max(1);
        let b = &mut self.pending[p];
        if b.n == 0 {
            b.key = if batch == 1 { key } else { String::new() };
            b.first = time;
        }
        b.buffer.extend_from_slice(line.as_bytes());
        b.buffer.push(b'\n');
        b.n += 1;
        if b.n >= batch {
            self.send(sender, p)?;
        }
        Ok(())
    }

    fn send(&mut self, sender: &mut Sender, p: usize) -> Result<(), String> {
        let b = &mut self.pending[p];
        if b.n > 0 {
            let topic = &self.target.samples_topic;
            sender.send(topic, Some(p as i32), &b.key, &b.buffer, b.first)?;
            b.buffer.clear();
            b.n = 0;
            b.first = None;
        }
        Ok(())
    }

    /// Sends every batch that holds a line.
    fn send_all(&mut self, sender: &mut Sender) -> Result<(), String> {
        (0..self.pending.len()).try_for_each(|p| self.send(sender, p))
    }
}

/// What a run of the driver produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Produced {
    /// Samples produced.
    pub samples: u64,
    /// Topology edge changes produced.
    pub edges: u64,
    /// Deploys produced.
    pub deploys: u64,
    /// Span batches (lines of OTLP JSON) produced.
    pub spans: u64,
}

/// Produces the scenario live on `clock` (see [`crate::live`]): samples, edges, deploys and
/// (with a spans topic) spans, each restamped and produced to its topic when the wall clock
/// reaches its time, the samples batched as [`produce_scenario`] does within what falls due
/// together. Creates the topics when missing.
pub fn produce_live(
    scenario: &Scenario,
    target: &KafkaTarget,
    clock: crate::live::Clock,
) -> Result<Produced, String> {
    use crate::live::Stream;
    let spans_topic = target.spans_topic.as_deref();
    let topics = job_topics(target);
    let topics: Vec<(&str, i32)> = topics.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    create_topics(&target.brokers, &topics)?;
    let mut sender = Sender::new(&target.brokers)?;
    let mut batches = SampleBatches::new(target);
    let mut produced = Produced::default();
    for (due, stream, line) in crate::live::schedule(scenario, clock, spans_topic.is_some()) {
        if due > crate::live::wall_ms() {
            // What fell due goes out before the wait.
            batches.send_all(&mut sender)?;
            sender.producer.poll(Duration::ZERO);
            crate::live::wait_until(due);
        }
        let (topic, count) = match stream {
            Stream::Samples => {
                batches.add(&mut sender, &line)?;
                produced.samples += 1;
                continue;
            }
            Stream::Topology => (target.topology_topic.as_str(), &mut produced.edges),
            Stream::Deploys => (target.deploys_topic.as_str(), &mut produced.deploys),
            Stream::Spans => (spans_topic.unwrap_or_default(), &mut produced.spans),
        };
        sender.send(topic, Some(0), "", line.as_bytes(), Some(due))?;
        *count += 1;
    }
    batches.send_all(&mut sender)?;
    sender.flush()?;
    Ok(produced)
}

/// The tansu broker binary (the Kafka of the tests and benchmarks), if installed: on the PATH or
/// where `cargo install` puts it.
pub fn tansu_binary() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("tansu"))
            .find(|p| p.is_file())
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")));
    on_path.or_else(|| {
        cargo_home
            .map(|h| h.join("bin").join("tansu"))
            .filter(|p| p.is_file())
    })
}

/// The command that runs a tansu broker listening on `address` (`host:port`) with its SQLite
/// storage in `dir`, as the tests and benchmarks start it (the caller sets its output and spawns
/// it); None when tansu is not installed.
pub fn tansu_broker(address: &str, dir: &std::path::Path) -> Option<std::process::Command> {
    let url = format!("tcp://{address}");
    let mut command = std::process::Command::new(tansu_binary()?);
    command
        .args(["broker", "--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .args(["--storage-engine", "sqlite://tansu.db"])
        .current_dir(dir);
    Some(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_always_hashes_to_the_same_key() {
        let a =
            r#"{"timestamp":1,"namespace":"shop","service":"api","metric_name":"cpu","value":1}"#;
        let b =
            r#"{"value":2,"metric_name":"cpu","service":"api","namespace":"shop","timestamp":2}"#;
        assert_eq!(sample_fields(a).0, "shop/api/cpu");
        assert_eq!(sample_fields(a).0, sample_fields(b).0);
        assert_eq!(fnv1a(b"shop/api/cpu"), fnv1a(b"shop/api/cpu"));
        assert_ne!(fnv1a(b"shop/api/cpu"), fnv1a(b"shop/api/mem"));
        assert_eq!(sample_fields("not json").0, "");
        assert_eq!(sample_fields(a).1, Some(1));
        let c = r#"{"timestamp":"2026-11-25T00:00:00Z","namespace":"n","service":"s","metric_name":"m"}"#;
        assert_eq!(sample_fields(c).1, Some(1_795_564_800_000));
    }
}
