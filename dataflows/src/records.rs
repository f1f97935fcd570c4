//! The record contracts (DESIGN.md section 2): samples in, anomalies out, and the typed reasons
//! a record is refused. Field names here are the JSON field names users read and write.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::Time;

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A float with a total order (by `f64::total_cmp`), so that records holding one are dataflow data.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}
impl Eq for F64 {}
impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for F64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

/// A series' identity: a 128-bit xxh3 hash of (namespace, service, metric_name, labels). Two pods
/// of one service reporting the same metric are two series, each with its own baseline (incidents
/// still group them by service). Stable across processes, worker counts and releases; collisions
/// are beyond practical reach (2^-64 at 10^10 series).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesId(pub u128);

impl SeriesId {
    /// The id of the series (namespace, service, metric_name) without labels.
    pub fn of(namespace: &str, service: &str, metric_name: &str) -> Self {
        Self::of_labelled(namespace, service, metric_name, &[])
    }

    /// The id of the series (namespace, service, metric_name, labels); `labels` sorted by name.
    /// Without labels it is the id [`SeriesId::of`] gives.
    pub fn of_labelled(
        namespace: &str,
        service: &str,
        metric_name: &str,
        labels: &[(Arc<str>, Arc<str>)],
    ) -> Self {
        let mut key = Vec::with_capacity(namespace.len() + service.len() + metric_name.len() + 2);
        key.extend_from_slice(namespace.as_bytes());
        key.push(0);
        key.extend_from_slice(service.as_bytes());
        key.push(0);
        key.extend_from_slice(metric_name.as_bytes());
        for (name, value) in labels {
            // 0x1f and 0x1e (unit and record separators) keep `{a="b=c"}` apart from `{a="b",c=...}`.
            key.push(0x1e);
            key.extend_from_slice(name.as_bytes());
            key.push(0x1f);
            key.extend_from_slice(value.as_bytes());
        }
        SeriesId(xxhash_rust::xxh3::xxh3_128(&key))
    }
}

/// What a sample says about where it comes from: the series key and its labels. Shared (`Arc`)
/// by every sample of the series so that a sample costs no string copies; the names themselves
/// are shared between series (a service's metrics share its name, every series of a metric the
/// metric's), so a series costs about a hundred bytes of names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesInfo {
    /// Hash of the series key; first, so that comparisons are cheap.
    pub id: SeriesId,
    /// Namespace (for example the Kubernetes namespace).
    pub namespace: Arc<str>,
    /// Service name.
    pub service: Arc<str>,
    /// Metric name (`latency_p99`, `error_rate`, ...).
    pub metric_name: Arc<str>,
    /// Optional labels (team, region, tier, pod...), sorted by name.
    pub labels: Arc<[(Arc<str>, Arc<str>)]>,
}

impl SeriesInfo {
    /// A series without labels.
    pub fn new(namespace: &str, service: &str, metric_name: &str) -> Self {
        Self::with_labels(namespace, service, metric_name, &[])
    }

    /// A series with `labels` (sorted here by name; the last of a repeated name counts).
    pub fn with_labels(
        namespace: &str,
        service: &str,
        metric_name: &str,
        labels: &[(&str, &str)],
    ) -> Self {
        let sorted: std::collections::BTreeMap<&str, &str> = labels.iter().copied().collect();
        let labels: Vec<(Arc<str>, Arc<str>)> = sorted
            .into_iter()
            .map(|(k, v)| (Arc::from(k), Arc::from(v)))
            .collect();
        SeriesInfo {
            id: SeriesId::of_labelled(namespace, service, metric_name, &labels),
            namespace: namespace.into(),
            service: service.into(),
            metric_name: metric_name.into(),
            labels: labels.into(),
        }
    }

    /// The series as people and Kafka keys name it: `namespace/service/metric{name="value",...}`
    /// (no braces without labels), in the Prometheus style.
    pub fn key(&self) -> String {
        let mut key = format!("{}/{}/{}", self.namespace, self.service, self.metric_name);
        if !self.labels.is_empty() {
            key.push('{');
            for (i, (name, value)) in self.labels.iter().enumerate() {
                if i > 0 {
                    key.push(',');
                }
                key.push_str(name);
                key.push_str("=\"");
                for c in value.chars() {
                    match c {
                        '\\' => key.push_str("\\\\"),
                        '"' => key.push_str("\\\""),
                        '\n' => key.push_str("\\n"),
                        c => key.push(c),
                    }
                }
                key.push('"');
            }
            key.push('}');
        }
        key
    }
}

/// A metric sample, validated.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sample {
    /// Event time.
    pub timestamp: Time,
    /// The series it belongs to.
    pub series: Arc<SeriesInfo>,
    /// The value as given.
    pub value: F64,
    /// The value in fixed point (see [`crate::moments`]).
    pub fixed: i128,
}

impl Sample {
    /// A sample of `series` at `timestamp`.
    pub fn new(timestamp: Time, series: Arc<SeriesInfo>, value: f64) -> Self {
        Sample {
            timestamp,
            series,
            value: F64(value),
            fixed: crate::moments::to_fixed(value),
        }
    }
}

/// A topology change: an edge from `caller` to `callee` added or removed at `timestamp`
/// (0 for a static edge, valid from the beginning).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EdgeChange {
    /// Event time (0: static).
    pub timestamp: Time,
    /// The calling service.
    pub caller: Arc<str>,
    /// The called service.
    pub callee: Arc<str>,
    /// Added (true) or removed.
    pub add: bool,
    /// Optional namespace (descriptive).
    pub namespace: Option<Arc<str>>,
}

/// A deploy of a service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeployEvent {
    /// Event time.
    pub timestamp: Time,
    /// The service deployed.
    pub service: Arc<str>,
    /// The version deployed.
    pub version: Arc<str>,
    /// Optional namespace.
    pub namespace: Option<Arc<str>>,
}

/// Which way a value left its baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Above the expected value.
    Up,
    /// Below the expected value.
    Down,
}

/// The detectors this build knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Detector {
    /// Rolling z-score against the window's mean and standard deviation.
    #[serde(rename = "zscore")]
    ZScore,
    /// Distance from the median in robust standard deviations (see `detectors::robust`).
    #[serde(rename = "robust")]
    Robust,
    /// CUSUM of the residuals against the window (see `detectors::level_shift`).
    #[serde(rename = "level_shift")]
    LevelShift,
    /// A climb steeper than the series usually moves (see `detectors::trend`).
    #[serde(rename = "trend")]
    Trend,
    /// Against the same hour of the day (see `detectors::seasonal`).
    #[serde(rename = "seasonal")]
    Seasonal,
    /// A move larger and rarer than the series' own changes (see `detectors::change`).
    #[serde(rename = "change")]
    Change,
}

impl Detector {
    /// Every detector, in the order of their ids.
    pub const ALL: [Detector; 6] = [
        Detector::ZScore,
        Detector::Robust,
        Detector::LevelShift,
        Detector::Trend,
        Detector::Seasonal,
        Detector::Change,
    ];

    /// The name used in records and config.
    pub fn name(self) -> &'static str {
        match self {
            Detector::ZScore => "zscore",
            Detector::Robust => "robust",
            Detector::LevelShift => "level_shift",
            Detector::Trend => "trend",
            Detector::Seasonal => "seasonal",
            Detector::Change => "change",
        }
    }
}

/// Why a detector fired.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Evidence {
    /// Number of samples in the baseline window.
    pub baseline_points: u64,
    /// Standard deviation of the baseline window.
    pub baseline_stddev: F64,
    /// Signed z-score; None when the baseline is perfectly flat (stddev 0).
    pub z: Option<F64>,
    /// Up or down.
    pub direction: Direction,
    /// True when the baseline was perfectly flat and the value differs from it.
    pub flat_baseline: bool,
    /// The detector's own statistic when it is not a z-score (robust z, CUSUM sum, trend t,
    /// seasonal z, change strength), signed.
    pub statistic: Option<F64>,
    /// The change detector's view of the series: its usual largest change and how often it is
    /// sampled (None for the other detectors).
    pub change: Option<ChangeEvidence>,
}

/// What the change detector knew of a series when it judged a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChangeEvidence {
    /// The value the series moved from (the sample before, or the level it left).
    pub reference: F64,
    /// The change at which a move is anomalous (strength 1).
    pub threshold: F64,
    /// The 99th percentile of the series' recent changes.
    pub usual_change: F64,
    /// Samples of the series seen so far.
    pub samples: u64,
    /// The usual interval between its samples, in milliseconds.
    pub interval_ms: u64,
}

/// Where an anomaly event stands in its episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpisodeStatus {
    /// The series became anomalous at this sample.
    Open,
    /// Still anomalous, and the score has grown.
    Update,
    /// Recovered at this sample.
    Close,
}

/// The episode an anomaly event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EpisodeInfo {
    /// Open, update or close.
    pub status: EpisodeStatus,
    /// When the episode opened.
    pub started_at: Time,
    /// Its anomalous samples so far (at its close, in all).
    pub samples: u32,
}

/// An anomalous sample with the evidence behind it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Anomaly {
    /// Event time of the sample.
    pub timestamp: Time,
    /// The sample's series.
    pub series: Arc<SeriesInfo>,
    /// The sample's value.
    pub value: F64,
    /// What the baseline expected (its mean).
    pub expected: F64,
    /// Lower edge of the normal band.
    pub lower_bound: F64,
    /// Upper edge of the normal band.
    pub upper_bound: F64,
    /// Graded strength in [0, 1]; 0.5 is a deviation exactly at the threshold.
    pub anomaly_score: F64,
    /// The detector that fired.
    pub detector: Detector,
    /// Length of the history judged against in milliseconds, `[timestamp - window, timestamp)`:
    /// the baseline window (z-score and the window detectors), or the stretch the change
    /// detector's thresholds describe (its samples so far, at most its memory, times its interval).
    pub window_ms: u64,
    /// Why.
    pub evidence: Evidence,
    /// The episode this event belongs to (None: a per-sample detector, the z-score).
    pub episode: Option<EpisodeInfo>,
}

impl Anomaly {
    /// The episode's deterministic id: series, detector and start.
    pub fn episode_id(&self) -> Option<String> {
        let episode = self.episode?;
        let mut key = [0u8; 26];
        key[..16].copy_from_slice(&self.series.id.0.to_le_bytes());
        key[16..24].copy_from_slice(&episode.started_at.to_le_bytes());
        key[24] = self.detector as u8;
        key[25] = b'e';
        Some(format!("ep-{:016x}", xxhash_rust::xxh3::xxh3_64(&key)))
    }

    /// Deterministic id: the same sample and detector give the same id in every run.
    pub fn anomaly_id(&self) -> String {
        let mut key = [0u8; 25];
        key[..16].copy_from_slice(&self.series.id.0.to_le_bytes());
        key[16..24].copy_from_slice(&self.timestamp.to_le_bytes());
        key[24] = self.detector as u8;
        format!("an-{:016x}", xxhash_rust::xxh3::xxh3_64(&key))
    }

    /// The anomaly as one line of JSON (no newline), the output contract
    /// ([`crate::wire::AnomalyRecord`]).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.record()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Why an input record was refused. Each is counted and named in the dead-letter output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line is not JSON.
    NotJson,
    /// The line is JSON but not an object.
    NotObject,
    /// A required field is absent (or null).
    MissingField,
    /// A required text field is empty or blank.
    EmptyField,
    /// A field has the wrong type or shape.
    InvalidField,
    /// `value` is NaN or infinite.
    NonFiniteValue,
    /// |value| is 1e18 or more.
    ValueOutOfRange,
    /// The timestamp is neither RFC 3339 nor whole epoch milliseconds.
    BadTimestamp,
    /// The timestamp is outside 2000..2100.
    AbsurdTimestamp,
    /// `schema_version` is not one this build reads.
    UnknownSchemaVersion,
    /// The line is longer than the configured limit.
    Oversized,
    /// The record is older than its partition's watermark (later than the allowed lateness).
    Late,
    /// The timestamp is further ahead than `time.max_ahead` allows: of the wall clock, or of
    /// its partition's newest record (a host with a wrong clock).
    Future,
    /// A new series past a cardinality cap (`[limits] series_per_namespace`, `series`).
    Cardinality,
    /// A request that cannot be decoded (a remote write body that is not snappy or protobuf).
    BadPayload,
}

impl Reason {
    /// Every reason, in the order summaries list them.
    pub const ALL: [Reason; 16] = [
        Reason::InvalidUtf8,
        Reason::NotJson,
        Reason::NotObject,
        Reason::MissingField,
        Reason::EmptyField,
        Reason::InvalidField,
        Reason::NonFiniteValue,
        Reason::ValueOutOfRange,
        Reason::BadTimestamp,
        Reason::AbsurdTimestamp,
        Reason::UnknownSchemaVersion,
        Reason::Oversized,
        Reason::Late,
        Reason::Future,
        Reason::Cardinality,
        Reason::BadPayload,
    ];

    /// The snake_case name used in dead letters, summaries and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::NotJson => "not_json",
            Reason::NotObject => "not_object",
            Reason::MissingField => "missing_field",
            Reason::EmptyField => "empty_field",
            Reason::InvalidField => "invalid_field",
            Reason::NonFiniteValue => "non_finite_value",
            Reason::ValueOutOfRange => "value_out_of_range",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::AbsurdTimestamp => "absurd_timestamp",
            Reason::UnknownSchemaVersion => "unknown_schema_version",
            Reason::Oversized => "oversized",
            Reason::Late => "late",
            Reason::Future => "future",
            Reason::Cardinality => "cardinality",
            Reason::BadPayload => "bad_payload",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused record's reason and a sentence saying what exactly is wrong.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Invalid {
    /// The counted reason.
    pub reason: Reason,
    /// What is wrong, for the person reading the dead-letter file.
    pub detail: String,
}

impl Invalid {
    /// An invalid record for `reason`, explained by `detail`.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Invalid {
            reason,
            detail: detail.into(),
        }
    }
}

/// A refused record on its way to the dead-letter output: where it was, why, and what it said.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The source (a file path, `stdin`, `demo`).
    pub source: String,
    /// 1-based line number in the source.
    pub line: u64,
    /// Byte offset of the line in the source.
    pub offset: u64,
    /// Why.
    pub invalid: Invalid,
    /// The original bytes (at most the first 4 KiB for oversized lines).
    pub raw: Vec<u8>,
    /// True when `raw` was cut short.
    pub truncated: bool,
    /// The Kafka message's key, when the record came from Kafka (the dead-letter topic keeps it).
    pub key: Option<Vec<u8>>,
}

impl DeadLetter {
    /// The dead letter as one line of JSON (no newline), the output contract
    /// ([`crate::wire::DeadLetterRecord`]).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.record()).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Records counted by a source: read = valid + dead-lettered.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceCounts {
    /// Lines that held a record (blank lines are not records).
    pub read: u64,
    /// Records processed.
    pub valid: u64,
    /// Records dead-lettered, by [`Reason`] (indexed as `Reason::ALL`).
    pub dead: [u64; Reason::ALL.len()],
    /// Of the records read, topology edges.
    #[serde(default)]
    pub topology: u64,
    /// Of the records read, deploy events.
    #[serde(default)]
    pub deploys: u64,
}

impl SourceCounts {
    /// Counts one dead-lettered record.
    pub fn count_dead(&mut self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.dead[i] += 1;
        }
    }

    /// All dead-lettered records.
    pub fn dead_total(&self) -> u64 {
        self.dead.iter().sum()
    }

    /// Adds another worker's counts.
    pub fn add(&mut self, other: &SourceCounts) {
        self.read += other.read;
        self.valid += other.valid;
        self.topology += other.topology;
        self.deploys += other.deploys;
        for (a, b) in self.dead.iter_mut().zip(other.dead.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_part_of_the_identity() {
        let plain = SeriesInfo::new("shop", "api", "latency");
        let pod_a = SeriesInfo::with_labels("shop", "api", "latency", &[("pod", "a")]);
        let pod_b = SeriesInfo::with_labels("shop", "api", "latency", &[("pod", "b")]);
        assert_eq!(plain.id, SeriesId::of("shop", "api", "latency"));
        assert_ne!(pod_a.id, pod_b.id);
        assert_ne!(pod_a.id, plain.id);
        // The order labels are given in does not matter.
        let ab = SeriesInfo::with_labels("shop", "api", "latency", &[("pod", "a"), ("zone", "1")]);
        let ba = SeriesInfo::with_labels("shop", "api", "latency", &[("zone", "1"), ("pod", "a")]);
        assert_eq!(ab.id, ba.id);
        // A label value holding the separators of another split does not collide.
        let one = SeriesInfo::with_labels("s", "a", "m", &[("a", "b=c")]);
        let two = SeriesInfo::with_labels("s", "a", "m", &[("a", "b"), ("c", "")]);
        assert_ne!(one.id, two.id);
        assert_eq!(plain.key(), "shop/api/latency");
        assert_eq!(ab.key(), r#"shop/api/latency{pod="a",zone="1"}"#);
        assert_eq!(
            SeriesInfo::with_labels("s", "a", "m", &[("q", "x\"y")]).key(),
            r#"s/a/m{q="x\"y"}"#
        );
    }

    #[test]
    fn series_ids_separate_their_parts() {
        assert_ne!(SeriesId::of("a", "bc", "d"), SeriesId::of("ab", "c", "d"));
        assert_eq!(
            SeriesId::of("shop", "api", "latency"),
            SeriesId::of("shop", "api", "latency")
        );
    }
}
