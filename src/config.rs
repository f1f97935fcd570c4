//! The job configuration file (`--config job.toml`): what the pipeline computes. Flags describe
//! the runtime (inputs, outputs, workers); this file describes the detection. Every section and
//! key is optional; unknown keys are rejected with the key's name and the file.

use std::path::Path;

use incidentflow_dataflows::time::{format_duration, parse_duration};

use crate::error::JobError;
use incidentflow_dataflows::incident::CorrelationConfig;
use incidentflow_dataflows::zscore::ZScoreConfig;
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
    pub baseline: BaselineConfig,
    /// The rolling z-score detector.
    pub zscore: ZScoreSection,
    /// Event time: lateness and the progress tick.
    pub time: TimeConfig,
    /// How input files are read.
    pub input: InputConfig,
    /// How anomalies become incidents.
    pub correlation: CorrelationSection,
    /// The Kafka brokers and topics used when an input or output is `kafka`.
    pub kafka: KafkaSection,
}

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
    /// A partition with no record for this long (wall clock) stops holding event time back: its
    /// watermark then follows the clock, and records that come later than that are late.
    pub idle_timeout: Millis,
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
            idle_timeout: Millis(5_000),
        }
    }
}

/// `[correlation]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationSection {
    /// How long an anomaly keeps its service in a neighbourhood.
    pub window: Millis,
    /// How long an incident stays open with no anomaly before it is resolved.
    pub quiet_period: Millis,
    /// The least event time between two `updated` versions of one incident.
    pub update_interval: Millis,
    /// Whether a service with no anomaly may link two anomalous services it has edges to.
    pub silent_intermediates: bool,
    /// How long before a service's first anomaly a deploy of it counts as evidence.
    pub deploy_lookback: Millis,
    /// A neighbourhood opens an incident once it holds this many anomalies in the window...
    pub min_anomalies: u64,
    /// ...and one of them scores at least this.
    pub strong_score: f64,
}

impl Default for CorrelationSection {
    fn default() -> Self {
        CorrelationSection {
            window: Millis(5 * 60_000),
            quiet_period: Millis(5 * 60_000),
            update_interval: Millis(30_000),
            silent_intermediates: false,
            deploy_lookback: Millis(15 * 60_000),
            min_anomalies: 1,
            strong_score: 0.65,
        }
    }
}

/// `[baseline]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Length of the rolling window a sample is compared with.
    pub window: Millis,
    /// Fewest samples in the window before a series is scored.
    pub min_points: u64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            window: Millis(30 * 60 * 1000),
            min_points: 20,
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
pub struct TimeConfig {
    /// How far behind the newest record of its partition a record may be and still be processed
    /// at its own time; older records are dead-lettered as `late`.
    pub allowed_lateness: Millis,
    /// Granularity of progress: the input frontier advances in steps of this size. Records keep
    /// their exact millisecond times; a larger tick costs latency and saves coordination.
    pub tick: Millis,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            allowed_lateness: Millis(10_000),
            tick: Millis(1000),
        }
    }
}

/// `[input]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Longest accepted line in bytes; longer lines are dead-lettered as `oversized`.
    pub max_line_bytes: u64,
    /// Files are cut into partitions of this many bytes (at line boundaries), shared out among the
    /// workers. Lateness is judged within a partition, as within a Kafka partition, so the result
    /// does not depend on the worker count.
    pub partition_bytes: u64,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            max_line_bytes: 1 << 20,
            partition_bytes: 4 << 20,
        }
    }
}

impl JobConfig {
    /// Reads and checks a job file.
    pub fn load(path: &Path) -> Result<JobConfig, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::ConfigUnreadable {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| JobError::Config {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and checks job file text.
    pub fn parse(text: &str) -> Result<JobConfig, String> {
        let config: JobConfig =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        config.check()?;
        Ok(config)
    }

    /// Checks value ranges; the message names the key.
    pub fn check(&self) -> Result<(), String> {
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
        if self.correlation.window.0 == 0 {
            return Err("correlation.window must be longer than 0s".into());
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
        Ok(())
    }

    /// The correlation settings handed to the dataflow.
    pub fn correlation_config(&self) -> CorrelationConfig {
        CorrelationConfig {
            window_ms: self.correlation.window.0,
            quiet_ms: self.correlation.quiet_period.0,
            update_interval_ms: self.correlation.update_interval.0,
            silent_intermediates: self.correlation.silent_intermediates,
            deploy_lookback_ms: self.correlation.deploy_lookback.0,
            min_anomalies: self.correlation.min_anomalies.max(1),
            strong_score_milli: (self.correlation.strong_score.clamp(0.0, 1.0) * 1000.0).round()
                as u32,
        }
    }

    /// The detector settings handed to the dataflow.
    pub fn zscore_config(&self) -> ZScoreConfig {
        ZScoreConfig {
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
        assert_eq!(c.zscore_config(), ZScoreConfig::default());
    }

    #[test]
    fn values_are_read() {
        let c = JobConfig::parse("[baseline]\nwindow = \"1h\"\nmin_points = 12\n[zscore]\nthreshold = 4.5\n[time]\nallowed_lateness = \"2m\"\n").unwrap();
        assert_eq!(c.baseline.window, Millis(3_600_000));
        assert_eq!(c.zscore_config().min_points, 12);
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
}
