//! Champion and challengers side by side (`incidentflow eval --challengers FILE`): every
//! detector's anomalies as **episodes**, scored against the ground truth.
//!
//! An event with an `episode` belongs to the episode of its id, which runs from its start to its
//! last event (its close, when it closed). The z-score reports samples, not episodes: its
//! anomalies of one series are one episode while they come no more than `gap` apart (default
//! 5 minutes). Then, per detector:
//! * an episode **matches** a fault when its service is one the fault affected and it starts in
//!   [fault start, fault end + grace]; precision = matching episodes / episodes;
//! * recall = faults with a matching episode / faults;
//! * delay = the first matching episode's start - the fault's start, median over detected faults,
//!   also in sample intervals (the median interval between a series' samples, `--interval`);
//! * false positives per day = episodes that match no fault / the days the truth spans;
//! * duplicate episodes = matching episodes of one series and fault beyond the first (a detector
//!   that flaps reports one problem several times).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use incidentflow_dataflows::time::Time;
use serde::Serialize;

use crate::truth::{percentile, ratio, AnomalyRef, TruthFault};

/// One detector's episode.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeSpan {
    /// Its detector.
    pub detector: String,
    /// Its series (namespace/service/metric).
    pub series: String,
    /// Its service.
    pub service: String,
    /// From.
    pub start: Time,
    /// To (its last event).
    pub end: Time,
}

/// Groups anomaly events into episodes (see the module).
pub fn episodes(anomalies: &[AnomalyRef], gap_ms: u64) -> Vec<EpisodeSpan> {
    let mut by_id: BTreeMap<(&str, &str), EpisodeSpan> = BTreeMap::new();
    let mut samples: BTreeMap<(&str, &str), Vec<(Time, &str)>> = BTreeMap::new();
    for a in anomalies {
        match &a.episode {
            Some((id, started)) => {
                let e = by_id
                    .entry((&a.detector, id))
                    .or_insert_with(|| EpisodeSpan {
                        detector: a.detector.clone(),
                        series: a.series.clone(),
                        service: a.service.clone(),
                        start: *started,
                        end: a.timestamp,
                    });
                e.end = e.end.max(a.timestamp);
            }
            None => samples
                .entry((&a.detector, &a.series))
                .or_default()
                .push((a.timestamp, &a.service)),
        }
    }
    let mut out: Vec<EpisodeSpan> = by_id.into_values().collect();
    for ((detector, series), mut times) in samples {
        times.sort_unstable();
        let mut current: Option<EpisodeSpan> = None;
        for (t, service) in times {
            match current.as_mut() {
                Some(e) if t <= e.end + gap_ms => e.end = t,
                _ => {
                    out.extend(current.take());
                    current = Some(EpisodeSpan {
                        detector: detector.to_string(),
                        series: series.to_string(),
                        service: service.to_string(),
                        start: t,
                        end: t,
                    });
                }
            }
        }
        out.extend(current);
    }
    out.sort_by(|a, b| (&a.detector, &a.series, a.start).cmp(&(&b.detector, &b.series, b.start)));
    out
}

/// One detector's row of the comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DetectorRow {
    /// The detector.
    pub detector: String,
    /// Whether it is the champion (its anomalies came from `--anomalies`).
    pub champion: bool,
    /// Episodes.
    pub episodes: u64,
    /// Matching a fault.
    pub matching: u64,
    /// matching / episodes.
    pub precision: f64,
    /// Faults detected / faults.
    pub recall: f64,
    /// Median detection delay (ms) over detected faults.
    pub delay_p50_ms: Option<u64>,
    /// The same in sample intervals.
    pub delay_p50_intervals: Option<f64>,
    /// Episodes matching no fault, per day of the truth's span.
    pub false_positives_per_day: f64,
    /// Matching episodes beyond the first per series and fault.
    pub duplicate_episodes: u64,
}

/// Scores every detector's episodes against `truth` (`spans`: each fault's [start, end + grace]).
pub fn compare(
    truth: &[TruthFault],
    spans: &[(Time, Time)],
    episodes: &[EpisodeSpan],
    champion: &str,
    interval_ms: u64,
    span_days: f64,
) -> Vec<DetectorRow> {
    let mut by_detector: BTreeMap<&str, Vec<&EpisodeSpan>> = BTreeMap::new();
    for e in episodes {
        by_detector.entry(&e.detector).or_default().push(e);
    }
    let mut rows: Vec<DetectorRow> = by_detector
        .into_iter()
        .map(|(detector, episodes)| {
            let mut first: Vec<Option<Time>> = vec![None; truth.len()];
            let mut seen: BTreeMap<(usize, &str), u64> = BTreeMap::new();
            let mut matching = 0u64;
            for e in &episodes {
                let mut hit = false;
                for (k, f) in truth.iter().enumerate() {
                    let (start, end) = spans[k];
                    if e.start >= start
                        && e.start <= end
                        && f.affected_services.contains(&e.service)
                    {
                        hit = true;
                        first[k] = Some(first[k].map_or(e.start, |t| t.min(e.start)));
                        *seen.entry((k, e.series.as_str())).or_default() += 1;
                    }
                }
                matching += u64::from(hit);
            }
            let mut delays: Vec<u64> = first
                .iter()
                .zip(spans)
                .filter_map(|(t, (start, _))| t.map(|t| t - start))
                .collect();
            delays.sort_unstable();
            let p50 = percentile(&delays, 0.5);
            let total = episodes.len() as u64;
            DetectorRow {
                detector: detector.to_string(),
                champion: detector == champion,
                episodes: total,
                matching,
                precision: ratio(matching, total),
                recall: ratio(delays.len() as u64, truth.len() as u64),
                delay_p50_ms: p50,
                delay_p50_intervals: p50
                    .filter(|_| interval_ms > 0)
                    .map(|d| d as f64 / interval_ms as f64),
                false_positives_per_day: (total - matching) as f64 / span_days.max(1e-9),
                duplicate_episodes: seen.values().map(|n| n - 1).sum(),
            }
        })
        .collect();
    rows.sort_by_key(|r| (!r.champion, r.detector.clone()));
    rows
}

/// The comparison for a person.
pub fn render(rows: &[DetectorRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "champion and challengers, as episodes:");
    let _ = writeln!(
        s,
        "  {:<22} {:>8} {:>9} {:>7} {:>11} {:>9} {:>10}",
        "detector", "episodes", "precision", "recall", "delay p50", "FP/day", "duplicates"
    );
    for r in rows {
        let name = format!(
            "{}{}",
            r.detector,
            if r.champion { " (champion)" } else { "" }
        );
        let delay = match (r.delay_p50_ms, r.delay_p50_intervals) {
            (Some(ms), Some(n)) => format!("{}s {:.1}i", ms / 1000, n),
            (Some(ms), None) => format!("{}s", ms / 1000),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "  {:<22} {:>8} {:>8.1}% {:>6.1}% {:>11} {:>9.1} {:>10}",
            name,
            r.episodes,
            100.0 * r.precision,
            100.0 * r.recall,
            delay,
            r.false_positives_per_day,
            r.duplicate_episodes
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(detector: &str, series: &str, t: Time, episode: Option<(&str, Time)>) -> AnomalyRef {
        AnomalyRef {
            service: series.split('/').nth(1).unwrap_or(series).to_string(),
            series: series.to_string(),
            timestamp: t,
            detector: detector.to_string(),
            episode: episode.map(|(id, s)| (id.to_string(), s)),
        }
    }

    #[test]
    fn episodes_come_from_ids_or_from_gaps_and_are_scored_per_detector() {
        let min = 60_000;
        let anomalies = vec![
            // z-score: two runs of samples on db (one episode each), one on web.
            event("zscore", "shop/db/lat", 10 * min, None),
            event("zscore", "shop/db/lat", 11 * min, None),
            event("zscore", "shop/db/lat", 30 * min, None),
            event("zscore", "shop/web/lat", 100 * min, None),
            // robust: one episode of three events on db.
            event("robust", "shop/db/lat", 12 * min, Some(("ep-1", 12 * min))),
            event("robust", "shop/db/lat", 13 * min, Some(("ep-1", 12 * min))),
            event("robust", "shop/db/lat", 15 * min, Some(("ep-1", 12 * min))),
        ];
        let eps = episodes(&anomalies, 5 * min);
        assert_eq!(eps.len(), 4, "{eps:#?}");
        let truth = vec![TruthFault {
            fault_id: "f1".into(),
            kind: "latency_spike".into(),
            root_service: "db".into(),
            affected_services: vec!["db".into()],
            start: String::new(),
            end: String::new(),
            ..TruthFault::default()
        }];
        let spans = [(9 * min, 40 * min)];
        let rows = compare(&truth, &spans, &eps, "zscore", min, 0.5);
        let z = &rows[0];
        assert_eq!((z.detector.as_str(), z.champion), ("zscore", true));
        assert_eq!((z.episodes, z.matching, z.duplicate_episodes), (3, 2, 1));
        assert_eq!(z.delay_p50_ms, Some(min));
        assert_eq!(z.false_positives_per_day, 2.0);
        let r = &rows[1];
        assert_eq!((r.episodes, r.matching, r.recall), (1, 1, 1.0));
        assert_eq!(r.delay_p50_intervals, Some(3.0));
        assert!(render(&rows).contains("zscore (champion)"));
    }
}
