//! The benchmark harness. On two inputs, a synthetic file (`--samples`, `--series`) and a loadgen
//! scenario (`--scenario large`, generated once into `bench-data/`), it runs the `incidentflow`
//! binary with 1 and 2 workers and the same work as a plain single-threaded loop (the job's
//! decoder, per-series state, the job's champion) as the reference, and checks that all three
//! find the same anomalies. On the scenario it measures the champion against the z-score (the
//! champion before it) per core, and every detector against the champion alone. Then it measures
//! end-to-end latency under an open-loop load of
//! `--rate` samples/s written into the job's stdin. With correlation on (the scenario's topology
//! and deploys), it measures the scenario's throughput again and the latency from a sample to the
//! incident version it opened or updated. It prints and writes the figures
//! (`bench-data/results.md`, `bench-data/results.json`).
//!
//! ```text
//! cargo run --release -p incidentflow-benches -- [--runs 3] [--scenario large] [--rate 100000]
//! ```
//!
//! Rates are records per wall second from JSON file to anomaly file, best of `--runs`; CPU
//! seconds and peak RSS are the child's own (from /proc, printed in its summary).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use differential_dataflow::difference::{Abelian, Semigroup};
// The reference shares the job's decoder, counter rates and score, nothing else.
use incidentflow::ops::process::{cpu_seconds, peak_rss_bytes};
use incidentflow_dataflows::decode::Decoder;
use incidentflow_dataflows::detectors::bank::{Bank, DetectionConfig};
use incidentflow_dataflows::moments::Moments;
use incidentflow_dataflows::rates::{is_counter, CounterRate};
use incidentflow_dataflows::records::SeriesId;
use incidentflow_dataflows::zscore::BaselineConfig;
use incidentflow_loadgen::scenario::{Scenario, ScenarioConfig};

/// Throughput and memory of incidentflow against a plain single-threaded loop.
#[derive(clap::Parser)]
#[command(name = "incidentflow-benches", about)]
struct Options {
    /// Samples in the synthetic input.
    #[arg(long, default_value_t = 3_000_000)]
    samples: u64,
    /// Series in the synthetic input.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    series: u64,
    /// Runs of each measurement (the best is kept).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where the inputs and the results go.
    #[arg(long, default_value = "bench-data")]
    dir: PathBuf,
    /// The loadgen scenario.
    #[arg(long, default_value = "large")]
    scenario: String,
    /// The scenario's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Offered load of the latency measurement, samples/s.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Only the Kafka part.
    #[arg(long, value_parser = ["kafka"])]
    only: Option<String>,
    /// Only this: the job's throughput against another build of it (BIN, for example the
    /// commit before a change), on both inputs, 1 worker, their runs alternating, and the same
    /// anomalies required of both.
    #[arg(long, value_name = "BIN")]
    before: Option<PathBuf>,
    /// Internal: run the reference loop on this input (a child process of the benchmark).
    #[arg(long, value_name = "FILE", hide = true)]
    reference_only: Option<PathBuf>,
}

fn main() {
    let o = <Options as clap::Parser>::parse();
    let result = match &o.reference_only {
        Some(input) => reference_main(input),
        None if o.samples < o.series => Err("--samples must be at least --series".to_string()),
        None => bench(&o),
    };
    if let Err(e) = result {
        eprintln!("incidentflow-benches: {e}");
        std::process::exit(1);
    }
}

/// The benchmark input: `series` series sampled every 60 s, spread over the minute (with up to
/// 1.8 s of jitter, so that the file is not perfectly sorted but nothing is late), `samples /
/// series` samples each, scored from the 20th (the default `min_points`); one sample in a
/// thousand after that is a spike.
fn generate(path: &Path, samples: u64, series: u64) -> std::io::Result<()> {
    let per_series = samples / series;
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let start: u64 = 1_795_564_800_000; // 2026-11-25T00:00:00Z
    let metrics = ["latency_p99", "error_rate", "cpu", "memory", "request_rate"];
    let mut random = incidentflow_dataflows::rng::Rng::new(1, 0);
    for step in 0..per_series {
        for s in 0..series {
            let rng = random.next_u64();
            let service = s / metrics.len() as u64;
            let metric = metrics[(s % metrics.len() as u64) as usize];
            let level = 1.0 + (s % 97) as f64;
            let mut value = level * (1.0 + ((rng % 1000) as f64 / 1000.0 - 0.5) * 0.1);
            if rng % 1000 == 7 && step >= 20 {
                value *= 5.0;
            }
            let ts = start + step * 60_000 + s * 60_000 / series + (s % 7) * 300;
            writeln!(
                w,
                r#"{{"schema_version":1,"timestamp":{ts},"namespace":"ns-{}","service":"svc-{service}","metric_name":"{metric}","value":{value:.4},"labels":{{"tier":"t{}"}}}}"#,
                service % 8,
                service % 3
            )?;
        }
    }
    w.flush()
}

/// The reference: one thread, a HashMap of per-series state (a counter's previous sample, for its
/// rate, and ring buffers with running moments when the champion reads a window), the same
/// decoder and the same detector (the default champion, through the same pure episode logic).
/// Prints `anomalies seconds` on stdout.
fn reference_main(input: &Path) -> Result<(), String> {
    let config = BaselineConfig::default();
    let detection = DetectionConfig::default();
    let needs_window = detection.needs_window();
    let mut bank = Bank::new(&detection.running(), &config, detection.update_every_ms);
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

/// One measured run.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    wall: f64,
    cpu: f64,
    rss: u64,
    anomalies: u64,
}

fn run_reference(exe: &Path, input: &Path) -> Result<Measured, String> {
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

fn run_job(
    job: &Path,
    input: &Path,
    dir: &Path,
    tag: &str,
    workers: usize,
    extra: &[String],
) -> Result<Measured, String> {
    let summary = dir.join(format!("summary-{tag}-w{workers}.json"));
    let anomalies = dir.join(format!("anomalies-{tag}-w{workers}.jsonl"));
    let started = Instant::now();
    let out = Command::new(job)
        .args(["run", "--workers", &workers.to_string(), "--input"])
        .arg(input)
        .arg("--anomalies-out")
        .arg(&anomalies)
        .arg("--summary-out")
        .arg(&summary)
        .arg("--dead-letter")
        .arg(dir.join("dead-letter.jsonl"))
        .args(extra)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", job.display()))?;
    let wall = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "job failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(&summary).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(Measured {
        wall,
        cpu: v["cpu_seconds"].as_f64().unwrap_or(0.0),
        rss: v["peak_rss_bytes"].as_u64().unwrap_or(0),
        anomalies: v["anomalies"].as_u64().unwrap_or(0),
    })
}

fn sorted_lines(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    Ok(lines)
}

fn best(runs: usize, mut f: impl FnMut() -> Result<Measured, String>) -> Result<Measured, String> {
    let mut best: Option<Measured> = None;
    for _ in 0..runs.max(1) {
        let m = f()?;
        if best.is_none_or(|b| m.wall < b.wall) {
            best = Some(m);
        }
    }
    best.ok_or_else(|| "no run".into())
}

fn count_lines(path: &Path) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes.iter().filter(|&&b| b == b'\n').count() as u64)
}

/// The job's throughput against another build of it on each input, 1 worker, best of
/// `--runs`, the two builds' runs alternating so that both see the same machine; both must find
/// the same anomalies. Returns the Markdown table.
fn before_and_after(
    o: &Options,
    before: &Path,
    after: &Path,
    inputs: &[(&str, &Path)],
) -> Result<String, String> {
    let mut md = String::from(
        "| input | build | samples/s | CPU s | peak RSS MB | anomalies |\n|---|---|---|---|---|---|\n",
    );
    for (name, input) in inputs {
        let samples = count_lines(input)?;
        let (mut b, mut a): (Option<Measured>, Option<Measured>) = (None, None);
        for _ in 0..o.runs.max(1) {
            for (slot, job, tag) in [(&mut b, before, "before"), (&mut a, after, "after")] {
                let m = run_job(job, input, &o.dir, &format!("{name}-{tag}"), 1, &[])?;
                if slot.is_none_or(|s| m.wall < s.wall) {
                    *slot = Some(m);
                }
            }
        }
        let (Some(b), Some(a)) = (b, a) else {
            return Err("no run".into());
        };
        if sorted_lines(&o.dir.join(format!("anomalies-{name}-before-w1.jsonl")))?
            != sorted_lines(&o.dir.join(format!("anomalies-{name}-after-w1.jsonl")))?
        {
            return Err(format!("{name}: the two builds found different anomalies"));
        }
        for (build, m) in [
            (before.display().to_string(), b),
            (after.display().to_string(), a),
        ] {
            md += &format!(
                "| {name} | {build} | {:.0} | {:.2} | {:.0} | {} |\n",
                samples as f64 / m.wall,
                m.cpu,
                m.rss as f64 / 1e6,
                m.anomalies
            );
        }
        md += &format!(
            "| {name} | after / before | {:.3} | | | |\n",
            b.wall / a.wall
        );
    }
    Ok(md)
}

/// Throughput of the reference and the job (1 and 2 workers) on one input; checks that all find
/// the same anomalies. Returns the Markdown section and the JSON figures.
fn throughput(
    o: &Options,
    exe: &Path,
    job: &Path,
    tag: &str,
    title: &str,
    input: &Path,
    series: u64,
) -> Result<(String, serde_json::Value), String> {
    let samples = count_lines(input)?;
    let bytes = std::fs::metadata(input).map_err(|e| e.to_string())?.len();
    eprintln!("[{tag}] reference (plain single-threaded loop)...");
    let reference = best(o.runs, || run_reference(exe, input))?;
    if reference.anomalies == 0 {
        return Err(format!(
            "[{tag}] the reference found no anomaly: the input does not exercise the detector"
        ));
    }
    let mut rows = Vec::new();
    for workers in [1usize, 2] {
        eprintln!("[{tag}] incidentflow --workers {workers}...");
        let m = best(o.runs, || run_job(job, input, &o.dir, tag, workers, &[]))?;
        if sorted_lines(&o.dir.join(format!("anomalies-{tag}-w{workers}.jsonl")))?
            != sorted_lines(&input.with_extension("reference.jsonl"))?
        {
            return Err(format!(
                "[{tag}] --workers {workers} found other anomalies than the reference ({} vs {})",
                m.anomalies, reference.anomalies
            ));
        }
        rows.push((workers, m));
    }
    let rate = |m: &Measured| samples as f64 / m.wall;
    let (one, two) = (rows[0].1, rows[1].1);
    let mut md = String::new();
    let _ = writeln!(md, "**{title}**: {samples} samples over {series} series ({:.0} MB of JSON Lines), the default champion, best of {} runs.\n", bytes as f64 / 1e6, o.runs);
    let _ = writeln!(md, "| run | workers | wall s | samples/s | CPU s | samples/s per CPU s | peak RSS MB | bytes per series | anomalies |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let row = |md: &mut String, name: &str, workers: usize, m: &Measured| {
        let _ = writeln!(
            md,
            "| {name} | {workers} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {} |",
            m.wall,
            rate(m),
            m.cpu,
            samples as f64 / m.cpu.max(1e-9),
            m.rss as f64 / 1e6,
            m.rss as f64 / series as f64,
            m.anomalies
        );
    };
    row(&mut md, "plain loop (reference)", 1, &reference);
    for (workers, m) in &rows {
        row(&mut md, "incidentflow", *workers, m);
    }
    let _ = writeln!(md, "\nRatios: 1 worker / plain loop = {:.2}; 2 workers / 1 worker = {:.2}x; per core with 2 workers: {:.0} samples/s.\n",
        rate(&one) / rate(&reference), rate(&two) / rate(&one), rate(&two) / 2.0);
    let figures = |m: &Measured| serde_json::json!({"wall_s": m.wall, "cpu_s": m.cpu, "samples_per_s": rate(m), "peak_rss_bytes": m.rss, "bytes_per_series": m.rss as f64 / series as f64, "anomalies": m.anomalies});
    let json = serde_json::json!({
        "input": title, "samples": samples, "series": series, "input_bytes": bytes, "runs": o.runs,
        "reference": figures(&reference),
        "incidentflow": rows.iter().map(|(w, m)| { let mut f = figures(m); f["workers"] = (*w).into(); f }).collect::<Vec<_>>(),
        "ratio_1_worker_to_reference": rate(&one) / rate(&reference),
        "speedup_2_workers": rate(&two) / rate(&one),
    });
    Ok((md, json))
}

/// End-to-end latency under an open-loop load: the samples are written into the job's stdin on a
/// fixed schedule (sample i is due at start + i / rate, whether or not the job keeps up), and each
/// anomaly read from the job's stdout is timed from its sample's due time (so a stalled job is
/// charged for the wait: no coordinated omission).
/// What the latency run times on the job's stdout.
#[derive(Clone, Copy)]
enum Timed<'a> {
    /// Each anomaly, from its own sample.
    Anomalies,
    /// Each incident version opened or updated by an anomaly, from the first sample emitted with
    /// that version's time (no version can come before it); with this topology.
    Incidents(&'a Path),
}

fn latency(
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

fn bench(o: &Options) -> Result<(), String> {
    std::fs::create_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    let synthetic = o
        .dir
        .join(format!("samples-{}-{}.jsonl", o.samples, o.series));
    if !synthetic.exists() {
        eprintln!(
            "generating {} ({} samples over {} series)...",
            synthetic.display(),
            o.samples,
            o.series
        );
        generate(&synthetic, o.samples, o.series).map_err(|e| e.to_string())?;
    }
    let scenario_dir = o.dir.join(format!("{}-seed{}", o.scenario, o.seed));
    let scenario = Scenario::new(
        ScenarioConfig::named(&o.scenario, o.seed)
            .ok_or_else(|| format!("unknown scenario {}", o.scenario))?,
    );
    let scenario_input = scenario_dir.join("samples.jsonl");
    // Generated once per scenario definition: a change to the load generator's scenario
    // regenerates it.
    let stamp = scenario_dir.join("scenario.txt");
    let definition = format!("{:?}\n", scenario.config);
    let fresh = std::fs::read_to_string(&stamp).is_ok_and(|s| s == definition);
    if !scenario_input.exists() || !fresh {
        eprintln!(
            "generating the {} scenario into {}...",
            o.scenario,
            scenario_dir.display()
        );
        incidentflow_loadgen::files::write_dir(&scenario, &scenario_dir, 0)
            .map_err(|e| e.to_string())?;
        std::fs::write(&stamp, &definition).map_err(|e| e.to_string())?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "incidentflow"])
        .status();
    if !status.map(|s| s.success()).unwrap_or(false) {
        return Err(
            "cannot build the incidentflow binary (cargo build --release -p incidentflow)".into(),
        );
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let job = exe.with_file_name("incidentflow");
    let machine = machine_description();

    let mut md = format!("Machine: {machine}.\n\n");
    if let Some(before) = &o.before {
        md += &before_and_after(
            o,
            before,
            &job,
            &[("synthetic", &synthetic), (&o.scenario, &scenario_input)],
        )?;
        print!("{md}");
        std::fs::write(o.dir.join("results-before-after.md"), &md).map_err(|e| e.to_string())?;
        return Ok(());
    }
    if o.only.is_some() {
        // The file run's anomalies, to check the Kafka runs against.
        let reference = run_job(&job, &scenario_input, &o.dir, &o.scenario, 1, &[])?;
        eprintln!(
            "[{}] {} anomalies from the file",
            o.scenario, reference.anomalies
        );
        let lines: Vec<String> = scenario.samples().collect();
        let anomalies = o.dir.join(format!("anomalies-{}-w1.jsonl", o.scenario));
        let (k, kafka_json) = kafka_bench(o, &job, &lines, &anomalies)?;
        md += &k;
        print!("{md}");
        std::fs::write(o.dir.join("results-kafka.md"), &md).map_err(|e| e.to_string())?;
        std::fs::write(
            o.dir.join("results-kafka.json"),
            serde_json::to_string_pretty(&kafka_json).unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let (a, a_json) = throughput(
        o,
        &exe,
        &job,
        "synthetic",
        "Synthetic input",
        &synthetic,
        o.series,
    )?;
    md += &a;
    let title = format!("The {} loadgen scenario (seed {})", o.scenario, o.seed);
    let (b, b_json) = throughput(
        o,
        &exe,
        &job,
        &o.scenario,
        &title,
        &scenario_input,
        scenario.series() as u64,
    )?;
    md += &b;
    // The champion against the z-score, the champion before it, on the same scenario (1 worker):
    // the cost of judging every series on its own history instead of a window.
    eprintln!(
        "[{}] incidentflow --workers 1, the z-score as champion...",
        o.scenario
    );
    let zscore_job = o.dir.join("zscore-champion.toml");
    std::fs::write(&zscore_job, "[detectors]\nchampion = \"zscore\"\n")
        .map_err(|e| e.to_string())?;
    let zscore_extra: Vec<String> = vec!["--config".into(), zscore_job.display().to_string()];
    let tag = format!("{}-zscore", o.scenario);
    let zscore = best(o.runs, || {
        run_job(&job, &scenario_input, &o.dir, &tag, 1, &zscore_extra)
    })?;
    let alone = best(o.runs, || {
        run_job(&job, &scenario_input, &o.dir, &o.scenario, 1, &[])
    })?;
    let scenario_samples = scenario.samples().count() as f64;
    let per_cpu = |m: &Measured| scenario_samples / m.cpu.max(1e-9);
    md += &format!(
        "\n**The champion** on the {} scenario, 1 worker: the change detector {:.0} samples/s ({:.0} per CPU second, {:.0} MB) against the z-score, the champion before it, {:.0} samples/s ({:.0} per CPU second, {:.0} MB): {:.2}x per core (the target is at least 0.8).\n",
        o.scenario,
        scenario_samples / alone.wall,
        per_cpu(&alone),
        alone.rss as f64 / 1e6,
        scenario_samples / zscore.wall,
        per_cpu(&zscore),
        zscore.rss as f64 / 1e6,
        per_cpu(&alone) / per_cpu(&zscore),
    );
    let champion_json = serde_json::json!({"scenario": o.scenario, "change_samples_per_s": scenario_samples / alone.wall, "change_samples_per_cpu_s": per_cpu(&alone), "zscore_samples_per_s": scenario_samples / zscore.wall, "zscore_samples_per_cpu_s": per_cpu(&zscore), "ratio_per_core": per_cpu(&alone) / per_cpu(&zscore), "change_peak_rss_bytes": alone.rss, "zscore_peak_rss_bytes": zscore.rss});
    // Every detector on: the champion and five challengers in shadow, against the champion alone
    // on the same scenario (1 worker).
    eprintln!(
        "[{}] incidentflow --workers 1 with every detector...",
        o.scenario
    );
    let all_job = o.dir.join("all-detectors.toml");
    std::fs::write(
        &all_job,
        "[detectors]\nchallengers = [\"zscore\", \"robust\", \"level_shift\", \"trend\", \"seasonal\"]\n",
    )
    .map_err(|e| e.to_string())?;
    let all_extra: Vec<String> = vec![
        "--config".into(),
        all_job.display().to_string(),
        "--challengers-out".into(),
        o.dir.join("challengers.jsonl").display().to_string(),
    ];
    let tag = format!("{}-all", o.scenario);
    let all = best(o.runs, || {
        run_job(&job, &scenario_input, &o.dir, &tag, 1, &all_extra)
    })?;
    md += &format!(
        "\n**Every detector** on the {} scenario, 1 worker: {:.0} samples/s with the champion and the five challengers against {:.0} samples/s with the champion alone ({:.2}x); peak memory {:.0} MB against {:.0} MB.\n\n",
        o.scenario,
        scenario_samples / all.wall,
        scenario_samples / alone.wall,
        alone.wall / all.wall,
        all.rss as f64 / 1e6,
        alone.rss as f64 / 1e6
    );
    let detectors_json = serde_json::json!({"scenario": o.scenario, "alone_samples_per_s": scenario_samples / alone.wall, "all_samples_per_s": scenario_samples / all.wall, "ratio": alone.wall / all.wall, "alone_peak_rss_bytes": alone.rss, "all_peak_rss_bytes": all.rss});
    eprintln!("latency at {} samples/s...", o.rate);
    let lines: Vec<String> = scenario.samples().collect();
    let (c, c_json) = latency(&job, lines.clone(), o.rate, 1, Timed::Anomalies)?;
    md += &c;

    // Correlation on: the same scenario with its topology and deploys.
    let topology = scenario_dir.join("topology.jsonl");
    let extra: Vec<String> = vec![
        "--topology".into(),
        topology.display().to_string(),
        "--deploys".into(),
        scenario_dir.join("deploys.jsonl").display().to_string(),
        "--incidents-out".into(),
        o.dir
            .join(format!("incidents-{}.jsonl", o.scenario))
            .display()
            .to_string(),
    ];
    let samples = lines.len() as f64;
    eprintln!(
        "[{}] incidentflow --workers 1 without and with incidents...",
        o.scenario
    );
    let without = best(o.runs, || {
        run_job(&job, &scenario_input, &o.dir, &o.scenario, 1, &[])
    })?;
    let tag = format!("{}-incidents", o.scenario);
    let with = best(o.runs, || {
        run_job(&job, &scenario_input, &o.dir, &tag, 1, &extra)
    })?;
    let versions = count_lines(&o.dir.join(format!("incidents-{}.jsonl", o.scenario)))?;
    md += &format!(
        "\n**Correlation** on the {} scenario (seed {}: {} samples, {} series), 1 worker: {:.0} samples/s with incidents ({} incident versions) against {:.0} samples/s without ({:.2}x); peak memory {:.0} MB with, {:.0} MB without.\n\n",
        o.scenario, o.seed, samples, scenario.series(), samples / with.wall, versions, samples / without.wall, without.wall / with.wall, with.rss as f64 / 1e6, without.rss as f64 / 1e6
    );
    let correlation_json = serde_json::json!({"scenario": o.scenario, "samples": samples, "without_samples_per_s": samples / without.wall, "with_samples_per_s": samples / with.wall, "incident_versions": versions, "with_peak_rss_bytes": with.rss, "without_peak_rss_bytes": without.rss});
    eprintln!("incident latency at {} samples/s...", o.rate);
    let (d, d_json) = latency(&job, lines.clone(), o.rate, 1, Timed::Incidents(&topology))?;
    md += &d;
    let (k, kafka_json) = kafka_bench(
        o,
        &job,
        &lines,
        &o.dir.join(format!("anomalies-{}-w1.jsonl", o.scenario)),
    )?;
    md += &k;
    print!("{md}");
    std::fs::write(o.dir.join("results.md"), &md).map_err(|e| e.to_string())?;
    let json = serde_json::json!({"machine": machine, "synthetic": a_json, "scenario": b_json, "champion": champion_json, "every_detector": detectors_json, "correlation": correlation_json, "latency": c_json, "incident_latency": d_json, "kafka": kafka_json});
    std::fs::write(
        o.dir.join("results.json"),
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} and {}",
        o.dir.join("results.md").display(),
        o.dir.join("results.json").display()
    );
    Ok(())
}

/// Kafka: the scenario produced to a real tansu broker (4 partitions, 500 samples a message) and
/// replayed by the job with 1 and 2 workers (`--until-end`), checked to find the same anomalies as
/// the file run; then end-to-end latency through Kafka: the samples produced on an open-loop
/// schedule at `--rate` while the job follows the topic, each anomaly timed from its sample's due
/// time. Skipped (and said so) when tansu is not installed.
fn kafka_bench(
    o: &Options,
    job: &Path,
    lines: &[String],
    file_anomalies: &Path,
) -> Result<(String, serde_json::Value), String> {
    use incidentflow_loadgen::kafka::{create_topics, produce_lines, KafkaTarget};
    use std::process::Stdio;
    use std::time::Duration;
    if incidentflow_loadgen::kafka::tansu_binary().is_none() {
        eprintln!("[kafka] skipped: tansu is not installed (cargo install tansu --version 0.6.0 --features libsql)");
        return Ok((
            "\n**Kafka**: skipped, tansu is not installed.\n".into(),
            serde_json::Value::Null,
        ));
    }
    let dir = o.dir.join("kafka");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let brokers = format!("127.0.0.1:{port}");
    let mut broker = incidentflow_loadgen::kafka::tansu_broker(&brokers, &dir)
        .ok_or("tansu is not installed")?
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start tansu: {e}"))?;
    let result = (|| -> Result<(String, serde_json::Value), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&brokers).is_err() {
            if Instant::now() > deadline {
                return Err("tansu did not start".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Replay throughput.
        let target = KafkaTarget {
            samples_topic: "bench.metrics".into(),
            partitions: 4,
            batch: 500,
            ..KafkaTarget::new(&brokers)
        };
        create_topics(&brokers, &[("bench.metrics", 4)])?;
        eprintln!("[kafka] producing {} samples...", lines.len());
        let started = Instant::now();
        produce_lines(&target, lines.iter().cloned(), 0)?;
        let produce_rate = lines.len() as f64 / started.elapsed().as_secs_f64();
        let config = dir.join("job.toml");
        std::fs::write(&config, "[kafka]\nsamples_topic = \"bench.metrics\"\n")
            .map_err(|e| e.to_string())?;
        let extra: Vec<String> = vec![
            "--config".into(),
            config.display().to_string(),
            "--kafka-brokers".into(),
            brokers.clone(),
            "--until-end".into(),
        ];
        let expected = count_lines(file_anomalies)?;
        let mut rows = Vec::new();
        for workers in [1usize, 2] {
            eprintln!("[kafka] incidentflow --workers {workers} --input kafka --until-end...");
            let m = best(o.runs, || {
                run_job(job, Path::new("kafka"), &dir, "kafka", workers, &extra)
            })?;
            if m.anomalies != expected {
                return Err(format!(
                    "[kafka] {workers} workers found {} anomalies, the file run {expected}",
                    m.anomalies
                ));
            }
            rows.push((workers, lines.len() as f64 / m.wall, m));
        }
        let mut md = format!(
            "\n**Kafka** (tansu 0.6.0 with SQLite storage on the same machine; the scenario's {} samples in 4 partitions, 500 samples a message, produced at {:.0} samples/s): replay with `--until-end`, best of {}:\n\n| workers | wall s | samples/s | anomalies |\n|---|---|---|---|\n",
            lines.len(), produce_rate, o.runs
        );
        for (workers, rate, m) in &rows {
            md += &format!(
                "| {workers} | {:.2} | {rate:.0} | {} |\n",
                m.wall, m.anomalies
            );
        }

        // Latency through Kafka: produce on a schedule while the job follows the topic.
        create_topics(&brokers, &[("latency.metrics", 4)])?;
        let config = dir.join("latency.toml");
        std::fs::write(&config, "[kafka]\nsamples_topic = \"latency.metrics\"\n")
            .map_err(|e| e.to_string())?;
        let mut child = Command::new(job)
            .args(["run", "--config"])
            .arg(&config)
            .args([
                "--kafka-brokers",
                &brokers,
                "--input",
                "kafka",
                "--anomalies-out",
                "-",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let key = |v: &serde_json::Value| -> String {
            format!(
                "{}/{}/{}",
                v["service"].as_str().unwrap_or(""),
                v["metric_name"].as_str().unwrap_or(""),
                v["timestamp"].as_str().unwrap_or("")
            )
        };
        // Each sample's due time on the schedule (sample i at start + i / rate).
        std::thread::sleep(Duration::from_secs(2)); // the job has assigned its partitions
        let rate = o.rate;
        let target = KafkaTarget {
            samples_topic: "latency.metrics".into(),
            partitions: 4,
            batch: 500,
            ..KafkaTarget::new(&brokers)
        };
        // After the scenario, a trailer of 16 series sampled every second for two minutes past its
        // end, so that event time keeps moving when the scenario's samples stop, as it does in
        // production; without it the last samples wait for the idle timeout.
        let end = lines
            .iter()
            .rev()
            .take(100_000)
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                v["timestamp"]
                    .as_str()
                    .and_then(|t| incidentflow_dataflows::time::parse_rfc3339(t).ok())
            })
            .max()
            .unwrap_or(0);
        let mut owned: Vec<String> = lines.to_vec();
        for second in 1..=120u64 {
            for k in 0..16 {
                owned.push(format!(
                    r#"{{"timestamp":{},"namespace":"trailer","service":"trailer-{k}","metric_name":"tick","value":1}}"#,
                    end + second * 1000
                ));
            }
        }
        let start = Instant::now();
        let producer = std::thread::spawn(move || produce_lines(&target, owned.into_iter(), rate));
        let mut due: HashMap<String, Instant> = HashMap::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            let t =
                incidentflow_dataflows::time::parse_rfc3339(v["timestamp"].as_str().unwrap_or(""))
                    .map(incidentflow_dataflows::time::format_rfc3339)
                    .unwrap_or_default();
            let mut v = v;
            v["timestamp"] = serde_json::Value::String(t);
            due.insert(
                key(&v),
                start + Duration::from_secs_f64(i as f64 / rate as f64),
            );
        }
        let (tx, rx) = std::sync::mpsc::channel::<(String, Instant)>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send((line, Instant::now()));
            }
        });
        producer
            .join()
            .map_err(|_| "the producer panicked".to_string())??;
        let produced = Instant::now();
        // The last samples are scored once their partitions go idle (5 s) and time moves on.
        let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
            .map_err(|e| e.to_string())?;
        let mut unmatched = 0u64;
        let mut last_output = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok((line, arrived)) => {
                    last_output = arrived;
                    let v: serde_json::Value =
                        serde_json::from_str(&line).map_err(|e| e.to_string())?;
                    match due.get(&key(&v)) {
                        Some(d) => histogram.saturating_record(
                            arrived.saturating_duration_since(*d).as_micros() as u64,
                        ),
                        None => unmatched += 1,
                    }
                }
                Err(_) => {
                    if produced.elapsed() > Duration::from_secs(15)
                        && last_output.elapsed() > Duration::from_secs(5)
                    {
                        break;
                    }
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        md += &format!(
            "\nLatency through Kafka: samples produced at {rate} samples/s on an open-loop schedule (librdkafka linger 20 ms, 500 samples a message at most) while the job follows the topic, each anomaly timed from its sample's due time to the job's stdout ({} anomalies timed of {expected}, 1 worker): p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms.\n",
            histogram.len(), ms(0.5), ms(0.99), ms(0.999), histogram.max() as f64 / 1000.0
        );
        let json = serde_json::json!({
            "produce_samples_per_s": produce_rate,
            "replay": rows.iter().map(|(w, r, m)| serde_json::json!({"workers": w, "samples_per_s": r, "wall_s": m.wall, "anomalies": m.anomalies})).collect::<Vec<_>>(),
            "latency": {"offered_rate": rate, "timed": histogram.len(), "unmatched": unmatched, "p50_ms": ms(0.5), "p99_ms": ms(0.99), "p999_ms": ms(0.999), "max_ms": histogram.max() as f64 / 1000.0},
        });
        Ok((md, json))
    })();
    let _ = broker.kill();
    let _ = broker.wait();
    result
}

fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores")
}
