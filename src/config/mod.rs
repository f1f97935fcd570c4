//! The job's settings (`--config job.toml`, the environment, the flags): what the pipeline
//! computes and how it runs beside the rest of the stack. Flags describe the run (inputs,
//! outputs, workers); the file describes the detection, the Kafka topics and the operational
//! sections. Every section and key is optional; unknown keys are rejected with the key's name and
//! where it came from. `incidentflow config print-default` prints `default.toml`.

pub mod layers;
pub mod operations;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use incidentflow_dataflows::records::Detector;

pub use operations::{AlertKind, AlertOutput};
use operations::{MetricsSection, Runbook, Secret, Silence};

use incidentflow_dataflows::time::{format_duration, parse_duration};

use crate::error::JobError;
use incidentflow_dataflows::incident::CorrelationConfig;
use incidentflow_dataflows::zscore::BaselineConfig;
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

/// Checks that `value` is an http(s) URL with a host; a `secret` one is not shown.
fn check_url(key: &str, value: &str, secret: bool) -> Result<(), String> {
    let shown = if secret {
        "(hidden)".to_string()
    } else {
        format!("{value:?}")
    };
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest {
        None if value.is_empty() => Err(format!("{key} is missing")),
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!(
            "{key} is {shown}; it must be an http:// or https:// URL with a host"
        )),
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
}

impl Default for TimeSection {
    fn default() -> Self {
        TimeSection {
            allowed_lateness: Millis(10_000),
            tick: Millis(1000),
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

    /// Checks value ranges; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if self
            .detectors
            .challengers
            .contains(&self.detectors.champion)
        {
            return Err(format!(
                "detectors.challengers names the champion {}: a detector is one or the other",
                self.detectors.champion.name()
            ));
        }
        if self.baseline.window.0 == 0 {
            return Err("baseline.window must be longer than 0s".into());
        }
        if self.baseline.min_points < 2 {
            return Err(format!(
                "baseline.min_points is {}; it must be at least 2 (a stddev needs two points)",
                self.baseline.min_points
            ));
        }
        if !(self.zscore.threshold.is_finite() && self.zscore.threshold > 0.0) {
            return Err(format!(
                "zscore.threshold is {}; it must be a number above 0",
                self.zscore.threshold
            ));
        }
        if self.correlation.max_duration.0 == 0 {
            return Err("correlation.max_duration must be longer than 0s".into());
        }
        if self.time.tick.0 == 0 {
            return Err("time.tick must be at least 1ms".into());
        }
        if self.input.max_line_bytes < 256 {
            return Err(format!(
                "input.max_line_bytes is {}; it must be at least 256",
                self.input.max_line_bytes
            ));
        }
        if self.input.partition_bytes < 4096 {
            return Err(format!(
                "input.partition_bytes is {}; it must be at least 4096",
                self.input.partition_bytes
            ));
        }
        for (key, score) in [
            ("strong_score", self.correlation.strong_score),
            ("keep_alive_score", self.correlation.keep_alive_score),
        ] {
            if !(0.0..=1.0).contains(&score) {
                return Err(format!(
                    "correlation.{key} is {score}; it must be between 0 and 1"
                ));
            }
        }
        self.check_kafka()?;
        self.check_operations()
    }

    fn check_kafka(&self) -> Result<(), String> {
        let k = &self.kafka;
        if k.brokers.split(',').any(|b| {
            let b = b.trim();
            b.rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        }) {
            return Err(format!(
                "kafka.brokers is {:?}; it must be host:port[,host:port...]",
                k.brokers
            ));
        }
        for (key, topic) in [
            ("samples_topic", &k.samples_topic),
            ("topology_topic", &k.topology_topic),
            ("deploys_topic", &k.deploys_topic),
            ("anomalies_topic", &k.anomalies_topic),
            ("incidents_topic", &k.incidents_topic),
            ("feedback_topic", &k.feedback_topic),
            ("challengers_topic", &k.challengers_topic),
            ("silences_topic", &k.silences_topic),
        ] {
            let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if topic.is_empty()
                || topic.len() > 249
                || !topic.chars().all(legal)
                || topic == "."
                || topic == ".."
            {
                return Err(format!(
                    "kafka.{key} is {topic:?}; a topic name is 1 to 249 of a-z A-Z 0-9 . _ -"
                ));
            }
        }
        let sasl = match k.security_protocol.as_str() {
            "plaintext" | "ssl" => false,
            "sasl_plaintext" | "sasl_ssl" => true,
            other => {
                return Err(format!(
                    "kafka.security_protocol is {other:?}; say plaintext, ssl, sasl_plaintext or sasl_ssl"
                ))
            }
        };
        if sasl {
            if !matches!(
                k.sasl_mechanism.as_str(),
                "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"
            ) {
                return Err(format!(
                    "kafka.sasl_mechanism is {:?}; with {} say PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                    k.sasl_mechanism, k.security_protocol
                ));
            }
            if k.sasl_username.is_empty() {
                return Err(format!(
                    "kafka.sasl_username is missing: {} needs it",
                    k.security_protocol
                ));
            }
            if !k.sasl_password.is_set() {
                return Err("kafka.sasl_password is missing: set INCIDENTFLOW__KAFKA__SASL_PASSWORD or kafka.sasl_password_file".into());
            }
        } else if !k.sasl_mechanism.is_empty() || !k.sasl_username.is_empty() {
            return Err(format!(
                "kafka.sasl_mechanism and sasl_username need security_protocol sasl_plaintext or sasl_ssl (it is {})",
                k.security_protocol
            ));
        }
        Ok(())
    }

    /// The librdkafka settings for the brokers' security (none for plaintext).
    pub fn kafka_security(&self) -> Vec<(&'static str, String)> {
        let k = &self.kafka;
        let mut out = vec![("security.protocol", k.security_protocol.clone())];
        if k.security_protocol.starts_with("sasl") {
            out.push(("sasl.mechanisms", k.sasl_mechanism.clone()));
            out.push(("sasl.username", k.sasl_username.clone()));
            out.push(("sasl.password", k.sasl_password.expose().to_string()));
        }
        if k.security_protocol.ends_with("ssl") && !k.ssl_ca_location.is_empty() {
            out.push(("ssl.ca.location", k.ssl_ca_location.clone()));
        }
        out
    }

    fn check_operations(&self) -> Result<(), String> {
        if !self.metrics.addr.is_empty()
            && self.metrics.addr.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(format!(
                "metrics.addr is {:?}; it must be host:port with an IP address, e.g. 0.0.0.0:9100",
                self.metrics.addr
            ));
        }
        for (name, alert) in &self.alerts {
            let key = |k: &str| format!("alerts.{name}.{k}");
            let Some(kind) = alert.kind else {
                return Err(format!(
                    "{} is missing: say alertmanager, pagerduty, webhook or slack",
                    key("kind")
                ));
            };
            match kind {
                AlertKind::Alertmanager => check_url(&key("url"), &alert.url, false)?,
                AlertKind::Pagerduty => {
                    if !alert.url.is_empty() {
                        check_url(&key("url"), &alert.url, false)?;
                    }
                    if !alert.routing_key.is_set() {
                        return Err(format!(
                            "{} is missing: set {} or {}",
                            key("routing_key"),
                            layers::env_name(&key("routing_key")),
                            key("routing_key_file")
                        ));
                    }
                }
                AlertKind::Webhook | AlertKind::Slack => {
                    if !alert.webhook_url.is_set() {
                        return Err(format!(
                            "{} is missing: set {} or {}",
                            key("webhook_url"),
                            layers::env_name(&key("webhook_url")),
                            key("webhook_url_file")
                        ));
                    }
                    check_url(&key("webhook_url"), alert.webhook_url.expose(), true)?;
                }
            }
            if alert.timeout.0 == 0 {
                return Err(format!("{} must be longer than 0s", key("timeout")));
            }
            if alert.retries > 20 {
                return Err(format!(
                    "{} is {}; at most 20 (with backoff doubling to 30 s, that is ten minutes)",
                    key("retries"),
                    alert.retries
                ));
            }
            if kind == AlertKind::Alertmanager && alert.resend_interval.0 < 1000 {
                return Err(format!("{} must be at least 1s", key("resend_interval")));
            }
        }
        for (i, r) in self.runbooks.iter().enumerate() {
            let at = format!("runbooks[{i}]");
            if r.url.is_empty() && r.action.is_empty() {
                return Err(format!("{at} has neither url nor action"));
            }
            if !r.url.is_empty() {
                check_url(&format!("{at}.url"), &r.url, false)?;
            }
            if !matches!(r.direction.as_str(), "" | "up" | "down") {
                return Err(format!(
                    "{at}.direction is {:?}; it must be up, down or left out",
                    r.direction
                ));
            }
        }
        for (i, s) in self.silences.iter().enumerate() {
            let at = format!("silences[{i}]");
            let time = |k: &str, v: &str| {
                incidentflow_dataflows::time::parse_rfc3339(v).map_err(|e| {
                    use incidentflow_dataflows::time::TimestampError::{Absurd, Unparseable};
                    let (Absurd(why) | Unparseable(why)) = e;
                    format!("{at}.{k} is {v:?}: {why} (use RFC 3339, e.g. 2026-11-23T01:00:00Z)")
                })
            };
            let (start, end) = (time("start", &s.start)?, time("end", &s.end)?);
            if start >= end {
                return Err(format!("{at}: end must be later than start"));
            }
        }
        Ok(())
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
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        let c = JobConfig::parse("").unwrap();
        assert_eq!(c, JobConfig::default());
        assert_eq!(c.baseline_config(), BaselineConfig::default());
    }

    #[test]
    fn values_are_read() {
        let c = JobConfig::parse("[baseline]\nwindow = \"1h\"\nmin_points = 12\n[zscore]\nthreshold = 4.5\n[time]\nallowed_lateness = \"2m\"\n").unwrap();
        assert_eq!(c.baseline.window, Millis(3_600_000));
        assert_eq!(c.baseline_config().min_points, 12);
        assert_eq!(c.zscore.threshold, 4.5);
        assert_eq!(c.time.allowed_lateness, Millis(120_000));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = JobConfig::parse("[baseline]\nwindo = \"1h\"\n").unwrap_err();
        assert!(e.contains("unknown field `windo`"), "{e}");
        let e = JobConfig::parse("[baseline]\nwindow = \"1 hour\"\n").unwrap_err();
        assert!(e.contains("unknown unit"), "{e}");
        let e = JobConfig::parse("[zscore]\nthreshold = -1.0\n").unwrap_err();
        assert!(e.contains("zscore.threshold"), "{e}");
        let e = JobConfig::parse("[baseline]\nmin_points = 1\n").unwrap_err();
        assert!(e.contains("baseline.min_points"), "{e}");
    }

    #[test]
    fn the_default_file_is_the_defaults_with_every_key_explained() {
        let parsed = JobConfig::parse(DEFAULT_FILE).unwrap();
        assert_eq!(parsed, JobConfig::default());
        // Every key of every section appears, with a comment line above it (or on it).
        let defaults = toml::Table::try_from(JobConfig::default()).unwrap();
        let lines: Vec<&str> = DEFAULT_FILE.lines().collect();
        for (section, table) in &defaults {
            let Some(table) = table.as_table().filter(|t| !t.is_empty()) else {
                continue; // alerts: shown as examples below
            };
            let header = format!("[{section}]");
            let start = lines.iter().position(|l| *l == header);
            let start = start.unwrap_or_else(|| panic!("{header} is missing"));
            for key in table.keys() {
                let at = lines[start..]
                    .iter()
                    .position(|l| l.starts_with(&format!("{key} =")))
                    .unwrap_or_else(|| panic!("{section}.{key} is missing"));
                // Keys may share the comment above a group of them.
                let above = lines[..start + at]
                    .iter()
                    .rev()
                    .find(|l| !l.contains(" = ") || l.starts_with('#'));
                assert!(
                    above.is_some_and(|l| l.starts_with('#')),
                    "{section}.{key} has no comment"
                );
            }
        }
        // The sections that are empty by default are shown as commented examples, which parse.
        let examples: String = DEFAULT_FILE
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.starts_with('[')
                    || l.split_once('=')
                        .is_some_and(|(k, _)| !k.trim().contains(' ') && !k.trim().is_empty())
            })
            .collect::<Vec<_>>()
            .join("\n");
        let table: toml::Table = toml::from_str(&examples).unwrap();
        let example = JobConfig::from_table(table).unwrap();
        assert_eq!(example.alerts.len(), 3);
        assert_eq!(example.runbooks.len(), 1);
        assert_eq!(example.silences.len(), 1);
    }

    #[test]
    fn the_environment_overrides_the_file_and_is_named_when_wrong() {
        let dir = std::env::temp_dir().join(format!("incidentflow-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("job.toml");
        std::fs::write(
            &file,
            "[zscore]\nthreshold = 5.0\n[baseline]\nmin_points = 10\n",
        )
        .unwrap();
        let env = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let c = JobConfig::load_layered(
            Some(&file),
            env(&[("INCIDENTFLOW__ZSCORE__THRESHOLD", "6.5")]),
        )
        .unwrap();
        assert_eq!(
            c.zscore.threshold, 6.5,
            "the environment wins over the file"
        );
        assert_eq!(c.baseline.min_points, 10, "the file wins over the defaults");
        assert_eq!(
            c.baseline.window,
            Millis(30 * 60_000),
            "defaults fill the rest"
        );
        let e = JobConfig::load_layered(
            Some(&file),
            env(&[("INCIDENTFLOW__ZSCORE__TRESHOLD", "6.5")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("environment") && e.contains("unknown field `treshold`"),
            "{e}"
        );
        std::fs::write(&file, "[zscore]\ntreshold = 5.0\n").unwrap();
        let e = JobConfig::load_layered(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("job.toml") && e.contains("unknown field `treshold`"),
            "{e}"
        );
        // A secret from a file, never shown.
        let key_file = dir.join("pd-key");
        std::fs::write(&key_file, "R0UTINGKEY\n").unwrap();
        let text = format!(
            "[alerts.pd]\nkind = \"pagerduty\"\nrouting_key_file = \"{}\"\n",
            key_file.display()
        );
        std::fs::write(&file, text).unwrap();
        let c = JobConfig::load_layered(Some(&file), env(&[])).unwrap();
        assert_eq!(c.alerts["pd"].routing_key.expose(), "R0UTINGKEY");
        assert!(!format!("{c:?}").contains("R0UTINGKEY"));
        assert!(!toml::to_string(&c).unwrap().contains("R0UTINGKEY"));
        // Or from the environment.
        std::fs::write(&file, "[alerts.pd]\nkind = \"pagerduty\"\n").unwrap();
        let c = JobConfig::load_layered(
            Some(&file),
            env(&[("INCIDENTFLOW__ALERTS__PD__ROUTING_KEY", "FR0MENV")]),
        )
        .unwrap();
        assert_eq!(c.alerts["pd"].routing_key.expose(), "FR0MENV");
        // The Kafka SASL password: from a file, handed to librdkafka, never shown.
        let password_file = dir.join("kafka-password");
        std::fs::write(&password_file, "PA55WORD\n").unwrap();
        let text = format!(
            "[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"job\"\nsasl_password_file = \"{}\"\n",
            password_file.display()
        );
        std::fs::write(&file, text).unwrap();
        let c = JobConfig::load_layered(Some(&file), env(&[])).unwrap();
        assert!(c
            .kafka_security()
            .contains(&("sasl.password", "PA55WORD".to_string())));
        assert!(!format!("{c:?}").contains("PA55WORD"));
        assert!(!toml::to_string(&c).unwrap().contains("PA55WORD"));
        // ...and refused in the job file itself.
        std::fs::write(&file, "[kafka]\nsasl_password = \"PA55WORD\"\n").unwrap();
        let e = JobConfig::load_layered(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sasl_password") && !e.contains("PA55WORD"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_validation_error_names_the_key_and_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("[baseline]\nwindow = \"0s\"\n", "baseline.window must be longer than 0s"),
            ("[baseline]\nmin_points = 1\n", "baseline.min_points is 1; it must be at least 2"),
            ("[zscore]\nthreshold = 0.0\n", "zscore.threshold is 0; it must be a number above 0"),
            ("[correlation]\nmax_duration = \"0s\"\n", "correlation.max_duration must be longer than 0s"),
            ("[correlation]\nkeep_alive_score = -1.0\n", "correlation.keep_alive_score is -1; it must be between 0 and 1"),
            ("[correlation]\nstrong_score = 1.5\n", "correlation.strong_score is 1.5; it must be between 0 and 1"),
            ("[time]\ntick = \"0s\"\n", "time.tick must be at least 1ms"),
            ("[input]\nmax_line_bytes = 10\n", "input.max_line_bytes is 10; it must be at least 256"),
            ("[input]\npartition_bytes = 10\n", "input.partition_bytes is 10; it must be at least 4096"),
            ("[kafka]\nbrokers = \"kafka\"\n", "kafka.brokers is \"kafka\"; it must be host:port"),
            ("[kafka]\nsamples_topic = \"raw metrics\"\n", "kafka.samples_topic is \"raw metrics\"; a topic name is 1 to 249 of"),
            ("[kafka]\nincidents_topic = \"\"\n", "kafka.incidents_topic is \"\""),
            ("[metrics]\naddr = \"localhost\"\n", "metrics.addr is \"localhost\"; it must be host:port with an IP address"),
            ("[alerts.x]\nurl = \"http://am:9093\"\n", "alerts.x.kind is missing: say alertmanager, pagerduty, webhook or slack"),
            ("[alerts.x]\nkind = \"opsgenie\"\n", "unknown variant `opsgenie`, expected one of `alertmanager`, `pagerduty`, `webhook`, `slack`"),
            ("[alerts.x]\nkind = \"alertmanager\"\n", "alerts.x.url is missing"),
            ("[alerts.x]\nkind = \"alertmanager\"\nurl = \"am:9093\"\n", "alerts.x.url is \"am:9093\"; it must be an http:// or https:// URL with a host"),
            ("[alerts.x]\nkind = \"pagerduty\"\n", "alerts.x.routing_key is missing: set INCIDENTFLOW__ALERTS__X__ROUTING_KEY or alerts.x.routing_key_file"),
            ("[alerts.x]\nkind = \"slack\"\n", "alerts.x.webhook_url is missing: set INCIDENTFLOW__ALERTS__X__WEBHOOK_URL or alerts.x.webhook_url_file"),
            ("[alerts.x]\nkind = \"webhook\"\nwebhook_url_file = \"/nonexistent/hook\"\n", "alerts.x.webhook_url_file /nonexistent/hook: cannot read it"),
            ("[alerts.x]\nkind = \"alertmanager\"\nurl = \"http://am\"\ntimeout = \"0s\"\n", "alerts.x.timeout must be longer than 0s"),
            ("[alerts.x]\nkind = \"alertmanager\"\nurl = \"http://am\"\nretries = 50\n", "alerts.x.retries is 50; at most 20"),
            ("[detectors]\nchampion = \"robust\"\nchallengers = [\"zscore\", \"robust\"]\n", "detectors.challengers names the champion robust: a detector is one or the other"),
            ("[detectors]\nchallengers = [\"prophet\"]\n", "unknown variant `prophet`, expected one of `zscore`, `robust`, `level_shift`, `trend`, `seasonal`"),
            ("[kafka]\nsecurity_protocol = \"tls\"\n", "kafka.security_protocol is \"tls\"; say plaintext, ssl, sasl_plaintext or sasl_ssl"),
            ("[kafka]\nsecurity_protocol = \"sasl_ssl\"\n", "kafka.sasl_mechanism is \"\"; with sasl_ssl say PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
            ("[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\n", "kafka.sasl_username is missing: sasl_ssl needs it"),
            ("[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"job\"\n", "kafka.sasl_password is missing: set INCIDENTFLOW__KAFKA__SASL_PASSWORD or kafka.sasl_password_file"),
            ("[kafka]\nsasl_username = \"job\"\n", "kafka.sasl_mechanism and sasl_username need security_protocol sasl_plaintext or sasl_ssl (it is plaintext)"),
            ("[alerts.x]\nkind = \"alertmanager\"\nurl = \"http://am\"\nresend_interval = \"10ms\"\n", "alerts.x.resend_interval must be at least 1s"),
            ("[alerts.x]\nkind = \"webhook\"\nwebhook_url = \"http://hook\"\n", "alerts.x.webhook_url is a secret and does not belong in the job file"),
            ("[[runbooks]]\nname = \"r\"\n", "runbooks[0] has neither url nor action"),
            ("[[runbooks]]\nurl = \"wiki/db\"\n", "runbooks[0].url is \"wiki/db\"; it must be an http:// or https:// URL"),
            ("[[runbooks]]\naction = \"a\"\ndirection = \"sideways\"\n", "runbooks[0].direction is \"sideways\"; it must be up, down or left out"),
            ("[[silences]]\nstart = \"tomorrow\"\nend = \"2026-11-25T03:00:00Z\"\n", "silences[0].start is \"tomorrow\""),
            ("[[silences]]\nstart = \"2026-11-25T03:00:00Z\"\nend = \"2026-11-25T01:00:00Z\"\n", "silences[0]: end must be later than start"),
            ("[zscore]\nthreshold = \"high\"\n", "invalid type: string \"high\", expected f64"),
            ("[nonsense]\n", "unknown field `nonsense`"),
        ];
        for (text, expected) in cases {
            let e = JobConfig::parse(text).unwrap_err();
            assert!(
                e.contains(expected),
                "{text:?}\n  gave: {e}\n  want: {expected}"
            );
        }
        // A secret in a message is hidden.
        let dir = std::env::temp_dir().join(format!("incidentflow-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hook = dir.join("hook");
        std::fs::write(&hook, "not-a-url-S3CRET").unwrap();
        let text = format!(
            "[alerts.x]\nkind = \"slack\"\nwebhook_url_file = \"{}\"\n",
            hook.display()
        );
        let e = JobConfig::parse(&text).unwrap_err();
        assert!(
            e.contains("alerts.x.webhook_url is (hidden)") && !e.contains("S3CRET"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
