//! Reading Kafka: the sample topic's partitions for each worker, and bounded reads of the
//! topology, deploy and side-input topics.
//!
//! * Partition p of the samples topic belongs to worker p mod (all workers of all processes): a
//!   pure function, never consumer-group rebalancing, so a replay re-shards identically and the
//!   output is the same at every worker count. Each worker `assign`s its partitions itself.
//! * A message holds one record or a batch of records as JSON Lines; a record's position is its
//!   topic, partition, offset and line within the message.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::JobError;
use crate::kafka::{KafkaClient, METADATA_TIMEOUT};

/// The partitions of a topic with `partitions` partitions that worker `index` of `peers` owns.
pub fn owned_partitions(partitions: i32, peers: usize, index: usize) -> Vec<i32> {
    (0..partitions)
        .filter(|p| (*p as usize) % peers.max(1) == index)
        .collect()
}

/// A consumer of the partitions one worker owns, from the beginning (or up to where a bounded run
/// ends: the high watermark when it started).
pub struct PartitionConsumer {
    consumer: BaseConsumer,
    topic: String,
    /// Owned partitions and, in a bounded run, the offset at which each ends.
    pub partitions: Vec<(i32, Option<i64>)>,
}

impl PartitionConsumer {
    /// Assigns this worker's partitions of `topic`.
    pub fn open(
        client: &KafkaClient,
        topic: &str,
        peers: usize,
        index: usize,
        bounded: bool,
    ) -> Result<Self, JobError> {
        Self::open_from(client, topic, peers, index, bounded, None)
    }

    /// [`PartitionConsumer::open`], starting each partition at the message before the first whose
    /// timestamp is at or after `start` (offsets-for-times) when given, else at the beginning.
    pub fn open_from(
        client: &KafkaClient,
        topic: &str,
        peers: usize,
        index: usize,
        bounded: bool,
        start: Option<u64>,
    ) -> Result<Self, JobError> {
        let consumer: BaseConsumer = client
            .config()
            .set("group.id", "incidentflow")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "true")
            // Brokers that hold a fetch until fetch.wait.max.ms when less than a full batch is
            // ready would make every round trip cost half a second: ask often instead.
            .set("fetch.wait.max.ms", "20")
            .create()
            .map_err(|e| client.error("cannot create a consumer", e))?;
        let count = partition_count(&consumer, client, topic)?;
        let mut list = TopicPartitionList::new();
        let mut partitions = Vec::new();
        for p in owned_partitions(count, peers, index) {
            let end = if bounded {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, METADATA_TIMEOUT)
                    .map_err(|e| client.error("cannot read the watermarks", e))?;
                Some(high)
            } else {
                None
            };
            list.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| client.error("cannot assign a partition", e))?;
            partitions.push((p, end));
        }
        if let Some(start) = start {
            let mut times = TopicPartitionList::new();
            for (p, _) in &partitions {
                times
                    .add_partition_offset(topic, *p, Offset::Offset(start as i64))
                    .map_err(|e| client.error("cannot ask offsets for times", e))?;
            }
            let found = consumer
                .offsets_for_times(times, METADATA_TIMEOUT)
                .map_err(|e| client.error("cannot find offsets for times", e))?;
            list = TopicPartitionList::new();
            for (p, _) in &partitions {
                let offset = match found.find_partition(topic, *p).map(|e| e.offset()) {
                    // The message before may be a batch that starts earlier and reaches past
                    // `start`: read it too (more is harmless, less would not be exact).
                    Some(Offset::Offset(o)) => Offset::Offset((o - 1).max(0)),
                    _ => Offset::End, // nothing that late: start at the end
                };
                list.add_partition_offset(topic, *p, offset)
                    .map_err(|e| client.error("cannot assign a partition", e))?;
            }
        }
        consumer
            .assign(&list)
            .map_err(|e| client.error("cannot assign the partitions", e))?;
        Ok(PartitionConsumer {
            consumer,
            topic: topic.to_owned(),
            partitions,
        })
    }

    /// A partition's high watermark now (None when the broker does not answer within a second).
    pub fn high_watermark(&self, partition: i32) -> Option<i64> {
        self.consumer
            .fetch_watermarks(&self.topic, partition, Duration::from_secs(1))
            .ok()
            .map(|(_, high)| high)
    }

    /// The next message, end of a partition, error or nothing within `timeout`.
    pub fn poll(&self, timeout: Duration, mut on: impl FnMut(Polled<'_>)) {
        match self.consumer.poll(timeout) {
            None => on(Polled::Nothing),
            Some(Ok(m)) => on(Polled::Message(KafkaMessage::of(&m))),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => on(Polled::End(p)),
            Some(Err(e)) => on(Polled::Error(e.to_string())),
        }
    }
}

/// A message as the job reads it.
pub struct KafkaMessage<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key, kept for the dead-letter topic.
    pub key: Option<&'a [u8]>,
    /// Its value: one record or a JSON Lines batch.
    pub payload: &'a [u8],
}

impl<'a> KafkaMessage<'a> {
    fn of(m: &'a rdkafka::message::BorrowedMessage<'a>) -> Self {
        KafkaMessage {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key(),
            payload: m.payload().unwrap_or_default(),
        }
    }
}

/// A message kept (the topology and deploy topics read at start).
pub struct StoredMessage {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub payload: Vec<u8>,
}

/// What a poll gave.
pub enum Polled<'a> {
    /// A message.
    Message(KafkaMessage<'a>),
    /// The consumer reached the end of a partition (for now).
    End(i32),
    /// Nothing arrived in time.
    Nothing,
    /// A client error (the broker away, say): librdkafka reconnects by itself.
    Error(String),
}

fn partition_count(
    consumer: &BaseConsumer,
    client: &KafkaClient,
    topic: &str,
) -> Result<i32, JobError> {
    let metadata = client.metadata_waiting(consumer.client(), topic)?;
    let count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    if count == 0 {
        return Err(JobError::Kafka(format!(
            "topic {topic} has no partitions on {} (does it exist?)",
            client.brokers
        )));
    }
    Ok(count)
}

/// Every message of `topic` up to its high watermarks when called, as (partition, offset,
/// value), by partition and offset. For the topology and deploy topics, which are small.
pub fn read_to_end(client: &KafkaClient, topic: &str) -> Result<ReadToEnd, JobError> {
    let source = PartitionConsumer::open(client, topic, 1, 0, true)?;
    let ends: Vec<(i32, i64)> = source
        .partitions
        .iter()
        .map(|(p, end)| (*p, end.unwrap_or(0)))
        .collect();
    let mut open: Vec<(i32, i64)> = source
        .partitions
        .iter()
        .filter_map(|(p, end)| end.filter(|e| *e > 0).map(|e| (*p, e)))
        .collect();
    let mut out = Vec::new();
    let mut errors = 0u32;
    while !open.is_empty() {
        let mut failed = None;
        source.poll(Duration::from_millis(200), |polled| match polled {
            Polled::Message(m) => {
                out.push(StoredMessage {
                    partition: m.partition,
                    offset: m.offset,
                    key: m.key.map(<[u8]>::to_vec),
                    payload: m.payload.to_vec(),
                });
                open.retain(|(p, end)| !(*p == m.partition && m.offset + 1 >= *end));
            }
            Polled::Error(e) => failed = Some(e),
            Polled::End(_) | Polled::Nothing => {}
        });
        if let Some(e) = failed {
            errors += 1;
            if errors > 150 {
                return Err(client.error(&format!("cannot read {topic}"), e));
            }
        }
    }
    out.sort_by_key(|m| (m.partition, m.offset));
    Ok(ReadToEnd {
        messages: out,
        ends,
    })
}

/// What [`read_to_end`] read: the messages by partition and offset, and where each partition
/// ended.
pub struct ReadToEnd {
    /// The messages.
    pub messages: Vec<StoredMessage>,
    /// (partition, the offset after the last message read).
    pub ends: Vec<(i32, i64)>,
}

/// Follows the topology and deploy topics after the job has read them to their ends at start.
pub struct EventFollower {
    consumer: BaseConsumer,
}

impl EventFollower {
    /// Follows each topic from the given offsets.
    pub fn open(
        client: &KafkaClient,
        from: &[(String, Vec<(i32, i64)>)],
    ) -> Result<Self, JobError> {
        let consumer: BaseConsumer = client
            .config()
            .set("group.id", "incidentflow")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(|e| client.error("cannot create a consumer", e))?;
        let mut list = TopicPartitionList::new();
        for (topic, partitions) in from {
            for (p, offset) in partitions {
                list.add_partition_offset(topic, *p, Offset::Offset(*offset))
                    .map_err(|e| client.error("cannot assign a partition", e))?;
            }
        }
        consumer
            .assign(&list)
            .map_err(|e| client.error("cannot assign the partitions", e))?;
        Ok(EventFollower { consumer })
    }

    /// Hands over what has arrived, without waiting.
    pub fn drain(&self, mut on: impl FnMut(KafkaMessage<'_>)) {
        for _ in 0..1000 {
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => on(KafkaMessage::of(&m)),
                Some(Err(_)) | None => break,
            }
        }
    }
}

/// The timestamp of the first sample in the message at `offset` of `topic`'s `partition`.
pub fn timestamp_at(
    client: &KafkaClient,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<u64, JobError> {
    let consumer: BaseConsumer = client
        .config()
        .set("group.id", "incidentflow")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| client.error("cannot create a consumer", e))?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(|e| client.error("cannot assign a partition", e))?;
    consumer
        .assign(&list)
        .map_err(|e| client.error("cannot assign the partition", e))?;
    let deadline = std::time::Instant::now() + METADATA_TIMEOUT;
    let mut decoder = incidentflow_dataflows::decode::Decoder::new();
    while std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let payload = m.payload().unwrap_or_default();
            for (_, line) in incidentflow_dataflows::decode::json_lines(payload) {
                if let Ok(sample) = decoder.decode(line) {
                    return Ok(sample.timestamp);
                }
            }
            return Err(JobError::Kafka(format!(
                "{topic}:{partition}:{offset} holds no valid sample to start a replay at"
            )));
        }
    }
    Err(JobError::Kafka(format!(
        "no record at {topic}:{partition}:{offset} on {} (is the offset past the end?)",
        client.brokers
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_exactly_one_owner_at_every_worker_count() {
        for peers in 1..=6 {
            let mut all: Vec<i32> = (0..peers)
                .flat_map(|i| owned_partitions(8, peers, i))
                .collect();
            all.sort_unstable();
            assert_eq!(all, (0..8).collect::<Vec<_>>(), "{peers} workers");
        }
        assert_eq!(owned_partitions(4, 3, 1), vec![1]);
        assert!(owned_partitions(2, 4, 3).is_empty());
    }
}
