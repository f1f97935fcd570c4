//! The detectors, as pure per-series state machines that read the
//! shared baseline (the window's [`Moments`](crate::moments::Moments), read once per sample by
//! `with_baseline`) and keep a few numbers of their own per series: never a copy of the samples.
//!
//! Every detector turns a sample into a **strength**: its statistic divided by its threshold, so
//! that 1.0 is "exactly at the threshold" for every detector. The thresholds are calibrated to
//! the same false-alarm rate on stationary Gaussian noise, about one sample in 15,000 (the tail of
//! a 4-sigma z-score; see each module and `calibration_on_noise_is_alike` below), which is what
//! lets one score threshold serve the whole estate. [`episode`] turns strengths into episodes
//! with hysteresis and [`score`] into a calibrated `anomaly_score`.
//!
//! - [`zscore`]: the rolling z-score against the window's mean and standard deviation.
//! - [`robust`]: median and MAD tracked by sign steps (resistant to the outliers it looks for).
//! - [`level_shift`]: a two-sided CUSUM of standardized residuals (steps a z-score absorbs).
//! - [`trend`]: Holt's linear trend against a noise scale from first differences (slow leaks).
//! - [`seasonal`]: the same hour of the day (weekdays and weekends apart), learned online.
//! - [`change`] (the champion): a move larger and rarer than the series' own changes, absolute
//!   and relative, from a fading sketch of them ([`tail`]); judges from its tenth sample at any
//!   interval.

pub mod bank;
pub mod change;
pub mod episode;
pub mod level_shift;
pub mod robust;
pub mod score;
pub mod seasonal;
pub mod tail;
pub mod trend;
pub mod zscore;

/// What a detector says of one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    /// The statistic over its threshold: 1.0 at the threshold, 0 when not scored.
    pub strength: f64,
    /// What the detector expected here.
    pub expected: f64,
    /// Half the width of its normal band (expected ± this).
    pub band: f64,
    /// The statistic itself (z, robust z, CUSUM sum, trend t or seasonal z), signed.
    pub statistic: f64,
}

impl Reading {
    /// Not scored (warming up, a gap, a flat series).
    pub const NONE: Reading = Reading {
        strength: 0.0,
        expected: f64::NAN,
        band: f64::NAN,
        statistic: 0.0,
    };

    /// Whether it is past the threshold.
    pub fn is_anomalous(&self) -> bool {
        self.strength >= 1.0
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Seeded series with known properties for the detectors' tests.

    /// Deterministic standard normal numbers (the workspace's seeded generator).
    pub struct Noise(crate::rng::Rng);

    impl Noise {
        pub fn new(seed: u64) -> Self {
            Noise(crate::rng::Rng::new(seed, 0))
        }

        pub fn unit(&mut self) -> f64 {
            self.0.unit()
        }

        pub fn normal(&mut self) -> f64 {
            self.0.normal()
        }
    }

    /// `n` values: level 100, Gaussian noise of sd 1.
    pub fn noise(seed: u64, n: usize) -> Vec<f64> {
        let mut g = Noise::new(seed);
        (0..n).map(|_| 100.0 + g.normal()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::noise;
    use super::*;

    /// False episodes per sample of each detector on pure noise, after a warm-up: all rare, and
    /// of the same order as a 4-sigma z-score's (about one sample in 16,000).
    #[test]
    fn calibration_on_noise_is_alike() {
        let xs = noise(11, 300_000);
        let mut robust = robust::Robust::default();
        let mut shift = level_shift::LevelShift::default();
        let mut trend = trend::Trend::default();
        let mut episodes: [episode::Episode; 4] = Default::default();
        let mut opened = [0u32; 4];
        for (i, x) in xs.iter().enumerate() {
            // The shared window baseline: known here (mean 100, sd 1).
            let readings = [
                Reading {
                    strength: (x - 100.0).abs() / 4.0,
                    ..Reading::NONE
                },
                robust.observe(*x),
                shift.observe(*x, 100.0, 1.0),
                trend.observe(i as u64 * 60_000, *x),
            ];
            for k in 0..4 {
                let change = episodes[k].observe(i as u64, readings[k].strength, 0);
                if i > 200 && matches!(change, episode::Change::Opened { .. }) {
                    opened[k] += 1;
                }
            }
        }
        for (name, n) in ["zscore", "robust", "level_shift", "trend"]
            .iter()
            .zip(opened)
        {
            let one_in = xs.len() as f64 / n.max(1) as f64;
            eprintln!("{name}: {n} false episodes in {} samples", xs.len());
            assert!(one_in > 5_000.0, "{name}: {n} episodes in {}", xs.len());
        }
    }
}
