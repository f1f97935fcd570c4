//! Writing Kafka: the keyed, idempotent producers of the anomaly and incident topics, and the
//! dead-letter topics that take refused Kafka records back with headers saying why.
//!
//! Outputs are keyed (anomalies by series, incidents by incident id: a compacted topic keeps the
//! newest version) and produced with `acks=all`; librdkafka retries delivery, and what still
//! fails is counted and stops the job with an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::error::JobError;
use crate::kafka::{parse_source_name, KafkaClient};

/// Counts deliveries that failed for good.
#[derive(Clone, Default)]
pub struct DeliveryCounter {
    failed: Arc<AtomicU64>,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(e.to_string());
            }
        }
    }
}

/// A keyed, idempotent producer to one topic.
pub struct TopicSink {
    producer: BaseProducer<DeliveryCounter>,
    counter: DeliveryCounter,
    topic: String,
    brokers: String,
}

impl TopicSink {
    /// A producer to `topic`.
    pub fn open(client: &KafkaClient, topic: &str) -> Result<Self, JobError> {
        let counter = DeliveryCounter::default();
        let producer: BaseProducer<DeliveryCounter> = client
            .config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "300000")
            .create_with_context(counter.clone())
            .map_err(|e| client.error("cannot create a producer", e))?;
        // Fail now, not after the run: the output topic must exist (the job does not create
        // topics; `incidentflow-loadgen --kafka` creates the default ones).
        let metadata = client.metadata_waiting(producer.client(), topic)?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return Err(JobError::Kafka(format!(
                "output topic {topic} does not exist on {}: create it first",
                client.brokers
            )));
        }
        Ok(TopicSink {
            producer,
            counter,
            topic: topic.to_owned(),
            brokers: client.brokers.clone(),
        })
    }

    /// Queues one record (waiting while librdkafka's queue is full).
    pub fn send(&mut self, key: &str, value: &str) -> Result<(), String> {
        self.send_bytes(Some(key.as_bytes()), value.as_bytes(), None)
    }

    /// Queues one record with optional key and headers.
    pub fn send_bytes(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), String> {
        let mut record = BaseRecord::to(&self.topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    back,
                )) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(format!("cannot produce to {}: {e}", self.topic)),
            }
        }
        self.producer.poll(Duration::ZERO);
        self.failures()
    }

    /// Waits until everything queued is delivered (or has failed for good).
    pub fn flush(&mut self) -> Result<(), String> {
        self.producer
            .flush(Duration::from_secs(300))
            .map_err(|e| format!("cannot deliver to {} on {}: {e}", self.topic, self.brokers))?;
        self.failures()
    }

    fn failures(&self) -> Result<(), String> {
        let failed = self.counter.failed.load(Ordering::Relaxed);
        if failed == 0 {
            return Ok(());
        }
        let last = self
            .counter
            .last_error
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .unwrap_or_default();
        Err(format!(
            "{failed} records could not be delivered to {} on {}: {last}",
            self.topic, self.brokers
        ))
    }
}

/// The dead-letter topic of an input topic.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Sends refused Kafka records to their topic's dead-letter topic: the original record as the
/// value, and headers saying where it came from and why it was refused. Letters from other
/// sources have no topic to go to and are counted only.
pub fn send_dead_letters(
    sinks: &mut std::collections::BTreeMap<String, TopicSink>,
    letters: &[incidentflow_dataflows::records::DeadLetter],
    finished: bool,
) -> Result<(), String> {
    for letter in letters {
        let Some((topic, partition)) = parse_source_name(&letter.source) else {
            continue;
        };
        let Some(sink) = sinks.get_mut(&dlq_topic(topic)) else {
            continue;
        };
        let reason = letter.invalid.reason.as_str();
        let stage = if reason == "late" {
            "lateness"
        } else {
            "decode"
        };
        let (offset, line) = (letter.offset.to_string(), letter.line.to_string());
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "incidentflow.topic",
                value: Some(topic),
            })
            .insert(Header {
                key: "incidentflow.partition",
                value: Some(partition),
            })
            .insert(Header {
                key: "incidentflow.offset",
                value: Some(&offset),
            })
            .insert(Header {
                key: "incidentflow.line",
                value: Some(&line),
            })
            .insert(Header {
                key: "incidentflow.stage",
                value: Some(stage),
            })
            .insert(Header {
                key: "incidentflow.reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "incidentflow.detail",
                value: Some(&letter.invalid.detail),
            });
        sink.send_bytes(letter.key.as_deref(), &letter.raw, Some(headers))?;
    }
    if finished {
        for sink in sinks.values_mut() {
            sink.flush()?;
        }
    }
    Ok(())
}
