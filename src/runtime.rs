//! The runtime: starts the timely workers (threads, or a cluster of processes), builds the
//! dataflow in each, feeds it from the file source, and gathers the outcome.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use differential_dataflow::input::InputSession;
use differential_dataflow::AsCollection;
use incidentflow_dataflows::decode::{decode_deploy, decode_edge, Decoder};
use incidentflow_dataflows::incident::track_incidents;
use incidentflow_dataflows::neighbourhood::{active_services, neighbourhoods};
use incidentflow_dataflows::pipeline::detect_anomalies;
use incidentflow_dataflows::records::{
    DeadLetter, DeployEvent, EdgeChange, Invalid, Reason, Sample,
};
use incidentflow_dataflows::time::{format_duration, format_rfc3339, Time};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::worker::Worker;

use crate::config::JobConfig;
use crate::error::JobError;
use crate::sink::{
    write_anomalies, write_diagnostics, write_incidents, DeadLetterOutput, Diagnostic, LineWriter,
    Outcome, SourceCounts,
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
}

/// The outputs, handed to worker 0 of process 0.
pub struct Outputs {
    /// Where anomalies go (None: only counted and summarised).
    pub anomalies: Option<LineWriter>,
    /// Where dead letters go.
    pub dead_letter: Option<DeadLetterOutput>,
    /// Where incident versions go (None: only summarised).
    pub incidents: Option<LineWriter>,
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
        run_worker(worker, &spec, mine, shared.clone())
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
    let zscore = spec.config.zscore_config();
    let correlation = spec.config.correlation_config();
    let probe = ProbeHandle::new();
    let (anomaly_writer, dead_letter_writer, incident_writer) = match outputs {
        Some(o) => (o.anomalies, o.dead_letter, o.incidents),
        None => (None, None, None),
    };
    let mut inputs = worker.dataflow::<Time, _, _>(|scope| {
        let mut samples = InputSession::<Time, Sample, isize>::new();
        let mut edges_in = InputSession::<Time, EdgeChange, isize>::new();
        let mut deploys = InputSession::<Time, DeployEvent, isize>::new();
        let anomalies = detect_anomalies(samples.to_collection(scope), &zscore);
        let edges = edges_in.to_collection(scope);
        let deploys_stream = deploys.to_collection(scope).inner;
        if spec.correlate {
            let pairs = edges
                .clone()
                .inner
                .map(|(e, t, r)| ((e.caller, e.callee), t, if e.add { r } else { -r }))
                .as_collection();
            let active = active_services(anomalies.clone(), correlation.window_ms);
            let labels = neighbourhoods(active, pairs, correlation.silent_intermediates);
            let incidents = track_incidents(
                labels,
                anomalies.clone(),
                edges.inner,
                deploys_stream,
                &correlation,
            );
            write_incidents(
                incidents.probe_with(&probe),
                incident_writer,
                outcome.clone(),
            );
        }
        write_anomalies(
            anomalies.inner.probe_with(&probe),
            anomaly_writer,
            outcome.clone(),
        );
        let mut diagnostics = DiagnosticInput::new();
        let stream = scope.input_from(&mut diagnostics);
        write_diagnostics(
            stream.probe_with(&probe),
            dead_letter_writer,
            outcome.clone(),
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
    inputs.close();
    while !probe.done() {
        worker.step();
    }
    Ok(())
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
        })
    }

    fn run(
        &mut self,
        worker: &mut Worker,
        inputs: &mut Inputs,
        probe: &ProbeHandle<Time>,
    ) -> Result<(), JobError> {
        self.peek_all()?;
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
                        self.refuse(inputs, &source, info, invalid, &mut line)
                    }
                }
                since_step += 1;
                // Step after a batch of records, and on a pipe before a read that may block, so
                // that what has arrived is processed (and its anomalies written) without waiting.
                if since_step == 16384 || (live && reader.drained()) {
                    since_step = 0;
                    self.advance(worker, inputs, probe);
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

    /// Counts a refused line and sends it to the dead-letter output.
    fn refuse(
        &mut self,
        inputs: &mut Inputs,
        source: &str,
        info: LineInfo,
        invalid: Invalid,
        line: &mut Vec<u8>,
    ) {
        self.counts.count_dead(invalid.reason);
        inputs.diagnostics.send(Diagnostic::DeadLetter(DeadLetter {
            source: source.to_owned(),
            line: info.number,
            offset: info.offset,
            invalid,
            raw: std::mem::take(line),
            truncated: info.oversized,
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
        for state in self.owned.iter().filter(|s| !s.finished) {
            let watermark = state.newest?.saturating_sub(self.lateness);
            low = Some(low.map_or(watermark, |l| l.min(watermark)));
        }
        // With every partition finished there is nothing to advance to: closing the input does it.
        low.map(|l| l / self.tick * self.tick)
    }

    fn advance(&mut self, worker: &mut Worker, inputs: &mut Inputs, probe: &ProbeHandle<Time>) {
        if let Some(low) = self.low_watermark() {
            if low > inputs.time() {
                inputs.advance_to(low);
                inputs.flush();
                let behind = low.saturating_sub(self.max_lag);
                worker.step_while(|| probe.less_than(&behind));
            }
        }
        inputs.flush();
        worker.step();
    }

    /// Reads the topology and deploy files (worker 0 only; they are small) and puts every valid
    /// event into the dataflow at its own time, refused lines into the dead-letter output.
    fn load_events(&mut self, inputs: &mut Inputs) -> Result<(), JobError> {
        let max_line = self.spec.config.input.max_line_bytes as usize;
        for (path, is_edges) in [(&self.spec.topology, true), (&self.spec.deploys, false)] {
            let Some(path) = path else { continue };
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
                self.counts.read += 1;
                let result = if info.oversized {
                    Err(oversized(max_line))
                } else if is_edges {
                    decode_edge(&line).map(|e| inputs.edges.update_at(e.clone(), e.timestamp, 1))
                } else {
                    decode_deploy(&line)
                        .map(|d| inputs.deploys.update_at(d.clone(), d.timestamp, 1))
                };
                match result {
                    Ok(()) => self.counts.valid += 1,
                    Err(invalid) => self.refuse(inputs, &name, info, invalid, &mut line),
                }
            }
        }
        Ok(())
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
