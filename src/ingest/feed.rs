//! The feed: a worker's share of the input (its file partitions or Kafka partitions, and on
//! worker 0 the topology and deploy events), decoded, checked for lateness against each
//! partition's own watermark, and put into the dataflow in event time. Refused records go to the
//! dead-letter output with their position; the counts say read = valid + dead-lettered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use incidentflow_dataflows::decode::Decoder;
use incidentflow_dataflows::records::{DeadLetter, Invalid, Reason, SourceCounts};
use incidentflow_dataflows::time::Time;
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

use crate::cli::Target;
use crate::config::{JobConfig, KafkaSection};
use crate::emit::records::Diagnostic;
use crate::error::JobError;
use crate::ingest::files::{plan_partitions, InputSource, LineInfo, Partition};
use crate::ingest::progress::Progress;
use crate::kafka::KafkaClient;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::Shutdown;

mod admit;
mod events;
mod inputs;
mod remote;

pub use inputs::{DiagnosticInput, Inputs};

/// What the feed reads, and how far.
pub struct FeedSpec {
    /// Where samples come from.
    pub input: InputSource,
    /// The topology edge stream or static topology (JSON Lines, YAML, or `kafka`).
    pub topology: Option<Target>,
    /// Deploy events (JSON Lines, or `kafka`).
    pub deploys: Option<Target>,
    /// Spans to derive the topology from (`--spans`).
    pub spans: Option<Target>,
    /// Brokers and topics, for inputs named `kafka`.
    pub kafka: KafkaSection,
    /// The brokers and security settings of every Kafka client.
    pub kafka_client: KafkaClient,
    /// Kafka inputs stop at the offsets that were their ends when the job started.
    pub until_end: bool,
    /// A replay's end: a Kafka partition is done once it holds a record this far past it plus
    /// the allowed lateness (so that every record before it is in).
    pub until: Option<Time>,
    /// A replay with a bounded warm-up, or a restart, reads each samples partition from the
    /// message before the first stamped at or after this time (offsets-for-times); None: from
    /// the beginning.
    pub read_from: Option<Time>,
    /// Where the Kafka partitions' progress bars are drawn (None: log lines).
    pub progress: Option<indicatif::MultiProgress>,
    /// The index of this process's first worker: the one that reads its remote write receiver.
    pub first_worker: usize,
}

/// Where a line came from: its source's name, its position, and its Kafka message's key.
#[derive(Clone, Copy)]
struct Origin<'a> {
    source: &'a str,
    info: LineInfo,
    key: Option<&'a [u8]>,
}

impl<'a> Origin<'a> {
    /// The dead letter of the line `raw` read here, refused for `invalid`.
    fn dead_letter(&self, invalid: Invalid, raw: Vec<u8>) -> DeadLetter {
        DeadLetter {
            source: self.source.to_owned(),
            line: self.info.number,
            offset: self.info.offset,
            invalid,
            raw,
            truncated: self.info.oversized,
            key: self.key.map(<[u8]>::to_vec),
        }
    }

    /// A line of a file or of standard input (no key).
    fn line(source: &'a str, info: LineInfo) -> Self {
        Origin {
            source,
            info,
            key: None,
        }
    }
}

/// One owned partition's progress.
struct PartitionState {
    partition: Partition,
    /// Newest timestamp seen (or peeked) in the partition.
    newest: Option<Time>,
    /// No valid record is left in it.
    finished: bool,
    /// A Kafka partition: when its last record arrived (wall clock), for the idle timeout.
    last_record: Option<Instant>,
    /// Records held because they jump ahead of the partition (see `admit`).
    ahead: Vec<admit::HeldAhead>,
}

/// A worker's share of the input, fed into the dataflow in event time.
pub struct Feed<'a> {
    spec: &'a FeedSpec,
    config: &'a JobConfig,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    source_name: String,
    decoder: Decoder,
    owned: Vec<PartitionState>,
    pub counts: SourceCounts,
    lateness: Time,
    /// How far ahead of the wall clock, or of its partition, a record may be (`time.max_ahead`).
    max_ahead: Time,
    /// The wall clock plus `max_ahead` when last read (it only grows; read again when a record
    /// is beyond it).
    wall_limit: Time,
    /// Read live (Kafka, standard input): records are also judged against the wall clock.
    live: bool,
    tick: Time,
    /// How far the input may run ahead of the output before the worker waits (bounds memory).
    max_lag: Time,
    /// Worker 0 following the topology and deploy topics while the job follows the samples.
    follower: Option<crate::ingest::kafka::EventFollower>,
    /// The counts last added to the process's metrics.
    published: SourceCounts,
    /// Worker 0 with `--spans`: the edges derived so far.
    span_edges: crate::ingest::spans::SpanEdges,
    /// Worker 0 following events on standard input (see `events`): their kind and lines.
    stdin_events: Option<(events::EventKind, events::StdinLines)>,
}

impl<'a> Feed<'a> {
    pub fn new(
        index: usize,
        peers: usize,
        spec: &'a FeedSpec,
        config: &'a JobConfig,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Result<Self, JobError> {
        let source_name = spec.input.name();
        let partitions = match &spec.input {
            InputSource::Stdin if index != 0 => Vec::new(),
            source => plan_partitions(source, config.input.partition_bytes).map_err(|source| {
                JobError::Input {
                    what: "input",
                    name: source_name.clone(),
                    source,
                }
            })?,
        };
        let owned = partitions
            .into_iter()
            .filter(|p| p.index % peers == index)
            .map(|partition| PartitionState {
                partition,
                newest: None,
                finished: false,
                last_record: None,
                ahead: Vec::new(),
            })
            .collect();
        let tick = config.time.tick.0.max(1);
        Ok(Feed {
            spec,
            config,
            metrics,
            shutdown,
            source_name,
            decoder: Decoder::with_idle(2 * config.baseline.window.0),
            owned,
            counts: SourceCounts::default(),
            lateness: config.time.allowed_lateness.0,
            max_ahead: config.time.max_ahead.0,
            wall_limit: 0,
            live: matches!(
                spec.input,
                InputSource::Stdin | InputSource::Kafka { .. } | InputSource::RemoteWrite { .. }
            ),
            tick,
            max_lag: (tick * 64).max(config.time.allowed_lateness.0),
            follower: None,
            published: SourceCounts::default(),
            span_edges: crate::ingest::spans::SpanEdges::new(config.traces.edge_expiry.0),
            stdin_events: None,
        })
    }

    pub fn run(
        &mut self,
        worker: &mut Worker,
        inputs: &mut Inputs,
        probe: &ProbeHandle<Time>,
    ) -> Result<(), JobError> {
        if let InputSource::Kafka { topic } = &self.spec.input {
            return self.run_kafka(worker, inputs, probe, topic);
        }
        if let InputSource::RemoteWrite { queue, .. } = &self.spec.input {
            let queue = queue.clone();
            if worker.index() == self.spec.first_worker {
                self.run_remote_write(worker, inputs, probe, &queue);
            }
            return Ok(());
        }
        self.peek_all()?;
        self.metrics.inputs_connected(true);
        let max_line = self.config.input.max_line_bytes as usize;
        let mut line = Vec::with_capacity(4096);
        let live = matches!(self.spec.input, InputSource::Stdin);
        for k in 0..self.owned.len() {
            let partition = self.owned[k].partition;
            let mut reader = partition
                .open(&self.spec.input, max_line)
                .map_err(|source| self.read_error(source))?;
            let mut since_step = 0u32;
            let source = self.source_name.clone();
            while let Some(info) = reader
                .next_line(&mut line)
                .map_err(|source| self.read_error(source))?
            {
                if !info.oversized && line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                self.counts.read += 1;
                let decoded = if info.oversized {
                    Err(oversized(max_line))
                } else {
                    self.decoder.decode(&line)
                };
                self.take(k, decoded, Origin::line(&source, info), &line, inputs, true);
                since_step += 1;
                // Step after a batch of records, and on a pipe before a read that may block, so
                // that what has arrived is processed (and its anomalies written) without waiting.
                if since_step == 16384 || (live && reader.drained()) {
                    since_step = 0;
                    self.advance(worker, inputs, probe);
                    if self.shutdown.requested() {
                        tracing::info!("asked to stop: no more input is read");
                        self.unread_ahead(k);
                        return Ok(());
                    }
                }
            }
            // The end of the partition: what still jumps ahead was not confirmed as a gap.
            self.refuse_ahead(k, inputs);
            self.owned[k].finished = true;
            self.advance(worker, inputs, probe);
        }
        Ok(())
    }

    fn read_error(&self, source: std::io::Error) -> JobError {
        read_error(&self.source_name, source)
    }

    /// Reads this worker's partitions of the samples topic, interleaved as they arrive, each
    /// with its own watermark, until they reach their ends (`--until-end`) or for ever.
    // Long: one poll loop whose callback updates the partitions, progress and counts it shares with the loop.
    fn run_kafka(
        &mut self,
        worker: &mut Worker,
        inputs: &mut Inputs,
        probe: &ProbeHandle<Time>,
        topic: &str,
    ) -> Result<(), JobError> {
        let brokers = self.spec.kafka_client.brokers.clone();
        let consumer = crate::ingest::kafka::PartitionConsumer::open_from(
            &self.spec.kafka_client,
            topic,
            worker.peers(),
            worker.index(),
            self.spec.until_end,
            self.spec.read_from,
        )?;
        self.metrics.inputs_connected(true);
        self.owned = consumer
            .partitions
            .iter()
            .map(|(p, end)| PartitionState {
                partition: Partition {
                    index: *p as usize,
                    start: 0,
                    end: 0,
                    first_line: 1,
                },
                newest: None,
                finished: *end == Some(0),
                last_record: Some(Instant::now()),
                ahead: Vec::new(),
            })
            .collect();
        let names: Vec<String> = consumer
            .partitions
            .iter()
            .map(|(p, _)| crate::kafka::source_name(topic, *p))
            .collect();
        let max_line = self.config.input.max_line_bytes as usize;
        let mut since_step = 0usize;
        let mut last_warning: Option<Instant> = None;
        let mut progress = Progress::new(&names, self.spec.progress.as_ref());
        let mut last_mark = Instant::now();
        while !self.owned.iter().all(|s| s.finished) {
            if self.shutdown.requested() {
                tracing::info!(topic, "asked to stop: no more input is read");
                break;
            }
            let mut quiet = false;
            let mut problem = None;
            consumer.poll(Duration::from_millis(50), |polled| match polled {
                crate::ingest::kafka::Polled::Message(message) => {
                    let (partition, offset) = (message.partition, message.offset);
                    let Some(k) = consumer
                        .partitions
                        .iter()
                        .position(|(p, _)| *p == partition)
                    else {
                        return;
                    };
                    for (info, line) in message_lines(message.payload, offset, max_line) {
                        self.counts.read += 1;
                        since_step += 1;
                        let decoded = if info.oversized {
                            Err(oversized(max_line))
                        } else {
                            self.decoder.decode(line)
                        };
                        let origin = Origin {
                            source: &names[k],
                            info,
                            key: message.key,
                        };
                        self.take(k, decoded, origin, line, inputs, false);
                    }
                    progress.seen(k, offset);
                    let until = self.spec.until.map(|u| u.saturating_add(self.lateness));
                    let state = &mut self.owned[k];
                    state.last_record = Some(Instant::now());
                    if matches!(consumer.partitions[k].1, Some(end) if offset + 1 >= end)
                        || matches!((until, state.newest), (Some(u), Some(n)) if n >= u)
                    {
                        state.finished = true;
                    }
                }
                crate::ingest::kafka::Polled::End(partition) => {
                    quiet = true;
                    if self.spec.until_end {
                        if let Some(k) = consumer
                            .partitions
                            .iter()
                            .position(|(p, _)| *p == partition)
                        {
                            self.owned[k].finished = true;
                        }
                    }
                }
                crate::ingest::kafka::Polled::Nothing => quiet = true,
                crate::ingest::kafka::Polled::Error(e) => {
                    quiet = true;
                    problem = Some(e);
                }
            });
            if let Some(e) = problem {
                // librdkafka reconnects by itself; say so now and then, not on every poll.
                if last_warning.is_none_or(|w| w.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(brokers = %brokers, "kafka: {e} (retrying)");
                    last_warning = Some(Instant::now());
                }
            }
            if quiet || since_step >= 16384 {
                since_step = 0;
                self.advance(worker, inputs, probe);
            }
            if progress.due() {
                progress.report(&consumer, &names, &self.metrics);
            }
            if last_mark.elapsed() >= Duration::from_millis(200) {
                last_mark = Instant::now();
                self.send_marks(inputs, topic, &consumer, &progress);
            }
        }
        // Where every partition ended, for the offsets the checkpoint commits.
        self.send_marks(inputs, topic, &consumer, &progress);
        self.advance(worker, inputs, probe);
        Ok(())
    }

    /// Tells worker 0 how far each partition has been read (see `Diagnostic::Mark`).
    fn send_marks(
        &self,
        inputs: &mut Inputs,
        topic: &str,
        consumer: &crate::ingest::kafka::PartitionConsumer,
        progress: &Progress,
    ) {
        for (k, (partition, _)) in consumer.partitions.iter().enumerate() {
            if let (Some(next), Some(newest)) = (progress.next[k], self.owned[k].newest) {
                inputs.diagnostics.send(Diagnostic::Mark {
                    topic: topic.to_owned(),
                    partition: *partition,
                    next_offset: next,
                    newest,
                });
            }
        }
    }

    /// Counts a refused line and sends it to the dead-letter output.
    fn refuse(&mut self, inputs: &mut Inputs, at: Origin, invalid: Invalid, line: &mut Vec<u8>) {
        self.counts.count_dead(invalid.reason);
        let letter = at.dead_letter(invalid, std::mem::take(line));
        inputs.diagnostics.send(Diagnostic::DeadLetter(letter));
    }

    /// Finds the first valid timestamp of every owned partition, so that the worker knows how far
    /// it may advance its input before it has read them.
    fn peek_all(&mut self) -> Result<(), JobError> {
        if matches!(self.spec.input, InputSource::Stdin) {
            return Ok(());
        }
        let max_line = self.config.input.max_line_bytes as usize;
        let mut decoder = Decoder::new();
        let mut line = Vec::new();
        for state in &mut self.owned {
            let mut reader = state
                .partition
                .open(&self.spec.input, max_line)
                .map_err(|source| read_error(&self.source_name, source))?;
            // The first valid record is where the partition starts, unless it jumps ahead of the
            // few after it (a wrong clock at line 1): then the earliest of them.
            let mut first: Vec<Time> = Vec::new();
            while let Some(info) = reader
                .next_line(&mut line)
                .map_err(|source| read_error(&self.source_name, source))?
            {
                if info.oversized {
                    continue;
                }
                match decoder.decode(&line) {
                    Ok(sample) => first.push(sample.timestamp),
                    _ => continue,
                }
                if first.len() >= admit::CONFIRM {
                    break;
                }
            }
            if let (Some(&start), Some(&earliest)) = (first.first(), first.iter().min()) {
                let wrong_clock = start > earliest.saturating_add(self.max_ahead);
                state.newest = Some(if wrong_clock { earliest } else { start });
            }
            if state.newest.is_none() {
                state.finished = true; // no valid record in it: it holds nothing back
            }
        }
        Ok(())
    }

    /// The time below which this worker will send nothing more: the least watermark over the
    /// partitions it has not finished, rounded down to the tick. None while a partition's first
    /// record is still unknown (standard input before its first record) or when all are finished.
    fn low_watermark(&self) -> Option<Time> {
        let mut low: Option<Time> = None;
        let idle_timeout = Duration::from_millis(self.config.kafka.idle_timeout.0);
        for state in self.owned.iter().filter(|s| !s.finished) {
            // A live Kafka partition quiet for the idle timeout stops holding time back: its
            // watermark follows the clock from there (or it is ignored if it never had a record).
            let idle = match state.last_record {
                Some(at) if !self.spec.until_end => at.elapsed().checked_sub(idle_timeout),
                _ => None,
            };
            let watermark = match (state.newest, idle) {
                (None, Some(_)) => continue,
                (Some(newest), Some(idle)) => newest
                    .saturating_sub(self.lateness)
                    .saturating_add(idle.as_millis() as Time),
                (newest, None) => newest?.saturating_sub(self.lateness),
            };
            low = Some(low.map_or(watermark, |l| l.min(watermark)));
        }
        // With every partition finished there is nothing to advance to: closing the input does it.
        low.map(|l| l / self.tick * self.tick)
    }

    fn advance(&mut self, worker: &mut Worker, inputs: &mut Inputs, probe: &ProbeHandle<Time>) {
        // Followed events first, so that one due before the new input time takes effect at it.
        self.follow_events(inputs);
        self.publish_counts();
        if let Some(low) = self.low_watermark() {
            if low > inputs.time() {
                inputs.advance_to(low);
                inputs.flush();
                let behind = low.saturating_sub(self.max_lag);
                // Held back until the dataflow catches up, but not past a stop: the other
                // workers stop reading where they are, and the frontier may never get here.
                worker.step_while(|| probe.less_than(&behind) && !self.shutdown.requested());
            }
        }
        inputs.flush();
        self.metrics.input_time(inputs.time());
        worker.step();
    }

    /// Adds what this worker has counted since the last call to the process's metrics.
    fn publish_counts(&mut self) {
        let (now, before) = (&self.counts, &self.published);
        let mut delta = SourceCounts {
            read: now.read - before.read,
            valid: now.valid - before.valid,
            topology: now.topology - before.topology,
            deploys: now.deploys - before.deploys,
            ..SourceCounts::default()
        };
        for (d, (n, b)) in delta
            .dead
            .iter_mut()
            .zip(now.dead.iter().zip(before.dead.iter()))
        {
            *d = n - b;
        }
        if delta.read > 0 {
            self.metrics.add_counts(&delta);
            self.published = self.counts.clone();
        }
    }
}

/// The records of a Kafka message (one record or a JSON Lines batch): each line that is not
/// blank, with its position (`offset`: the message's offset, `number`: the line in the message),
/// cut to `max_line` bytes (and then marked oversized).
fn message_lines(
    payload: &[u8],
    offset: i64,
    max_line: usize,
) -> impl Iterator<Item = (LineInfo, &[u8])> {
    incidentflow_dataflows::decode::json_lines(payload).map(move |(number, line)| {
        let info = LineInfo {
            offset: offset.max(0) as u64,
            number,
            oversized: line.len() > max_line,
        };
        (info, &line[..line.len().min(max_line)])
    })
}

fn oversized(max_line: usize) -> Invalid {
    Invalid::new(
        Reason::Oversized,
        format!("line is longer than input.max_line_bytes ({max_line} bytes)"),
    )
}

fn read_error(source_name: &str, source: std::io::Error) -> JobError {
    JobError::Input {
        what: "input",
        name: source_name.to_owned(),
        source,
    }
}
