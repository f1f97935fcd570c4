//! The robust detector: how far a sample lies from its series' median, in robust standard
//! deviations (1.4826 x the median absolute deviation).
//!
//! The median and the MAD are tracked by sign steps, not from a copy of the window: after a
//! warm-up of 20 samples (mean and standard deviation, as a start), each sample moves the median
//! by 5% of the MAD toward itself and the MAD by 1% up or down, whatever its size. An outlier
//! thus moves them no more than an ordinary sample does: the state is resistant to the outliers
//! it is looking for, and a burst of them is still reported at its end. They follow a level the
//! series has moved to within a few dozen samples. A series with no spread (MAD 0) is not scored.
//! Threshold 4.5: on Gaussian noise one sample in about 50,000 reaches it (4-sigma z: 1 in
//! 16,000); measured in `mod.rs`'s calibration test.

use super::Reading;

const WARM_UP: u32 = 20;
const MEDIAN_STEP: f64 = 0.05;
const MAD_STEP: f64 = 0.01;
/// The robust z at strength 1.
pub const THRESHOLD: f64 = 4.5;
/// A normal distribution's standard deviation over its MAD.
const MAD_TO_SD: f64 = 1.4826;

/// One series' robust location and scale.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Robust {
    n: u32,
    mean: f64,
    m2: f64,
    median: f64,
    mad: f64,
}

impl Robust {
    /// Scores `x` against the state before it, then learns from it.
    pub fn observe(&mut self, x: f64) -> Reading {
        if !x.is_finite() {
            return Reading::NONE;
        }
        if self.n < WARM_UP {
            self.n += 1;
            let d = x - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (x - self.mean);
            if self.n == WARM_UP {
                self.median = self.mean;
                self.mad = (self.m2 / (self.n - 1) as f64).sqrt() / MAD_TO_SD;
            }
            return Reading::NONE;
        }
        let scale = MAD_TO_SD * self.mad;
        let reading = if scale > 0.0 {
            let r = (x - self.median) / scale;
            Reading {
                strength: r.abs() / THRESHOLD,
                expected: self.median,
                band: THRESHOLD * scale,
                statistic: r,
            }
        } else {
            Reading::NONE
        };
        let sign = |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            }
        };
        self.median += MEDIAN_STEP * self.mad * sign(x - self.median);
        self.mad *= 1.0 + MAD_STEP * sign((x - self.median).abs() - self.mad);
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::noise;
    use super::*;

    #[test]
    fn a_spike_stands_out_and_a_burst_of_outliers_does_not_move_the_median() {
        let mut r = Robust::default();
        let xs = noise(1, 500);
        for x in &xs[..400] {
            r.observe(*x);
        }
        let spike = r.observe(110.0);
        assert!(spike.is_anomalous(), "{spike:?}");
        assert!((spike.expected - 100.0).abs() < 0.5, "{spike:?}");
        // Ten huge outliers in a row: the median moves by at most ten small steps.
        let before = r.median;
        for _ in 0..10 {
            assert!(r.observe(1e6).is_anomalous());
        }
        assert!(
            (r.median - before).abs() < 10.0 * MEDIAN_STEP * 2.0,
            "{}",
            r.median
        );
    }

    #[test]
    fn noise_and_a_constant_series_make_no_alarm() {
        let mut r = Robust::default();
        let alarms = noise(2, 50_000)
            .iter()
            .filter(|x| r.observe(**x).is_anomalous())
            .count();
        assert!(alarms <= 3, "{alarms}");
        let mut flat = Robust::default();
        assert!((0..100).all(|_| flat.observe(5.0).strength == 0.0));
    }
}
