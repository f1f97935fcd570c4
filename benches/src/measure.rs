//! One measured run of the job, and the helpers every measurement shares: the best of several
//! runs, and the output files counted and compared.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// One measured run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    /// Wall seconds.
    pub wall: f64,
    /// The child's CPU seconds.
    pub cpu: f64,
    /// The child's peak RSS, bytes.
    pub rss: u64,
    /// Anomalies found.
    pub anomalies: u64,
}

/// Runs the job on `input` with `workers` workers and `extra` arguments, its anomalies and
/// summary written into `dir` under `tag`; its CPU, memory and anomalies read from the summary.
pub fn run_job(
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

/// The lines of a file, sorted (outputs of different runs compare as sets).
pub fn sorted_lines(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    Ok(lines)
}

/// The fastest of `runs` runs of `f` (at least one).
pub fn best(
    runs: usize,
    mut f: impl FnMut() -> Result<Measured, String>,
) -> Result<Measured, String> {
    let mut best: Option<Measured> = None;
    for _ in 0..runs.max(1) {
        let m = f()?;
        if best.is_none_or(|b| m.wall < b.wall) {
            best = Some(m);
        }
    }
    best.ok_or_else(|| "no run".into())
}

/// The lines of a file.
pub fn count_lines(path: &Path) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes.iter().filter(|&&b| b == b'\n').count() as u64)
}
