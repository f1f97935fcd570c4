//! The job's dataflow, wired: starts the timely workers (threads, or a cluster of processes),
//! builds in each the pipeline of `incidentflow_dataflows` (samples to anomalies to incidents),
//! connects it to the feed (`ingest`) and to the writers (`emit`), and gathers the outcome.

use std::sync::{Arc, Mutex};

use differential_dataflow::input::InputSession;
use incidentflow_dataflows::annotate::SilenceRule;
use incidentflow_dataflows::baseline::BaselineConfig;
use incidentflow_dataflows::detectors::bank::{Unscored, UNSCORED_AFTER};
use incidentflow_dataflows::pipeline::{detect, incidents, CorrelationInputs};
use incidentflow_dataflows::records::{DeployEvent, EdgeChange, Sample};
use incidentflow_dataflows::time::{format_duration, Time};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Input, Probe};
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

use crate::config::JobConfig;
use crate::emit::dead_letters::{capped_letters, write_diagnostics, DeadLetterOutput};
use crate::emit::records::{
    write_anomalies, write_challengers, write_incidents, Challenger, Diagnostic, Durability,
    Listeners, Outcome, RecordOutput, WriterContext,
};
use crate::error::JobError;
use crate::ingest::feed::{DiagnosticInput, Feed, FeedSpec, Inputs};
use crate::ingest::files::InputSource;
use crate::ingest::silences::SilenceQueue;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::{self, ClusterSignals, Shutdown};

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
    /// Where the records come from, and how far to read.
    pub feed: FeedSpec,
    /// The pipeline's settings.
    pub config: JobConfig,
    /// Worker layout.
    pub cluster: Cluster,
    /// Whether to correlate anomalies into incidents (asked for by a topology, deploys or an
    /// incidents output).
    pub correlate: bool,
    /// Samples before this time are not scored (their baselines are not yet the ones an
    /// uninterrupted run had; see `BaselineConfig::score_from`).
    pub score_from: Time,
    /// Silences read from the side input (`--silences`), when given.
    pub silences: Option<SilenceQueue>,
    /// The process's metrics registry.
    pub metrics: Arc<Metrics>,
    /// The stop: asked for by a signal, and the writers' drain.
    pub shutdown: Shutdown,
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
    /// Who hears of each incident version written: the alert outputs, the feedback book.
    pub listeners: Listeners,
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
            spec.metrics.worker_failed();
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
    let mut outcome = outcome;
    outcome.counts.valid = outcome.counts.valid.saturating_sub(outcome.capped);
    Ok(outcome)
}

// Long: every stage is built in one timely scope (the dataflow closure), then fed; the parts are calls.
fn run_worker(
    worker: &mut Worker,
    spec: &RunSpec,
    outputs: Option<Outputs>,
    outcome: Arc<Mutex<Outcome>>,
) -> Result<(), JobError> {
    let zscore = BaselineConfig {
        score_from: spec.score_from,
        ..spec.config.baseline_config()
    };
    let detection = spec.config.detection_config();
    let correlation = spec.config.correlation_config();
    let probe = ProbeHandle::new();
    let (mut challenger_writer, mut listeners) = (None, None);
    let (anomaly_writer, dead_letter_writer, incident_writer, durability) = match outputs {
        Some(o) => {
            (challenger_writer, listeners) = (o.challengers, Some(o.listeners));
            (o.anomalies, o.dead_letter, o.incidents, o.durability)
        }
        None => (None, None, None, Durability::default()),
    };
    let writers = spec.shutdown.worker_writers();
    let context = WriterContext {
        outcome: outcome.clone(),
        durability,
        metrics: spec.metrics.clone(),
        writers: writers.clone(),
    };
    crate::ops::metrics::track_arrangements(worker, spec.metrics.clone());
    let worker_index = worker.index();
    let (mut inputs, signals) = worker.dataflow::<Time, _, _>(|scope| {
        let mut samples = InputSession::<Time, Sample, isize>::new();
        let mut edges_in = InputSession::<Time, EdgeChange, isize>::new();
        let mut deploys = InputSession::<Time, DeployEvent, isize>::new();
        let detected = detect(samples.to_collection(scope), &zscore, &detection);
        let anomalies = detected.champion.clone();
        let window = (zscore.window_ms, zscore.min_points);
        let unscored_metrics = spec.metrics.clone();
        detected
            .unscored
            .inspect(move |(u, _, _)| warn_unscored(u, window.0, window.1, &unscored_metrics));
        let mut silences = InputSession::<Time, SilenceRule, isize>::new();
        if spec.correlate {
            let inputs = CorrelationInputs {
                edges: edges_in.to_collection(scope).inner,
                deploys: deploys.to_collection(scope).inner,
                silences: silences.to_collection(scope).inner,
            };
            let incidents = incidents(
                detected.champion.clone(),
                inputs,
                &correlation,
                spec.config.annotator(),
            );
            write_incidents(
                incidents.probe_with(&probe),
                incident_writer,
                context.clone(),
                listeners.take().unwrap_or_default(),
            );
        }
        write_anomalies(
            anomalies.inner.probe_with(&probe),
            anomaly_writer,
            context.clone(),
        );
        if !detection.challengers.is_empty() {
            write_challengers(
                detected
                    .challengers
                    .inner
                    .map(|(a, t, r)| (Challenger(a), t, r))
                    .probe_with(&probe),
                challenger_writer.take(),
                context.clone(),
            );
        }
        let mut diagnostics = DiagnosticInput::new();
        let mut stream = scope.input_from(&mut diagnostics);
        if let Some(capped) = detected.capped {
            stream = stream.concat(capped_letters(capped));
        }
        write_diagnostics(
            stream.probe_with(&probe),
            dead_letter_writer,
            context.clone(),
        );
        let inputs = Inputs {
            samples,
            edges: edges_in,
            deploys,
            diagnostics,
            silences,
            silence_queue: spec.silences.clone().filter(|_| worker_index == 0),
        };
        (inputs, ClusterSignals::new(scope, &spec.shutdown))
    });

    let mut feed = Feed::new(
        worker.index(),
        worker.peers(),
        &spec.feed,
        &spec.config,
        spec.metrics.clone(),
        spec.shutdown.clone(),
    )?;
    if worker.index() == 0 {
        feed.load_events(&mut inputs)?;
    }
    feed.run(worker, &mut inputs, &probe)?;
    inputs
        .diagnostics
        .send(Diagnostic::Counts(feed.counts.clone()));
    // Remote write has no offsets to resume from: what was taken is finished, not drained.
    let resumable = !matches!(spec.feed.input, InputSource::RemoteWrite { .. });
    if spec.shutdown.requested() && resumable {
        inputs.flush();
        let later_process = spec.cluster.process_index != 0;
        let read_up_to = inputs.time();
        shutdown::drain(worker, read_up_to, &probe, later_process, &writers, signals);
    } else {
        drop(signals);
    }
    inputs.close();
    while !probe.done() {
        worker.step();
    }
    Ok(())
}

/// How many series the log names one by one before it only counts them.
const UNSCORED_NAMED: u64 = 5;

/// Says (in the log, and on `/metrics`) that the z-score cannot judge a series, and what to set.
fn warn_unscored(u: &Unscored, window_ms: Time, min_points: u64, metrics: &Metrics) {
    let n = metrics.series_unscored();
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
