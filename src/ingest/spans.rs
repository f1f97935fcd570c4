//! Topology from traces (`--spans FILE`): `caller -> callee` edges derived from spans instead of
//! a hand-written edge file.
//!
//! A line is a batch of spans in either format a Collector writes: OpenTelemetry's OTLP JSON (an
//! object with `resourceSpans`, what the Collector's file and Kafka exporters write) or Zipkin v2
//! JSON (an array of spans, or one span). An edge is seen when a client span carries the service
//! it calls (`peer.service`, `server.address` or `net.peer.name` in OTLP, `remoteEndpoint` in
//! Zipkin), or when a client span of service A has a child server span of service B (the two
//! joined by trace and span id, whichever comes first, within [`JOIN_WINDOW`]).
//!
//! An edge becomes valid at the time of the span that first shows it, and is removed when no span
//! has shown it for `[topology] span_edge_expiry` (1 h): the removal is dated at its last sighting
//! plus the expiry, once a later span shows that time has passed. The changes go into the
//! topology collection the job already has, so a late or vanished edge corrects incidents as an
//! edge file does. The file is read in order by worker 0, so the edges are the same at every
//! worker count. A line that is not a span batch is dead-lettered like any record.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use incidentflow_dataflows::records::{EdgeChange, Invalid, Reason};
use incidentflow_dataflows::time::Time;
use serde_json::Value;

/// How long a client span waits for its server child (and the other way round), in event time.
pub const JOIN_WINDOW: Time = 5 * 60_000;

/// Which side of a call a span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The caller's side.
    Client,
    /// The callee's side.
    Server,
    /// Anything else (internal, producer, consumer, unspecified).
    Other,
}

/// What a span says about the topology.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_id: Option<String>,
    pub kind: Kind,
    /// The service that recorded it.
    pub service: String,
    /// The service it calls, when it says so.
    pub peer: Option<String>,
    /// Its start, ms since the epoch.
    pub time: Time,
}

/// The spans of one line, in either format; or why it is not a span batch.
pub fn parse_line(line: &[u8]) -> Result<Vec<Span>, Invalid> {
    let text = std::str::from_utf8(line)
        .map_err(|e| Invalid::new(Reason::InvalidUtf8, format!("not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Invalid::new(Reason::NotJson, format!("not JSON: {e}")))?;
    if value.get("resourceSpans").is_some() {
        return otlp(&value);
    }
    let spans = match &value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![&value],
        _ => {
            return Err(Invalid::new(
                Reason::NotObject,
                "neither OTLP JSON (resourceSpans) nor Zipkin v2 JSON (an array of spans)",
            ))
        }
    };
    spans.into_iter().map(zipkin).collect()
}

fn field(what: &str) -> Invalid {
    Invalid::new(Reason::MissingField, format!("a span lacks {what}"))
}

/// OTLP JSON: resourceSpans[].resource.attributes service.name; scopeSpans[].spans[].
fn otlp(value: &Value) -> Result<Vec<Span>, Invalid> {
    let mut out = Vec::new();
    let resources = value["resourceSpans"]
        .as_array()
        .ok_or_else(|| Invalid::new(Reason::InvalidField, "resourceSpans is not an array"))?;
    for resource in resources {
        let service = attribute(&resource["resource"]["attributes"], "service.name")
            .ok_or_else(|| field("its resource's service.name"))?;
        let scopes = resource["scopeSpans"].as_array().into_iter().flatten();
        for span in scopes.flat_map(|s| s["spans"].as_array().into_iter().flatten()) {
            let text = |k: &str| span[k].as_str().filter(|s| !s.is_empty());
            let kind = match &span["kind"] {
                Value::Number(n) if n.as_u64() == Some(3) => Kind::Client,
                Value::Number(n) if n.as_u64() == Some(2) => Kind::Server,
                Value::String(s) if s == "SPAN_KIND_CLIENT" => Kind::Client,
                Value::String(s) if s == "SPAN_KIND_SERVER" => Kind::Server,
                _ => Kind::Other,
            };
            let nanos = match &span["startTimeUnixNano"] {
                Value::String(s) => s.parse::<u64>().ok(),
                Value::Number(n) => n.as_u64(),
                _ => None,
            }
            .ok_or_else(|| field("startTimeUnixNano"))?;
            let attributes = &span["attributes"];
            let peer = ["peer.service", "server.address", "net.peer.name"]
                .iter()
                .find_map(|k| attribute(attributes, k));
            out.push(Span {
                trace_id: text("traceId").ok_or_else(|| field("traceId"))?.to_owned(),
                span_id: text("spanId").ok_or_else(|| field("spanId"))?.to_owned(),
                parent_id: text("parentSpanId").map(str::to_owned),
                kind,
                service: service.clone(),
                peer,
                time: nanos / 1_000_000,
            });
        }
    }
    Ok(out)
}

/// An OTLP attribute's string value.
fn attribute(attributes: &Value, key: &str) -> Option<String> {
    attributes.as_array()?.iter().find(|a| a["key"] == key)?["value"]["stringValue"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One Zipkin v2 span.
fn zipkin(span: &Value) -> Result<Span, Invalid> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let kind = match span["kind"].as_str() {
        Some("CLIENT") => Kind::Client,
        Some("SERVER") => Kind::Server,
        _ => Kind::Other,
    };
    let micros = span["timestamp"]
        .as_u64()
        .ok_or_else(|| field("timestamp"))?;
    Ok(Span {
        trace_id: text(&span["traceId"]).ok_or_else(|| field("traceId"))?,
        span_id: text(&span["id"]).ok_or_else(|| field("id"))?,
        parent_id: text(&span["parentId"]),
        kind,
        service: text(&span["localEndpoint"]["serviceName"])
            .ok_or_else(|| field("localEndpoint.serviceName"))?,
        peer: text(&span["remoteEndpoint"]["serviceName"])
            .or_else(|| text(&span["tags"]["peer.service"])),
        time: micros / 1000,
    })
}

/// Edges derived from spans read in order, and when each was last seen.
pub struct SpanEdges {
    expiry: Time,
    /// (caller, callee) -> last seen.
    edges: BTreeMap<(Arc<str>, Arc<str>), Time>,
    /// Client spans by (trace, span id): their service and time.
    clients: HashMap<(String, String), (String, Time)>,
    /// Server spans whose client parent has not been read: by (trace, parent id).
    orphans: HashMap<(String, String), Vec<(String, Time)>>,
    /// The newest span time read.
    now: Time,
    last_pruned: Time,
}

impl SpanEdges {
    /// Edges removed after `expiry` ms without a span showing them (0: never).
    pub fn new(expiry: Time) -> Self {
        SpanEdges {
            expiry,
            edges: BTreeMap::new(),
            clients: HashMap::new(),
            orphans: HashMap::new(),
            now: 0,
            last_pruned: 0,
        }
    }

    /// Takes one span; appends the edge changes it makes to `out` (removals of edges that time
    /// has expired first, then an edge it shows that was not valid).
    pub fn span(&mut self, span: Span, out: &mut Vec<EdgeChange>) {
        self.now = self.now.max(span.time);
        self.expire(out);
        if span.kind == Kind::Client {
            if let Some(peer) = &span.peer {
                self.see(&span.service, peer, span.time, out);
            }
            let key = (span.trace_id.clone(), span.span_id.clone());
            for (child, at) in self.orphans.remove(&key).unwrap_or_default() {
                self.see(&span.service, &child, at, out);
            }
            self.clients.insert(key, (span.service, span.time));
        } else if span.kind == Kind::Server {
            if let Some(parent) = &span.parent_id {
                let key = (span.trace_id.clone(), parent.clone());
                match self.clients.get(&key).cloned() {
                    Some((caller, _)) => self.see(&caller, &span.service, span.time, out),
                    None => self
                        .orphans
                        .entry(key)
                        .or_default()
                        .push((span.service, span.time)),
                }
            }
        }
    }

    fn see(&mut self, caller: &str, callee: &str, at: Time, out: &mut Vec<EdgeChange>) {
        if caller == callee {
            return;
        }
        let key: (Arc<str>, Arc<str>) = (caller.into(), callee.into());
        match self.edges.get_mut(&key) {
            Some(last) => *last = (*last).max(at),
            None => {
                out.push(change(&key, at, true));
                self.edges.insert(key, at);
            }
        }
    }

    /// Removes the edges not seen for the expiry, dated when they expired; forgets unjoined
    /// spans older than the join window.
    fn expire(&mut self, out: &mut Vec<EdgeChange>) {
        if self.expiry > 0 {
            let now = self.now;
            let expiry = self.expiry;
            let gone: Vec<_> = (self.edges.iter())
                .filter(|(_, last)| last.saturating_add(expiry) < now)
                .map(|(k, last)| (k.clone(), last.saturating_add(expiry)))
                .collect();
            for (key, at) in gone {
                self.edges.remove(&key);
                out.push(change(&key, at, false));
            }
        }
        if self.now.saturating_sub(self.last_pruned) >= JOIN_WINDOW {
            let horizon = self.now.saturating_sub(JOIN_WINDOW);
            self.clients.retain(|_, (_, at)| *at >= horizon);
            self.orphans
                .retain(|_, children| children.iter().any(|(_, at)| *at >= horizon));
            self.last_pruned = self.now;
        }
    }

    /// The edges valid now, with when each was last seen.
    pub fn valid(&self) -> impl Iterator<Item = (&(Arc<str>, Arc<str>), &Time)> {
        self.edges.iter()
    }
}

fn change(key: &(Arc<str>, Arc<str>), at: Time, add: bool) -> EdgeChange {
    EdgeChange {
        timestamp: at,
        caller: key.0.clone(),
        callee: key.1.clone(),
        add,
        namespace: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp_line(service: &str, spans: &[(&str, &str, Option<&str>, u8, u64)]) -> String {
        let spans: Vec<Value> = spans
            .iter()
            .map(|(trace, id, parent, kind, ms)| {
                serde_json::json!({"traceId": trace, "spanId": id, "parentSpanId": parent.unwrap_or(""),
                    "name": "call", "kind": kind, "startTimeUnixNano": (ms * 1_000_000).to_string()})
            })
            .collect();
        serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": spans}]}]})
        .to_string()
    }

    #[test]
    fn a_client_and_its_server_child_make_an_edge_in_either_order_and_it_expires() {
        let mut edges = SpanEdges::new(3_600_000);
        let mut out = Vec::new();
        // The server child first, then its client parent; then the same call again.
        for line in [
            otlp_line("db", &[("t1", "s2", Some("s1"), 2, 1_000)]),
            otlp_line("api", &[("t1", "s1", None, 3, 999)]),
            otlp_line("api", &[("t2", "s3", None, 3, 60_000)]),
            otlp_line("db", &[("t2", "s4", Some("s3"), 2, 60_001)]),
        ] {
            for span in parse_line(line.as_bytes()).unwrap() {
                edges.span(span, &mut out);
            }
        }
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (&*out[0].caller, &*out[0].callee, out[0].add),
            ("api", "db", true)
        );
        assert_eq!(out[0].timestamp, 1_000);
        // Two hours later a span of another call: the api -> db edge expired an hour after it
        // was last seen.
        let zipkin = r#"[{"traceId":"t3","id":"z1","kind":"CLIENT","timestamp":7260001000,
            "localEndpoint":{"serviceName":"web"},"remoteEndpoint":{"serviceName":"api"}}]"#;
        for span in parse_line(zipkin.as_bytes()).unwrap() {
            edges.span(span, &mut out);
        }
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            (&*out[1].caller, out[1].add, out[1].timestamp),
            ("api", false, 3_660_001)
        );
        assert_eq!(
            (&*out[2].caller, &*out[2].callee, out[2].add),
            ("web", "api", true)
        );
    }

    #[test]
    fn what_is_not_a_span_batch_is_refused_with_a_reason() {
        for (line, reason) in [
            (&b"\xff"[..], Reason::InvalidUtf8),
            (b"{not json", Reason::NotJson),
            (b"42", Reason::NotObject),
            (
                br#"{"resourceSpans":[{"resource":{},"scopeSpans":[]}]}"#,
                Reason::MissingField,
            ),
            (
                br#"[{"traceId":"t","id":"s","timestamp":1}]"#,
                Reason::MissingField,
            ),
        ] {
            assert_eq!(parse_line(line).unwrap_err().reason, reason, "{line:?}");
        }
    }
}
