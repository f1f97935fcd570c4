//! End-to-end latency of the job reading its stdin, under an open-loop load: each anomaly (or
//! incident version) on its stdout timed from the due time of the sample behind it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// What the latency run times on the job's stdout.
#[derive(Clone, Copy)]
pub enum Timed<'a> {
    /// Each anomaly, from its own sample.
    Anomalies,
    /// Each incident version opened or updated by an anomaly, from the first sample emitted with
    /// that version's time (no version can come before it); with this topology.
    Incidents(&'a Path),
}

/// End-to-end latency under an open-loop load: the samples are written into the job's stdin on a
/// fixed schedule (sample i is due at start + i / rate, whether or not the job keeps up), and each
/// anomaly read from the job's stdout is timed from its sample's due time (so a stalled job is
/// charged for the wait: no coordinated omission).
pub fn latency(
    job: &Path,
    lines: Vec<String>,
    rate: u64,
    workers: usize,
    timed: Timed,
) -> Result<(String, serde_json::Value), String> {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let by_sample = matches!(timed, Timed::Anomalies);
    // A sample's key: its series and time for anomalies, its time alone for incident versions.
    let key = move |v: &serde_json::Value, time_field: &str| -> u64 {
        let mut h = DefaultHasher::new();
        if by_sample {
            (v["service"].as_str(), v["metric_name"].as_str()).hash(&mut h);
        }
        v[time_field].as_str().unwrap_or("").hash(&mut h);
        h.finish()
    };
    let mut command = Command::new(job);
    command.args(["run", "--input", "-", "--workers", &workers.to_string()]);
    match timed {
        Timed::Anomalies => command.args(["--anomalies-out", "-"]),
        Timed::Incidents(topology) => command
            .arg("--topology")
            .arg(topology)
            .args(["--incidents-out", "-"]),
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let total = lines.len();
    let (due_tx, due_rx) = mpsc::channel::<(u64, Instant)>();
    let start = Instant::now() + Duration::from_millis(50);
    let writer = std::thread::spawn(move || -> Result<(), String> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut stdin);
        let mut pending = Vec::with_capacity(256);
        for (i, line) in lines.iter().enumerate() {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            if i % 256 == 0 {
                out.flush().map_err(|e| e.to_string())?;
                for p in pending.drain(..) {
                    let _ = due_tx.send(p);
                }
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            pending.push((key(&v, "timestamp"), due));
            out.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
        for p in pending.drain(..) {
            let _ = due_tx.send(p);
        }
        Ok(())
    });
    let what = if by_sample {
        "its anomaly"
    } else {
        "the incident version it opened or updated"
    };
    let mut due: HashMap<u64, Instant> = HashMap::new();
    let first_due = |due: &mut HashMap<u64, Instant>, batch: Vec<(u64, Instant)>| {
        for (k, d) in batch {
            due.entry(k).or_insert(d); // the first sample with that key
        }
    };
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| e.to_string())?;
    let mut unmatched = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let arrived = Instant::now();
        first_due(&mut due, due_rx.try_iter().collect());
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
        let k = match timed {
            Timed::Anomalies => key(&v, "timestamp"),
            Timed::Incidents(_) if v["status"] == "resolved" => continue, // made by a timer, not a sample
            Timed::Incidents(_) => key(&v, "updated_at"),
        };
        match due.get(&k) {
            Some(d) => histogram
                .saturating_record(arrived.saturating_duration_since(*d).as_micros() as u64),
            None => unmatched += 1,
        }
    }
    writer
        .join()
        .map_err(|_| "the writer panicked".to_string())??;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the job exited with {status}"));
    }
    let offered = total as f64 / (Instant::now() - start).as_secs_f64();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let md = format!(
        "Latency from a sample's scheduled emission to {what} on the job's stdout, open loop at {rate} samples/s offered ({} samples, {} outputs timed, {} workers): p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms.\n",
        total, histogram.len(), workers, ms(0.5), ms(0.99), ms(0.999), histogram.max() as f64 / 1000.0
    );
    let json = serde_json::json!({"offered_rate": rate, "achieved_rate": offered, "samples": total, "timed": what, "outputs_timed": histogram.len(), "unmatched": unmatched, "workers": workers,
        "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": histogram.max() as f64 / 1000.0});
    Ok((md, json))
}
