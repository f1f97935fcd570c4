//! The remote write part of the benchmark: the scenario's samples as real remote write requests
//! (protobuf `WriteRequest`s, snappy block compressed, 1,000 samples each, built before the
//! clock starts) posted over one keep-alive loopback connection to the job at 1 and 2 workers;
//! each run timed from the first request to the job's exit after the last was answered 204 and a
//! SIGTERM (which processes everything queued), and checked to find the file run's anomalies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use incidentflow::ingest::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;

use crate::cli::Options;

/// Samples per request (Prometheus's default `max_samples_per_send` is 2,000; 500 to 2,000 is
/// what senders use).
const PER_REQUEST: usize = 1000;

/// The scenario's JSON sample lines as compressed requests, in the file's order.
fn requests(lines: &[String]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for chunk in lines.chunks(PER_REQUEST) {
        let mut timeseries = Vec::with_capacity(chunk.len());
        for line in chunk {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            let at = incidentflow_dataflows::time::parse_rfc3339(&text("timestamp"))
                .map_err(|e| format!("{e:?}"))?;
            let mut labels = vec![
                label("__name__", &text("metric_name")),
                label("namespace", &text("namespace")),
                label("service", &text("service")),
            ];
            if let Some(extra) = v["labels"].as_object() {
                for (k, value) in extra {
                    labels.push(label(k, value.as_str().unwrap_or_default()));
                }
            }
            timeseries.push(TimeSeries {
                labels,
                samples: vec![Sample {
                    value: v["value"].as_f64().unwrap_or_default(),
                    timestamp: at as i64,
                }],
            });
        }
        let body = WriteRequest { timeseries }.encode_to_vec();
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&body)
            .map_err(|e| e.to_string())?;
        out.push(compressed);
    }
    Ok(out)
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.into(),
        value: value.into(),
    }
}

/// One keep-alive connection to the receiver, opened again when the server closes it.
struct Client {
    addr: String,
    stream: Option<TcpStream>,
}

impl Client {
    /// POSTs `body` and returns the answer's status (retrying once on a closed connection).
    fn post(&mut self, body: &[u8]) -> Result<u16, String> {
        for _ in 0..2 {
            if self.stream.is_none() {
                let stream = TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                self.stream = Some(stream);
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            match exchange(stream, &self.addr, body) {
                Ok(status) => return Ok(status),
                Err(_) => self.stream = None,
            }
        }
        Err("the receiver closed the connection twice".into())
    }
}

fn exchange(stream: &mut TcpStream, addr: &str, body: &[u8]) -> std::io::Result<u16> {
    let head = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    // One write (head and body), as a real sender does: two small writes meet Nagle's algorithm
    // and the peer's delayed acknowledgement, 40 ms a request.
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    // The answer's head, then as many body bytes as it says.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        answer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&answer).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut rest = vec![0u8; length];
    stream.read_exact(&mut rest)?;
    Ok(status)
}

/// One run: the job receiving at `workers`, every request posted (a 503 posted again after a
/// millisecond); returns samples/s, the 503s, and whether its anomalies equal the file run's.
fn run(
    o: &Options,
    job: &Path,
    bodies: &[Vec<u8>],
    samples: usize,
    workers: usize,
    file_anomalies: &Path,
) -> Result<(f64, u64, bool), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let anomalies = o
        .dir
        .join(format!("anomalies-remote-write-w{workers}.jsonl"));
    let mut child = Command::new(job)
        .args(["run", "--input", &format!("remote-write://{addr}")])
        .args(["--workers", &workers.to_string()])
        .arg("--anomalies-out")
        .arg(&anomalies)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the job: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("the receiver did not listen".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = Client { addr, stream: None };
    let started = Instant::now();
    let mut behind = 0u64;
    for body in bodies {
        loop {
            match client.post(body)? {
                204 => break,
                503 => {
                    behind += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                status => return Err(format!("the receiver answered {status}")),
            }
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("the job exited with {status}"));
    }
    let same = std::fs::read(&anomalies).ok() == std::fs::read(file_anomalies).ok();
    Ok((samples as f64 / elapsed, behind, same))
}

/// Remote write at 1 and 2 workers (best of `--runs`), against the file run's anomalies.
pub fn remote_write_bench(
    o: &Options,
    job: &Path,
    lines: &[String],
    file_anomalies: &Path,
) -> Result<(String, serde_json::Value), String> {
    eprintln!(
        "[remote write] building {} requests...",
        lines.len().div_ceil(PER_REQUEST)
    );
    let bodies = requests(lines)?;
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let mut md = format!(
        "\n**Prometheus remote write** ({} samples of the {} scenario in {} requests of {PER_REQUEST}, \
         {:.1} MB snappy-compressed protobuf, posted over one keep-alive loopback connection; timed \
         from the first request to the job's exit after the last was answered 204):\n\n\
         | workers | samples/s | answered 503 | same anomalies as the file |\n|---|---|---|---|\n",
        lines.len(),
        o.scenario,
        bodies.len(),
        bytes as f64 / 1e6
    );
    let mut json = Vec::new();
    for workers in [1, 2] {
        let mut best: Option<(f64, u64, bool)> = None;
        for _ in 0..o.runs {
            let r = run(o, job, &bodies, lines.len(), workers, file_anomalies)?;
            eprintln!(
                "[remote write] {workers} worker(s): {:.0} samples/s, {} answered 503, same anomalies: {}",
                r.0, r.1, r.2
            );
            if best.is_none_or(|b| r.0 > b.0) {
                best = Some(r);
            }
        }
        if let Some((rate, behind, same)) = best {
            md += &format!(
                "| {workers} | {rate:.0} | {behind} | {} |\n",
                if same { "yes" } else { "**no**" }
            );
            json.push(serde_json::json!({"workers": workers, "samples_per_second": rate, "answered_503": behind, "same_anomalies": same}));
        }
    }
    Ok((md, serde_json::Value::Array(json)))
}
