//! The job's HTTP endpoints (`--metrics-addr`): `/metrics` (the registry in the OpenMetrics
//! text format), `/healthz` (503 once a worker failed) and `/ready` (503 until the inputs are
//! open, or while the Kafka lag is over `metrics.ready_max_lag`).
//!
//! axum on a single-threaded tokio runtime of its own thread: connections are served
//! concurrently (a slow client holds up nobody), and the dataflow's threads never wait for it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::ops::metrics::Metrics;

/// What the handlers read.
#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    ready_max_lag: u64,
}

/// Binds `addr` (an error now if it cannot) and serves the endpoints from a thread of its own
/// for as long as the process runs; returns the bound address.
pub fn serve(addr: &str, ready_max_lag: u64, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .fallback(|| async { (StatusCode::NOT_FOUND, "try /metrics, /healthz or /ready\n") })
        .with_state(Endpoints {
            metrics,
            ready_max_lag,
        });
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        if let Err(e) = axum::serve(listener, app).await {
                            tracing::error!("the HTTP endpoints stopped: {e}");
                        }
                    }
                    Err(e) => tracing::error!("the HTTP endpoints cannot listen: {e}"),
                }
            })
        })?;
    Ok(bound)
}

async fn scrape(State(e): State<Endpoints>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        e.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(e): State<Endpoints>) -> Response {
    if e.metrics.has_failed_worker() {
        (StatusCode::SERVICE_UNAVAILABLE, "a worker failed\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn ready(State(e): State<Endpoints>) -> Response {
    let lag = e.metrics.max_kafka_lag();
    if !e.metrics.are_inputs_connected() {
        (StatusCode::SERVICE_UNAVAILABLE, "inputs not connected\n").into_response()
    } else if lag > e.ready_max_lag as i64 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "kafka lag {lag} messages is over metrics.ready_max_lag {}\n",
                e.ready_max_lag
            ),
        )
            .into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}
