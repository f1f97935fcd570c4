//! What the job prints at exit: a one-screen summary for the person who ran it, and the same
//! figures as JSON for scripts (`--summary-out`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::ops::process::{cpu_seconds, peak_rss_bytes};

use incidentflow_dataflows::records::{Anomaly, Direction, Reason};
use incidentflow_dataflows::time::{format_clock, format_rfc3339};
use serde_json::json;

use crate::emit::records::Outcome;

/// How many services the digest's first line names.
const LISTED_SERVICES: usize = 8;

/// How many series the human summary lists.
const LISTED: usize = 15;

/// The figures of a finished run.
pub struct Report<'a> {
    /// What worker 0's sinks gathered.
    pub outcome: &'a Outcome,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Where anomalies went (None: nowhere but this summary).
    pub anomalies_to: Option<&'a str>,
    /// Where dead letters went.
    pub dead_letter_to: &'a str,
    /// Worker threads x processes.
    pub workers: usize,
    /// The process's metrics (unjudged series, alert deliveries).
    pub metrics: &'a crate::ops::metrics::Metrics,
}

impl Report<'_> {
    fn rate(&self) -> f64 {
        self.outcome.counts.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The one-screen summary.
    pub fn human(&self) -> String {
        let c = &self.outcome.counts;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "incidentflow: {} in {:.2}s with {} worker{} ({:.0} records/s)",
            plural(c.read, "record"),
            self.elapsed.as_secs_f64(),
            self.workers,
            if self.workers == 1 { "" } else { "s" },
            self.rate()
        );
        let _ = writeln!(s, "  read          {:>12}", c.read);
        let _ = writeln!(s, "  valid         {:>12}", c.valid);
        let _ = writeln!(
            s,
            "  dead-lettered {:>12}{}",
            c.dead_total(),
            if c.dead_total() > 0 {
                format!("  -> {}", self.dead_letter_to)
            } else {
                String::new()
            }
        );
        for (reason, n) in Reason::ALL
            .iter()
            .zip(c.dead.iter())
            .filter(|(_, n)| **n > 0)
        {
            let _ = writeln!(s, "    {:<24}{:>9}", reason.as_str(), n);
        }
        let _ = writeln!(
            s,
            "  anomalies     {:>12}{}",
            self.outcome.anomalies,
            self.anomalies_to
                .map(|t| format!("  -> {}", if t == "-" { "stdout" } else { t }))
                .unwrap_or_default()
        );
        if self.outcome.challenger_anomalies > 0 {
            let _ = writeln!(
                s,
                "  challengers   {:>12}  (anomaly events of the detectors in shadow)",
                self.outcome.challenger_anomalies
            );
        }
        if self.outcome.incident_versions > 0 {
            let _ = writeln!(
                s,
                "  incidents     {:>12}  ({} versions)",
                self.outcome.incidents_opened, self.outcome.incident_versions
            );
        }
        let unscored = self.metrics.unscored_series();
        if unscored > 0 {
            let _ = writeln!(
                s,
                "  not judged    {:>12}  (by the z-score: too few samples in baseline.window; see the log)",
                plural(unscored, "series")
            );
        }
        for (output, outcomes) in self.metrics.alert_counts() {
            let told: Vec<String> = outcomes.iter().map(|(k, n)| format!("{n} {k}")).collect();
            let _ = writeln!(s, "  alerts {output:<7}{:>12}", told.join(", "));
        }
        if let Some(rss) = peak_rss_bytes() {
            let _ = writeln!(s, "  peak memory   {:>9.1} MB", rss as f64 / 1e6);
        }
        if c.read != c.valid + c.dead_total() {
            let _ = writeln!(
                s,
                "  WARNING: read != valid + dead-lettered; please report this as a bug"
            );
        }
        if let Some(e) = &self.outcome.error {
            let _ = writeln!(s, "  ERROR: {e}");
        }
        s
    }

    /// The summary as JSON.
    pub fn json(&self) -> serde_json::Value {
        let c = &self.outcome.counts;
        let by_reason: BTreeMap<&str, u64> = Reason::ALL
            .iter()
            .zip(c.dead.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| (r.as_str(), *n))
            .collect();
        json!({
            "read": c.read,
            "valid": c.valid,
            "dead_lettered": c.dead_total(),
            "dead_lettered_by_reason": by_reason,
            "anomalies": self.outcome.anomalies,
            "incident_versions": self.outcome.incident_versions,
            "challenger_anomalies": self.outcome.challenger_anomalies,
            "incidents": self.outcome.incidents_opened,
            "elapsed_seconds": self.elapsed.as_secs_f64(),
            "records_per_second": self.rate(),
            "workers": self.workers,
            "peak_rss_bytes": peak_rss_bytes(),
            "cpu_seconds": cpu_seconds(),
            "alerts": self.metrics.alert_counts(),
            "error": self.outcome.error,
        })
    }
}

/// The anomalies found, grouped by series, for a person reading at a glance.
pub fn anomaly_digest(outcome: &Outcome) -> String {
    let mut s = String::new();
    if outcome.anomalies == 0 {
        let _ = writeln!(s, "No anomalies: every series stayed within its baseline.");
        return s;
    }
    let by_series = anomalous_by_series(&outcome.shown);
    write_digest_headline(&mut s, &by_series);
    let mut rows: Vec<_> = by_series.iter().collect();
    rows.sort_by_key(|(key, list)| (list[0].timestamp, *key));
    write_digest_table(&mut s, &rows);
    if outcome.anomalies as usize > outcome.shown.len() {
        let _ = writeln!(
            s,
            "  (the first {} anomalies are summarised)",
            outcome.shown.len()
        );
    }
    let _ = writeln!(
        s,
        "  first anomaly at {}; write every anomaly with its evidence with --anomalies-out FILE",
        outcome
            .shown
            .first()
            .map_or(String::new(), |a| format_rfc3339(a.timestamp))
    );
    s
}

/// A series as the digest names it: (namespace, service, metric).
type SeriesKey<'a> = (&'a str, &'a str, &'a str);

/// The anomalous samples of `shown`, by series, in the order they came. A close says the series
/// recovered: its sample is not anomalous. What is shown of each series are its episodes' opens
/// and updates.
fn anomalous_by_series(shown: &[Anomaly]) -> BTreeMap<SeriesKey<'_>, Vec<&Anomaly>> {
    let mut by_series: BTreeMap<SeriesKey<'_>, Vec<&Anomaly>> = BTreeMap::new();
    let anomalous = |a: &&Anomaly| {
        a.episode
            .is_none_or(|e| e.status != incidentflow_dataflows::records::EpisodeStatus::Close)
    };
    for a in shown.iter().filter(anomalous) {
        by_series
            .entry((
                &*a.series.namespace,
                &*a.series.service,
                &*a.series.metric_name,
            ))
            .or_default()
            .push(a);
    }
    by_series
}

/// How many episodes `list` opened (a per-sample anomaly, with no episode, counts as one).
fn episodes_opened(list: &[&Anomaly]) -> u64 {
    list.iter()
        .filter(|a| {
            a.episode
                .is_none_or(|e| e.status == incidentflow_dataflows::records::EpisodeStatus::Open)
        })
        .count() as u64
}

/// The digest's first line: how many episodes, series and services, and the first services'
/// names.
fn write_digest_headline(s: &mut String, by_series: &BTreeMap<SeriesKey<'_>, Vec<&Anomaly>>) {
    let services: std::collections::BTreeSet<&str> = by_series.keys().map(|k| k.1).collect();
    let named: Vec<&str> = services.iter().copied().take(LISTED_SERVICES).collect();
    let more = match services.len().saturating_sub(named.len()) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let _ = writeln!(
        s,
        "Found {} in {} on {} service{}: {}{more}",
        plural(
            by_series.values().map(|list| episodes_opened(list)).sum(),
            "anomaly episode"
        ),
        plural(by_series.len() as u64, "series"),
        services.len(),
        if services.len() == 1 { "" } else { "s" },
        named.join(", ")
    );
}

/// The table of the first [`LISTED`] series (`rows`, in the order shown), and how many more
/// there are.
fn write_digest_table(s: &mut String, rows: &[(&SeriesKey<'_>, &Vec<&Anomaly>)]) {
    let _ = writeln!(
        s,
        "  {:<36} {:>8}  {:<19} {:>10} {:>18} {:>10} {:>5}",
        "namespace/service metric",
        "episodes",
        "first..last (UTC)",
        "peak",
        "expected (band)",
        "strength",
        "score"
    );
    for (key, list) in rows.iter().take(LISTED) {
        write_digest_row(s, key, list);
    }
    if rows.len() > LISTED {
        let _ = writeln!(s, "  ... and {} more series", rows.len() - LISTED);
    }
}

/// One series' line: its episodes, first and last times, and its peak (the highest score, the
/// earliest of equals) with its expected band and deviation.
fn write_digest_row(s: &mut String, key: &SeriesKey<'_>, list: &[&Anomaly]) {
    let peak = list
        .iter()
        .max_by(|a, b| {
            a.anomaly_score
                .cmp(&b.anomaly_score)
                .then(b.timestamp.cmp(&a.timestamp))
        })
        .copied();
    let Some(peak) = peak else { return };
    let arrow = if peak.evidence.direction == Direction::Up {
        "▲"
    } else {
        "▼"
    };
    // How far past its threshold: the z-score's z; the other detectors' own statistic
    // (the change detector's: its strength, the move over its threshold, signed).
    let deviation = match (peak.evidence.z, peak.evidence.statistic) {
        (Some(z), _) => format!("z {:+.1}", z.0),
        (None, Some(x)) => format!("{:+.1}", x.0),
        (None, None) => "flat".to_string(),
    };
    let last = list.last().map_or(peak.timestamp, |a| a.timestamp);
    let _ = writeln!(
        s,
        "  {:<36} {:>8}  {:<19} {:>9}{} {:>18} {:>10} {:>5.2}",
        format!("{}/{} {}", key.0, key.1, key.2),
        episodes_opened(list),
        format!(
            "{}..{}",
            format_clock(list[0].timestamp),
            format_clock(last)
        ),
        short(peak.value.0),
        arrow,
        format!(
            "{} ({}..{})",
            short(peak.expected.0),
            short(peak.lower_bound.0),
            short(peak.upper_bound.0)
        ),
        deviation,
        peak.anomaly_score.0
    );
}

fn short(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 0.01 && v.abs() < 1e6) {
        let t = format!("{v:.3}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.3e}")
    }
}

fn plural(n: u64, word: &str) -> String {
    let plural = match word {
        "anomaly" => "anomalies",
        "series" => "series",
        _ => return format!("{n} {word}{}", if n == 1 { "" } else { "s" }),
    };
    format!("{n} {}", if n == 1 { word } else { plural })
}
