//! Prometheus remote write 1.0 as an input (`--input remote-write://HOST:PORT`): an HTTP
//! receiver for `POST /api/v1/write` (a protobuf `WriteRequest`, snappy block compressed), what
//! Prometheus, Grafana Agent/Alloy and the OpenTelemetry Collector send.
//!
//! Each request is decoded on the receiver's thread and turned into the samples' JSON Lines
//! contract (labels mapped to the sample's fields by `[remote_write]`), then queued whole for
//! worker 0's feed, which reads it as it reads a Kafka message: the same decoder, the same time
//! rules (late, future against the wall clock), the same dead letters and counts, so a sample
//! gives the same anomalies whichever way it came. The answer tells the sender what happened:
//! 204 once the request is queued (admitted: it will be processed, a stop included), 400 for a
//! payload that cannot be decoded (dead-lettered as `bad_payload`, counted; Prometheus drops
//! it), 503 while the queue is full or the job is stopping (Prometheus retries on 5xx: nothing
//! refused is acknowledged). A stale marker (the NaN Prometheus writes when a series ends) is
//! not a sample: it is counted and skipped, and the series, silent from then on, is forgotten
//! after `[limits] forget_after`.
//!
//! Every process of a cluster listens (on one address each, or all on the same one behind a load
//! balancer); a process's requests enter the dataflow at its first worker, one partition with its
//! own watermark, and are exchanged by series to the workers that own them, as every sample is.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

pub use incidentflow_dataflows::remote_write::{decode, encode, proto, STALE_NAN};

pub use crate::config::RemoteWriteSection;
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::Shutdown;

/// The largest request body taken, compressed (Prometheus sends at most a few hundred KiB).
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// One queued request: its samples as JSON Lines, or why it was refused.
pub enum Request {
    /// The request's samples as JSON Lines, one per sample, in the request's order.
    Lines {
        /// The request's number since the job started (its dead letters' offset).
        number: u64,
        /// The lines.
        lines: Vec<u8>,
    },
    /// A payload that could not be decoded.
    Refused {
        /// The request's number.
        number: u64,
        /// Why.
        detail: String,
        /// The body as received (cut to 4 KiB).
        raw: Vec<u8>,
    },
}

/// The queue between the receiver and worker 0's feed.
pub struct RemoteWriteQueue {
    sender: SyncSender<Request>,
    receiver: Mutex<Receiver<Request>>,
    next: AtomicU64,
}

impl std::fmt::Debug for RemoteWriteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteWriteQueue")
    }
}

impl RemoteWriteQueue {
    fn new(capacity: usize) -> Self {
        let (sender, receiver) = std::sync::mpsc::sync_channel(capacity.max(1));
        RemoteWriteQueue {
            sender,
            receiver: Mutex::new(receiver),
            next: AtomicU64::new(1),
        }
    }

    /// The next request, waiting at most `wait` (None: nothing came).
    pub fn next(&self, wait: Duration) -> Option<Request> {
        let receiver = self.receiver.lock().unwrap_or_else(|p| p.into_inner());
        receiver.recv_timeout(wait).ok()
    }

    /// The next request if one is queued.
    pub fn try_next(&self) -> Option<Request> {
        let receiver = self.receiver.lock().unwrap_or_else(|p| p.into_inner());
        receiver.try_recv().ok()
    }
}

/// What the handler reads.
#[derive(Clone)]
struct Receiving {
    queue: Arc<RemoteWriteQueue>,
    mapping: Arc<RemoteWriteSection>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

/// Binds `addr` and receives remote write requests from a thread of its own; returns the bound
/// address and the queue the feed reads.
pub fn serve(
    addr: &str,
    mapping: RemoteWriteSection,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) -> std::io::Result<(SocketAddr, Arc<RemoteWriteQueue>)> {
    let queue = Arc::new(RemoteWriteQueue::new(mapping.queue));
    let app = Router::new()
        .route("/api/v1/write", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Receiving {
            queue: queue.clone(),
            mapping: Arc::new(mapping),
            metrics,
            shutdown,
        });
    let bound = crate::ops::http::serve_router(addr, "remote-write", app)?;
    Ok((bound, queue))
}

async fn receive(State(r): State<Receiving>, headers: HeaderMap, body: Bytes) -> Response {
    if r.shutdown.requested() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response();
    }
    let number = r.queue.next.fetch_add(1, Ordering::Relaxed);
    let snappy = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.eq_ignore_ascii_case("snappy"));
    let decoded = if snappy {
        decode(&body)
    } else {
        Err("Content-Encoding is not snappy (remote write 1.0 sends snappy)".to_string())
    };
    let (request, status, message) = match decoded {
        Ok(write) => {
            let mut lines = Vec::with_capacity(body.len() * 4);
            let stale = to_lines(&write, &r.mapping, &mut lines);
            r.metrics.remote_write_stale(stale);
            (
                Request::Lines { number, lines },
                StatusCode::NO_CONTENT,
                String::new(),
            )
        }
        Err(detail) => {
            let message = format!("cannot decode the remote write request: {detail}\n");
            let raw = body[..body.len().min(4096)].to_vec();
            let refused = Request::Refused {
                number,
                detail,
                raw,
            };
            (refused, StatusCode::BAD_REQUEST, message)
        }
    };
    match r.queue.sender.try_send(request) {
        Ok(()) => (status, message).into_response(),
        Err(TrySendError::Full(_)) => {
            r.metrics.remote_write_behind();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the job is behind: send again later\n",
            )
                .into_response()
        }
        Err(TrySendError::Disconnected(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
        }
    }
}

/// Appends `write`'s samples to `out` as JSON Lines; returns how many stale markers it skipped.
pub fn to_lines(
    write: &proto::WriteRequest,
    mapping: &RemoteWriteSection,
    out: &mut Vec<u8>,
) -> u64 {
    let mut stale = 0;
    for series in &write.timeseries {
        let label = |name: &str| {
            (series.labels.iter())
                .find(|l| l.name == name)
                .map(|l| l.value.as_str())
        };
        let namespace = label(&mapping.namespace_label).unwrap_or(&mapping.default_namespace);
        let service = (mapping.service_labels.iter()).find_map(|name| label(name));
        let metric = label(&mapping.metric_label);
        let taken = |name: &str| {
            name == mapping.namespace_label
                || name == mapping.metric_label
                || mapping.service_labels.iter().any(|s| s == name)
        };
        let labels: serde_json::Map<String, serde_json::Value> = (series.labels.iter())
            .filter(|l| !taken(&l.name))
            .map(|l| (l.name.clone(), serde_json::Value::from(l.value.as_str())))
            .collect();
        for sample in &series.samples {
            if sample.value.to_bits() == STALE_NAN {
                stale += 1;
                continue;
            }
            let mut line = serde_json::Map::new();
            line.insert("timestamp".into(), sample.timestamp.into());
            line.insert("namespace".into(), namespace.into());
            if let Some(service) = service {
                line.insert("service".into(), service.into());
            }
            if let Some(metric) = metric {
                line.insert("metric_name".into(), metric.into());
            }
            // JSON has no NaN or infinity: such a value is written as text, and refused as
            // `non_finite_value` like any.
            let value = serde_json::Number::from_f64(sample.value).map_or_else(
                || sample.value.to_string().into(),
                serde_json::Value::Number,
            );
            line.insert("value".into(), value);
            if !labels.is_empty() {
                line.insert("labels".into(), labels.clone().into());
            }
            if serde_json::to_writer(&mut *out, &line).is_ok() {
                out.push(b'\n');
            }
        }
    }
    stale
}
