//! The remote write part of the benchmark: the scenario's samples as real remote write requests
//! (protobuf `WriteRequest`s, snappy block compressed, 1,000 samples each, built before the
//! clock starts) posted over one keep-alive loopback connection to the job at 1 and 2 workers;
//! each run timed from the first request to the job's exit after the last was answered 204 and a
//! SIGTERM (which processes everything queued), and checked to find the file run's anomalies.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use incidentflow_dataflows::remote_write::encode;
use incidentflow_loadgen::remote_write::{request_of, Sender, PER_REQUEST};

use crate::cli::Options;

/// The scenario's JSON sample lines as compressed requests, in the file's order.
fn requests(lines: &[String]) -> Result<Vec<Vec<u8>>, String> {
    (lines.chunks(PER_REQUEST))
        .map(|chunk| Ok(encode(&request_of(chunk).map_err(|e| e.to_string())?)))
        .collect()
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
    let url = format!("http://{addr}/api/v1/write");
    let mut client = Sender::new(&url).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut behind = 0u64;
    for body in bodies {
        loop {
            match client.post(body).map_err(|e| e.to_string())? {
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
