//! The remote write driver: samples (the JSON Lines contract) sent to a Prometheus remote write
//! receiver as a sender does, in `WriteRequest`s (protobuf, snappy) over one keep-alive
//! connection, a request refused with 5xx or 429 sent again after a pause (as Prometheus does),
//! one refused with another 4xx an error. The load generator's `--remote-write URL` and the
//! benchmark use it.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use incidentflow_dataflows::remote_write::{encode, proto};
use incidentflow_dataflows::time::Time;

/// Samples per request (Prometheus sends at most `max_samples_per_send`, 2,000 by default).
pub const PER_REQUEST: usize = 1000;

/// The JSON sample lines as one request: each sample a series of one sample, its labels
/// `__name__`, `namespace`, `service` and its own.
pub fn request_of(lines: &[String]) -> io::Result<proto::WriteRequest> {
    let mut timeseries = Vec::with_capacity(lines.len());
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).map_err(io::Error::other)?;
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let at = incidentflow_dataflows::time::parse_rfc3339(&text("timestamp"))
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        let mut labels = vec![
            label("__name__", &text("metric_name")),
            label("namespace", &text("namespace")),
            label("service", &text("service")),
        ];
        for (k, value) in v["labels"].as_object().into_iter().flatten() {
            labels.push(label(k, value.as_str().unwrap_or_default()));
        }
        timeseries.push(proto::TimeSeries {
            labels,
            samples: vec![proto::Sample {
                value: v["value"].as_f64().unwrap_or_default(),
                timestamp: at as i64,
            }],
        });
    }
    Ok(proto::WriteRequest { timeseries })
}

fn label(name: &str, value: &str) -> proto::Label {
    proto::Label {
        name: name.into(),
        value: value.into(),
    }
}

/// One keep-alive connection to a receiver, opened again when the receiver closes it.
pub struct Sender {
    addr: String,
    path: String,
    stream: Option<TcpStream>,
    /// Requests answered 5xx or 429 and sent again.
    pub retried: u64,
}

impl Sender {
    /// A sender to `url` (`http://HOST:PORT/PATH`).
    pub fn new(url: &str) -> io::Result<Self> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{url}: not http://HOST:PORT/PATH"),
            )
        })?;
        let (addr, path) = match rest.split_once('/') {
            Some((addr, path)) => (addr, format!("/{path}")),
            None => (rest, "/api/v1/write".to_string()),
        };
        Ok(Sender {
            addr: addr.to_string(),
            path,
            stream: None,
            retried: 0,
        })
    }

    /// Sends `body` until it is answered 2xx (5xx and 429 again after 10 ms; a closed
    /// connection opened again); another answer is an error.
    pub fn send(&mut self, body: &[u8]) -> io::Result<()> {
        loop {
            match self.post(body)? {
                200..=299 => return Ok(()),
                429 | 500..=599 => {
                    self.retried += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                status => {
                    return Err(io::Error::other(format!(
                        "the receiver at {} refused a request with {status}",
                        self.addr
                    )))
                }
            }
        }
    }

    /// Sends `batch` (JSON sample lines) as one request, if it holds any, and empties it;
    /// returns how many samples it held.
    fn send_batch(&mut self, batch: &mut Vec<String>) -> io::Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        self.send(&encode(&request_of(batch)?))?;
        let n = batch.len() as u64;
        batch.clear();
        Ok(n)
    }

    /// POSTs `body` once and returns the answer's status (retrying once on a closed connection).
    pub fn post(&mut self, body: &[u8]) -> io::Result<u16> {
        let mut last = io::Error::other("no attempt");
        for _ in 0..2 {
            let stream = match self.stream.take() {
                Some(stream) => stream,
                None => {
                    let stream = TcpStream::connect(&self.addr)?;
                    stream.set_nodelay(true)?;
                    stream
                }
            };
            let mut stream = stream;
            match exchange(&mut stream, &self.addr, &self.path, body) {
                Ok(status) => {
                    self.stream = Some(stream);
                    return Ok(status);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

fn exchange(stream: &mut TcpStream, addr: &str, path: &str, body: &[u8]) -> io::Result<u16> {
    // One write, head and body, as a real sender does: two small writes meet Nagle's algorithm
    // and the peer's delayed acknowledgement, 40 ms a request.
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_lowercase();
    let status = (head.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = (head.lines())
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut rest = vec![0u8; length];
    stream.read_exact(&mut rest)?;
    Ok(status)
}

/// What a run of the driver sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Samples sent (each answered 2xx).
    pub samples: u64,
    /// Requests sent again after a 5xx or 429.
    pub retried: u64,
}

/// Sends `lines` to `url` in requests of [`PER_REQUEST`].
pub fn send_all(lines: impl Iterator<Item = String>, url: &str) -> io::Result<Sent> {
    let mut sender = Sender::new(url)?;
    let mut samples = 0;
    let mut batch = Vec::with_capacity(PER_REQUEST);
    for line in lines {
        batch.push(line);
        if batch.len() == PER_REQUEST {
            samples += sender.send_batch(&mut batch)?;
        }
    }
    samples += sender.send_batch(&mut batch)?;
    Ok(Sent {
        samples,
        retried: sender.retried,
    })
}

/// Sends `lines` live on `clock` (each restamped, see [`crate::live::Clock`]): each request holds
/// what fell due within a second (at most [`PER_REQUEST`] lines) and is sent when the next line
/// is due later than that.
pub fn send_live(
    lines: impl Iterator<Item = String>,
    clock: crate::live::Clock,
    url: &str,
) -> io::Result<Sent> {
    let mut sender = Sender::new(url)?;
    let mut samples = 0;
    let mut batch: Vec<String> = Vec::with_capacity(PER_REQUEST);
    let mut batch_due: Time = 0;
    for line in lines {
        let (due, line) = clock.restamp(&line);
        if !batch.is_empty() && (due > batch_due + 1000 || batch.len() == PER_REQUEST) {
            samples += sender.send_batch(&mut batch)?;
        }
        crate::live::wait_until(due);
        if batch.is_empty() {
            batch_due = due;
        }
        batch.push(line);
    }
    samples += sender.send_batch(&mut batch)?;
    Ok(Sent {
        samples,
        retried: sender.retried,
    })
}
