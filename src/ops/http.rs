//! The job's HTTP endpoints (`--metrics-addr`): `/metrics` (the registry in the OpenMetrics
//! text format), `/healthz` (503 once a worker failed) and `/ready` (503 until the inputs are
//! open, or while the Kafka lag is over `metrics.ready_max_lag`).
//!
//! axum on a single-threaded tokio runtime of its own thread: connections are served
//! concurrently (a slow client holds up nobody), and the dataflow's threads never wait for it.
//! Bounded against clients that misbehave: a request's head must arrive within
//! [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD_BYTES`], a connection lives at most
//! [`CONNECTION_LIFE`], and at most [`MAX_CONNECTIONS`] are open at once (more are closed at
//! once). An address given as a bare port (`9100`, `:9100`) is bound on loopback only: the
//! endpoints are reachable from elsewhere only when a host (`0.0.0.0:9100`) says so.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use crate::ops::metrics::Metrics;

/// What the handlers read.
#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    ready_max_lag: u64,
}

/// How long a client may take to send a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a request's head may hold (hyper's smallest buffer).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long one connection may stay open, requests and all.
pub const CONNECTION_LIFE: Duration = Duration::from_secs(60);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Where `addr` is bound: a bare port on loopback, anything else as written.
pub fn bind_address(addr: &str) -> String {
    let port = addr.strip_prefix(':').unwrap_or(addr);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        format!("127.0.0.1:{port}")
    } else {
        addr.to_owned()
    }
}

/// Binds `addr` (see [`bind_address`]; an error now if it cannot) and serves the endpoints from
/// a thread of its own for as long as the process runs; returns the bound address.
pub fn serve(addr: &str, ready_max_lag: u64, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .fallback(|| async { (StatusCode::NOT_FOUND, "try /metrics, /healthz or /ready\n") })
        .with_state(Endpoints {
            metrics,
            ready_max_lag,
        });
    serve_router(addr, "http", app)
}

/// Binds `addr` (see [`bind_address`]) and serves `app` within the module's bounds from a thread
/// named `name` for as long as the process runs; returns the bound address.
pub fn serve_router(addr: &str, name: &str, app: Router) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(bind_address(addr))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let what = name.to_owned();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => accept(listener, app).await,
                    Err(e) => tracing::error!("the {what} endpoint cannot listen: {e}"),
                }
            })
        })?;
    Ok(bound)
}

/// Serves each connection on a task of its own, within the module's bounds.
async fn accept(listener: tokio::net::TcpListener, app: Router) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!("the HTTP endpoints cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            continue; // dropped: closed at once
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (open, service) = (open.clone(), TowerToHyperService::new(app.clone()));
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFE, connection).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The registry in OpenMetrics when the scraper asks for it (Prometheus does), else in the
/// classic text format 0.0.4 (what `curl` and `promtool check metrics` read).
async fn scrape(State(e): State<Endpoints>, headers: axum::http::HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let text = e.metrics.render();
    if openmetrics {
        let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(header::CONTENT_TYPE, kind)], text).into_response()
    } else {
        let kind = "text/plain; version=0.0.4; charset=utf-8";
        ([(header::CONTENT_TYPE, kind)], classic_text(&text)).into_response()
    }
}

/// OpenMetrics text as the classic Prometheus text format: a counter's HELP and TYPE name its
/// samples (`x_total`, where OpenMetrics names the family `x`), and no UNIT or EOF line.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match comment.and_then(|(p, rest)| Some((p, rest.split_once(' ')?))) {
            Some((p, (name, tail))) if counters.contains(name) => {
                out.push_str(&format!("{p}{name}_total {tail}"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod text_format_tests {
    #[test]
    fn a_counters_help_and_type_name_its_samples_and_eof_goes() {
        let open = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{x=\"1\"} 2\n\
                    # HELP g Level.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n# EOF\n";
        assert_eq!(
            super::classic_text(open),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{x=\"1\"} 2\n\
             # HELP g Level.\n# TYPE g gauge\ng 1.5\n"
        );
    }
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use super::*;

    fn get(addr: SocketAddr, head: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    }

    #[test]
    fn a_bare_port_is_bound_on_loopback_and_a_host_as_written() {
        assert_eq!(bind_address("9100"), "127.0.0.1:9100");
        assert_eq!(bind_address(":9100"), "127.0.0.1:9100");
        assert_eq!(bind_address("0.0.0.0:9100"), "0.0.0.0:9100");
        assert_eq!(bind_address("[::1]:9100"), "[::1]:9100");
        let bound = serve(":0", 10, Arc::new(Metrics::new())).unwrap();
        assert!(bound.ip().is_loopback(), "{bound}");
    }

    #[test]
    fn a_silent_or_oversized_client_is_cut_off_and_others_are_served_meanwhile() {
        let addr = serve("127.0.0.1:0", 10, Arc::new(Metrics::new())).unwrap();
        // Connects and sends nothing.
        let mut silent = TcpStream::connect(addr).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let since = Instant::now();
        // Meanwhile a probe is answered.
        let answer = get(
            addr,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // The silent one is closed after the head timeout.
        let mut buf = [0u8; 64];
        let n = silent.read(&mut buf).unwrap_or(0);
        let waited = since.elapsed();
        assert!(
            n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"),
            "{n}"
        );
        assert!(
            waited >= HEAD_TIMEOUT - Duration::from_millis(500) && waited < Duration::from_secs(15),
            "{waited:?}"
        );
        // A head larger than the bound is refused, not buffered.
        let huge = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let answer = get(addr, &huge);
        assert!(!answer.contains("200 OK"), "{answer}");
    }
}
