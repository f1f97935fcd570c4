//! Decoding and validation: one JSON line in, a [`Sample`] or an [`Invalid`] (with its counted
//! reason) out. No I/O: sources hand bytes in and route the refusals to the dead-letter output.
//!
//! Series are interned: every sample of a series shares one `Arc<SeriesInfo>`, so decoding a
//! sample allocates nothing once its series has been seen. When the table has doubled since the
//! last sweep, series with no sample in the last `idle_ms` of event time are forgotten, so the
//! table follows active series.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::moments::MAX_ABS_VALUE;
use crate::records::{
    DeployEvent, EdgeChange, Invalid, Reason, Sample, SeriesId, SeriesInfo, SCHEMA_VERSION,
};
use crate::time::{self, Time, TimestampError};

/// A timestamp as it appears in JSON: epoch milliseconds or text.
enum RawTime<'a> {
    Millis(f64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for RawTime<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawTime<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 string or epoch milliseconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawTime::Millis(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawTime::Millis(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawTime::Millis(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawTime::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawTime::Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A value as it appears in JSON: a number, or a string holding one (Prometheus writes `"NaN"`).
struct RawNumber(f64);

impl<'de> Deserialize<'de> for RawNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawNumber;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawNumber, E> {
                Ok(RawNumber(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawNumber, E> {
                Ok(RawNumber(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawNumber, E> {
                Ok(RawNumber(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawNumber, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "nan" => Ok(RawNumber(f64::NAN)),
                    "inf" | "+inf" | "infinity" | "+infinity" => Ok(RawNumber(f64::INFINITY)),
                    "-inf" | "-infinity" => Ok(RawNumber(f64::NEG_INFINITY)),
                    t => t
                        .parse::<f64>()
                        .map(RawNumber)
                        .map_err(|_| E::custom(format_args!("value {v:?} is not a number"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct RawSample<'a> {
    schema_version: Option<u64>,
    #[serde(borrow)]
    timestamp: Option<RawTime<'a>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    service: Option<Cow<'a, str>>,
    #[serde(borrow)]
    metric_name: Option<Cow<'a, str>>,
    value: Option<RawNumber>,
    #[serde(borrow)]
    labels: Option<&'a RawValue>,
}

/// A hasher for keys that already are hashes: it keeps their low 64 bits.
#[derive(Default)]
pub struct PreHashed(u64);

impl std::hash::Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = self.0 << 8 | b as u64;
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// A map keyed by series id, hashed by the id itself (already a hash).
pub type SeriesMap<V> = HashMap<crate::records::SeriesId, V, BuildHasherDefault<PreHashed>>;

/// Turns JSON lines into validated samples, interning series on the way.
#[derive(Default)]
pub struct Decoder {
    /// Interned series with the newest timestamp seen for each.
    /// Keyed by the 128-bit hash of (namespace, service, metric_name, labels text).
    series: HashMap<u128, (Arc<SeriesInfo>, Time), BuildHasherDefault<PreHashed>>,
    /// Newest timestamp decoded.
    newest: Time,
    /// Series quiet for longer than this (event time) are forgotten at the next sweep.
    idle_ms: Time,
    sweep_at: usize,
    key: Vec<u8>,
    /// Names (namespaces, services, metrics, label keys and values), shared between series.
    names: HashSet<Arc<str>>,
}

impl Decoder {
    /// A decoder that forgets series quiet for an hour of event time.
    pub fn new() -> Self {
        Self::with_idle(3_600_000)
    }

    /// A decoder that forgets series with no sample in the last `idle_ms` of event time.
    pub fn with_idle(idle_ms: Time) -> Self {
        Decoder {
            sweep_at: 1024,
            idle_ms,
            ..Default::default()
        }
    }

    /// Number of series currently interned.
    pub fn interned(&self) -> usize {
        self.series.len()
    }

    /// Decodes one line (without its newline) into a sample.
    pub fn decode(&mut self, line: &[u8]) -> Result<Sample, Invalid> {
        let text = utf8(line)?;
        let raw: RawSample = serde_json::from_str(text).map_err(|e| classify(text, e))?;
        check_version(raw.schema_version)?;
        let namespace = required_text(&raw.namespace, "namespace")?;
        let service = required_text(&raw.service, "service")?;
        let metric_name = required_text(&raw.metric_name, "metric_name")?;
        let timestamp = parse_time(raw.timestamp)?;
        let value = match raw.value {
            None => return Err(missing("value")),
            Some(RawNumber(v)) if !v.is_finite() => {
                return Err(Invalid::new(
                    Reason::NonFiniteValue,
                    format!("value is {v}, not a finite number"),
                ))
            }
            Some(RawNumber(v)) if v.abs() >= MAX_ABS_VALUE => {
                return Err(Invalid::new(
                    Reason::ValueOutOfRange,
                    format!("value {v} is out of range (|value| must be below 1e18)"),
                ))
            }
            Some(RawNumber(v)) => v,
        };
        let series = self.intern(namespace, service, metric_name, raw.labels, timestamp)?;
        Ok(Sample::new(timestamp, series, value))
    }

    fn intern(
        &mut self,
        namespace: &str,
        service: &str,
        metric_name: &str,
        labels: Option<&RawValue>,
        timestamp: Time,
    ) -> Result<Arc<SeriesInfo>, Invalid> {
        self.newest = self.newest.max(timestamp);
        let labels_text = labels.map(RawValue::get).unwrap_or("null");
        self.key.clear();
        for part in [namespace, service, metric_name, labels_text] {
            self.key.extend_from_slice(part.as_bytes());
            self.key.push(0);
        }
        let key = xxhash_rust::xxh3::xxh3_128(&self.key);
        if let Some((found, seen)) = self.series.get_mut(&key) {
            *seen = (*seen).max(timestamp);
            return Ok(found.clone());
        }
        let labels: Vec<(Arc<str>, Arc<str>)> = parse_labels(labels_text)?
            .into_iter()
            .map(|(k, v)| (self.name(&k), self.name(&v)))
            .collect();
        let info = Arc::new(SeriesInfo {
            // From the parsed labels (sorted by name), so that the order a producer writes them in
            // does not make two series of one.
            id: SeriesId::of_labelled(namespace, service, metric_name, &labels),
            namespace: self.name(namespace),
            service: self.name(service),
            metric_name: self.name(metric_name),
            labels: labels.into(),
        });
        if self.series.len() >= self.sweep_at {
            let cutoff = self.newest.saturating_sub(self.idle_ms);
            self.series.retain(|_, (_, seen)| *seen >= cutoff);
            self.names.retain(|name| Arc::strong_count(name) > 1);
            self.sweep_at = (self.series.len() * 2).max(1024);
        }
        let entry = (info.clone(), timestamp);
        self.series.insert(key, entry);
        Ok(info)
    }
}

impl Decoder {
    /// The shared copy of a name.
    fn name(&mut self, text: &str) -> Arc<str> {
        if let Some(found) = self.names.get(text) {
            return found.clone();
        }
        let name: Arc<str> = Arc::from(text);
        self.names.insert(name.clone());
        name
    }
}

fn parse_labels(text: &str) -> Result<Vec<(String, String)>, Invalid> {
    let parsed: Option<std::collections::BTreeMap<String, String>> = serde_json::from_str(text)
        .map_err(|_| {
            Invalid::new(
                Reason::InvalidField,
                "labels must be an object of string values",
            )
        })?;
    Ok(parsed.unwrap_or_default().into_iter().collect())
}

fn parse_time(raw: Option<RawTime>) -> Result<Time, Invalid> {
    match raw {
        None => return Err(missing("timestamp")),
        Some(RawTime::Millis(ms)) => time::from_epoch_millis(ms),
        Some(RawTime::Text(text)) => time::parse_rfc3339(&text),
    }
    .map_err(|e| match e {
        TimestampError::Unparseable(why) => Invalid::new(Reason::BadTimestamp, why),
        TimestampError::Absurd(why) => Invalid::new(Reason::AbsurdTimestamp, why),
    })
}

fn check_version(version: Option<u64>) -> Result<(), Invalid> {
    match version {
        Some(v) if v != SCHEMA_VERSION as u64 => Err(Invalid::new(
            Reason::UnknownSchemaVersion,
            format!("schema_version {v} is unknown; this build reads version {SCHEMA_VERSION}"),
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct RawEdge<'a> {
    schema_version: Option<u64>,
    #[serde(borrow)]
    timestamp: Option<RawTime<'a>>,
    #[serde(borrow)]
    caller: Option<Cow<'a, str>>,
    #[serde(borrow)]
    callee: Option<Cow<'a, str>>,
    #[serde(borrow)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
}

/// The records of a JSON Lines text (a file's bytes, a Kafka message holding one record or a
/// batch): each line that is not blank, with its number in the text (from 1). The one splitter
/// every reader of JSON Lines uses.
pub fn json_lines(text: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    text.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| (i as u64 + 1, line))
}

/// Decodes a topology edge line: `{"timestamp","caller","callee"}` with optional `op` (`add`,
/// the default, or `remove`) and `namespace`. Without a timestamp the edge is static: valid from
/// the beginning (time 0).
pub fn decode_edge(line: &[u8]) -> Result<EdgeChange, Invalid> {
    let text = utf8(line)?;
    let raw: RawEdge = serde_json::from_str(text).map_err(|e| classify(text, e))?;
    check_version(raw.schema_version)?;
    let caller = required_text(&raw.caller, "caller")?;
    let callee = required_text(&raw.callee, "callee")?;
    let add = match raw.op.as_deref() {
        None | Some("add") => true,
        Some("remove") => false,
        Some(other) => {
            return Err(Invalid::new(
                Reason::InvalidField,
                format!("op {other:?} is neither \"add\" nor \"remove\""),
            ))
        }
    };
    let timestamp = if raw.timestamp.is_none() {
        0
    } else {
        parse_time(raw.timestamp)?
    };
    Ok(EdgeChange {
        timestamp,
        caller: Arc::from(caller),
        callee: Arc::from(callee),
        add,
        namespace: raw.namespace.map(|n| Arc::from(&*n)),
    })
}

#[derive(Deserialize)]
struct RawDeploy<'a> {
    schema_version: Option<u64>,
    #[serde(borrow)]
    timestamp: Option<RawTime<'a>>,
    #[serde(borrow)]
    service: Option<Cow<'a, str>>,
    #[serde(borrow)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
}

/// Decodes a deploy line: `{"timestamp","service","version"}` with optional `namespace`.
pub fn decode_deploy(line: &[u8]) -> Result<DeployEvent, Invalid> {
    let text = utf8(line)?;
    let raw: RawDeploy = serde_json::from_str(text).map_err(|e| classify(text, e))?;
    check_version(raw.schema_version)?;
    let service = required_text(&raw.service, "service")?;
    let version = required_text(&raw.version, "version")?;
    let timestamp = parse_time(raw.timestamp)?;
    Ok(DeployEvent {
        timestamp,
        service: Arc::from(service),
        version: Arc::from(version),
        namespace: raw.namespace.map(|n| Arc::from(&*n)),
    })
}

fn utf8(line: &[u8]) -> Result<&str, Invalid> {
    std::str::from_utf8(line).map_err(|e| {
        Invalid::new(
            Reason::InvalidUtf8,
            format!("byte {} is not valid UTF-8", e.valid_up_to() + 1),
        )
    })
}

fn missing(field: &str) -> Invalid {
    Invalid::new(Reason::MissingField, format!("missing field `{field}`"))
}

fn required_text<'a>(value: &'a Option<Cow<'_, str>>, field: &str) -> Result<&'a str, Invalid> {
    match value {
        None => Err(missing(field)),
        Some(v) if v.trim().is_empty() => Err(Invalid::new(
            Reason::EmptyField,
            format!("field `{field}` is empty"),
        )),
        Some(v) => Ok(v),
    }
}

fn classify(text: &str, e: serde_json::Error) -> Invalid {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data if !text.trim_start().starts_with('{') => {
            Invalid::new(Reason::NotObject, "the line is JSON but not an object")
        }
        Category::Data => Invalid::new(Reason::InvalidField, strip_position(&e.to_string())),
        Category::Syntax | Category::Eof | Category::Io => {
            Invalid::new(Reason::NotJson, format!("not JSON: {e}"))
        }
    }
}

/// serde's data errors end in " at line 1 column N", which says nothing in a one-line record.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests;
