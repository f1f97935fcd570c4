//! The output contract as public records (DESIGN.md section 2): an anomaly line and a dead-letter
//! line, each a type with Serialize and Deserialize. The job writes them ([`Anomaly::record`],
//! [`DeadLetter::record`]); eval, review and the tests read them back with the same types, so a
//! field renamed on one side is a compile error on the other. (An incident version's line is
//! [`crate::incident::IncidentRecord`]; the ground-truth fault, [`crate::truth::TruthFault`].)

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::records::{Anomaly, DeadLetter, Direction, EpisodeStatus, Reason, SCHEMA_VERSION};
use crate::time::format_rfc3339;

/// One anomaly line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRecord {
    /// The schema version it was written with.
    pub schema_version: u32,
    /// Deterministic id: series, time and detector.
    pub anomaly_id: String,
    /// Event time of the sample (RFC 3339).
    pub timestamp: String,
    /// The series: namespace, service, metric, labels.
    pub namespace: String,
    /// The service.
    pub service: String,
    /// The metric.
    pub metric_name: String,
    /// The series' labels, by name.
    #[serde(serialize_with = "labels_in_order", deserialize_with = "labels_sorted")]
    pub labels: Vec<(String, String)>,
    /// The sample's value.
    pub value: f64,
    /// What the baseline expected.
    pub expected: f64,
    /// Lower edge of the normal band.
    pub lower_bound: f64,
    /// Upper edge of the normal band.
    pub upper_bound: f64,
    /// Graded strength in [0, 1]; 0.5 at the threshold.
    pub anomaly_score: f64,
    /// The detector that fired (its name).
    pub detector: String,
    /// The history judged against.
    pub window: WindowRecord,
    /// Why.
    pub evidence: EvidenceRecord,
    /// The episode it belongs to (absent for a per-sample detector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<EpisodeRecord>,
}

/// The episode an anomaly event belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodeRecord {
    /// Deterministic id: series, detector and start.
    pub episode_id: String,
    /// open, update or close.
    pub status: EpisodeStatus,
    /// When it opened (RFC 3339).
    pub started_at: String,
    /// Its anomalous samples so far.
    pub samples: u32,
}

/// The history an anomaly was judged against, `[start, end)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339 (the sample's time).
    pub end: String,
    /// Its length.
    pub duration_ms: u64,
}

/// The figures behind an anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    /// Points in the baseline.
    pub baseline_points: u64,
    /// The baseline's mean.
    pub baseline_mean: f64,
    /// The baseline's standard deviation (absent for the change detector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_stddev: Option<f64>,
    /// The z-score, when there is one.
    pub z: Option<f64>,
    /// Up or down.
    pub direction: Direction,
    /// Whether the baseline was flat.
    pub flat_baseline: bool,
    /// The detector's own statistic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<f64>,
    /// The change detector: the value the series moved from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<f64>,
    /// The change detector: the change at which a move is anomalous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The change detector: the 99th percentile of recent changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usual_change: Option<f64>,
    /// The change detector: the usual interval between samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

impl Anomaly {
    /// The anomaly as its JSON line's record.
    pub fn record(&self) -> AnomalyRecord {
        let timestamp = format_rfc3339(self.timestamp);
        let series = &self.series;
        let change = self.evidence.change;
        AnomalyRecord {
            schema_version: SCHEMA_VERSION,
            anomaly_id: self.anomaly_id(),
            namespace: series.namespace.to_string(),
            service: series.service.to_string(),
            metric_name: series.metric_name.to_string(),
            labels: (series.labels.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: self.value.0,
            expected: self.expected.0,
            lower_bound: self.lower_bound.0,
            upper_bound: self.upper_bound.0,
            anomaly_score: self.anomaly_score.0,
            detector: self.detector.name().to_string(),
            window: WindowRecord {
                start: format_rfc3339(self.timestamp.saturating_sub(self.window_ms)),
                end: timestamp.clone(),
                duration_ms: self.window_ms,
            },
            timestamp,
            evidence: EvidenceRecord {
                baseline_points: self.evidence.baseline_points,
                baseline_mean: self.expected.0,
                baseline_stddev: change.is_none().then_some(self.evidence.baseline_stddev.0),
                z: self.evidence.z.map(|z| z.0),
                direction: self.evidence.direction,
                flat_baseline: self.evidence.flat_baseline,
                statistic: self.evidence.statistic.map(|s| s.0),
                reference: change.map(|c| c.reference.0),
                threshold: change.map(|c| c.threshold.0),
                usual_change: change.map(|c| c.usual_change.0),
                interval_ms: change.map(|c| c.interval_ms),
            },
            episode: self.episode.map(|e| EpisodeRecord {
                episode_id: self.episode_id().unwrap_or_default(),
                status: e.status,
                started_at: format_rfc3339(e.started_at),
                samples: e.samples,
            }),
        }
    }
}

/// Labels as a JSON object, in their stored (sorted) order.
fn labels_in_order<S: Serializer>(labels: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(labels.iter().map(|(k, v)| (k, v)))
}

/// Labels from a JSON object, sorted by name.
fn labels_sorted<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    Ok(BTreeMap::<String, String>::deserialize(d)?
        .into_iter()
        .collect())
}

/// One dead-letter line. Text that is not UTF-8 is given lossily in `raw` and exactly in
/// `raw_base64`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// The schema version it was written with.
    pub schema_version: u32,
    /// Where it came from: a file, standard input or `topic[partition]`.
    pub source: String,
    /// Its line in a file (0 from Kafka).
    pub line: u64,
    /// Its byte offset in a file, or its Kafka offset.
    pub offset: u64,
    /// Why it was refused.
    pub reason: Reason,
    /// What exactly was wrong.
    pub detail: String,
    /// The record as read (lossy UTF-8).
    pub raw: String,
    /// The record's bytes, when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_base64: Option<String>,
    /// Whether `raw` was cut short.
    pub truncated: bool,
    /// The Kafka message's key (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl DeadLetter {
    /// The dead letter as its JSON line's record.
    pub fn record(&self) -> DeadLetterRecord {
        let text = String::from_utf8_lossy(&self.raw);
        let exact = matches!(text, std::borrow::Cow::Borrowed(_));
        DeadLetterRecord {
            schema_version: SCHEMA_VERSION,
            source: self.source.clone(),
            line: self.line,
            offset: self.offset,
            reason: self.invalid.reason,
            detail: self.invalid.detail.clone(),
            raw_base64: (!exact).then(|| base64(&self.raw)),
            raw: text.into_owned(),
            truncated: self.truncated,
            key: (self.key.as_deref()).map(|k| String::from_utf8_lossy(k).into_owned()),
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl crate::records::Sample {
    /// The sample as an input line (RFC 3339 time; the value as read), for a dead letter of a
    /// sample refused after it was decoded.
    pub fn to_line(&self) -> String {
        let s = &self.series;
        let labels: serde_json::Map<String, serde_json::Value> = (s.labels.iter())
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_ref())))
            .collect();
        let mut line = serde_json::json!({
            "schema_version": 1,
            "timestamp": crate::time::format_rfc3339(self.timestamp),
            "namespace": s.namespace.as_ref(),
            "service": s.service.as_ref(),
            "metric_name": s.metric_name.as_ref(),
            "value": self.value.0,
        });
        if !labels.is_empty() {
            line["labels"] = serde_json::Value::Object(labels);
        }
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::records::{
        ChangeEvidence, Detector, EpisodeInfo, Evidence, Invalid, SeriesInfo, F64,
    };

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn an_anomaly_line_reads_back_as_the_record_it_was_written_from() {
        let series =
            SeriesInfo::with_labels("shop", "db", "latency", &[("zone", "b"), ("pod", "a")]);
        let anomaly = Anomaly {
            timestamp: 1_795_000_000_000,
            series: Arc::new(series),
            value: F64(2.5),
            expected: F64(1.0),
            lower_bound: F64(0.5),
            upper_bound: F64(1.5),
            anomaly_score: F64(0.8),
            detector: Detector::Change,
            window_ms: 60_000,
            evidence: Evidence {
                baseline_points: 40,
                baseline_stddev: F64(0.0),
                z: None,
                direction: Direction::Up,
                flat_baseline: false,
                statistic: Some(F64(3.0)),
                change: Some(ChangeEvidence {
                    reference: F64(1.0),
                    threshold: F64(0.4),
                    usual_change: F64(0.2),
                    samples: 40,
                    interval_ms: 15_000,
                }),
            },
            episode: Some(EpisodeInfo {
                status: EpisodeStatus::Open,
                started_at: 1_795_000_000_000,
                samples: 1,
            }),
        };
        let line = anomaly.to_json();
        let read: AnomalyRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(read, anomaly.record());
        assert_eq!(read.labels[0], ("pod".into(), "a".into()));
        assert!(
            line.contains(r#""labels":{"pod":"a","zone":"b"}"#),
            "{line}"
        );
        assert_eq!(serde_json::to_string(&read).unwrap(), line);
    }

    #[test]
    fn a_dead_letter_line_keeps_bytes_that_are_not_utf8_and_reads_back() {
        let letter = DeadLetter {
            source: "in.jsonl".into(),
            line: 3,
            offset: 120,
            invalid: Invalid::new(Reason::InvalidUtf8, "byte 2 is not UTF-8"),
            raw: vec![b'{', 0xff, b'}'],
            truncated: false,
            key: None,
        };
        let line = letter.to_json();
        // The field names as users read them.
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["reason"], "invalid_utf8");
        assert_eq!(v["line"], 3);
        assert_eq!(v["raw_base64"], "e/99");
        let read: DeadLetterRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(read, letter.record());
        assert_eq!(read.raw_base64.as_deref(), Some("e/99"));
    }
}
