//! The figures put in words and numbers: the Markdown paragraphs and JSON objects of the scenario
//! comparisons (the champion against the z-score, every detector, correlation), and the results
//! printed and written to the results folder.

use crate::cli::Options;
use crate::measure::Measured;
use crate::throughput::Correlation;

/// The champion (`alone`) against the z-score as champion (`zscore`) per core, on the scenario's
/// `scenario_samples` samples: the Markdown paragraph and the JSON figures.
pub fn champion_report(
    o: &Options,
    scenario_samples: f64,
    alone: &Measured,
    zscore: &Measured,
) -> (String, serde_json::Value) {
    let per_cpu = |m: &Measured| scenario_samples / m.cpu.max(1e-9);
    let md = format!(
        "\n**The champion** on the {} scenario, 1 worker: the change detector {:.0} samples/s ({:.0} per CPU second, {:.0} MB) against the z-score, the champion before it, {:.0} samples/s ({:.0} per CPU second, {:.0} MB): {:.2}x per core (the target is at least 0.8).\n",
        o.scenario,
        scenario_samples / alone.wall,
        per_cpu(alone),
        alone.rss as f64 / 1e6,
        scenario_samples / zscore.wall,
        per_cpu(zscore),
        zscore.rss as f64 / 1e6,
        per_cpu(alone) / per_cpu(zscore),
    );
    let json = serde_json::json!({"scenario": o.scenario, "change_samples_per_s": scenario_samples / alone.wall, "change_samples_per_cpu_s": per_cpu(alone), "zscore_samples_per_s": scenario_samples / zscore.wall, "zscore_samples_per_cpu_s": per_cpu(zscore), "ratio_per_core": per_cpu(alone) / per_cpu(zscore), "change_peak_rss_bytes": alone.rss, "zscore_peak_rss_bytes": zscore.rss});
    (md, json)
}

/// Every detector on (`all`) against the champion alone (`alone`), on the scenario's
/// `scenario_samples` samples: the Markdown paragraph and the JSON figures.
pub fn every_detector_report(
    o: &Options,
    scenario_samples: f64,
    alone: &Measured,
    all: &Measured,
) -> (String, serde_json::Value) {
    let md = format!(
        "\n**Every detector** on the {} scenario, 1 worker: {:.0} samples/s with the champion and the five challengers against {:.0} samples/s with the champion alone ({:.2}x); peak memory {:.0} MB against {:.0} MB.\n\n",
        o.scenario,
        scenario_samples / all.wall,
        scenario_samples / alone.wall,
        alone.wall / all.wall,
        all.rss as f64 / 1e6,
        alone.rss as f64 / 1e6
    );
    let json = serde_json::json!({"scenario": o.scenario, "alone_samples_per_s": scenario_samples / alone.wall, "all_samples_per_s": scenario_samples / all.wall, "ratio": alone.wall / all.wall, "alone_peak_rss_bytes": alone.rss, "all_peak_rss_bytes": all.rss});
    (md, json)
}

/// The scenario (`samples` samples over `series` series) without and with correlation: the
/// Markdown paragraph and the JSON figures.
pub fn correlation_report(
    o: &Options,
    samples: f64,
    series: usize,
    correlation: &Correlation,
) -> (String, serde_json::Value) {
    let Correlation {
        without,
        with,
        versions,
    } = correlation;
    let md = format!(
        "\n**Correlation** on the {} scenario (seed {}: {} samples, {} series), 1 worker: {:.0} samples/s with incidents ({} incident versions) against {:.0} samples/s without ({:.2}x); peak memory {:.0} MB with, {:.0} MB without.\n\n",
        o.scenario, o.seed, samples, series, samples / with.wall, versions, samples / without.wall, without.wall / with.wall, with.rss as f64 / 1e6, without.rss as f64 / 1e6
    );
    let json = serde_json::json!({"scenario": o.scenario, "samples": samples, "without_samples_per_s": samples / without.wall, "with_samples_per_s": samples / with.wall, "incident_versions": versions, "with_peak_rss_bytes": with.rss, "without_peak_rss_bytes": without.rss});
    (md, json)
}

/// Prints the Markdown and writes it to `<stem>.md` in the results folder, and the JSON figures
/// (when given) to `<stem>.json`.
pub fn publish(
    o: &Options,
    stem: &str,
    md: &str,
    json: Option<&serde_json::Value>,
) -> Result<(), String> {
    print!("{md}");
    std::fs::write(o.dir.join(format!("{stem}.md")), md).map_err(|e| e.to_string())?;
    if let Some(json) = json {
        std::fs::write(
            o.dir.join(format!("{stem}.json")),
            serde_json::to_string_pretty(json).unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
