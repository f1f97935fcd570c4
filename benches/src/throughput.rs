//! Throughput on files: the job against the reference (1 and 2 workers), against another build
//! of itself, and on the scenario with the z-score as champion, with every detector, and with
//! correlation on. Each run here measures; the figures of the last three are put in words by
//! [`crate::report`].

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::Options;
use crate::measure::{best, count_lines, run_job, sorted_lines, Measured};
use crate::reference::run_reference;
use crate::setup::ScenarioInput;

/// The job's throughput against another build of it on each input, 1 worker, best of
/// `--runs`, the two builds' runs alternating so that both see the same machine; both must find
/// the same anomalies. Returns the Markdown table.
pub fn before_and_after(
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
pub fn throughput(
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

/// The job on the scenario with the z-score, the champion before the change detector, as its
/// champion (1 worker, best of `--runs`).
pub fn zscore_champion_run(
    o: &Options,
    job: &Path,
    input: &ScenarioInput,
) -> Result<Measured, String> {
    eprintln!(
        "[{}] incidentflow --workers 1, the z-score as champion...",
        o.scenario
    );
    let zscore_job = o.dir.join("zscore-champion.toml");
    std::fs::write(&zscore_job, "[detectors]\nchampion = \"zscore\"\n")
        .map_err(|e| e.to_string())?;
    let zscore_extra: Vec<String> = vec!["--config".into(), zscore_job.display().to_string()];
    let tag = format!("{}-zscore", o.scenario);
    best(o.runs, || {
        run_job(job, &input.samples, &o.dir, &tag, 1, &zscore_extra)
    })
}

/// The job on the scenario with every detector on: the champion and five challengers in shadow
/// (1 worker, best of `--runs`).
pub fn every_detector_run(
    o: &Options,
    job: &Path,
    input: &ScenarioInput,
) -> Result<Measured, String> {
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
    best(o.runs, || {
        run_job(job, &input.samples, &o.dir, &tag, 1, &all_extra)
    })
}

/// The scenario without and with correlation.
pub struct Correlation {
    /// Anomalies only.
    pub without: Measured,
    /// With the scenario's topology and deploys, writing incidents.
    pub with: Measured,
    /// Incident versions written.
    pub versions: u64,
}

/// The job on the scenario without and with correlation (its topology and deploys, incidents
/// written), 1 worker, best of `--runs` each.
pub fn correlation_runs(
    o: &Options,
    job: &Path,
    input: &ScenarioInput,
) -> Result<Correlation, String> {
    let topology = input.dir.join("topology.jsonl");
    let extra: Vec<String> = vec![
        "--topology".into(),
        topology.display().to_string(),
        "--deploys".into(),
        input.dir.join("deploys.jsonl").display().to_string(),
        "--incidents-out".into(),
        o.dir
            .join(format!("incidents-{}.jsonl", o.scenario))
            .display()
            .to_string(),
    ];
    eprintln!(
        "[{}] incidentflow --workers 1 without and with incidents...",
        o.scenario
    );
    let without = best(o.runs, || {
        run_job(job, &input.samples, &o.dir, &o.scenario, 1, &[])
    })?;
    let tag = format!("{}-incidents", o.scenario);
    let with = best(o.runs, || {
        run_job(job, &input.samples, &o.dir, &tag, 1, &extra)
    })?;
    let versions = count_lines(&o.dir.join(format!("incidents-{}.jsonl", o.scenario)))?;
    Ok(Correlation {
        without,
        with,
        versions,
    })
}
