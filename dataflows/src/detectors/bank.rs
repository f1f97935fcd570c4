//! The detector bank: the configured detectors (other than the z-score) over every series of a
//! worker, fed each sample with its window baseline by `with_baseline`, in time order per series
//! (which makes the sequential state the same at every worker count). Each detector's readings
//! go through its own [`Episode`], and the bank writes an anomaly event when an episode opens,
//! grows or closes. The state is a few numbers per series and detector, never the samples.
//!
//! The level-shift detector compares each sample with the trend state's local linear prediction
//! (level + slope, noise from first differences) once that is warm, and with the window baseline
//! before: against a window mean, the morning rise of a daily cycle is a long run of positive
//! residuals; against a local line it is not, and a step still is.
//!
//! A counter (`..._total`) reaches the bank as its rate per second (see [`crate::rates`]): the
//! window, the baseline and every detector see the rate, never the ever-growing value.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::change::{Change as ChangeDetector, Seen};
use super::episode::{Change, Episode};
use super::level_shift::LevelShift;
use super::robust::Robust;
use super::seasonal::Seasonal;
use super::trend::Trend;
use super::Reading;
use crate::baseline::BaselineConfig;
use crate::forget::Forgetting;
use crate::moments::Moments;
use crate::records::{
    Anomaly, ChangeEvidence, Detector, Direction, EpisodeInfo, EpisodeStatus, Evidence, Sample,
    SeriesId, SeriesInfo, F64,
};
use crate::time::Time;

/// Which detector is the champion (its anomalies feed correlation and the alerts) and which run
/// in shadow as challengers (their anomalies go to an output of their own).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionConfig {
    /// The champion.
    pub champion: Detector,
    /// The challengers.
    pub challengers: Vec<Detector>,
    /// An open episode that is still anomalous reports at least this often (ms of event time).
    pub update_every_ms: Time,
    /// A series silent this long (or ten of its intervals) comes back cold (0: never; see
    /// [`crate::forget`]).
    pub forget_after_ms: Time,
    /// The cardinality caps (see [`crate::limits`]; `forget_after` is taken from above).
    pub series_caps: crate::limits::SeriesCaps,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            champion: Detector::Change,
            challengers: Vec::new(),
            update_every_ms: 150_000,
            forget_after_ms: 6 * 3_600_000,
            series_caps: crate::limits::SeriesCaps::default(),
        }
    }
}

impl DetectionConfig {
    /// Every detector that runs, champion first, each once.
    pub fn running(&self) -> Vec<Detector> {
        let mut all = vec![self.champion];
        for d in &self.challengers {
            if !all.contains(d) {
                all.push(*d);
            }
        }
        all
    }

    /// Whether a running detector reads the shared window baseline (the z-score, and the level
    /// shift until its trend reference is warm): without one, no window is kept at all.
    pub fn needs_window(&self) -> bool {
        self.running()
            .iter()
            .any(|d| matches!(d, Detector::ZScore | Detector::LevelShift))
    }
}

/// A series the z-score cannot judge: after [`UNSCORED_AFTER`] of its samples its window has never
/// held `min_points` (it is sampled too sparsely for the window). Reported once per series, so that a
/// job that finds nothing says why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Unscored {
    /// The series.
    pub series: Arc<SeriesInfo>,
    /// Samples its window held at the last of them.
    pub window_points: u64,
}

/// After how many samples with too few in the window a series is reported as [`Unscored`]:
/// enough that it is not the warm-up of a well-sampled series (which fills its window within
/// `min_points` samples, late ones aside).
pub const UNSCORED_AFTER: u32 = 100;

/// One series' state in the bank: an episode per running detector, and the other detectors'
/// states only where they are needed (a z-score alone keeps a series in about 100 bytes).
struct SeriesState {
    /// Its latest sample's time.
    last_seen: Time,
    /// The gap between its last two samples.
    interval: Time,
    /// Samples seen while the window has never held `min_points` (`u32::MAX` once it has, or
    /// once reported).
    unscored: u32,
    /// The states beyond the z-score's: made when a detector that needs them runs.
    more: Option<Box<MoreState>>,
    /// The change detector's state, when it runs.
    change: Option<Box<ChangeDetector>>,
    /// One per detector of the bank, in its order.
    episodes: Box<[Episode]>,
}

impl SeriesState {
    /// Counts a sample the z-score cannot judge (its window not `full`); the series as
    /// [`Unscored`] the one time that is worth a word.
    fn count_unscored(
        &mut self,
        full: bool,
        judges_zscore: bool,
        sample: &Sample,
        baseline: &Moments,
    ) -> Option<Unscored> {
        if full {
            self.unscored = u32::MAX;
        } else if self.unscored < UNSCORED_AFTER && judges_zscore {
            self.unscored += 1;
            if self.unscored == UNSCORED_AFTER {
                self.unscored = u32::MAX;
                return Some(Unscored {
                    series: Arc::clone(&sample.series),
                    window_points: baseline.n.max(0) as u64,
                });
            }
        }
        None
    }
}

/// The states of the detectors other than the z-score.
#[derive(Default)]
struct MoreState {
    robust: Robust,
    shift: LevelShift,
    trend: Trend,
    seasonal: Seasonal,
}

/// The bank of one worker.
pub struct Bank {
    detectors: Vec<Detector>,
    /// A detector other than the z-score and the change detector runs: every series keeps the
    /// other states.
    needs_more: bool,
    /// The change detector runs.
    runs_change: bool,
    /// The robust detector runs.
    learns_robust: bool,
    /// The trend state learns (the trend and level-shift detectors read it).
    learns_trend: bool,
    /// The z-score runs (sparse windows are worth a word).
    judges_zscore: bool,
    series: HashMap<SeriesId, SeriesState>,
    zscore: BaselineConfig,
    update_every_ms: Time,
    forgetting: Forgetting,
}

impl Bank {
    /// A bank of `detectors`, the z-score's settings (its threshold, and the window and least
    /// points of the shared baseline) and how often an open episode reports.
    pub fn new(
        detectors: &[Detector],
        zscore: &BaselineConfig,
        update_every_ms: Time,
        forgetting: Forgetting,
    ) -> Self {
        let runs = |d: Detector| detectors.contains(&d);
        Bank {
            detectors: detectors.to_vec(),
            needs_more: detectors
                .iter()
                .any(|d| !matches!(d, Detector::ZScore | Detector::Change)),
            runs_change: runs(Detector::Change),
            learns_robust: runs(Detector::Robust),
            learns_trend: runs(Detector::Trend) || runs(Detector::LevelShift),
            judges_zscore: runs(Detector::ZScore),
            series: HashMap::new(),
            zscore: zscore.clone(),
            update_every_ms,
            forgetting,
        }
    }

    /// Frees the state of every series silent at `latest` (see [`crate::forget`]); call it only
    /// when no later sample can be earlier than `latest`.
    pub fn forget_silent(&mut self, latest: Time) {
        if self.forgetting.sweep_due(latest) {
            let forgetting = &self.forgetting;
            self.series
                .retain(|_, s| !forgetting.is_silent(s.last_seen, s.interval, latest));
        }
    }

    /// The number of series with state (for tests and the churn benchmark).
    pub fn series_held(&self) -> usize {
        self.series.len()
    }

    /// Whether it has any detector to run.
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    /// Feeds `sample` (with its window `baseline`) to every detector; pushes the episode events.
    /// Returns the series as [`Unscored`] the one time its sparse window is worth a word.
    pub fn observe(
        &mut self,
        sample: &Sample,
        baseline: &Moments,
        out: &mut Vec<Anomaly>,
    ) -> Option<Unscored> {
        if self.detectors.is_empty() {
            return None;
        }
        let t = sample.timestamp;
        let fresh = || SeriesState {
            last_seen: t,
            interval: 0,
            unscored: 0,
            more: self.needs_more.then(Box::default),
            change: self.runs_change.then(Box::default),
            episodes: vec![Episode::default(); self.detectors.len()].into_boxed_slice(),
        };
        let state = state_of(&mut self.series, &self.forgetting, sample, fresh);
        let x = sample.value.0;
        let full = baseline.n >= self.zscore.min_points.max(1) as i64;
        let unscored = state.count_unscored(full, self.judges_zscore, sample, baseline);
        let (mean, sd) = match (full, baseline.mean(), baseline.stddev()) {
            (true, Some(mean), Some(sd)) => (mean, sd),
            _ => (f64::NAN, f64::NAN),
        };
        // The level-shift detector's reference: the local linear prediction (a daily curve is
        // locally a line, a step is not), taken before the trend state learns this sample.
        let window_sd = sd;
        let (mean, sd) = state
            .more
            .as_ref()
            .and_then(|m| m.trend.prediction(t))
            .unwrap_or((mean, sd));
        // The states other detectors lean on learn whenever one that needs them runs, whichever
        // is champion and whichever challenger: a challenger never changes the champion's output.
        let (mut robust, mut trend) = (None, None);
        let seen: Option<Seen> = state.change.as_mut().map(|c| c.observe(t, x));
        if let Some(more) = state.more.as_mut() {
            if self.learns_robust {
                robust = Some(more.robust.observe(x));
            }
            if self.learns_trend {
                trend = Some(more.trend.observe(t, x));
            }
        }
        for (k, detector) in self.detectors.iter().enumerate() {
            let reading = match (detector, state.more.as_mut()) {
                (Detector::Change, _) => seen.map_or(Reading::NONE, |s| s.reading),
                (Detector::Robust, _) => robust.unwrap_or(Reading::NONE),
                (Detector::Trend, _) => trend.unwrap_or(Reading::NONE),
                (Detector::LevelShift, Some(more)) => more.shift.observe(x, mean, sd),
                (Detector::Seasonal, Some(more)) => more.seasonal.observe(t, x),
                (Detector::LevelShift | Detector::Seasonal, None) => Reading::NONE,
                (Detector::ZScore, _) => super::zscore::reading(x, baseline, &self.zscore),
            };
            let episode = &mut state.episodes[k];
            let change = episode.observe(t, reading.strength, self.update_every_ms);
            if *detector == Detector::Change {
                if let Some(c) = state.change.as_mut() {
                    c.follow(episode.is_open() || episode.is_pending());
                }
            }
            // Before `score_from` the detectors learn but do not report (see `BaselineConfig`).
            if t < self.zscore.score_from {
                continue;
            }
            let (status, score, started_at, samples) = match change {
                Change::None => continue,
                // Opened by a second sample in a row: the episode dates from the first.
                Change::Opened { score } => (
                    EpisodeStatus::Open,
                    score,
                    episode.started().unwrap_or(t),
                    episode.samples(),
                ),
                Change::Updated { score } => (
                    EpisodeStatus::Update,
                    score,
                    episode.started().unwrap_or(t),
                    episode.samples(),
                ),
                Change::Closed {
                    score,
                    started,
                    samples,
                } => (EpisodeStatus::Close, score, started, samples),
            };
            let mut anomaly = event(
                sample,
                x,
                *detector,
                &reading,
                baseline,
                // The shared window's, whatever reference the detector compared with.
                window_sd,
                score,
                self.zscore.window_ms,
                EpisodeInfo {
                    status,
                    started_at,
                    samples,
                },
            );
            if let (Detector::Change, Some(seen)) = (detector, seen) {
                with_change_evidence(&mut anomaly, &seen, &reading, x);
            }
            out.push(anomaly);
        }
        unscored
    }
}

/// The state of `sample`'s series, made by `fresh` when it is new or back after a silence
/// (cold, as if new), with its latest time and interval brought up to `sample`.
fn state_of<'a>(
    series: &'a mut HashMap<SeriesId, SeriesState>,
    forgetting: &Forgetting,
    sample: &Sample,
    fresh: impl FnOnce() -> SeriesState,
) -> &'a mut SeriesState {
    let (id, t) = (sample.series.id, sample.timestamp);
    if (series.get(&id)).is_some_and(|s| forgetting.is_silent(s.last_seen, s.interval, t)) {
        series.remove(&id);
    }
    let state = series.entry(id).or_insert_with(fresh);
    if t > state.last_seen {
        state.interval = t - state.last_seen;
        state.last_seen = t;
    }
    state
}

/// The change detector's view of the series, on its anomaly: the history its thresholds describe
/// and the figures behind them.
fn with_change_evidence(anomaly: &mut Anomaly, seen: &Seen, reading: &Reading, x: f64) {
    anomaly.evidence.baseline_points = u64::from(seen.samples);
    anomaly.window_ms = seen.history_ms.max(0.0).round() as u64;
    anomaly.evidence.change = Some(ChangeEvidence {
        reference: F64(finite_or(reading.expected, x)),
        threshold: F64(finite_or(reading.band, 0.0)),
        usual_change: F64(finite_or(seen.usual_change, 0.0)),
        samples: u64::from(seen.samples),
        interval_ms: seen.interval_ms.max(0.0).round() as u64,
    });
}

fn finite_or(v: f64, or: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        or
    }
}

/// The anomaly event of one episode change.
#[allow(clippy::too_many_arguments)]
fn event(
    sample: &Sample,
    x: f64,
    detector: Detector,
    reading: &Reading,
    baseline: &Moments,
    sd: f64,
    score: f64,
    window_ms: u64,
    episode: EpisodeInfo,
) -> Anomaly {
    let finite = |v: f64, or: f64| if v.is_finite() { v } else { or };
    let expected = finite(reading.expected, x);
    let band = finite(reading.band, 0.0);
    let direction = if reading.statistic > 0.0 || (reading.statistic == 0.0 && x >= expected) {
        Direction::Up
    } else {
        Direction::Down
    };
    Anomaly {
        timestamp: sample.timestamp,
        series: Arc::clone(&sample.series),
        // What the detectors judged: the value, or a counter's rate per second.
        value: F64(x),
        expected: F64(expected),
        lower_bound: F64(expected - band),
        upper_bound: F64(expected + band),
        anomaly_score: F64(score),
        detector,
        window_ms,
        evidence: if detector == Detector::ZScore {
            let flat = baseline.is_flat();
            Evidence {
                baseline_points: baseline.n.max(0) as u64,
                baseline_stddev: F64(if flat { 0.0 } else { finite(sd, 0.0) }),
                z: (!flat && reading.statistic.is_finite() && reading.statistic != 0.0)
                    .then_some(F64(reading.statistic)),
                direction,
                flat_baseline: flat,
                statistic: None,
                change: None,
            }
        } else {
            Evidence {
                baseline_points: baseline.n.max(0) as u64,
                baseline_stddev: F64(finite(sd, 0.0)),
                z: None,
                direction,
                flat_baseline: false,
                statistic: Some(F64(finite(reading.statistic, 0.0))),
                change: None,
            }
        },
        episode: Some(episode),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Noise;
    use super::*;
    use crate::moments::to_fixed;
    use crate::records::SeriesInfo;
    use differential_dataflow::difference::Semigroup;

    #[test]
    fn churning_series_are_forgotten_and_one_that_returns_comes_back_cold() {
        const HOUR: Time = 3_600_000;
        let t0 = 1_795_392_000_000;
        let mut bank = Bank::new(
            &[Detector::Change],
            &BaselineConfig::default(),
            150_000,
            Forgetting::new(6 * HOUR),
        );
        let mut g = Noise::new(7);
        let (mut events, empty) = (Vec::new(), Moments::default());
        let mut most = 0;
        // 48 hours; every hour ten pods are replaced by ten new ones (new series), sampled each
        // minute while they live (three hours).
        for minute in 0..48 * 60u64 {
            let t = t0 + minute * 60_000;
            let hour = minute / 60;
            for generation in hour.saturating_sub(2)..=hour {
                for pod in 0..10 {
                    let name = format!("pod-{generation}-{pod}");
                    let series = Arc::new(SeriesInfo::with_labels(
                        "shop",
                        "api",
                        "latency",
                        &[("pod", &name)],
                    ));
                    bank.observe(
                        &Sample::new(t, series, 100.0 + g.normal()),
                        &empty,
                        &mut events,
                    );
                }
            }
            bank.forget_silent(t);
            most = most.max(bank.series_held());
        }
        // 480 series were seen; about nine hours' worth are ever held (three alive, six silent
        // before they are forgotten, a quarter of that before the sweep comes).
        assert!(most <= 110, "{most}");
        assert!(bank.series_held() <= 110, "{}", bank.series_held());

        // A series that returns after a silence starts cold: a step right after its return is not
        // judged (it needs ten samples again), where a warm one would be.
        let series = Arc::new(SeriesInfo::new("shop", "db", "latency"));
        let run = |gap: Time| {
            let mut bank = Bank::new(
                &[Detector::Change],
                &BaselineConfig::default(),
                150_000,
                Forgetting::new(6 * HOUR),
            );
            let mut g = Noise::new(3);
            let mut out = Vec::new();
            for i in 0..300u64 {
                let t = t0 + i * 60_000 + if i >= 200 { gap } else { 0 };
                let x = if i == 203 { 160.0 } else { 100.0 + g.normal() };
                bank.observe(&Sample::new(t, series.clone(), x), &empty, &mut out);
            }
            out.iter().any(|a| a.timestamp == t0 + 203 * 60_000 + gap)
        };
        assert!(run(HOUR), "a one-hour gap: remembered, the step found");
        assert!(
            !run(7 * HOUR),
            "a seven-hour gap: forgotten, the step not yet judged"
        );
    }

    #[test]
    fn a_step_gives_one_level_shift_episode_with_its_events() {
        let series = Arc::new(SeriesInfo::new("shop", "db", "latency"));
        let mut bank = Bank::new(
            &[Detector::LevelShift, Detector::Robust],
            &BaselineConfig::default(),
            0,
            Forgetting::new(0),
        );
        let mut g = Noise::new(4);
        let mut baseline = Moments::default();
        let mut window = std::collections::VecDeque::new();
        let mut events = Vec::new();
        for i in 0..200u64 {
            let x = if i >= 100 { 103.0 } else { 100.0 } + g.normal();
            let sample = Sample::new(1_795_392_000_000 + i * 60_000, series.clone(), x);
            bank.observe(&sample, &baseline, &mut events);
            // A 30-sample window baseline, as the arrangement would give.
            baseline.plus_equals(&Moments::of(to_fixed(x)));
            window.push_back(to_fixed(x));
            if window.len() > 30 {
                let old = window.pop_front().unwrap_or_default();
                baseline.plus_equals(&Moments::of_copies(old, -1));
            }
        }
        let shifts: Vec<&Anomaly> = events
            .iter()
            .filter(|a| a.detector == Detector::LevelShift)
            .collect();
        let opened = shifts
            .iter()
            .filter(|a| a.episode.map(|e| e.status) == Some(EpisodeStatus::Open))
            .count();
        assert_eq!(opened, 1, "{shifts:#?}");
        let open = shifts[0];
        assert!(open.timestamp >= 1_795_392_000_000 + 100 * 60_000);
        assert!(open.anomaly_score.0 >= 0.5);
        assert_eq!(open.evidence.direction, Direction::Up);
        assert!(
            open.to_json().contains("\"episode\":{\"episode_id\":\"ep-"),
            "{}",
            open.to_json()
        );
    }

    #[test]
    fn a_challenger_never_changes_the_champion() {
        let rate = Arc::new(SeriesInfo::new("shop", "api", "request_rate"));
        let gauge = Arc::new(SeriesInfo::new("shop", "api", "latency"));
        let run = |detectors: &[Detector]| {
            let mut bank = Bank::new(
                detectors,
                &BaselineConfig::default(),
                150_000,
                Forgetting::new(0),
            );
            let mut g = Noise::new(8);
            let mut out = Vec::new();
            // Each series' window of its last 30 values, as the shared baseline would hold it.
            let mut windows = [
                std::collections::VecDeque::new(),
                std::collections::VecDeque::new(),
            ];
            for i in 0..300u64 {
                let t = 1_795_392_000_000 + i * 60_000;
                let burst = if (200..205).contains(&i) { 5.0 } else { 1.0 };
                let step = if i >= 150 { 4.0 } else { 0.0 };
                let spike = if i == 250 { 30.0 } else { 0.0 };
                let samples = [
                    Sample::new(t, rate.clone(), burst * (100.0 + 2.0 * g.normal())),
                    Sample::new(t, gauge.clone(), 10.0 + step + spike + g.normal()),
                ];
                for (sample, window) in samples.iter().zip(windows.iter_mut()) {
                    let mut baseline = Moments::default();
                    for v in window.iter() {
                        baseline.plus_equals(&Moments::of(*v));
                    }
                    bank.observe(sample, &baseline, &mut out);
                    window.push_back(sample.fixed);
                    if window.len() > 30 {
                        window.pop_front();
                    }
                }
            }
            out
        };
        let of = |events: Vec<Anomaly>, d: Detector| -> Vec<Anomaly> {
            events.into_iter().filter(|a| a.detector == d).collect()
        };
        let all = [
            Detector::ZScore,
            Detector::Robust,
            Detector::LevelShift,
            Detector::Trend,
            Detector::Seasonal,
        ];
        // The z-score alone, and with every challenger: the same z-score events.
        let alone = of(run(&[Detector::ZScore]), Detector::ZScore);
        assert!(!alone.is_empty());
        assert_eq!(alone, of(run(&all), Detector::ZScore));
        // The robust detector sees the burst of the rate, alone or not.
        let robust = of(run(&[Detector::Robust]), Detector::Robust);
        assert!(robust
            .iter()
            .any(|a| &*a.series.metric_name == "request_rate"));
        assert_eq!(robust, of(run(&all), Detector::Robust));
        // The level shift alone and with the others.
        let shift = of(run(&[Detector::LevelShift]), Detector::LevelShift);
        assert!(!shift.is_empty());
        assert_eq!(shift, of(run(&all), Detector::LevelShift));
    }

    /// Runs every detector over one series sampled every 2 to 8 minutes at random (5 on
    /// average), with a two-hour gap after its 1000th sample, the shared window being the last
    /// 8 hours (about 100 samples); `value(i, g)` gives sample `i`. Returns each detector's opened
    /// episodes (the sample index they opened at).
    fn irregular(seed: u64, value: impl Fn(usize, &mut Noise) -> f64) -> Vec<(Detector, usize)> {
        let series = Arc::new(SeriesInfo::new("shop", "db", "latency"));
        let config = BaselineConfig {
            window_ms: 8 * 3_600_000,
            min_points: 20,
            threshold: 4.0,
            score_from: 0,
        };
        let mut bank = Bank::new(&Detector::ALL, &config, 0, Forgetting::new(0));
        let mut g = Noise::new(seed);
        let mut window: std::collections::VecDeque<(Time, i128)> = Default::default();
        let (mut t, mut opened, mut events) = (1_795_392_000_000u64, Vec::new(), Vec::new());
        for i in 0..3000 {
            t += 120_000 + (g.unit() * 360_000.0) as u64;
            if i == 1000 {
                t += 2 * 3_600_000;
            }
            while window
                .front()
                .is_some_and(|(at, _)| at + config.window_ms < t)
            {
                window.pop_front();
            }
            let mut baseline = Moments::default();
            for (_, v) in &window {
                baseline.plus_equals(&Moments::of(*v));
            }
            let x = value(i, &mut g);
            bank.observe(&Sample::new(t, series.clone(), x), &baseline, &mut events);
            for a in events.drain(..) {
                if a.episode.map(|e| e.status) == Some(EpisodeStatus::Open) {
                    opened.push((a.detector, i));
                }
            }
            window.push_back((t, to_fixed(x)));
        }
        opened
    }

    #[test]
    fn irregular_samples_and_a_gap_are_handled_by_every_detector() {
        let of = |opened: &[(Detector, usize)], d: Detector| -> Vec<usize> {
            opened
                .iter()
                .filter(|(x, _)| *x == d)
                .map(|(_, i)| *i)
                .collect()
        };
        // Noise, irregular and with a gap: no more false episodes than the calibration allows
        // (the warm-up aside). Each detector is calibrated to about one in 15,000 samples: five
        // over 2,900 samples expect about one.
        let quiet = irregular(21, |_, g| 100.0 + g.normal());
        let after_warm_up: Vec<_> = quiet.iter().filter(|(_, i)| *i > 100).collect();
        assert!(after_warm_up.len() <= 2, "{after_warm_up:?}");
        // A spike at sample 2000: the z-score and the robust detector open at it.
        let spike = irregular(22, |i, g| {
            100.0 + g.normal() + if i == 2000 { 12.0 } else { 0.0 }
        });
        assert_eq!(of(&spike, Detector::ZScore), vec![2000]);
        assert_eq!(of(&spike, Detector::Robust), vec![2000]);
        // A step of 2.5 standard deviations at sample 2000: the level-shift detector within 8
        // samples, once.
        let step = irregular(23, |i, g| {
            100.0 + g.normal() + if i >= 2000 { 2.5 } else { 0.0 }
        });
        let shifts = of(&step, Detector::LevelShift);
        assert!(
            shifts.len() == 1 && (2000..2008).contains(&shifts[0]),
            "{shifts:?}"
        );
        // A leak from sample 2000: 30% over 8 hours (about 100 samples) through 0.5% noise; the
        // trend detector within the first quarter of it, whatever the intervals.
        let leak = irregular(24, |i, g| {
            let climb = 0.3 * (i.saturating_sub(2000).min(100)) as f64 / 100.0;
            100.0 * (1.0 + 0.005 * g.normal()) * (1.0 + climb)
        });
        let trends = of(&leak, Detector::Trend);
        assert!(
            trends.first().is_some_and(|i| (2000..2025).contains(i)),
            "{trends:?}"
        );
    }
}
