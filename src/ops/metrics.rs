//! Self-monitoring: the process's counters and gauges, served with `/healthz` and `/ready` over
//! HTTP (`--metrics-addr`) in the Prometheus text format.
//!
//! One registry per process, made by `run` and handed to every part that counts (the feed, the
//! writers, the alert outputs, the side inputs, the HTTP endpoints): the feed publishes its
//! counts each time it steps the dataflow, the writers as they write, so a scrape costs the job
//! nothing. No label carries a series: the label sets are fixed (reasons, statuses, detectors)
//! or bounded by the partition count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use incidentflow_dataflows::records::{Reason, SourceCounts};

use crate::evaluate::feedback::FeedbackFigures;

/// Upper bounds (seconds) of the output delay histogram's buckets.
const DELAY_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Counters and gauges.
pub struct Metrics {
    counts: Mutex<SourceCounts>,
    dead_letters_written: AtomicU64,
    anomalies: Mutex<BTreeMap<&'static str, u64>>,
    incident_versions: Mutex<BTreeMap<&'static str, u64>>,
    open_incidents: AtomicU64,
    kafka_lag: Mutex<BTreeMap<String, i64>>,
    /// Event time (ms) the inputs have reached.
    input_time: AtomicU64,
    output_errors: AtomicU64,
    delay: Mutex<([u64; DELAY_BUCKETS.len()], u64, f64)>,
    /// The inputs are open and being read.
    inputs_connected: AtomicBool,
    /// A worker stopped with an error.
    worker_failed: AtomicBool,
    /// Alert requests by output and outcome (delivered, failed, rejected, dropped, suppressed).
    alert_deliveries: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// Alert requests tried again, by output.
    alert_retries: Mutex<BTreeMap<String, u64>>,
    /// Side-input lines refused, by side input (feedback, silences).
    side_input_refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Updates held in the arrangements of this process's workers.
    arrangement_records: AtomicI64,
    /// Series the z-score cannot judge, their windows too sparse.
    series_unscored: AtomicU64,
    /// The feedback book's figures, when the job reads feedback.
    feedback: Mutex<Option<FeedbackSource>>,
}

/// Where the feedback figures come from (the running job's book).
pub type FeedbackSource = Box<dyn Fn() -> FeedbackFigures + Send + Sync>;

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty registry.
    pub const fn new() -> Self {
        Metrics {
            counts: Mutex::new(SourceCounts {
                read: 0,
                valid: 0,
                dead: [0; Reason::ALL.len()],
                topology: 0,
                deploys: 0,
            }),
            dead_letters_written: AtomicU64::new(0),
            anomalies: Mutex::new(BTreeMap::new()),
            incident_versions: Mutex::new(BTreeMap::new()),
            open_incidents: AtomicU64::new(0),
            kafka_lag: Mutex::new(BTreeMap::new()),
            input_time: AtomicU64::new(0),
            output_errors: AtomicU64::new(0),
            delay: Mutex::new(([0; DELAY_BUCKETS.len()], 0, 0.0)),
            inputs_connected: AtomicBool::new(false),
            worker_failed: AtomicBool::new(false),
            alert_deliveries: Mutex::new(BTreeMap::new()),
            alert_retries: Mutex::new(BTreeMap::new()),
            side_input_refused: Mutex::new(BTreeMap::new()),
            arrangement_records: AtomicI64::new(0),
            series_unscored: AtomicU64::new(0),
            feedback: Mutex::new(None),
        }
    }

    /// The feedback figures on `/metrics` come from `source` (the job reads feedback).
    pub fn feedback_from(&self, source: FeedbackSource) {
        *lock(&self.feedback) = Some(source);
    }

    /// Whether a worker failed.
    pub fn has_failed_worker(&self) -> bool {
        self.worker_failed.load(Relaxed)
    }

    /// Whether the inputs are open.
    pub fn are_inputs_connected(&self) -> bool {
        self.inputs_connected.load(Relaxed)
    }

    /// Adds a worker's counts since its last report.
    pub fn add_counts(&self, delta: &SourceCounts) {
        lock(&self.counts).add(delta);
    }

    /// Dead letters written.
    pub fn dead_letters_written(&self, n: u64) {
        self.dead_letters_written.fetch_add(n, Relaxed);
    }

    /// Anomalies written.
    pub fn anomaly_written(&self, detector: &'static str) {
        *lock(&self.anomalies).entry(detector).or_default() += 1;
    }

    /// An incident version written, and how many incidents are open after it.
    pub fn incident_version(&self, status: &'static str, open: usize) {
        *lock(&self.incident_versions).entry(status).or_default() += 1;
        self.open_incidents.store(open as u64, Relaxed);
    }

    /// A Kafka partition's lag (messages behind its high watermark).
    pub fn kafka_lag(&self, partition: &str, lag: i64) {
        lock(&self.kafka_lag).insert(partition.to_owned(), lag);
    }

    /// The largest Kafka lag now (0 without Kafka).
    pub fn max_kafka_lag(&self) -> i64 {
        lock(&self.kafka_lag).values().copied().max().unwrap_or(0)
    }

    /// The event time the inputs have reached.
    pub fn input_time(&self, t: u64) {
        self.input_time.fetch_max(t, Relaxed);
    }

    /// An output failed.
    pub fn output_error(&self) {
        self.output_errors.fetch_add(1, Relaxed);
    }

    /// How long after its event time a record was written (wall clock minus event time).
    pub fn output_delay(&self, seconds: f64) {
        let mut d = lock(&self.delay);
        for (i, bound) in DELAY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                d.0[i] += 1;
            }
        }
        d.1 += 1;
        d.2 += seconds.max(0.0);
    }

    /// The inputs are open (or closed again).
    pub fn inputs_connected(&self, yes: bool) {
        self.inputs_connected.store(yes, Relaxed);
    }

    /// A worker failed: `/healthz` answers 503 from now on.
    pub fn worker_failed(&self) {
        self.worker_failed.store(true, Relaxed);
    }

    /// An alert request to `output` ended so (or a version was dropped or suppressed).
    pub fn alert_delivery(&self, output: &str, outcome: &'static str) {
        *lock(&self.alert_deliveries)
            .entry((output.to_owned(), outcome))
            .or_default() += 1;
    }

    /// An alert request to `output` is tried again.
    pub fn alert_retry(&self, output: &str) {
        *lock(&self.alert_retries)
            .entry(output.to_owned())
            .or_default() += 1;
    }

    /// A side-input line was refused (and logged with its position).
    pub fn side_input_refused(&self, what: &'static str) {
        *lock(&self.side_input_refused).entry(what).or_default() += 1;
    }

    /// One more series the z-score cannot judge; returns how many so far.
    pub fn series_unscored(&self) -> u64 {
        self.series_unscored.fetch_add(1, Relaxed) + 1
    }

    /// How many series the z-score cannot judge.
    pub fn unscored_series(&self) -> u64 {
        self.series_unscored.load(Relaxed)
    }

    /// Per alert output: its outcomes and retries so far.
    pub fn alert_counts(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        let mut out: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        for ((output, outcome), n) in lock(&self.alert_deliveries).iter() {
            out.entry(output.clone()).or_default().insert(outcome, *n);
        }
        for (output, n) in lock(&self.alert_retries).iter() {
            out.entry(output.clone()).or_default().insert("retries", *n);
        }
        out
    }

    /// The registry in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
            out +=
                &format!("# HELP incidentflow_{name} {help}\n# TYPE incidentflow_{name} {kind}\n");
            for (labels, value) in samples {
                out += &format!("incidentflow_{name}{labels} {value}\n");
            }
        };
        let counts = lock(&self.counts).clone();
        metric(
            "records_read_total",
            "counter",
            "Input records read (samples, topology and deploy events).",
            vec![(String::new(), counts.read as f64)],
        );
        metric(
            "records_in_total",
            "counter",
            "Input records read, by source: samples, topology (edges) and deploys (events).",
            vec![
                (
                    "{source=\"samples\"}".into(),
                    (counts.read - counts.topology - counts.deploys) as f64,
                ),
                ("{source=\"topology\"}".into(), counts.topology as f64),
                ("{source=\"deploys\"}".into(), counts.deploys as f64),
            ],
        );
        metric(
            "records_valid_total",
            "counter",
            "Input records processed.",
            vec![(String::new(), counts.valid as f64)],
        );
        metric(
            "records_invalid_total",
            "counter",
            "Input records refused, by reason (late ones under reason=\"late\").",
            Reason::ALL
                .iter()
                .zip(counts.dead.iter())
                .map(|(r, n)| (format!("{{reason=\"{}\"}}", r.as_str()), *n as f64))
                .collect(),
        );
        metric(
            "dead_letters_written_total",
            "counter",
            "Refused records written to the dead-letter output.",
            vec![(
                String::new(),
                self.dead_letters_written.load(Relaxed) as f64,
            )],
        );
        metric(
            "anomalies_total",
            "counter",
            "Anomaly events written, by detector (the champion's and the challengers').",
            {
                let written = lock(&self.anomalies).clone();
                incidentflow_dataflows::records::Detector::ALL
                    .iter()
                    .map(|d| {
                        (
                            format!("{{detector=\"{}\"}}", d.name()),
                            *written.get(d.name()).unwrap_or(&0) as f64,
                        )
                    })
                    .collect()
            },
        );
        let versions = lock(&self.incident_versions).clone();
        metric(
            "incident_versions_total",
            "counter",
            "Incident versions written, by status.",
            ["open", "updated", "resolved"]
                .iter()
                .map(|s| {
                    (
                        format!("{{status=\"{s}\"}}"),
                        *versions.get(s).unwrap_or(&0) as f64,
                    )
                })
                .collect(),
        );
        metric(
            "open_incidents",
            "gauge",
            "Incidents open now.",
            vec![(String::new(), self.open_incidents.load(Relaxed) as f64)],
        );
        metric(
            "kafka_lag_messages",
            "gauge",
            "Messages between a Kafka input partition's next offset and its high watermark.",
            lock(&self.kafka_lag)
                .iter()
                .map(|(p, lag)| (format!("{{partition=\"{p}\"}}"), *lag as f64))
                .collect(),
        );
        let input_time = self.input_time.load(Relaxed);
        let now = crate::ops::clock::now_ms();
        metric(
            "input_event_time_seconds",
            "gauge",
            "The event time the inputs have reached (the watermark), as a Unix time.",
            vec![(String::new(), input_time as f64 / 1000.0)],
        );
        metric(
            "watermark_lag_seconds",
            "gauge",
            "Wall clock minus the inputs' event time (live: how far behind the job is; replay: how old the data is).",
            vec![(String::new(), if input_time == 0 { 0.0 } else { now.saturating_sub(input_time) as f64 / 1000.0 })],
        );
        metric(
            "output_errors_total",
            "counter",
            "Output writes that failed.",
            vec![(String::new(), self.output_errors.load(Relaxed) as f64)],
        );
        metric(
            "alert_deliveries_total",
            "counter",
            "Alert requests by output and outcome: delivered, failed (retries exhausted), rejected (4xx), dropped (queue full), suppressed (by a silence).",
            lock(&self.alert_deliveries)
                .iter()
                .map(|((o, outcome), n)| (format!("{{output=\"{o}\",outcome=\"{outcome}\"}}"), *n as f64))
                .collect(),
        );
        metric(
            "alert_retries_total",
            "counter",
            "Alert requests tried again after a 5xx, 408, 429 or connection failure.",
            lock(&self.alert_retries)
                .iter()
                .map(|(o, n)| (format!("{{output=\"{o}\"}}"), *n as f64))
                .collect(),
        );
        metric(
            "arrangement_records",
            "gauge",
            "Updates held in the dataflow's arrangements (baselines, topology, incident state), summed over this process's workers.",
            vec![(String::new(), self.arrangement_records.load(Relaxed).max(0) as f64)],
        );
        metric(
            "side_input_refused_total",
            "counter",
            "Feedback labels and silences refused (each logged with its position and reason).",
            lock(&self.side_input_refused)
                .iter()
                .map(|(w, n)| (format!("{{input=\"{w}\"}}"), *n as f64))
                .collect(),
        );
        metric(
            "series_unscored_total",
            "counter",
            "Series the z-score cannot judge: after 100 samples their baseline window has never held baseline.min_points (sampled too sparsely for baseline.window; each is logged).",
            vec![(String::new(), self.unscored_series() as f64)],
        );
        let feedback = lock(&self.feedback)
            .as_ref()
            .map(|figures| figures())
            .unwrap_or_default();
        metric(
            "feedback_labels",
            "gauge",
            "Incidents labelled by responders, by label (the last label per incident).",
            feedback
                .by_label
                .iter()
                .map(|(l, n)| (format!("{{label=\"{l}\"}}"), *n as f64))
                .collect(),
        );
        metric(
            "feedback_coverage_ratio",
            "gauge",
            "Incidents labelled / incidents written.",
            vec![(String::new(), feedback.coverage)],
        );
        metric(
            "feedback_noisy_ratio",
            "gauge",
            "Incidents labelled noisy / incidents labelled.",
            vec![(String::new(), feedback.noisy_rate)],
        );
        metric(
            "feedback_root_cause_accuracy_ratio",
            "gauge",
            "Labels whose actual root cause the incident ranked first / labels that judge the cause, by label and over all (label=\"all\").",
            feedback
                .root_cause
                .iter()
                .map(|(l, j)| (format!("{{label=\"{l}\"}}"), j.accuracy))
                .collect(),
        );
        let (buckets, count, sum) = *lock(&self.delay);
        out += "# HELP incidentflow_output_delay_seconds Wall clock minus event time of each anomaly and incident version written.\n# TYPE incidentflow_output_delay_seconds histogram\n";
        for (bound, n) in DELAY_BUCKETS.iter().zip(buckets) {
            out += &format!("incidentflow_output_delay_seconds_bucket{{le=\"{bound}\"}} {n}\n");
        }
        out += &format!("incidentflow_output_delay_seconds_bucket{{le=\"+Inf\"}} {count}\nincidentflow_output_delay_seconds_sum {sum}\nincidentflow_output_delay_seconds_count {count}\n");
        out
    }
}

/// Follows the sizes of the worker's arrangements through differential's log: a batch adds its
/// updates, a completed merge replaces two batches by one, a drop removes one. Call before the
/// dataflow is built (its arrangements look the logger up when they are made).
pub fn track_arrangements(worker: &mut timely::worker::Worker, metrics: std::sync::Arc<Metrics>) {
    use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
    let Some(mut registry) = worker.log_register() else {
        return;
    };
    registry.insert::<DifferentialEventBuilder, _>("differential/arrange", move |_time, data| {
        let Some(events) = data else { return };
        let mut delta = 0i64;
        for (_, event) in events.iter() {
            match event {
                DifferentialEvent::Batch(b) => delta += b.length as i64,
                DifferentialEvent::Merge(m) => {
                    if let Some(merged) = m.complete {
                        delta += merged as i64 - (m.length1 + m.length2) as i64;
                    }
                }
                DifferentialEvent::Drop(d) => delta -= d.length as i64,
                _ => {}
            }
        }
        metrics.arrangement_records.fetch_add(delta, Relaxed);
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
