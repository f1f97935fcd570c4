//! What the benchmark needs before it measures: the synthetic input, the loadgen scenario
//! written once into its folder, the job binary built next to this one, and the machine it runs
//! on, for the results.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use incidentflow_loadgen::scenario::{Scenario, ScenarioConfig};

use crate::cli::Options;

/// The synthetic input of `o` (`--samples` over `--series`), generated when missing.
pub fn synthetic_input(o: &Options) -> Result<PathBuf, String> {
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
    Ok(synthetic)
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

/// The loadgen scenario the benchmark measures, and where it is written.
pub struct ScenarioInput {
    /// The scenario (its samples are generated again in memory for the latency runs).
    pub scenario: Scenario,
    /// Its folder: samples, topology, deploys and truth.
    pub dir: PathBuf,
    /// Its samples file.
    pub samples: PathBuf,
}

/// The scenario of `o` (`--scenario`, `--seed`), written into its folder unless it is there
/// already from the same definition.
pub fn scenario_input(o: &Options) -> Result<ScenarioInput, String> {
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
    Ok(ScenarioInput {
        scenario,
        dir: scenario_dir,
        samples: scenario_input,
    })
}

/// Builds the job (`cargo build --release -p incidentflow`); returns this benchmark's binary
/// (it runs the reference) and the job's, which sits next to it.
pub fn build_job() -> Result<(PathBuf, PathBuf), String> {
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
    Ok((exe, job))
}

/// The CPU model and the number of cores.
pub fn machine_description() -> String {
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
