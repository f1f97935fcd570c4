//! The job's HTTP endpoints (`--metrics-addr`): `/metrics` (the registry in the Prometheus text
//! format), `/healthz` (503 once a worker failed) and `/ready` (503 until the inputs are open,
//! or while the Kafka lag is over `metrics.ready_max_lag`), from a thread of its own.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use std::sync::Arc;

use crate::ops::metrics::Metrics;

/// Serves `/metrics`, `/healthz` and `/ready` on `addr` from a thread of its own.
pub fn serve(
    addr: &str,
    ready_max_lag: u64,
    metrics: Arc<Metrics>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, ready_max_lag, &metrics);
            }
        })?;
    Ok(bound)
}

fn answer(mut stream: TcpStream, ready_max_lag: u64, metrics: &Metrics) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = String::new();
    let mut reader = BufReader::new(&stream);
    reader.read_line(&mut request)?;
    // Read the headers too: closing with unread bytes would reset the connection.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let (status, content_type, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        "/healthz" if metrics.has_failed_worker() => (
            "503 Service Unavailable",
            "text/plain",
            "a worker failed\n".into(),
        ),
        "/healthz" => ("200 OK", "text/plain", "ok\n".into()),
        "/ready" => {
            let lag = metrics.max_kafka_lag();
            if !metrics.are_inputs_connected() {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "inputs not connected\n".into(),
                )
            } else if lag > ready_max_lag as i64 {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    format!(
                        "kafka lag {lag} messages is over metrics.ready_max_lag {ready_max_lag}\n"
                    ),
                )
            } else {
                ("200 OK", "text/plain", "ready\n".into())
            }
        }
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /ready\n".into(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
