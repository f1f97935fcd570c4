//! The reference the job is measured against: the same work as a plain single-threaded loop
//! (the job's decoder, per-series state in a HashMap, the job's champion), run as a child process
//! of the benchmark (`--reference-only`) so that its CPU time and peak memory are its own.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use differential_dataflow::difference::{Abelian, Semigroup};
// The reference shares the job's decoder, counter rates and score, nothing else.
use incidentflow::ops::process::{cpu_seconds, peak_rss_bytes};
use incidentflow_dataflows::baseline::BaselineConfig;
use incidentflow_dataflows::decode::Decoder;
use incidentflow_dataflows::detectors::bank::{Bank, DetectionConfig};
use incidentflow_dataflows::forget::Forgetting;
use incidentflow_dataflows::moments::Moments;
use incidentflow_dataflows::rates::{is_counter, CounterRate};
use incidentflow_dataflows::records::SeriesId;

use crate::measure::Measured;

/// The reference: one thread, a HashMap of per-series state (a counter's previous sample, for its
/// rate, and ring buffers with running moments when the champion reads a window), the same
/// decoder and the same detector (the default champion, through the same pure episode logic).
/// Prints `anomalies seconds` on stdout.
pub fn reference_main(input: &Path) -> Result<(), String> {
    let config = BaselineConfig::default();
    let detection = DetectionConfig::default();
    let needs_window = detection.needs_window();
    let mut bank = Bank::new(
        &detection.running(),
        &config,
        detection.update_every_ms,
        Forgetting::new(detection.forget_after_ms),
    );
    let mut found = Vec::new();
    let started = Instant::now();
    let file = std::fs::File::open(input).map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let mut decoder = Decoder::new();
    type Window = (VecDeque<(u64, i128)>, Moments, CounterRate);
    let mut windows: HashMap<SeriesId, Window> = HashMap::new();
    let mut out = BufWriter::new(
        std::fs::File::create(input.with_extension("reference.jsonl"))
            .map_err(|e| e.to_string())?,
    );
    let (mut anomalies, mut line) = (0u64, Vec::new());
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let Ok(mut sample) = decoder.decode(&line) else {
            continue;
        };
        let (ring, moments, counter) = windows.entry(sample.series.id).or_default();
        if is_counter(&sample.series.metric_name) {
            let Some(rate) = counter.rate_of(&sample) else {
                continue;
            };
            sample = rate;
        }
        while let Some(&(t, fixed)) = ring.front() {
            if t + config.window_ms >= sample.timestamp {
                break;
            }
            ring.pop_front();
            let mut gone = Moments::of(fixed);
            gone.negate();
            moments.plus_equals(&gone);
        }
        bank.observe(&sample, moments, &mut found);
        for anomaly in found.drain(..) {
            anomalies += 1;
            writeln!(out, "{}", anomaly.to_json()).map_err(|e| e.to_string())?;
        }
        if needs_window {
            moments.plus_equals(&Moments::of(sample.fixed));
            ring.push_back((sample.timestamp, sample.fixed));
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    let (cpu, rss) = (cpu_seconds().unwrap_or(0.0), peak_rss_bytes().unwrap_or(0));
    println!(
        "{anomalies} {} {cpu} {rss}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs the reference on `input` as a child process (`exe --reference-only`) and reads what it
/// printed.
pub fn run_reference(exe: &Path, input: &Path) -> Result<Measured, String> {
    let out = Command::new(exe)
        .arg("--reference-only")
        .arg(input)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() != 4 {
        return Err(format!("reference printed {text:?}"));
    }
    Ok(Measured {
        anomalies: f[0] as u64,
        wall: f[1],
        cpu: f[2],
        rss: f[3] as u64,
    })
}
