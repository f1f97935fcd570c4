//! The job's settings (`--config job.toml`, the environment, the flags): what the pipeline
//! computes and how it runs beside the rest of the stack. Flags describe the run (inputs,
//! outputs, workers); the file describes the detection, the Kafka topics and the operational
//! sections. Every section and key is optional; unknown keys are rejected with the key's name and
//! where it came from. `incidentflow config print-default` prints `default.toml`.

mod check;
pub mod layers;
pub mod operations;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use incidentflow_dataflows::records::Detector;

use incidentflow_dataflows::annotate::Annotator;
pub use operations::{AlertKind, AlertOutput};
use operations::{MetricsSection, Runbook, Secret, Silence};

use incidentflow_dataflows::time::{format_duration, parse_duration};

use crate::error::JobError;
use incidentflow_dataflows::baseline::BaselineConfig;
use incidentflow_dataflows::incident::CorrelationConfig;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as text (`30m`, `10s`, `1h30m`), held in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Millis(pub u64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Millis)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

/// The whole job file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    /// The rolling baselines every detector reads.
    pub baseline: BaselineSection,
    /// The rolling z-score detector.
    pub zscore: ZScoreSection,
    /// Which detector is the champion, which are challengers.
    pub detectors: DetectorsSection,
    /// Event time: lateness and the progress tick.
    pub time: TimeSection,
    /// How input files are read.
    pub input: InputSection,
    /// Bounds on what the job keeps.
    pub limits: LimitsSection,
    /// How a remote write series' labels become the sample's fields.
    pub remote_write: RemoteWriteSection,
    /// The topology from traces (`--spans`).
    pub traces: TracesSection,
    /// How anomalies become incidents.
    pub correlation: CorrelationSection,
    /// The Kafka brokers and topics used when an input or output is `kafka`.
    pub kafka: KafkaSection,
    /// Self-monitoring over HTTP.
    pub metrics: MetricsSection,
    /// Alert outputs by name.
    pub alerts: BTreeMap<String, AlertOutput>,
    /// Runbook links and recommended actions for incident patterns.
    pub runbooks: Vec<Runbook>,
    /// Maintenance windows and silences.
    pub silences: Vec<Silence>,
}

/// The commented default job file (`incidentflow config print-default`).
pub const DEFAULT_FILE: &str = include_str!("default.toml");

/// `[kafka]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSection {
    /// Bootstrap servers, `host:port[,host:port...]` (`--kafka-brokers` overrides).
    pub brokers: String,
    /// Samples in.
    pub samples_topic: String,
    /// Topology edges in.
    pub topology_topic: String,
    /// Spans (`--spans kafka`): OTLP JSON, as the Collector's Kafka exporter writes with
    /// `encoding: otlp_json`.
    pub spans_topic: String,
    /// Deploy events in.
    pub deploys_topic: String,
    /// Anomalies out (key: the series).
    pub anomalies_topic: String,
    /// Incident versions out (key: the incident id).
    pub incidents_topic: String,
    /// Responder feedback labels in (`--feedback kafka`).
    pub feedback_topic: String,
    /// The challengers' anomalies out (`--challengers-out kafka`; key: the series).
    pub challengers_topic: String,
    /// Silences in (`--silences kafka`).
    pub silences_topic: String,
    /// A partition with no record for this long (wall clock) stops holding event time back: its
    /// watermark then follows the clock, and records that come later than that are late.
    pub idle_timeout: Millis,
    /// plaintext, ssl, sasl_plaintext or sasl_ssl.
    pub security_protocol: String,
    /// With SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub sasl_mechanism: String,
    /// With SASL: the user.
    pub sasl_username: String,
    /// Secret, with SASL: the password (environment or `sasl_password_file` only).
    #[serde(skip_serializing_if = "Secret::is_unset")]
    pub sasl_password: Secret,
    /// A file holding `sasl_password`.
    pub sasl_password_file: Option<PathBuf>,
    /// With TLS: a PEM file of the CA certificates to trust; empty: the system's.
    pub ssl_ca_location: String,
}

impl Default for KafkaSection {
    fn default() -> Self {
        KafkaSection {
            brokers: "127.0.0.1:9092".into(),
            samples_topic: "raw.metrics".into(),
            topology_topic: "raw.topology".into(),
            spans_topic: "otlp_spans".into(),
            deploys_topic: "raw.deploys".into(),
            anomalies_topic: "aiops.anomalies".into(),
            incidents_topic: "aiops.incidents".into(),
            feedback_topic: "aiops.feedback".into(),
            challengers_topic: "aiops.anomalies.challengers".into(),
            silences_topic: "aiops.silences".into(),
            idle_timeout: Millis(5_000),
            security_protocol: "plaintext".into(),
            sasl_mechanism: String::new(),
            sasl_username: String::new(),
            sasl_password: Secret::default(),
            sasl_password_file: None,
            ssl_ca_location: String::new(),
        }
    }
}

/// `[correlation]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationSection {
    /// How long an incident stays open after the last of its anomalies that keep it alive ends.
    pub grace: Millis,
    /// An anomaly joins an incident only if it began within this long of its onset; incidents
    /// merge only if their onsets are this close.
    pub merge_window: Millis,
    /// The longest an incident stays open.
    pub max_duration: Millis,
    /// The least event time between two `updated` versions of one incident.
    pub update_interval: Millis,
    /// Whether a service with no anomaly may link two anomalous services it has edges to.
    pub silent_intermediates: bool,
    /// How long before a service's first anomaly a deploy of it counts as evidence.
    pub deploy_lookback: Millis,
    /// Opens an incident: an anomaly scoring at least this...
    pub strong_score: f64,
    /// ...or anomalies on this many metrics of one service at once (0: not evidence)...
    pub min_metrics: u32,
    /// ...or this many connected anomalous services (0: not evidence)...
    pub min_services: u32,
    /// ...or a deploy of an anomalous service within deploy_lookback before its anomaly.
    pub deploy_opens: bool,
    /// An anomaly that joins an incident keeps it open only once it scores at least this.
    pub keep_alive_score: f64,
}

impl Default for CorrelationSection {
    fn default() -> Self {
        let d = CorrelationConfig::default();
        CorrelationSection {
            grace: Millis(d.grace_ms),
            merge_window: Millis(d.merge_window_ms),
            max_duration: Millis(d.max_duration_ms),
            update_interval: Millis(d.update_interval_ms),
            silent_intermediates: d.silent_intermediates,
            deploy_lookback: Millis(d.deploy_lookback_ms),
            strong_score: d.strong_score_milli as f64 / 1000.0,
            min_metrics: d.min_metrics,
            min_services: d.min_services,
            deploy_opens: d.deploy_opens,
            keep_alive_score: d.keep_alive_milli as f64 / 1000.0,
        }
    }
}

/// `[baseline]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineSection {
    /// Length of the rolling window a sample is compared with.
    pub window: Millis,
    /// Fewest samples in the window before a series is scored.
    pub min_points: u64,
}

impl Default for BaselineSection {
    fn default() -> Self {
        BaselineSection {
            window: Millis(30 * 60 * 1000),
            min_points: 20,
        }
    }
}

/// `[detectors]`: the champion (its anomalies feed correlation and the alerts) and the
/// challengers (run in shadow on the same baseline; their anomalies go to `--challengers-out`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorsSection {
    /// change, zscore, robust, level_shift, trend or seasonal.
    pub champion: Detector,
    /// Any of them but the champion.
    pub challengers: Vec<Detector>,
    /// An open episode that is still anomalous reports at least this often (event time), so that
    /// incidents know it goes on: one silent for two of these stops keeping its incident open.
    pub update_every: Millis,
}

impl Default for DetectorsSection {
    fn default() -> Self {
        let d = incidentflow_dataflows::detectors::bank::DetectionConfig::default();
        DetectorsSection {
            champion: d.champion,
            challengers: d.challengers,
            update_every: Millis(d.update_every_ms),
        }
    }
}

/// `[zscore]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZScoreSection {
    /// A sample is anomalous when |value - mean| / stddev exceeds this.
    pub threshold: f64,
}

impl Default for ZScoreSection {
    fn default() -> Self {
        ZScoreSection { threshold: 4.0 }
    }
}

/// `[time]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeSection {
    /// How far behind the newest record of its partition a record may be and still be processed
    /// at its own time; older records are dead-lettered as `late`.
    pub allowed_lateness: Millis,
    /// Granularity of progress: the input frontier advances in steps of this size. Records keep
    /// their exact millisecond times; a larger tick costs latency and saves coordination.
    pub tick: Millis,
    /// How far ahead of the wall clock, or (in a file or on standard input) of its partition's
    /// newest record, a record may be; further ones are dead-lettered as `future` (a host with a
    /// wrong clock), unless the records after them confirm a gap in the data.
    pub max_ahead: Millis,
}

impl Default for TimeSection {
    fn default() -> Self {
        TimeSection {
            allowed_lateness: Millis(10_000),
            tick: Millis(1000),
            max_ahead: Millis(3_600_000),
        }
    }
}

/// `[limits]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// A series silent this long (or ten of its own intervals, when longer) is forgotten: its
    /// rate and detector states are freed, and it comes back cold if it returns. `0s`: never.
    pub forget_after: Millis,
    /// Most active series in one namespace (0: no cap); a new series past it is refused
    /// (dead-lettered as `cardinality`) until it has room, the series already in keep working.
    pub series_per_namespace: u64,
    /// Most active series in the whole job, all processes together (0: no cap).
    pub series: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            forget_after: Millis(6 * 3_600_000),
            series_per_namespace: 0,
            series: 0,
        }
    }
}

/// `[remote_write]`: how a series' labels become the sample's fields.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteSection {
    /// The label that names the namespace.
    pub namespace_label: String,
    /// The namespace of series without that label.
    pub default_namespace: String,
    /// The labels that name the service, the first present wins (Prometheus's `job` last).
    pub service_labels: Vec<String>,
    /// The label that names the metric.
    pub metric_label: String,
    /// Requests queued for the dataflow before the receiver answers 503 (the sender retries).
    pub queue: usize,
}

impl Default for RemoteWriteSection {
    fn default() -> Self {
        RemoteWriteSection {
            namespace_label: "namespace".into(),
            default_namespace: "default".into(),
            service_labels: vec!["service".into(), "job".into()],
            metric_label: "__name__".into(),
            queue: 64,
        }
    }
}

/// `[traces]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesSection {
    /// An edge derived from spans is removed when no span has shown it for this long (`0s`:
    /// never).
    pub edge_expiry: Millis,
}

impl Default for TracesSection {
    fn default() -> Self {
        TracesSection {
            edge_expiry: Millis(3_600_000),
        }
    }
}

/// `[input]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputSection {
    /// Longest accepted line in bytes; longer lines are dead-lettered as `oversized`.
    pub max_line_bytes: u64,
    /// Files are cut into partitions of this many bytes (at line boundaries), shared out among the
    /// workers. Lateness is judged within a partition, as within a Kafka partition, so the result
    /// does not depend on the worker count.
    pub partition_bytes: u64,
}

impl Default for InputSection {
    fn default() -> Self {
        InputSection {
            max_line_bytes: 1 << 20,
            partition_bytes: 4 << 20,
        }
    }
}

impl JobConfig {
    /// The defaults, under the job file (if any), under the `INCIDENTFLOW__SECTION__KEY`
    /// variables of `env`; secrets read from their `*_file`s; checked.
    pub fn load_layered(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<JobConfig, JobError> {
        let config_error = |message: String| match path {
            Some(path) => JobError::Config {
                path: path.to_owned(),
                message,
            },
            None => JobError::Settings(message),
        };
        let mut merged = toml::Table::new();
        if let Some(path) = path {
            let text =
                std::fs::read_to_string(path).map_err(|source| JobError::ConfigUnreadable {
                    path: path.to_owned(),
                    source,
                })?;
            let file = layers::file_layer(&text).map_err(config_error)?;
            Self::from_table(file.clone()).map_err(config_error)?;
            merged = file;
        }
        let env = layers::env_layer(env).map_err(JobError::Settings)?;
        if !env.is_empty() {
            Self::from_table(env.clone())
                .map_err(|e| JobError::Settings(format!("environment (INCIDENTFLOW__...): {e}")))?;
            layers::merge(&mut merged, env);
        }
        let mut config = Self::from_table(merged).map_err(config_error)?;
        config.read_secret_files().map_err(config_error)?;
        config.check().map_err(config_error)?;
        Ok(config)
    }

    fn from_table(table: toml::Table) -> Result<JobConfig, String> {
        JobConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Parses and checks job file text.
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<JobConfig, String> {
        let mut config = Self::from_table(layers::file_layer(text)?)?;
        config.read_secret_files()?;
        config.check()?;
        Ok(config)
    }

    /// Fills each unset secret from its `*_file`; the message names the key and the file, never
    /// the content.
    fn read_secret_files(&mut self) -> Result<(), String> {
        let read = |key: String, path: &Path| -> Result<Secret, String> {
            std::fs::read_to_string(path)
                .map(|text| Secret::new(text.trim()))
                .map_err(|e| format!("{key} {}: cannot read it: {e}", path.display()))
        };
        let kafka = &mut self.kafka;
        if let (false, Some(path)) = (kafka.sasl_password.is_set(), &kafka.sasl_password_file) {
            kafka.sasl_password = read("kafka.sasl_password_file".into(), path)?;
        }
        for (name, alert) in &mut self.alerts {
            if let (false, Some(path)) = (alert.webhook_url.is_set(), &alert.webhook_url_file) {
                alert.webhook_url = read(format!("alerts.{name}.webhook_url_file"), path)?;
            }
            if let (false, Some(path)) = (alert.routing_key.is_set(), &alert.routing_key_file) {
                alert.routing_key = read(format!("alerts.{name}.routing_key_file"), path)?;
            }
        }
        Ok(())
    }

    /// The runbooks and silences the dataflow adds to incident versions (checked settings: a
    /// silence whose times do not parse was refused by [`JobConfig::check`]).
    pub fn annotator(&self) -> Annotator {
        let silences = self.silences.iter().filter_map(|s| s.rule("").ok());
        Annotator::new(self.runbooks.clone(), silences.collect())
    }

    /// The correlation settings handed to the dataflow.
    pub fn correlation_config(&self) -> CorrelationConfig {
        let milli = |score: f64| (score.clamp(0.0, 1.0) * 1000.0).round() as u32;
        let c = &self.correlation;
        CorrelationConfig {
            grace_ms: c.grace.0,
            merge_window_ms: c.merge_window.0,
            max_duration_ms: c.max_duration.0,
            update_interval_ms: c.update_interval.0,
            silent_intermediates: c.silent_intermediates,
            deploy_lookback_ms: c.deploy_lookback.0,
            strong_score_milli: milli(c.strong_score),
            min_metrics: c.min_metrics,
            min_services: c.min_services,
            deploy_opens: c.deploy_opens,
            keep_alive_milli: milli(c.keep_alive_score),
            heartbeat_ms: self.detectors.update_every.0,
        }
    }

    /// The champion and challengers handed to the dataflow.
    pub fn detection_config(&self) -> incidentflow_dataflows::detectors::bank::DetectionConfig {
        incidentflow_dataflows::detectors::bank::DetectionConfig {
            champion: self.detectors.champion,
            challengers: self.detectors.challengers.clone(),
            update_every_ms: self.detectors.update_every.0,
            forget_after_ms: self.limits.forget_after.0,
            series_caps: incidentflow_dataflows::limits::SeriesCaps {
                per_namespace: self.limits.series_per_namespace,
                total: self.limits.series,
                forget_after: self.limits.forget_after.0,
            },
        }
    }

    /// The detector settings handed to the dataflow.
    pub fn baseline_config(&self) -> BaselineConfig {
        BaselineConfig {
            window_ms: self.baseline.window.0,
            min_points: self.baseline.min_points,
            threshold: self.zscore.threshold,
            score_from: 0,
        }
    }
}

#[cfg(test)]
mod tests;
