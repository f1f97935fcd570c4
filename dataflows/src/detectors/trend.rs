//! The trend detector, for slow collective anomalies: a leak that climbs for hours without any
//! one sample standing out.
//!
//! Holt's linear trend (level `L`, smoothing 0.1; slope `B`, smoothing 0.02) estimates the slope
//! **in time**, per millisecond: a sample `dt` after the last moves the level by `B dt`, and its
//! change counts as a slope over `dt`, with `dt` held to [0.5, 10] usual intervals (the usual
//! interval is a running mean over about 50 samples, a gap counting as at most four). So
//! irregular samples, gaps, and a scrape interval that changes do not change the slope a series
//! shows; at a regular interval it is exactly the per-sample Holt slope over the interval.
//!
//! The slope is compared with two scales and the larger counts: the slope that noise alone gives
//! (0.00456 x the noise's standard deviation per usual interval; the standard deviation comes
//! from first differences, so a trend does not inflate it), and the mean |slope| the series has
//! shown so far (so that a daily cycle's rise in the morning, which the series shows every day,
//! is not a leak; the mean follows the whole history at first and the last 2,880 samples later
//! on). The strength is the slope over that scale, over 6: a climb six times steeper than the
//! series usually moves. On Gaussian noise no sample in 300,000 reaches it; a level that climbs
//! 30% over three hours through 0.5% noise is reported within about 15 samples.

use super::Reading;
use crate::time::Time;

const LEVEL: f64 = 0.1;
const SLOPE: f64 = 0.02;
/// The standard deviation of the per-sample slope on white noise of standard deviation 1
/// (measured).
const NOISE_SLOPE: f64 = 0.00456;
/// How much steeper than its usual slope a series must climb.
const USUAL: f64 = 1.0;
/// The slope statistic at strength 1.
pub const THRESHOLD: f64 = 6.0;
const WARM_UP: u32 = 60;
/// The longest memory of the mean |slope| and of the noise scale, in samples.
const MEMORY: f64 = 2880.0;
/// The memory of the usual interval, in samples.
const INTERVAL_MEMORY: f64 = 50.0;
/// The least and the most usual intervals a sample counts as after the last one.
const SPAN: (f64, f64) = (0.5, 10.0);

/// One series' trend state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trend {
    n: u32,
    previous: f64,
    /// When the last sample came, and the usual interval (ms; 0 until there are two).
    last_at: Time,
    interval: f64,
    level: f64,
    slope: f64,
    /// Mean |first difference| (the noise scale).
    step: f64,
    /// Mean |slope| so far.
    usual: f64,
}

impl Trend {
    /// What a sample at `t` should be (level + slope x time since the last) and the noise's
    /// standard deviation around it, once warmed up: the local-linear reference of the
    /// level-shift detector.
    pub fn prediction(&self, t: Time) -> Option<(f64, f64)> {
        let sd = self.step * std::f64::consts::PI.sqrt() / 2.0;
        (self.n > WARM_UP && sd > 0.0).then(|| (self.level + self.slope * self.span(t), sd))
    }

    /// The time (ms) from the last sample to `t` that the slope counts: [0.5, 10] usual
    /// intervals.
    fn span(&self, t: Time) -> f64 {
        let elapsed = t.saturating_sub(self.last_at) as f64;
        if self.interval > 0.0 {
            elapsed.clamp(SPAN.0 * self.interval, SPAN.1 * self.interval)
        } else {
            elapsed.max(1.0)
        }
    }

    /// Scores `x` at `t` and learns from it.
    pub fn observe(&mut self, t: Time, x: f64) -> Reading {
        if !x.is_finite() {
            return Reading::NONE;
        }
        self.n = self.n.saturating_add(1);
        if self.n == 1 {
            (self.previous, self.level, self.last_at) = (x, x, t);
            return Reading::NONE;
        }
        let dt = self.span(t);
        let elapsed = t.saturating_sub(self.last_at) as f64;
        if self.interval == 0.0 {
            self.interval = elapsed;
        } else {
            let counted = elapsed.min(4.0 * self.interval);
            self.interval += (counted - self.interval) / (self.n as f64).min(INTERVAL_MEMORY);
        }
        self.last_at = self.last_at.max(t);
        let memory = (self.n as f64).min(MEMORY);
        let difference = (x - self.previous).abs();
        self.previous = x;
        self.step += (difference - self.step) / memory.min(50.0);
        let last_level = self.level;
        self.level = LEVEL * x + (1.0 - LEVEL) * (self.level + self.slope * dt);
        self.slope = SLOPE * (self.level - last_level) / dt + (1.0 - SLOPE) * self.slope;
        // E|x(t) - x(t-1)| = 2 sd / sqrt(pi) for Gaussian noise.
        let sd = self.step * std::f64::consts::PI.sqrt() / 2.0;
        let scale = (NOISE_SLOPE * sd / self.interval).max(USUAL * self.usual);
        self.usual += (self.slope.abs() - self.usual) / memory;
        if self.n <= WARM_UP || !(scale > 0.0 && scale.is_finite()) {
            return Reading::NONE;
        }
        let statistic = self.slope / scale;
        Reading {
            strength: statistic.abs() / THRESHOLD,
            expected: self.level,
            // The band of the slope, as a change over one usual interval.
            band: THRESHOLD * scale * self.interval,
            statistic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Noise;
    use super::*;

    #[test]
    fn a_slow_leak_is_reported_and_noise_and_a_daily_cycle_are_not() {
        let mut g = Noise::new(5);
        // Memory: flat for 300 samples, then 30% up over 180 samples, 0.5% noise.
        let mut trend = Trend::default();
        let mut first = None;
        for i in 0..600usize {
            let climb = 0.3 * (i.saturating_sub(300).min(180)) as f64 / 180.0;
            let x = 100.0 * (1.0 + 0.005 * g.normal()) * (1.0 + climb);
            if trend.observe(i as u64 * 60_000, x).is_anomalous() && first.is_none() {
                first = Some(i);
            }
        }
        let first = first.expect("the leak is reported");
        assert!((300..330).contains(&first), "{first}");
        // Noise: nothing.
        let mut trend = Trend::default();
        assert!(
            (0..100_000u64).all(|i| !trend.observe(i * 60_000, 100.0 + g.normal()).is_anomalous())
        );
        // A daily cycle (35% around the mean, a sample a minute, 3% noise) for five days.
        let mut trend = Trend::default();
        let day = 1440.0;
        let alarms = (0..5 * 1440)
            .filter(|i| {
                let phase = 2.0 * std::f64::consts::PI * *i as f64 / day;
                let x = 100.0 * (1.0 + 0.35 * phase.sin()) * (1.0 + 0.03 * g.normal());
                trend.observe(*i as u64 * 60_000, x).is_anomalous()
            })
            .count();
        assert_eq!(alarms, 0);
    }

    #[test]
    fn the_slope_is_in_time_so_a_slower_scrape_is_not_a_leak() {
        // A daily cycle sampled every minute for three days, then every ten minutes for two
        // (the scrape interval changed): per sample the cycle now climbs ten times as steeply
        // (a per-sample slope alarms 32 times here), in time it does not.
        let mut g = Noise::new(9);
        let mut trend = Trend::default();
        let (mut t, mut alarms) = (0u64, 0);
        while t < 5 * 86_400_000 {
            let phase = 2.0 * std::f64::consts::PI * t as f64 / 86_400_000.0;
            let x = 100.0 * (1.0 + 0.35 * phase.sin()) * (1.0 + 0.03 * g.normal());
            alarms += usize::from(trend.observe(t, x).is_anomalous());
            t += if t < 3 * 86_400_000 { 60_000 } else { 600_000 };
        }
        assert_eq!(alarms, 0);
    }
}
