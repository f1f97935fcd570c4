//! Record sinks: anomalies, challengers and incident versions, written by worker 0 of process 0
//! so that one file holds the whole job's output whatever the worker and process count.
//!
//! Records are written in event-time order as the frontier completes each time, and in a fixed
//! order within a time, so the files are byte-identical across worker and process counts. Dead
//! letters are [`crate::emit::dead_letters`]'.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::{Arc, Mutex};

use incidentflow_dataflows::held::{Held, Update};
use incidentflow_dataflows::incident::Incident;
use incidentflow_dataflows::records::{Anomaly, DeadLetter, SourceCounts};
use incidentflow_dataflows::time::Time;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::cli::Target;
use crate::ops::metrics::Metrics;

/// How many anomalies the end-of-run summary keeps to show.
const SHOWN_ANOMALIES_KEPT: usize = 10_000;

/// How many incident versions the end-of-run review keeps: a live job must not keep them all
/// (an incident version holds its anomalies; ten thousand of them were tens of megabytes).
pub const SHOWN_VERSIONS_KEPT: usize = 1_000;

/// What sources send beside the samples: refused records and, at the end, their counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Diagnostic {
    /// A refused record.
    DeadLetter(DeadLetter),
    /// A sample refused by a cardinality cap after it was read and counted valid: a dead
    /// letter that moves one record from valid to dead-lettered.
    Capped(DeadLetter),
    /// A worker's final counts.
    Counts(SourceCounts),
    /// A Kafka partition's progress: every record before `next_offset` is in the dataflow, and
    /// none is later than `newest` (its direct outputs are durable once the checkpoint passes it).
    Mark {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The next offset to read.
        next_offset: i64,
        /// The newest timestamp read from the partition.
        newest: Time,
    },
}

/// What the job found and did, filled in by worker 0's sinks and read at exit.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Counts summed over every worker of every process.
    pub counts: SourceCounts,
    /// Of the records counted valid, those a cardinality cap refused since (they are counted
    /// dead-lettered too; taken off the valid ones when the run ends, when all counts are in).
    pub capped: u64,
    /// Anomalies written.
    pub anomalies: u64,
    /// The first anomalies, in output order, for the summary.
    pub shown: Vec<Anomaly>,
    /// Dead letters written.
    pub dead_letters_written: u64,
    /// Incident versions written.
    pub incident_versions: u64,
    /// Incidents opened (their first versions written).
    pub incidents_opened: u64,
    /// Challengers' anomaly events written.
    pub challenger_anomalies: u64,
    /// The first incident versions ([`SHOWN_VERSIONS_KEPT`]), for the review printed at the end.
    pub incidents: Vec<Incident>,
    /// The first output error; the job exits non-zero when set.
    pub error: Option<String>,
}

/// A line-oriented output: a file or standard output.
pub type LineWriter = Box<dyn Write + Send>;

/// Where anomalies or incident versions go: lines (a file or standard output) or a Kafka topic,
/// keyed.
pub enum RecordOutput {
    /// JSON Lines, to the file (or `-`) named first.
    Lines(String, LineWriter),
    /// A topic; every record with its key.
    Kafka(crate::emit::kafka::TopicSink),
}

impl RecordOutput {
    fn write(&mut self, records: &[(String, String)]) -> Result<(), String> {
        match self {
            RecordOutput::Lines(_, w) => {
                let mut text = String::new();
                for (_, json) in records {
                    text.push_str(json);
                    text.push('\n');
                }
                w.write_all(text.as_bytes())
                    .and_then(|_| w.flush())
                    .map_err(|e| e.to_string())
            }
            RecordOutput::Kafka(sink) => {
                for (key, json) in records {
                    sink.send(key, json)?;
                }
                Ok(())
            }
        }
    }

    /// Makes everything written durable (Kafka: waits for every delivery).
    fn finish(&mut self) -> Result<(), String> {
        match self {
            RecordOutput::Lines(_, w) => w.flush().map_err(|e| e.to_string()),
            RecordOutput::Kafka(sink) => sink.flush(),
        }
    }
}

/// Opens standard output (`-`) or a new file (a topic is not lines: see `RecordOutput::Kafka`).
pub fn open_output(target: &Target) -> io::Result<LineWriter> {
    match target {
        Target::Stdio => Ok(Box::new(BufWriter::with_capacity(1 << 16, io::stdout()))),
        Target::File(path) => Ok(Box::new(BufWriter::with_capacity(
            1 << 16,
            File::create(path)?,
        ))),
        Target::Kafka => Err(io::Error::other("kafka is a topic, not lines")),
    }
}

/// A record the time-ordered sinks write as one JSON line.
pub trait OutputRecord:
    Clone + Send + serde::Serialize + for<'de> serde::Deserialize<'de> + 'static
{
    /// What the records are called in error messages.
    const WHAT: &'static str;
    /// The order within one time (so the output is the same at every worker count).
    fn order(&self, other: &Self) -> std::cmp::Ordering;
    /// The JSON line.
    fn to_json(&self) -> String;
    /// The Kafka key: the series for an anomaly, the incident id for an incident.
    fn key(&self) -> String;
    /// Notes written records in the outcome.
    fn record(outcome: &mut Outcome, written: Vec<Self>);
    /// Keeps `open` (incident id → the start of its history) up to date with `record`, so that
    /// a checkpoint can say how far back a restart must read to rebuild what is open.
    fn note_open(_open: &mut BTreeMap<String, Time>, _record: &Self) {}
    /// Counts the written record in the process's metrics (`open`: incidents open after it).
    fn count(&self, metrics: &Metrics, open: usize);
    /// The record is written: tell who listens (incident versions: the alert outputs and the
    /// feedback book).
    fn written(&self, _listeners: &Listeners) {}
}

/// Who is told of each incident version written.
#[derive(Default)]
pub struct Listeners {
    /// The alert outputs' queues (None: no alert outputs, or a replay).
    pub alerts: Option<crate::alerts::AlertSender>,
    /// The running job's feedback book (None: no `--feedback`).
    pub feedback: Option<Arc<crate::ops::feedback_book::FeedbackBook>>,
}

impl OutputRecord for Anomaly {
    const WHAT: &'static str = "anomalies";
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        let (x, y) = (&self.series, &other.series);
        // Down to the value and the episode: two events of one series at one time (two samples
        // at the same millisecond) come in one order at every worker count.
        (
            &x.namespace,
            &x.service,
            &x.metric_name,
            &x.labels,
            self.detector,
            self.value,
            self.episode,
        )
            .cmp(&(
                &y.namespace,
                &y.service,
                &y.metric_name,
                &y.labels,
                other.detector,
                other.value,
                other.episode,
            ))
    }
    fn to_json(&self) -> String {
        Anomaly::to_json(self)
    }
    fn key(&self) -> String {
        self.series.key()
    }
    fn count(&self, metrics: &Metrics, _open: usize) {
        metrics.anomaly_written(self.detector.name());
    }
    fn record(outcome: &mut Outcome, written: Vec<Self>) {
        outcome.anomalies += written.len() as u64;
        let room = SHOWN_ANOMALIES_KEPT.saturating_sub(outcome.shown.len());
        outcome.shown.extend(written.into_iter().take(room));
    }
}

/// A challenger's anomaly: written to its own output (`--challengers-out`), checkpointed apart.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Challenger(pub Anomaly);

impl OutputRecord for Challenger {
    const WHAT: &'static str = "challengers";
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        self.0.order(&other.0)
    }
    fn to_json(&self) -> String {
        self.0.to_json()
    }
    fn key(&self) -> String {
        self.0.key()
    }
    fn count(&self, metrics: &Metrics, _open: usize) {
        metrics.anomaly_written(self.0.detector.name());
    }
    fn record(outcome: &mut Outcome, written: Vec<Self>) {
        outcome.challenger_anomalies += written.len() as u64;
    }
}

impl OutputRecord for Incident {
    const WHAT: &'static str = "incidents";
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        (&self.incident_id, self.version).cmp(&(&other.incident_id, other.version))
    }
    fn to_json(&self) -> String {
        Incident::to_json(self)
    }
    fn key(&self) -> String {
        self.incident_id.clone()
    }
    fn record(outcome: &mut Outcome, written: Vec<Self>) {
        outcome.incident_versions += written.len() as u64;
        outcome.incidents_opened += written.iter().filter(|v| v.version == 1).count() as u64;
        let room = SHOWN_VERSIONS_KEPT.saturating_sub(outcome.incidents.len());
        outcome.incidents.extend(written.into_iter().take(room));
    }
    fn count(&self, metrics: &Metrics, open: usize) {
        metrics.incident_version(self.status.as_str(), open);
    }
    fn written(&self, listeners: &Listeners) {
        if let Some(alerts) = &listeners.alerts {
            alerts.offer(self);
        }
        if let Some(book) = &listeners.feedback {
            book.saw(self);
        }
    }
    fn note_open(open: &mut BTreeMap<String, Time>, record: &Self) {
        use incidentflow_dataflows::incident::Status;
        if record.status == Status::Resolved {
            open.remove(&record.incident_id);
        } else if !open.contains_key(&record.incident_id) {
            // A split-off part's history starts where its parent's did.
            let parent = record.split_from.as_ref().and_then(|p| open.get(p));
            let since = parent.copied().unwrap_or(record.created_at);
            open.insert(record.incident_id.clone(), since.min(record.created_at));
        }
    }
}

/// Where a restarted run takes up its outputs, and who records how far they are durable.
#[derive(Clone, Default)]
pub struct Durability {
    /// Per output (by name), where the earlier run left it: records before `durable_before` were
    /// written by it (count them, do not write them again), and a file output was `bytes` long.
    pub resume: BTreeMap<String, crate::emit::checkpoint::OutputMark>,
    /// A replay writes only records in [from, until) of event time (the rest is counted).
    pub window: Option<(Time, Time)>,
    /// Keeps the checkpoint file (None: no `--checkpoint`).
    pub checkpointer: Option<Arc<Mutex<crate::emit::checkpoint::Checkpointer>>>,
}

/// What every writer of a worker shares: the run's outcome, the durability settings, the
/// metrics, and the worker's writers to drain on a stop.
#[derive(Clone)]
pub struct WriterContext {
    /// What the run found, filled in as records are written.
    pub outcome: Arc<Mutex<Outcome>>,
    /// Resuming from a checkpoint, and keeping one.
    pub durability: Durability,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// This worker's writers, woken to drain on a stop.
    pub writers: crate::ops::shutdown::WorkerWriters,
}

/// Writes anomalies (exchanged to worker 0) in time order as times complete.
pub fn write_anomalies(
    stream: Stream<'_, Time, Vec<(Anomaly, Time, isize)>>,
    out: Option<RecordOutput>,
    context: WriterContext,
) {
    write_in_time_order(stream, out, context, Listeners::default())
}

/// Writes the challengers' anomalies (exchanged to worker 0) in time order as times complete.
pub fn write_challengers(
    stream: Stream<'_, Time, Vec<(Challenger, Time, isize)>>,
    out: Option<RecordOutput>,
    context: WriterContext,
) {
    write_in_time_order(stream, out, context, Listeners::default())
}

/// Writes incident versions (made on worker 0) in time order as times complete, and offers each
/// written version to the alert outputs and the feedback book.
pub fn write_incidents(
    stream: Stream<'_, Time, Vec<(Incident, Time, isize)>>,
    out: Option<RecordOutput>,
    context: WriterContext,
    listeners: Listeners,
) {
    write_in_time_order(stream, out, context, listeners)
}

/// Writes records (exchanged to worker 0) in event-time order as times complete, each time's
/// records in their fixed order, flushing at once: they are few, and their readers want them now.
// Long: one timely operator, whose state (pending records, the checkpoint marks, the drain) lives in its closure.
fn write_in_time_order<D: OutputRecord>(
    stream: Stream<'_, Time, Vec<(D, Time, isize)>>,
    mut out: Option<RecordOutput>,
    context: WriterContext,
    listeners: Listeners,
) {
    let WriterContext {
        outcome,
        durability,
        metrics,
        writers,
    } = context;
    let mut held: Held<D> = Held::default();
    let mut ready: Vec<Update<D>> = Vec::new();
    // Open incidents and where their histories start (see `OutputRecord::note_open`).
    let mut open: BTreeMap<String, Time> = BTreeMap::new();
    let file_output = matches!(out, Some(RecordOutput::Lines(..)));
    // Where it goes, for messages.
    let destination = match &out {
        Some(RecordOutput::Lines(name, _)) => name.clone(),
        Some(RecordOutput::Kafka(_)) => "its topic".to_string(),
        None => String::new(),
    };
    // Set at the first failed write: nothing is reported durable after it.
    let mut failed = false;
    let resume = durability.resume.get(D::WHAT).cloned().unwrap_or_default();
    let mut bytes: u64 = resume.bytes.unwrap_or(0);
    let mut reported_done = false;
    // The latest time written: at the end of input the outputs are durable just past it (not
    // "for ever": a topic that grows may give later times to a later run).
    let mut latest: Time = 0;
    // What this output last reported durable, and when: it reports at most once per checkpoint
    // interval, and asks to be woken when it has more to report and nothing else would wake it.
    let mut reported: Time = resume.durable_before;
    let mut last_report: Option<std::time::Instant> = None;
    let every = durability.checkpointer.as_ref().map(|c| {
        c.lock()
            .map_or(std::time::Duration::from_secs(1), |c| c.every())
    });
    let scope = stream.scope();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Exchange::new(|_: &(D, Time, isize)| 0u64),
        D::WHAT,
        move |_capability, info| {
            let activator = scope.activator_for(info.address.clone());
            writers.register(activator.clone());
            let mut drained = false;
            move |(input, frontier), _output| {
                input.for_each(|capability, data| {
                    if let Some(cap) = capability.retain_least(0) {
                        held.hold(cap, std::mem::take(data));
                    }
                });
                if drained || failed {
                    // Stopped at a signal, or the output failed: what is past the checkpoint is
                    // read again on restart.
                    held.clear();
                    return;
                }
                let mut lines: Vec<(String, String)> = Vec::new();
                let mut written = Vec::new();
                let now_ms = crate::ops::clock::now_ms();
                held.release(frontier.frontier(), &mut ready);
                held.settle(frontier.frontier());
                ready.sort_by(|(a, at, _), (b, bt, _)| at.cmp(bt).then_with(|| a.order(b)));
                for (record, time, copies) in ready.drain(..) {
                    latest = latest.max(time);
                    D::note_open(&mut open, &record);
                    for _ in 0..copies.max(0) {
                        // Written by the run this one restarts: the same record, already out.
                        let inside = durability
                            .window
                            .is_none_or(|(from, until)| from <= time && time < until);
                        if time >= resume.durable_before && inside {
                            lines.push((record.key(), record.to_json()));
                            record.count(&metrics, open.len());
                            metrics.output_delay(now_ms.saturating_sub(time) as f64 / 1000.0);
                            written.push(record.clone());
                        }
                    }
                }
                let finished = frontier.is_empty();
                // Asked to stop: write what is complete, checkpoint at the frontier, stop there.
                let stop_here = writers.draining() && !finished;
                // Every record before this is written (and flushed when reported).
                let before = match frontier.frontier().first() {
                    Some(t) => *t,
                    None => latest.saturating_add(1).max(resume.durable_before),
                };
                let checkpoint_due = stop_here
                    || every.is_some_and(|every| {
                        let since = last_report.map(|at| at.elapsed());
                        let due = since.is_none_or(|s| s >= every);
                        if before > reported && !due {
                            activator.activate_after(every - since.unwrap_or_default());
                        }
                        before > reported && due
                    });
                if written.is_empty() && !finished && !checkpoint_due {
                    return;
                }
                if finished && reported_done {
                    return;
                }
                let mut outcome = outcome.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(w) = out.as_mut() {
                    let result = w.write(&lines).and_then(|_| {
                        if finished || checkpoint_due {
                            w.finish()
                        } else {
                            Ok(())
                        }
                    });
                    if let Err(e) = result {
                        let why = format!(
                            "cannot write {} to {destination}: {e}; the job stops, and the \
                             checkpoint stays at what was written before",
                            D::WHAT
                        );
                        tracing::error!("{why}");
                        outcome.error.get_or_insert(why);
                        metrics.output_error();
                        out = None;
                        failed = true;
                        // Stop reading: a restart (with --checkpoint) resumes where the output
                        // was last durable, and nothing is lost.
                        writers.output_failed();
                        drained = true;
                        writers.drained(); // nothing more to drain: it stopped here
                        return; // not durable: the checkpoint stays where it was
                    }
                    bytes += lines.iter().map(|(_, l)| l.len() as u64 + 1).sum::<u64>();
                }
                // Written (and flushed): now the receivers may hear of it.
                for record in &written {
                    record.written(&listeners);
                }
                D::record(&mut outcome, written);
                if let Some(checkpointer) = &durability.checkpointer {
                    if finished || checkpoint_due {
                        // Every record before `before` is written and flushed (delivered).
                        let size = file_output.then_some(bytes);
                        let mut c = checkpointer.lock().unwrap_or_else(|p| p.into_inner());
                        if finished {
                            c.output_done(D::WHAT);
                        }
                        let open_since = open.values().min().copied();
                        if let Err(e) = c.durable(D::WHAT, before, size, open_since) {
                            outcome.error.get_or_insert(e);
                        }
                        reported = before;
                        last_report = Some(std::time::Instant::now());
                    }
                }
                if finished {
                    reported_done = true;
                    out = None; // flushed and closed
                }
                if stop_here {
                    drained = true;
                    out = None; // flushed, and checkpointed at `before`
                    writers.drained();
                }
            }
        },
    );
}
