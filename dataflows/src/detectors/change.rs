//! The change detector (the champion): a series is anomalous when it moves away from where it
//! was by more than it usually moves, judged against its own history of changes.
//!
//! * **Reference.** A sample is compared with the sample before it; once a move opens an
//!   episode (or might: one sample past the threshold, waiting for the next), with the level the
//!   series left (the median of the three samples before the move), held until the episode ends,
//!   and so is the threshold it was judged by. So the first clearly anomalous sample opens the
//!   episode (early), the episode lasts while the series stays away (one episode per anomaly,
//!   no chatter), and it ends when the series is back, or when it has stayed at a new level for
//!   [`STABLE`] samples and [`STABLE_TIME_MS`] in a row (a step or a restart is one episode, not
//!   one that never ends; a fault's plateau of a few minutes is not taken for a new level).
//! * **Its own noise.** Every change `|x - previous|` goes into a fading sketch of the series'
//!   changes ([`TailSketch`]: about the last [`MEMORY_SAMPLES`] changes, or a day of them when
//!   that is more). The threshold is the 99th percentile of those changes extrapolated one step
//!   further along the tail, `q99 + (q99 - q90)`, and at least 7.5 times the median change: for
//!   Gaussian noise about five standard deviations of the change, for a heavy tail (a series that
//!   spikes now and then) as far up as its spikes go. Quantiles, not a standard deviation, so a burst of outliers in the history
//!   moves the threshold by a bin or two, not by their size.
//! * **Relative as well as absolute.** For a series that never goes below zero (latency, bytes,
//!   counts, rates: most of what operations measure) the same is done on the logarithm,
//!   `|ln((x + c) / (previous + c))|` with `c` half the series' usual level, and the relative
//!   view can veto: the strength is the absolute one, but at most one and a half times the
//!   relative one, so a move must not be ordinary in proportion. A p99 that jumps from 5 ms to 20
//!   minutes where it jumps from 5 ms to 14 s every few minutes is not unusual in proportion, and
//!   does not page.
//! * **Rare, not just large.** A move the series has made (or exceeded) more than [`RARE`] times
//!   in its faded history does not open an episode: what a series does every day is what it
//!   does.
//! * **Floors.** A move smaller than [`RELATIVE_FLOOR`] of the level, or than the smallest step
//!   the series has ever taken (its quantum: a series of whole numbers moving by one), never
//!   reaches the threshold: a tiny move on a flat series does not page.
//! * **Samples, not time.** It judges from the [`WARM_UP`]th sample on, whatever the interval
//!   (a sample a second or an hour; irregular; with gaps): it needs no window that must hold a
//!   number of points. With few samples the threshold is widened by `1 + 8 / n` (`n` changes
//!   seen), so that a young series pages no more often than an old one.
//!
//! It does not see slow drifts that never make an unusual move (the trend and level-shift
//! challengers do), and its state is its history: exact on a full replay, approximate after a
//! bounded re-read (see docs/kafka.md).

use super::tail::TailSketch;
use super::Reading;
use crate::time::Time;

/// Samples seen before the detector judges.
pub const WARM_UP: u32 = 10;
/// The sketch describes at least this many recent changes...
pub const MEMORY_SAMPLES: f64 = 1000.0;
/// ...and at least this much recent time (ms), when the series is sampled faster.
pub const MEMORY_TIME_MS: f64 = 86_400_000.0;
/// The tail quantiles the threshold is made of.
const HIGH: f64 = 0.99;
const LOW: f64 = 0.9;
/// How far past the high quantile the threshold lies, in units of `HIGH - LOW` quantiles.
const EXTRAPOLATE: f64 = 1.0;
/// The threshold is at least this many times the series' median change: however thin its tail
/// looks in a short history, a move must be far outside its everyday changes (for Gaussian noise
/// about five standard deviations of the change).
const MEDIAN_FLOOR: f64 = 7.5;
/// A move the series has made more often than this (faded) does not open an episode.
pub const RARE: f64 = 2.0;
/// A move smaller than this share of the level is never past the threshold.
pub const RELATIVE_FLOOR: f64 = 0.05;
/// Samples in a row at a new level (each a calm change) after which the level is accepted...
pub const STABLE: u32 = 10;
/// ...once it has also held this long (ms): a fault's plateau lasts minutes, a step for good.
pub const STABLE_TIME_MS: Time = 30 * 60_000;
/// The relative view lowers a move's strength at most to this many times its own: it vetoes moves
/// that are ordinary in proportion (under two thirds of its threshold), it is not a second
/// threshold to pass.
const RELATIVE_VETO: f64 = 1.5;
/// The offset `c` of the relative view, as a share of the series' usual level.
const OFFSET: f64 = 0.5;
/// With `n` changes seen, thresholds are widened by `1 + SMALL_SAMPLE / n`: quantiles of a few
/// dozen changes are uncertain, and the first samples of a series must not page more often than
/// its thousandth do (measured on Gaussian noise: the widening keeps a sample's chance of opening
/// an episode near 1e-4 from the tenth sample on).
const SMALL_SAMPLE: f64 = 8.0;
/// Strength is capped here (a move off a perfectly flat series is as strong as it gets).
const CAP: f64 = 1000.0;
/// Strength below which a change counts as calm (the episodes' `STAY`).
const CALM: f64 = super::episode::STAY;
/// Strength at which a move starts to hold the reference (the episodes' `OPEN`).
const HOLD: f64 = super::episode::OPEN;

/// One series' change detector.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    seen: u32,
    last: f64,
    /// The last three values, for the level a move leaves (their median: one noisy sample is
    /// not the level).
    recent: [f64; 3],
    last_at: Time,
    /// The usual interval between samples (ms; 0 until two samples).
    interval: f64,
    /// The level the series left, while a move holds it.
    base: f64,
    holding: bool,
    /// The thresholds (absolute, relative) when the move began, held with the level: an episode
    /// is judged against what was usual before it, not against a sketch it has just entered.
    held_thresholds: (f64, f64),
    /// Calm changes in a row at the new level, while holding, and since when.
    stable: u32,
    stable_since: Time,
    /// The smallest non-zero change seen.
    quantum: f64,
    /// Whether no value below zero has been seen (the relative view applies).
    non_negative: bool,
    /// The usual magnitude of the values (a running median on a log scale).
    level: f64,
    absolute: TailSketch,
    relative: TailSketch,
}

impl Default for Change {
    fn default() -> Self {
        Change {
            seen: 0,
            last: 0.0,
            recent: [0.0; 3],
            last_at: 0,
            interval: 0.0,
            base: 0.0,
            holding: false,
            held_thresholds: (0.0, 0.0),
            stable: 0,
            stable_since: 0,
            quantum: f64::INFINITY,
            non_negative: true,
            level: 0.0,
            absolute: TailSketch::default(),
            relative: TailSketch::default(),
        }
    }
}

/// What the change detector saw at a sample, for the anomaly's evidence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seen {
    /// The reading (strength, the reference as `expected`, the absolute threshold as `band`).
    pub reading: Reading,
    /// The usual largest change (the 99th percentile of the series' changes).
    pub usual_change: f64,
    /// Samples the series had before this one.
    pub samples: u32,
    /// The usual interval between its samples (ms).
    pub interval_ms: f64,
    /// The stretch of history its thresholds describe (ms): its samples so far, at most its
    /// memory, times its interval.
    pub history_ms: f64,
}

impl Change {
    /// The usual interval between samples in ms (0 before two samples).
    pub fn interval_ms(&self) -> f64 {
        self.interval
    }

    /// Scores `x` at `t` against the reference (the previous sample, or the level a move left)
    /// and learns from it. Call [`Change::follow`] after the episode has seen the reading.
    pub fn observe(&mut self, t: Time, x: f64) -> Seen {
        // What the detector knew before this sample.
        let usual_change = self.absolute.quantile(HIGH);
        let (samples, interval_ms) = (self.seen, self.interval);
        let history_ms = f64::from(samples).min(self.memory()) * interval_ms;
        let seen = move |reading, _: &Change| Seen {
            reading,
            usual_change,
            samples,
            interval_ms,
            history_ms,
        };
        if !x.is_finite() {
            return seen(Reading::NONE, self);
        }
        if self.seen == 0 {
            self.seen = 1;
            (self.last, self.last_at, self.level) = (x, t, x.abs());
            self.recent = [x; 3];
            self.non_negative = x >= 0.0;
            return seen(Reading::NONE, self);
        }
        self.non_negative &= x >= 0.0;
        let reference = if self.holding { self.base } else { self.last };
        let offset = (OFFSET * self.level).max(self.quantum_or_zero()).max(1e-12);
        let relative = |a: f64, b: f64| ((a + offset) / (b + offset)).ln().abs();
        let change = (x - self.last).abs();
        let mut reading = Reading::NONE;
        let mut calm_change = true;
        let mut thresholds = self.held_thresholds;
        if self.seen > WARM_UP {
            let floor = (RELATIVE_FLOOR * reference.abs())
                .max(self.quantum_or_zero())
                .max(1e-12);
            if !self.holding {
                let widen = 1.0 + SMALL_SAMPLE / self.seen.saturating_sub(1).max(1) as f64;
                thresholds = (
                    (widen * threshold_of(&self.absolute)).max(floor),
                    (widen * threshold_of(&self.relative)).max(RELATIVE_FLOOR.ln_1p()),
                );
            }
            let threshold = thresholds.0;
            let moved = x - reference;
            let mut strength = (moved.abs() / threshold).min(CAP);
            let mut change_strength = change / threshold;
            if !self.holding && self.absolute.weight_at_least(moved.abs()) > RARE {
                strength = strength.min(HOLD * 0.99);
            }
            if self.non_negative {
                let threshold = thresholds.1;
                let moved = relative(x, reference);
                let mut proportion = (moved / threshold).min(CAP);
                if !self.holding && self.relative.weight_at_least(moved) > RARE {
                    proportion = proportion.min(HOLD * 0.99);
                }
                strength = strength.min(RELATIVE_VETO * proportion);
                change_strength = change_strength.min(relative(x, self.last) / threshold);
            }
            calm_change = change_strength < CALM;
            reading = Reading {
                strength,
                expected: reference,
                band: threshold,
                statistic: strength.copysign(moved),
            };
        }
        // Learn: the change (anomalous ones too: what a series does often is what it does), the
        // quantum, the level, the interval.
        let fade = 1.0 / self.memory();
        self.absolute.add(change, fade);
        if self.non_negative {
            self.relative.add(relative(x, self.last), fade);
        }
        if change > 0.0 && change < self.quantum {
            self.quantum = change;
        }
        self.level = if x.abs() > self.level {
            (self.level * 1.02).max(1e-12).min(x.abs())
        } else {
            (self.level / 1.02).max(x.abs())
        };
        let elapsed = t.saturating_sub(self.last_at) as f64;
        if elapsed > 0.0 {
            self.interval = if self.interval == 0.0 {
                elapsed
            } else {
                self.interval + (elapsed.min(4.0 * self.interval) - self.interval) / 50.0
            };
        }
        self.last_at = self.last_at.max(t);
        // Hold the level the series left from the first move past the threshold; while held, a
        // series that stays at a new level for STABLE calm samples has moved there for good.
        if !self.holding && reading.strength >= HOLD {
            let mut before = self.recent;
            before.sort_by(f64::total_cmp);
            (self.holding, self.base, self.stable) = (true, before[1], 0);
            self.held_thresholds = thresholds;
        } else if self.holding {
            if calm_change {
                if self.stable == 0 {
                    self.stable_since = t;
                }
                self.stable += 1;
            } else {
                self.stable = 0;
            }
            if self.stable >= STABLE && t.saturating_sub(self.stable_since) >= STABLE_TIME_MS {
                (self.base, self.stable) = (x, 0);
                // The new level is the series' now: judged from here on as before.
                self.holding = false;
            }
        }
        self.last = x;
        self.recent = [self.recent[1], self.recent[2], x];
        self.seen = self.seen.saturating_add(1);
        seen(reading, self)
    }

    /// Tells the detector whether its episode is open or waiting for a second sample after the
    /// reading it just gave: when neither, the held level is let go.
    pub fn follow(&mut self, open_or_pending: bool) {
        if !open_or_pending {
            self.holding = false;
            self.stable = 0;
        }
    }

    fn quantum_or_zero(&self) -> f64 {
        if self.quantum.is_finite() {
            self.quantum
        } else {
            0.0
        }
    }

    /// How many recent changes the sketch describes: [`MEMORY_SAMPLES`], or a day's worth of
    /// samples when the series is sampled faster than that.
    fn memory(&self) -> f64 {
        if self.interval > 0.0 {
            MEMORY_SAMPLES.max(MEMORY_TIME_MS / self.interval)
        } else {
            MEMORY_SAMPLES
        }
    }
}

/// The threshold a sketch of changes gives: its 99th percentile extrapolated one step along the
/// tail, and at least [`MEDIAN_FLOOR`] times its median.
fn threshold_of(sketch: &TailSketch) -> f64 {
    let high = sketch.quantile(HIGH);
    let low = sketch.quantile(LOW);
    (high + EXTRAPOLATE * (high - low)).max(MEDIAN_FLOOR * sketch.quantile(0.5))
}

#[cfg(test)]
mod tests {
    use super::super::episode::{Change as EpisodeChange, Episode};
    use super::super::testing::Noise;
    use super::*;

    /// Runs the detector and its episode over `xs` sampled every `every` ms; returns the sample
    /// indices where episodes opened and closed.
    fn run(xs: &[f64], every: Time) -> (Vec<usize>, Vec<usize>) {
        let times: Vec<Time> = (0..xs.len() as Time).map(|i| i * every).collect();
        run_at(&times, xs)
    }

    /// As [`run`], at the given times.
    fn run_at(times: &[Time], xs: &[f64]) -> (Vec<usize>, Vec<usize>) {
        let (mut d, mut e) = (Change::default(), Episode::default());
        let (mut opened, mut closed) = (Vec::new(), Vec::new());
        for (i, (t, x)) in times.iter().zip(xs).enumerate() {
            let seen = d.observe(*t, *x);
            assert!(i > WARM_UP as usize || seen.reading.strength == 0.0);
            match e.observe(*t, seen.reading.strength, 0) {
                EpisodeChange::Opened { .. } => opened.push(i),
                EpisodeChange::Closed { .. } => closed.push(i),
                _ => {}
            }
            d.follow(e.is_open() || e.is_pending());
        }
        (opened, closed)
    }

    fn noise(seed: u64, n: usize, level: f64, sd: f64) -> Vec<f64> {
        let mut g = Noise::new(seed);
        (0..n).map(|_| level + sd * g.normal()).collect()
    }

    #[test]
    fn a_spike_opens_at_once_and_is_one_episode() {
        let mut xs = noise(1, 600, 100.0, 1.0);
        xs[400] += 15.0;
        let (opened, closed) = run(&xs, 60_000);
        assert_eq!(opened, vec![400], "{closed:?}");
        assert!(closed.iter().any(|c| (401..=405).contains(c)), "{closed:?}");
    }

    #[test]
    fn a_step_is_one_episode_that_ends_once_the_new_level_holds() {
        let mut xs = noise(2, 800, 100.0, 1.0);
        for x in xs.iter_mut().skip(400) {
            *x += 20.0;
        }
        let (opened, closed) = run(&xs, 300_000);
        assert_eq!(opened, vec![400]);
        assert_eq!(closed.len(), 1);
        assert!(closed[0] <= 400 + STABLE as usize + 4, "{closed:?}");
        // A plateau of ten minutes at 30 s is a fault that lasts, not a new level: one episode,
        // closed when the series is back.
        let mut xs = noise(12, 800, 100.0, 1.0);
        for x in xs.iter_mut().skip(400).take(20) {
            *x += 20.0;
        }
        let (opened, closed) = run(&xs, 30_000);
        assert_eq!(opened, vec![400]);
        assert_eq!(closed.len(), 1);
        assert!((420..=424).contains(&closed[0]), "{closed:?}");
    }

    #[test]
    fn a_fault_that_comes_and_goes_is_one_episode() {
        // Three samples at 100% CPU, then back: open at the first, close after the recovery.
        let mut xs = noise(3, 400, 30.0, 2.0);
        for x in xs.iter_mut().skip(300).take(3) {
            *x = 100.0;
        }
        let (opened, closed) = run(&xs, 60_000);
        assert_eq!(opened, vec![300]);
        assert_eq!(closed.len(), 1, "{closed:?}");
        assert!((303..=307).contains(&closed[0]), "{closed:?}");
    }

    #[test]
    fn noise_opens_nothing() {
        let (opened, _) = run(&noise(4, 50_000, 100.0, 1.0), 60_000);
        assert!(opened.len() <= 3, "{opened:?}");
    }

    #[test]
    fn a_heavy_tail_is_the_series_own_and_pages_only_past_it() {
        // Mostly 0.005 s, and one sample in ten a slow request at 10 s to 1 hour (log-uniform):
        // what histogram buckets make of a p99 with few requests. Nothing is unusual here.
        let mut g = Noise::new(5);
        let xs: Vec<f64> = (0..5000)
            .map(|_| {
                if g.unit() < 0.1 {
                    10f64.powf(1.0 + 2.5 * g.unit())
                } else {
                    0.005 + 0.0005 * g.normal().abs()
                }
            })
            .collect();
        let (opened, _) = run(&xs, 60_000);
        assert!(
            opened.len() <= 5,
            "{} episodes on its usual spikes",
            opened.len()
        );
    }

    #[test]
    fn a_quantised_series_and_a_flat_one_page_only_on_real_moves() {
        // Whole numbers moving by 0 or 1 around 20: a move of 1 or 2 is nothing.
        let mut g = Noise::new(6);
        let mut xs: Vec<f64> = (0..2000).map(|_| (20.0 + g.normal()).round()).collect();
        let (opened, _) = run(&xs, 60_000);
        assert!(opened.len() <= 2, "{opened:?}");
        xs[1500] = 45.0;
        let (opened, _) = run(&xs, 60_000);
        assert!(opened.contains(&1500), "{opened:?}");
        // A flat series: 2% off is under the floor, 50% is not.
        let mut flat = vec![512.0; 500];
        flat[300] = 522.0;
        assert!(run(&flat, 60_000).0.is_empty());
        flat[400] = 768.0;
        assert_eq!(run(&flat, 60_000).0, vec![400]);
    }

    #[test]
    fn a_daily_cycle_is_not_an_anomaly_and_a_break_in_it_is() {
        // Five-minute samples, a cycle of ±40% over a day with 2% noise, for twenty days.
        let mut g = Noise::new(7);
        let per_day = 288.0;
        let mut xs: Vec<f64> = (0..20 * 288)
            .map(|i| {
                let phase = 2.0 * std::f64::consts::PI * i as f64 / per_day;
                100.0 * (1.0 + 0.4 * phase.sin()) * (1.0 + 0.02 * g.normal())
            })
            .collect();
        let (opened, _) = run(&xs, 300_000);
        assert!(opened.len() <= 2, "{opened:?}");
        // The service falls over: the value drops to a tenth.
        for x in xs.iter_mut().skip(5000).take(10) {
            *x *= 0.1;
        }
        let (opened, _) = run(&xs, 300_000);
        assert!(opened.contains(&5000), "{opened:?}");
    }

    #[test]
    fn sparse_and_irregular_series_are_judged_from_the_eleventh_sample() {
        // An hourly series and one sampled every 2 to 20 minutes at random: both judged with
        // no setting changed, a spike found in each.
        for every in [3_600_000, 0] {
            let mut g = Noise::new(8);
            let mut t = 1_795_392_000_000u64;
            let (mut times, mut xs) = (Vec::new(), Vec::new());
            for i in 0..200 {
                t += if every > 0 {
                    every
                } else {
                    120_000 + (g.unit() * 1_080_000.0) as u64
                };
                times.push(t);
                xs.push(50.0 + g.normal() + if i == 150 { 20.0 } else { 0.0 });
            }
            let (opened, closed) = run_at(&times, &xs);
            assert_eq!(opened, vec![150], "every {every}");
            assert_eq!(closed.len(), 1, "every {every}");
        }
    }

    #[test]
    fn it_uses_a_day_of_memory_when_sampled_fast() {
        let mut d = Change::default();
        for i in 0..100 {
            d.observe(i * 1000, 1.0);
        }
        assert!((d.interval_ms() - 1000.0).abs() < 1.0);
        assert!((d.memory() - 86_400.0).abs() < 100.0);
    }
}
