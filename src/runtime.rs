//! The runtime: starts the timely workers (threads, or a cluster of processes), builds the
//! dataflow in each, feeds it from the file source, and gathers the outcome.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use differential_dataflow::input::InputSession;
use incidentflow_dataflows::decode::{decode_deploy, decode_edge, Decoder};
use incidentflow_dataflows::detectors::bank::{Unscored, UNSCORED_AFTER};
use incidentflow_dataflows::incident::track_incidents;
use incidentflow_dataflows::pipeline::detect;
use incidentflow_dataflows::records::{
    DeadLetter, DeployEvent, EdgeChange, Invalid, Reason, Sample,
};
use incidentflow_dataflows::time::{format_duration, format_rfc3339, Time};
use incidentflow_dataflows::zscore::ZScoreConfig;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::worker::Worker;

use crate::config::JobConfig;
use crate::error::JobError;
use crate::metrics::METRICS;
use crate::sink::{
    write_anomalies, write_challengers, write_diagnostics, write_incidents, Challenger,
    DeadLetterOutput, Diagnostic, Durability, Outcome, RecordOutput, SourceCounts,
};
use crate::source::{plan_partitions, InputSource, LineInfo, Partition};

/// The input that carries dead letters and counts into the dataflow.
type DiagnosticInput = InputHandle<Time, CapacityContainerBuilder<Vec<Diagnostic>>>;

/// How the workers are laid out.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Worker threads per process.
    pub workers: usize,
    /// Number of processes.
    pub processes: usize,
    /// This process's index.
    pub process_index: usize,
    /// `host:port` of every process (empty for one process).
    pub addresses: Vec<String>,
}

impl Cluster {
    /// The timely configuration, built in code (timely's own flags would clash with ours).
    pub fn timely_config(&self) -> timely::Config {
        let communication = if self.processes > 1 {
            timely::CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process_index,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            }
        } else if self.workers > 1 {
            timely::CommunicationConfig::Process(self.workers)
        } else {
            timely::CommunicationConfig::Thread
        };
        timely::Config {
            communication,
            worker: timely::WorkerConfig::default(),
        }
    }
}

/// Everything a run needs.
pub struct RunSpec {
    /// Where samples come from.
    pub input: InputSource,
    /// The pipeline's settings.
    pub config: JobConfig,
    /// Worker layout.
    pub cluster: Cluster,
    /// The topology edge stream or static topology (JSON Lines).
    pub topology: Option<PathBuf>,
    /// Deploy events (JSON Lines).
    pub deploys: Option<PathBuf>,
    /// Whether to correlate anomalies into incidents (asked for by a topology, deploys or an
    /// incidents output).
    pub correlate: bool,
    /// Brokers and topics, for inputs named `kafka`.
    pub kafka: crate::config::KafkaSection,
    /// Kafka inputs stop at the offsets that were their ends when the job started.
    pub until_end: bool,
    /// A replay's end: a Kafka partition is done once it holds a record this far past it plus
    /// the allowed lateness (so that every record before it is in).
    pub until: Option<Time>,
    /// A replay with a bounded warm-up, or a restart, reads each samples partition from the
    /// message before the first stamped at or after this time (offsets-for-times); None: from
    /// the beginning.
    pub read_from: Option<Time>,
    /// Samples before this time are not scored (their baselines are not yet the ones an
    /// uninterrupted run had; see `ZScoreConfig::score_from`).
    pub score_from: Time,
}

/// Whether an event file argument names the Kafka topic instead of a file.
pub fn is_kafka(path: &std::path::Path) -> bool {
    path.as_os_str() == "kafka"
}

/// The outputs, handed to worker 0 of process 0.
pub struct Outputs {
    /// Where anomalies go (None: only counted and summarised).
    pub anomalies: Option<RecordOutput>,
    /// Where dead letters go.
    pub dead_letter: Option<DeadLetterOutput>,
    /// Where incident versions go (None: only summarised).
    pub incidents: Option<RecordOutput>,
    /// Resuming from a checkpoint, and keeping one.
    pub durability: Durability,
    /// The alert outputs' queues (None: no alert outputs, or a replay).
    pub alerts: Option<crate::alerts::AlertSender>,
    /// Where the challengers' anomalies go (None: only counted).
    pub challengers: Option<RecordOutput>,
}

/// Runs the job to the end of its input and returns what it found.
pub fn run(spec: RunSpec, outputs: Outputs) -> Result<Outcome, JobError> {
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let outputs = Arc::new(Mutex::new(Some(outputs)));
    let spec = Arc::new(spec);
    let config = spec.cluster.timely_config();
    let shared = outcome.clone();
    let guards = timely::execute(config, move |worker| {
        let mine = if worker.index() == 0 {
            outputs.lock().ok().and_then(|mut o| o.take())
        } else {
            None
        };
        let result = run_worker(worker, &spec, mine, shared.clone());
        if result.is_err() {
            METRICS.worker_failed();
        }
        result
    })
    .map_err(JobError::Cluster)?;
    for result in guards.join() {
        result.map_err(JobError::Worker)??;
    }
    let outcome = Arc::try_unwrap(outcome)
        .map_err(|_| JobError::Worker("the workers still hold the outcome".into()))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(outcome)
}

fn run_worker(
    worker: &mut Worker,
    spec: &RunSpec,
    outputs: Option<Outputs>,
    outcome: Arc<Mutex<Outcome>>,
) -> Result<(), JobError> {
    let zscore = ZScoreConfig {
        score_from: spec.score_from,
        ..spec.config.zscore_config()
    };
    let detection = spec.config.detection_config();
    let correlation = spec.config.correlation_config();
    let probe = ProbeHandle::new();
    let (mut challenger_writer, mut alerts) = (None, None);
    let (anomaly_writer, dead_letter_writer, incident_writer, durability) = match outputs {
        Some(o) => {
            (challenger_writer, alerts) = (o.challengers, o.alerts);
            (o.anomalies, o.dead_letter, o.incidents, o.durability)
        }
        None => (None, None, None, Durability::default()),
    };
    crate::metrics::track_arrangements(worker);
    let mut inputs = worker.dataflow::<Time, _, _>(|scope| {
        let mut samples = InputSession::<Time, Sample, isize>::new();
        let mut edges_in = InputSession::<Time, EdgeChange, isize>::new();
        let mut deploys = InputSession::<Time, DeployEvent, isize>::new();
        let detected = detect(samples.to_collection(scope), &zscore, &detection);
        let anomalies = detected.champion.clone();
        let window = (zscore.window_ms, zscore.min_points);
        detected
            .unscored
            .inspect(move |(u, _, _)| warn_unscored(u, window.0, window.1));
        let edges = edges_in.to_collection(scope);
        let deploys_stream = deploys.to_collection(scope).inner;
        if spec.correlate {
            let incidents = track_incidents(
                detected.champion.clone(),
                edges.inner,
                deploys_stream,
                &correlation,
            );
            let annotator =
                crate::annotate::Annotator::new(&spec.config.runbooks, &spec.config.silences);
            let incidents = if annotator.is_empty() {
                incidents
            } else {
                incidents.map(move |(mut incident, t, r)| {
                    annotator.annotate(&mut incident);
                    (incident, t, r)
                })
            };
            write_incidents(
                incidents.probe_with(&probe),
                incident_writer,
                outcome.clone(),
                durability.clone(),
                alerts.take(),
            );
        }
        write_anomalies(
            anomalies.inner.probe_with(&probe),
            anomaly_writer,
            outcome.clone(),
            durability.clone(),
        );
        if !detection.challengers.is_empty() {
            write_challengers(
                detected
                    .challengers
                    .inner
                    .map(|(a, t, r)| (Challenger(a), t, r))
                    .probe_with(&probe),
                challenger_writer.take(),
                outcome.clone(),
                durability.clone(),
            );
        }
        let mut diagnostics = DiagnosticInput::new();
        let stream = scope.input_from(&mut diagnostics);
        write_diagnostics(
            stream.probe_with(&probe),
            dead_letter_writer,
            outcome.clone(),
            durability.checkpointer.clone(),
        );
        Inputs {
            samples,
            edges: edges_in,
            deploys,
            diagnostics,
        }
    });

    let mut feed = Feed::new(worker.index(), worker.peers(), spec)?;
    if worker.index() == 0 {
        feed.load_events(&mut inputs)?;
    }
    feed.run(worker, &mut inputs, &probe)?;
    inputs
        .diagnostics
        .send(Diagnostic::Counts(feed.counts.clone()));
    if crate::shutdown::requested() {
        inputs.flush();
        let later_process = spec.cluster.process_index != 0;
        crate::shutdown::drain(worker, inputs.time(), &probe, later_process);
    }
    inputs.close();
    while !probe.done() {
        worker.step();
    }
    Ok(())
}

/// Progress of a worker's Kafka partitions: on a terminal, every second, a bar per partition
/// with its offset, high watermark, rate and time to catch up; otherwise the same as one plain
/// line every 10 s (for logs).
struct Progress {
    next: Vec<Option<i64>>,
    at_last: Vec<Option<i64>>,
    last: Instant,
    every: Duration,
    bars: bool,
}

impl Progress {
    fn new(partitions: usize) -> Self {
        use std::io::IsTerminal;
        let bars = std::io::stderr().is_terminal();
        Progress {
            next: vec![None; partitions],
            at_last: vec![None; partitions],
            last: Instant::now(),
            every: Duration::from_secs(if bars { 1 } else { 10 }),
            bars,
        }
    }

    fn seen(&mut self, k: usize, offset: i64) {
        self.next[k] = Some(offset + 1);
    }

    fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    fn report(&mut self, consumer: &crate::kafka::PartitionConsumer, names: &[String]) {
        let seconds = self.last.elapsed().as_secs_f64().max(1e-3);
        let mut parts = Vec::new();
        for (k, (partition, _)) in consumer.partitions.iter().enumerate() {
            let at = self.next[k].unwrap_or(0);
            let rate = (at - self.at_last[k].unwrap_or(0)) as f64 / seconds;
            self.at_last[k] = Some(at);
            let high = consumer.high_watermark(*partition).filter(|h| *h > 0);
            if let Some(high) = high {
                METRICS.kafka_lag(&names[k], (high - at).max(0));
            }
            parts.push(progress_text(&names[k], at, high, rate, self.bars));
        }
        match (parts.is_empty(), self.bars) {
            (true, _) => {}
            (false, true) => eprintln!("{}", parts.join("\n")),
            (false, false) => tracing::info!("{}", parts.join("; ")),
        }
        self.last = Instant::now();
    }
}

/// One partition's progress: `name` at offset `at` of `high`, reading `rate` messages/s; as a
/// bar (a line of its own) or as a clause of a log line.
fn progress_text(name: &str, at: i64, high: Option<i64>, rate: f64, bar: bool) -> String {
    let Some(high) = high else {
        return format!("{name} {at}, {rate:.0} messages/s");
    };
    let left = (high - at).max(0);
    let eta = if left == 0 {
        "caught up".to_string()
    } else if rate > 0.0 {
        let seconds = (left as f64 / rate).ceil() as Time;
        format!("ETA {}", format_duration(seconds * 1000))
    } else {
        "waiting".to_string()
    };
    let done = (at as f64 / high as f64).clamp(0.0, 1.0);
    if bar {
        const WIDTH: usize = 30;
        let filled = (done * WIDTH as f64).round() as usize;
        format!(
            "{name:<24} [{}{}] {:>3.0}% {at}/{high} {rate:>8.0} msg/s {eta}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            100.0 * done
        )
    } else {
        format!(
            "{name} {at}/{high} ({:.0}%), {rate:.0} messages/s, {eta}",
            100.0 * done
        )
    }
}

/// Where a line came from: its source's name, its position, and its Kafka message's key.
#[derive(Clone, Copy)]
struct Origin<'a> {
    source: &'a str,
    info: LineInfo,
    key: Option<&'a [u8]>,
}

impl<'a> Origin<'a> {
    /// A line of a file or of standard input (no key).
    fn line(source: &'a str, info: LineInfo) -> Self {
        Origin {
            source,
            info,
            key: None,
        }
    }
}

/// The dataflow's inputs, advanced together.
struct Inputs {
    samples: InputSession<Time, Sample, isize>,
    edges: InputSession<Time, EdgeChange, isize>,
    deploys: InputSession<Time, DeployEvent, isize>,
    diagnostics: DiagnosticInput,
}

impl Inputs {
    fn time(&self) -> Time {
        *self.samples.time()
    }

    fn advance_to(&mut self, t: Time) {
        self.samples.advance_to(t);
        self.edges.advance_to(t);
        self.deploys.advance_to(t);
        self.diagnostics.advance_to(t);
    }

    fn flush(&mut self) {
        self.samples.flush();
        self.edges.flush();
        self.deploys.flush();
        self.diagnostics.flush();
    }

    fn close(self) {
        self.samples.close();
        self.edges.close();
        self.deploys.close();
        self.diagnostics.close();
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
}

/// A worker's share of the input, fed into the dataflow in event time.
struct Feed<'a> {
    spec: &'a RunSpec,
    source_name: String,
    decoder: Decoder,
    owned: Vec<PartitionState>,
    counts: SourceCounts,
    lateness: Time,
    tick: Time,
    /// How far the input may run ahead of the output before the worker waits (bounds memory).
    max_lag: Time,
    /// Worker 0 following the topology and deploy topics while the job follows the samples.
    follower: Option<crate::kafka::EventFollower>,
    /// The counts last added to the process's metrics.
    published: SourceCounts,
}

impl<'a> Feed<'a> {
    fn new(index: usize, peers: usize, spec: &'a RunSpec) -> Result<Self, JobError> {
        let source_name = spec.input.name();
        let partitions =
            match &spec.input {
                InputSource::Stdin if index != 0 => Vec::new(),
                source => plan_partitions(source, spec.config.input.partition_bytes).map_err(
                    |source| JobError::Input {
                        what: "input",
                        name: source_name.clone(),
                        source,
                    },
                )?,
            };
        let owned = partitions
            .into_iter()
            .filter(|p| p.index % peers == index)
            .map(|partition| PartitionState {
                partition,
                newest: None,
                finished: false,
                last_record: None,
            })
            .collect();
        let tick = spec.config.time.tick.0.max(1);
        Ok(Feed {
            spec,
            source_name,
            decoder: Decoder::with_idle(2 * spec.config.baseline.window.0),
            owned,
            counts: SourceCounts::default(),
            lateness: spec.config.time.allowed_lateness.0,
            tick,
            max_lag: (tick * 64).max(spec.config.time.allowed_lateness.0),
            follower: None,
            published: SourceCounts::default(),
        })
    }

    fn run(
        &mut self,
        worker: &mut Worker,
        inputs: &mut Inputs,
        probe: &ProbeHandle<Time>,
    ) -> Result<(), JobError> {
        if let InputSource::Kafka { topic } = &self.spec.input {
            return self.run_kafka(worker, inputs, probe, topic);
        }
        self.peek_all()?;
        METRICS.inputs_connected(true);
        let max_line = self.spec.config.input.max_line_bytes as usize;
        let mut line = Vec::with_capacity(4096);
        let live = matches!(self.spec.input, InputSource::Stdin);
        for k in 0..self.owned.len() {
            let partition = self.owned[k].partition;
            let mut reader = partition
                .open(&self.spec.input, max_line)
                .map_err(|source| self.read_error(source))?;
            let mut since_step = 0u32;
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
                let accepted = decoded.and_then(|sample| self.admit(k, sample, &inputs.time()));
                match accepted {
                    Ok(sample) => {
                        let time = sample.timestamp;
                        inputs.samples.update_at(sample, time, 1);
                        self.counts.valid += 1;
                    }
                    Err(invalid) => {
                        let source = self.source_name.clone();
                        let origin = Origin::line(&source, info);
                        self.refuse(inputs, origin, invalid, &mut line)
                    }
                }
                since_step += 1;
                // Step after a batch of records, and on a pipe before a read that may block, so
                // that what has arrived is processed (and its anomalies written) without waiting.
                if since_step == 16384 || (live && reader.drained()) {
                    since_step = 0;
                    self.advance(worker, inputs, probe);
                    if crate::shutdown::requested() {
                        tracing::info!("asked to stop: no more input is read");
                        return Ok(());
                    }
                }
            }
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
    fn run_kafka(
        &mut self,
        worker: &mut Worker,
        inputs: &mut Inputs,
        probe: &ProbeHandle<Time>,
        topic: &str,
    ) -> Result<(), JobError> {
        let brokers = self.spec.kafka.brokers.clone();
        let consumer = crate::kafka::PartitionConsumer::open_from(
            &brokers,
            topic,
            worker.peers(),
            worker.index(),
            self.spec.until_end,
            self.spec.read_from,
        )?;
        METRICS.inputs_connected(true);
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
            })
            .collect();
        let names: Vec<String> = consumer
            .partitions
            .iter()
            .map(|(p, _)| crate::kafka::source_name(topic, *p))
            .collect();
        let max_line = self.spec.config.input.max_line_bytes as usize;
        let mut since_step = 0usize;
        let mut last_warning: Option<Instant> = None;
        let mut progress = Progress::new(consumer.partitions.len());
        let mut last_mark = Instant::now();
        while !self.owned.iter().all(|s| s.finished) {
            if crate::shutdown::requested() {
                tracing::info!(topic, "asked to stop: no more input is read");
                break;
            }
            let mut quiet = false;
            let mut problem = None;
            consumer.poll(Duration::from_millis(50), |polled| match polled {
                crate::kafka::Polled::Message(message) => {
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
                        match decoded.and_then(|s| self.admit(k, s, &inputs.time())) {
                            Ok(sample) => {
                                let time = sample.timestamp;
                                inputs.samples.update_at(sample, time, 1);
                                self.counts.valid += 1;
                            }
                            Err(invalid) => {
                                let origin = Origin {
                                    source: &names[k],
                                    info,
                                    key: message.key,
                                };
                                self.refuse(inputs, origin, invalid, &mut line.to_vec());
                            }
                        }
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
                crate::kafka::Polled::End(partition) => {
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
                crate::kafka::Polled::Nothing => quiet = true,
                crate::kafka::Polled::Error(e) => {
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
                progress.report(&consumer, &names);
            }
            if last_mark.elapsed() >= Duration::from_millis(200) {
                last_mark = Instant::now();
                self.send_marks(inputs, topic, &consumer, &progress);
            }
            self.follow_events(inputs);
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
        consumer: &crate::kafka::PartitionConsumer,
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
        inputs.diagnostics.send(Diagnostic::DeadLetter(DeadLetter {
            source: at.source.to_owned(),
            line: at.info.number,
            offset: at.info.offset,
            invalid,
            raw: std::mem::take(line),
            truncated: at.info.oversized,
            key: at.key.map(<[u8]>::to_vec),
        }));
    }

    /// Applies the lateness rule of partition `k` to a decoded sample.
    fn admit(&mut self, k: usize, sample: Sample, input_time: &Time) -> Result<Sample, Invalid> {
        let state = &mut self.owned[k];
        let time = sample.timestamp;
        if let Some(newest) = state.newest {
            if time.saturating_add(self.lateness) < newest || time < *input_time {
                return Err(Invalid::new(
                    Reason::Late,
                    format!(
                        "timestamp {} is {} behind the newest record of its partition ({}); allowed lateness is {}",
                        format_rfc3339(time),
                        format_duration(newest.saturating_sub(time)),
                        format_rfc3339(newest),
                        format_duration(self.lateness)
                    ),
                ));
            }
        }
        state.newest = Some(state.newest.map_or(time, |n| n.max(time)));
        Ok(sample)
    }

    /// Finds the first valid timestamp of every owned partition, so that the worker knows how far
    /// it may advance its input before it has read them.
    fn peek_all(&mut self) -> Result<(), JobError> {
        if matches!(self.spec.input, InputSource::Stdin) {
            return Ok(());
        }
        let max_line = self.spec.config.input.max_line_bytes as usize;
        let mut decoder = Decoder::new();
        let mut line = Vec::new();
        for state in &mut self.owned {
            let mut reader = state
                .partition
                .open(&self.spec.input, max_line)
                .map_err(|source| read_error(&self.source_name, source))?;
            while let Some(info) = reader
                .next_line(&mut line)
                .map_err(|source| read_error(&self.source_name, source))?
            {
                if info.oversized {
                    continue;
                }
                if let Ok(sample) = decoder.decode(&line) {
                    state.newest = Some(sample.timestamp);
                    break;
                }
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
        let idle_timeout = Duration::from_millis(self.spec.config.kafka.idle_timeout.0);
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
        self.publish_counts();
        if let Some(low) = self.low_watermark() {
            if low > inputs.time() {
                inputs.advance_to(low);
                inputs.flush();
                let behind = low.saturating_sub(self.max_lag);
                worker.step_while(|| probe.less_than(&behind));
            }
        }
        inputs.flush();
        METRICS.input_time(inputs.time());
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
            METRICS.add_counts(&delta);
            self.published = self.counts.clone();
        }
    }

    /// Reads the topology and deploy files (worker 0 only; they are small) and puts every valid
    /// event into the dataflow at its own time, refused lines into the dead-letter output.
    fn load_events(&mut self, inputs: &mut Inputs) -> Result<(), JobError> {
        let max_line = self.spec.config.input.max_line_bytes as usize;
        let mut follow: Vec<(String, Vec<(i32, i64)>)> = Vec::new();
        for (path, is_edges) in [(&self.spec.topology, true), (&self.spec.deploys, false)] {
            let Some(path) = path else { continue };
            if is_kafka(path) {
                let kafka = &self.spec.kafka;
                let topic = if is_edges {
                    &kafka.topology_topic
                } else {
                    &kafka.deploys_topic
                };
                let read = crate::kafka::read_to_end(&kafka.brokers, topic)?;
                follow.push((topic.clone(), read.ends.clone()));
                for m in read.messages {
                    let name = crate::kafka::source_name(topic, m.partition);
                    for (info, line) in message_lines(&m.payload, m.offset, max_line) {
                        let at = Origin {
                            source: &name,
                            info,
                            key: m.key.as_deref(),
                        };
                        self.load_event(inputs, is_edges, at, &mut line.to_vec(), max_line);
                    }
                }
                continue;
            }
            let source = InputSource::Path(path.clone());
            let name = source.name();
            let what = if is_edges { "topology" } else { "deploys" };
            let error = |source| JobError::Input {
                what,
                name: name.clone(),
                source,
            };
            if is_edges && is_yaml(path) {
                for e in static_yaml_topology(path)? {
                    self.counts.read += 1;
                    self.counts.topology += 1;
                    self.counts.valid += 1;
                    inputs.edges.update_at(e, 0, 1);
                }
                continue;
            }
            let len = std::fs::metadata(path).map_err(error)?.len();
            let mut reader = Partition {
                index: 0,
                start: 0,
                end: len,
                first_line: 1,
            }
            .open(&source, max_line)
            .map_err(error)?;
            let mut line = Vec::new();
            while let Some(info) = reader.next_line(&mut line).map_err(error)? {
                if !info.oversized && line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let at = Origin::line(&name, info);
                self.load_event(inputs, is_edges, at, &mut line, max_line);
            }
        }
        // A job that follows the samples topic follows these too: an edge or deploy that comes
        // later takes effect at its own time, or now if that time has passed.
        let live = matches!(self.spec.input, InputSource::Kafka { .. }) && !self.spec.until_end;
        if live && !follow.is_empty() {
            self.follower = Some(crate::kafka::EventFollower::open(
                &self.spec.kafka.brokers,
                &follow,
            )?);
        }
        Ok(())
    }

    /// Puts the topology and deploy events that arrived since the last call into the dataflow.
    fn follow_events(&mut self, inputs: &mut Inputs) {
        let Some(follower) = self.follower.take() else {
            return;
        };
        let max_line = self.spec.config.input.max_line_bytes as usize;
        let topology_topic = self.spec.kafka.topology_topic.clone();
        follower.drain(|m| {
            let is_edges = m.topic == topology_topic;
            let name = crate::kafka::source_name(m.topic, m.partition);
            for (info, line) in message_lines(m.payload, m.offset, max_line) {
                let at = Origin {
                    source: &name,
                    info,
                    key: m.key,
                };
                self.load_event(inputs, is_edges, at, &mut line.to_vec(), max_line);
            }
        });
        self.follower = Some(follower);
    }

    /// One line of the topology (`is_edges`) or deploys: into the dataflow at its time, or
    /// dead-lettered.
    fn load_event(
        &mut self,
        inputs: &mut Inputs,
        is_edges: bool,
        at: Origin,
        line: &mut Vec<u8>,
        max_line: usize,
    ) {
        self.counts.read += 1;
        if is_edges {
            self.counts.topology += 1;
        } else {
            self.counts.deploys += 1;
        }
        // An event whose time the input has passed (followed live) takes effect now.
        let now = inputs.time();
        let result = if at.info.oversized {
            Err(oversized(max_line))
        } else if is_edges {
            decode_edge(line).map(|e| inputs.edges.update_at(e.clone(), e.timestamp.max(now), 1))
        } else {
            decode_deploy(line)
                .map(|d| inputs.deploys.update_at(d.clone(), d.timestamp.max(now), 1))
        };
        match result {
            Ok(()) => self.counts.valid += 1,
            Err(invalid) => self.refuse(inputs, at, invalid, line),
        }
    }
}

fn is_yaml(path: &std::path::Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// A static topology in YAML: `edges: [{caller: web, callee: checkout, namespace: shop}, ...]`,
/// valid from the beginning. An entry with an empty name stops the job with its position: a
/// topology file is configuration, not a stream.
fn static_yaml_topology(path: &std::path::Path) -> Result<Vec<EdgeChange>, JobError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        edges: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        caller: String,
        callee: String,
        namespace: Option<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| JobError::Input {
        what: "topology",
        name: path.display().to_string(),
        source,
    })?;
    let bad = |message: String| JobError::Config {
        path: path.to_owned(),
        message,
    };
    let file: File = serde_saphyr::from_str(&text)
        .map_err(|e| bad(e.to_string().lines().next().unwrap_or_default().to_string()))?;
    file.edges
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            if e.caller.trim().is_empty() || e.callee.trim().is_empty() {
                return Err(bad(format!("edge {} has an empty caller or callee", i + 1)));
            }
            Ok(EdgeChange {
                timestamp: 0,
                caller: std::sync::Arc::from(e.caller.as_str()),
                callee: std::sync::Arc::from(e.callee.as_str()),
                add: true,
                namespace: e.namespace.map(|n| std::sync::Arc::from(n.as_str())),
            })
        })
        .collect()
}

/// The records of a Kafka message (one record or a JSON Lines batch): each line that is not
/// blank, with its position (`offset`: the message's offset, `number`: the line in the message),
/// cut to `max_line` bytes (and then marked oversized).
fn message_lines(
    payload: &[u8],
    offset: i64,
    max_line: usize,
) -> impl Iterator<Item = (LineInfo, &[u8])> {
    payload
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(move |(i, line)| {
            let info = LineInfo {
                offset: offset.max(0) as u64,
                number: i as u64 + 1,
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

/// How many series the log names one by one before it only counts them.
const UNSCORED_NAMED: u64 = 5;

/// Says (in the log, and on `/metrics`) that the z-score cannot judge a series, and what to set.
fn warn_unscored(u: &Unscored, window_ms: Time, min_points: u64) {
    let n = METRICS.series_unscored();
    if n > UNSCORED_NAMED + 1 {
        return;
    }
    if n == UNSCORED_NAMED + 1 {
        tracing::warn!(
            "more series are sampled too sparsely for the z-score; they are counted on /metrics \
             (incidentflow_series_unscored_total) and in the summary"
        );
        return;
    }
    let s = &u.series;
    let every = match u.window_points {
        0 => format!("less than once in {}", format_duration(window_ms)),
        k => format!("about every {}", format_duration(window_ms / k)),
    };
    let needed = match u.window_points {
        0 => "a window many times longer".to_string(),
        k => format!(
            "baseline.window to at least {}",
            format_duration(window_ms.saturating_mul(min_points) / k)
        ),
    };
    tracing::warn!(
        series = %s.key(),
        "the z-score cannot judge this series: after {} samples its {} window holds {} of the \
         baseline.min_points = {} it needs (it is sampled {every}); set {needed}, or lower \
         baseline.min_points, or make a detector that counts samples, not time, the champion \
         ([detectors] champion = \"robust\")",
        UNSCORED_AFTER,
        format_duration(window_ms),
        u.window_points,
        min_points,
    );
}

#[cfg(test)]
mod tests {
    use super::progress_text;

    #[test]
    fn progress_shows_a_bar_or_a_log_clause() {
        let bar = progress_text("raw.metrics[0]", 500, Some(1000), 250.0, true);
        assert!(bar.contains("[###############---------------]"), "{bar}");
        assert!(bar.contains(" 50% 500/1000"), "{bar}");
        assert!(bar.ends_with("ETA 2s"), "{bar}");
        let line = progress_text("raw.metrics[0]", 1000, Some(1000), 0.0, false);
        assert_eq!(
            line,
            "raw.metrics[0] 1000/1000 (100%), 0 messages/s, caught up"
        );
        let unknown = progress_text("raw.metrics[1]", 7, None, 3.0, false);
        assert_eq!(unknown, "raw.metrics[1] 7, 3 messages/s");
    }
}
