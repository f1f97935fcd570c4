//! Self-monitoring: the process's counters, gauges and histogram, in a `prometheus-client`
//! registry, served with `/healthz` and `/ready` over HTTP (`--metrics-addr`, see `http`) in the
//! OpenMetrics text format (label values escaped, see `escaped`).
//!
//! One registry per process, made by `run` and handed to every part that counts (the feed, the
//! writers, the alert outputs, the side inputs, the HTTP endpoints): the feed publishes its
//! counts each time it steps the dataflow, the writers as they write, so a scrape costs the job
//! nothing. No label carries a series: the label sets are fixed (reasons, statuses, detectors)
//! or bounded by the partition and alert output counts. What the job reads back itself (the
//! largest Kafka lag for `/ready`, the alert outcomes and unjudged series for the summary) is
//! kept beside the registry where a family cannot be read back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use incidentflow_dataflows::records::{Detector, Reason, SourceCounts};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use incidentflow_eval::feedback::FeedbackFigures;

/// Upper bounds (seconds) of the output delay histogram's buckets.
const DELAY_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// A label set: (name, value) pairs.
type Labels = Vec<(&'static str, String)>;
/// A gauge of a ratio or a time.
type FloatGauge = Gauge<f64, AtomicU64>;

/// Where the feedback figures come from (the running job's book).
pub type FeedbackSource = Box<dyn Fn() -> FeedbackFigures + Send + Sync>;

/// The registry and what the job reads back.
pub struct Metrics {
    registry: Registry,
    records_read: Counter,
    records_in: Family<Labels, Counter>,
    records_valid: Counter,
    records_invalid: Family<Labels, Counter>,
    dead_letters_written: Counter,
    remote_write_stale: Counter,
    remote_write_behind: Counter,
    anomalies: Family<Labels, Counter>,
    incident_versions: Family<Labels, Counter>,
    open_incidents: Gauge,
    kafka_lag_messages: Family<Labels, Gauge>,
    input_event_time: FloatGauge,
    watermark_lag: FloatGauge,
    output_errors: Counter,
    alert_deliveries_total: Family<Labels, Counter>,
    alert_retries_total: Family<Labels, Counter>,
    alert_thread_restarts_total: Family<Labels, Counter>,
    arrangement_records: Gauge,
    side_input_refused: Family<Labels, Counter>,
    series_unscored_total: Counter,
    feedback_labels: Family<Labels, Gauge>,
    feedback_coverage: FloatGauge,
    feedback_noisy: FloatGauge,
    feedback_accuracy: Family<Labels, FloatGauge>,
    output_delay: Histogram,
    /// Event time (ms) the inputs have reached.
    input_time: AtomicU64,
    /// Each Kafka partition's lag, for `/ready`.
    kafka_lag: Mutex<BTreeMap<String, i64>>,
    /// The inputs are open and being read.
    inputs_connected: AtomicBool,
    /// A worker stopped with an error.
    worker_failed: AtomicBool,
    /// Alert requests by output and outcome (delivered, failed, rejected, dropped, suppressed),
    /// and retries ("retries"), for the summary.
    alert_outcomes: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
    /// The feedback book's figures, when the job reads feedback.
    feedback: Mutex<Option<FeedbackSource>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn label(name: &'static str, value: &str) -> Labels {
    vec![(name, escaped(value))]
}

/// A label value as the text format wants it: `\`, `"` and line feeds escaped. Written here
/// because prometheus-client 0.24 writes label values as given (a `"` in an alert output's name
/// would break the whole scrape).
fn escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl Metrics {
    /// A registry with every metric at zero (the fixed label sets present from the start).
    pub fn new() -> Self {
        let m = Metrics {
            registry: Registry::with_prefix("incidentflow"),
            records_read: Counter::default(),
            records_in: Family::default(),
            records_valid: Counter::default(),
            records_invalid: Family::default(),
            dead_letters_written: Counter::default(),
            remote_write_stale: Counter::default(),
            remote_write_behind: Counter::default(),
            anomalies: Family::default(),
            incident_versions: Family::default(),
            open_incidents: Gauge::default(),
            kafka_lag_messages: Family::default(),
            input_event_time: FloatGauge::default(),
            watermark_lag: FloatGauge::default(),
            output_errors: Counter::default(),
            alert_deliveries_total: Family::default(),
            alert_retries_total: Family::default(),
            alert_thread_restarts_total: Family::default(),
            arrangement_records: Gauge::default(),
            side_input_refused: Family::default(),
            series_unscored_total: Counter::default(),
            feedback_labels: Family::default(),
            feedback_coverage: FloatGauge::default(),
            feedback_noisy: FloatGauge::default(),
            feedback_accuracy: Family::default(),
            output_delay: Histogram::new(DELAY_BUCKETS),
            input_time: AtomicU64::new(0),
            kafka_lag: Mutex::new(BTreeMap::new()),
            inputs_connected: AtomicBool::new(false),
            worker_failed: AtomicBool::new(false),
            alert_outcomes: Mutex::new(BTreeMap::new()),
            feedback: Mutex::new(None),
        };
        for source in ["samples", "topology", "deploys"] {
            let _ = m.records_in.get_or_create(&label("source", source));
        }
        for reason in Reason::ALL {
            let _ = m
                .records_invalid
                .get_or_create(&label("reason", reason.as_str()));
        }
        for detector in Detector::ALL {
            let _ = m
                .anomalies
                .get_or_create(&label("detector", detector.name()));
        }
        for status in ["open", "updated", "resolved"] {
            let _ = m.incident_versions.get_or_create(&label("status", status));
        }
        m.register()
    }

    // Long: one registration per metric with its help text, a list rather than logic.
    /// Registers every metric with its help text (the registry holds clones: the metrics are
    /// shared handles).
    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "remote_write_stale_markers",
            "Stale markers received by remote write (a series ended): skipped, not samples",
            self.remote_write_stale.clone(),
        );
        r.register(
            "remote_write_refused_behind",
            "Remote write requests answered 503 because the job was behind (the sender retries)",
            self.remote_write_behind.clone(),
        );
        r.register(
            "records_read",
            "Input records read (samples, topology and deploy events)",
            self.records_read.clone(),
        );
        r.register(
            "records_in",
            "Input records read, by source: samples, topology (edges) and deploys (events)",
            self.records_in.clone(),
        );
        r.register(
            "records_valid",
            "Input records processed",
            self.records_valid.clone(),
        );
        r.register(
            "records_invalid",
            "Input records refused, by reason (late ones under reason=\"late\")",
            self.records_invalid.clone(),
        );
        r.register(
            "dead_letters_written",
            "Refused records written to the dead-letter output",
            self.dead_letters_written.clone(),
        );
        r.register(
            "anomalies",
            "Anomaly events written, by detector (the champion's and the challengers')",
            self.anomalies.clone(),
        );
        r.register(
            "incident_versions",
            "Incident versions written, by status",
            self.incident_versions.clone(),
        );
        r.register(
            "open_incidents",
            "Incidents open now",
            self.open_incidents.clone(),
        );
        r.register(
            "kafka_lag_messages",
            "Messages between a Kafka input partition's next offset and its high watermark",
            self.kafka_lag_messages.clone(),
        );
        r.register(
            "input_event_time_seconds",
            "The event time the inputs have reached (the watermark), as a Unix time",
            self.input_event_time.clone(),
        );
        r.register(
            "watermark_lag_seconds",
            "Wall clock minus the inputs' event time (live: how far behind the job is; replay: how old the data is)",
            self.watermark_lag.clone(),
        );
        r.register(
            "output_errors",
            "Output writes that failed",
            self.output_errors.clone(),
        );
        r.register(
            "alert_deliveries",
            "Alert requests by output and outcome: delivered, failed (retries exhausted), rejected (4xx), dropped (queue full), suppressed (by a silence)",
            self.alert_deliveries_total.clone(),
        );
        r.register(
            "alert_retries",
            "Alert requests tried again after a 5xx, 408, 429 or connection failure",
            self.alert_retries_total.clone(),
        );
        r.register(
            "alert_thread_restarts",
            "Alert delivery threads restarted after a panic (the version in hand counted as failed)",
            self.alert_thread_restarts_total.clone(),
        );
        r.register(
            "arrangement_records",
            "Updates held in the dataflow's arrangements (baselines, topology, incident state), summed over this process's workers",
            self.arrangement_records.clone(),
        );
        r.register(
            "side_input_refused",
            "Feedback labels and silences refused (each logged with its position and reason)",
            self.side_input_refused.clone(),
        );
        r.register(
            "series_unscored",
            "Series the z-score cannot judge: after 100 samples their baseline window has never held baseline.min_points (sampled too sparsely for baseline.window; each is logged)",
            self.series_unscored_total.clone(),
        );
        r.register(
            "feedback_labels",
            "Incidents labelled by responders, by label (the last label per incident)",
            self.feedback_labels.clone(),
        );
        r.register(
            "feedback_coverage_ratio",
            "Incidents labelled / incidents written",
            self.feedback_coverage.clone(),
        );
        r.register(
            "feedback_noisy_ratio",
            "Incidents labelled noisy / incidents labelled",
            self.feedback_noisy.clone(),
        );
        r.register(
            "feedback_root_cause_accuracy_ratio",
            "Labels whose actual root cause the incident ranked first / labels that judge the cause, by label and over all (label=\"all\")",
            self.feedback_accuracy.clone(),
        );
        r.register(
            "output_delay_seconds",
            "Wall clock minus event time of each anomaly and incident version written",
            self.output_delay.clone(),
        );
        self
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
        self.records_read.inc_by(delta.read);
        self.records_valid.inc_by(delta.valid);
        let samples = delta.read - delta.topology - delta.deploys;
        for (source, n) in [
            ("samples", samples),
            ("topology", delta.topology),
            ("deploys", delta.deploys),
        ] {
            self.records_in
                .get_or_create(&label("source", source))
                .inc_by(n);
        }
        for (reason, n) in Reason::ALL.iter().zip(delta.dead.iter()) {
            self.records_invalid
                .get_or_create(&label("reason", reason.as_str()))
                .inc_by(*n);
        }
    }

    /// Stale markers a remote write request held.
    pub fn remote_write_stale(&self, n: u64) {
        self.remote_write_stale.inc_by(n);
    }

    /// A remote write request refused with 503: the queue was full.
    pub fn remote_write_behind(&self) {
        self.remote_write_behind.inc();
    }

    /// Dead letters written.
    pub fn dead_letters_written(&self, n: u64) {
        self.dead_letters_written.inc_by(n);
    }

    /// Anomalies written.
    pub fn anomaly_written(&self, detector: &'static str) {
        self.anomalies
            .get_or_create(&label("detector", detector))
            .inc();
    }

    /// An incident version written, and how many incidents are open after it.
    pub fn incident_version(&self, status: &'static str, open: usize) {
        self.incident_versions
            .get_or_create(&label("status", status))
            .inc();
        self.open_incidents.set(open as i64);
    }

    /// A Kafka partition's lag (messages behind its high watermark).
    pub fn kafka_lag(&self, partition: &str, lag: i64) {
        lock(&self.kafka_lag).insert(partition.to_owned(), lag);
        self.kafka_lag_messages
            .get_or_create(&label("partition", partition))
            .set(lag);
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
        self.output_errors.inc();
    }

    /// How long after its event time a record was written (wall clock minus event time).
    pub fn output_delay(&self, seconds: f64) {
        self.output_delay.observe(seconds.max(0.0));
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
        *lock(&self.alert_outcomes)
            .entry(output.to_owned())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
        self.alert_deliveries_total
            .get_or_create(&vec![
                ("output", escaped(output)),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// An alert request to `output` is tried again.
    pub fn alert_retry(&self, output: &str) {
        *lock(&self.alert_outcomes)
            .entry(output.to_owned())
            .or_default()
            .entry("retries")
            .or_default() += 1;
        self.alert_retries_total
            .get_or_create(&label("output", output))
            .inc();
    }

    /// An output's delivery thread panicked and was restarted.
    pub fn alert_thread_restart(&self, output: &str) {
        *lock(&self.alert_outcomes)
            .entry(output.to_owned())
            .or_default()
            .entry("thread_restarts")
            .or_default() += 1;
        self.alert_thread_restarts_total
            .get_or_create(&label("output", output))
            .inc();
    }

    /// A side-input line was refused (and logged with its position).
    pub fn side_input_refused(&self, what: &'static str) {
        self.side_input_refused
            .get_or_create(&label("input", what))
            .inc();
    }

    /// One more series the z-score cannot judge; returns how many so far.
    pub fn series_unscored(&self) -> u64 {
        self.series_unscored_total.inc() + 1
    }

    /// How many series the z-score cannot judge.
    pub fn unscored_series(&self) -> u64 {
        self.series_unscored_total.get()
    }

    /// Per alert output: its outcomes and retries so far.
    pub fn alert_counts(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        lock(&self.alert_outcomes).clone()
    }

    /// Updates held in the arrangements changed by `delta`.
    pub fn arrangement_records(&self, delta: i64) {
        self.arrangement_records.inc_by(delta);
    }

    /// The registry in the OpenMetrics text format, with the gauges that are read at a scrape
    /// (the watermark's lag, the feedback figures) brought up to date first.
    pub fn render(&self) -> String {
        let input_time = self.input_time.load(Relaxed);
        self.input_event_time.set(input_time as f64 / 1000.0);
        let lag = match input_time {
            0 => 0.0,
            t => crate::ops::clock::now_ms().saturating_sub(t) as f64 / 1000.0,
        };
        self.watermark_lag.set(lag);
        if let Some(figures) = lock(&self.feedback).as_ref().map(|f| f()) {
            for (l, n) in &figures.by_label {
                self.feedback_labels
                    .get_or_create(&label("label", l))
                    .set(*n as i64);
            }
            self.feedback_coverage.set(figures.coverage);
            self.feedback_noisy.set(figures.noisy_rate);
            for (l, judged) in &figures.root_cause {
                self.feedback_accuracy
                    .get_or_create(&label("label", l))
                    .set(judged.accuracy);
            }
        }
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = encode(&mut out, &self.registry);
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
        metrics.arrangement_records(delta);
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_counters_and_escapes_label_values() {
        let m = Metrics::new();
        m.add_counts(&SourceCounts {
            read: 3,
            valid: 2,
            dead: {
                let mut d = [0; Reason::ALL.len()];
                d[0] = 1;
                d
            },
            topology: 1,
            deploys: 0,
        });
        m.alert_delivery("pager \"a\"\nb\\", "delivered");
        let text = m.render();
        assert!(
            text.contains("# TYPE incidentflow_records_read counter"),
            "{text}"
        );
        assert!(text.contains("incidentflow_records_read_total 3"), "{text}");
        assert!(
            text.contains("incidentflow_records_in_total{source=\"samples\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(r#"output="pager \"a\"\nb\\""#),
            "label values are escaped: {text}"
        );
        assert!(text.contains("incidentflow_output_delay_seconds_bucket{le=\"0.1\"}"));
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(m.alert_counts()["pager \"a\"\nb\\"]["delivered"], 1);
    }
}
