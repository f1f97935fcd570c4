//! The level-shift detector: a two-sided CUSUM of the residuals standardized by the shared window
//! baseline, `r = (x - mean) / sd`.
//!
//! `S+ = max(0, S+ + r - k)`, `S- = max(0, S- - r - k)` with `k = 0.5`; the strength is
//! `max(S+, S-) / h` with `h = 8`. A step of two standard deviations reaches it in about six
//! samples, a step of one in about sixteen: steps that a z-score (which needs four at once, and
//! whose window soon absorbs the new level) never reports. On Gaussian noise about one sample in
//! 12,000 is at or past it. The sums decay by `k` a sample once the window has absorbed the new
//! level, so the episode closes by itself. No baseline spread (a flat window): not scored, and the
//! sums restart.

use super::Reading;

const K: f64 = 0.5;
/// The CUSUM at strength 1.
pub const H: f64 = 8.0;

/// One series' cumulative sums.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LevelShift {
    up: f64,
    down: f64,
}

impl LevelShift {
    /// Scores `x` against the window baseline (`mean`, `sd`) and adds it to the sums.
    pub fn observe(&mut self, x: f64, mean: f64, sd: f64) -> Reading {
        if !(x.is_finite() && mean.is_finite() && sd.is_finite() && sd > 0.0) {
            *self = LevelShift::default();
            return Reading::NONE;
        }
        let r = (x - mean) / sd;
        self.up = (self.up + r - K).max(0.0);
        self.down = (self.down - r - K).max(0.0);
        let statistic = if self.up >= self.down {
            self.up
        } else {
            -self.down
        };
        Reading {
            strength: statistic.abs() / H,
            expected: mean,
            band: H * sd,
            statistic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Noise;
    use super::*;

    #[test]
    fn a_small_step_is_caught_within_a_few_samples_and_noise_is_not() {
        let mut g = Noise::new(3);
        let mut shift = LevelShift::default();
        // Noise around the baseline: an episode now and then at most (one in 12,000 samples).
        let mut episode = super::super::episode::Episode::default();
        let episodes = (0..50_000)
            .filter(|t| {
                let r = shift.observe(100.0 + g.normal(), 100.0, 1.0);
                matches!(
                    episode.observe(*t, r.strength, 0),
                    super::super::episode::Change::Opened { .. }
                )
            })
            .count();
        assert!(episodes <= 10, "{episodes}");
        // A step of 2 sd that a 4-sigma z-score would never see.
        let mut shift = LevelShift::default();
        let at = (1..=20)
            .find(|_| shift.observe(102.0 + g.normal(), 100.0, 1.0).is_anomalous())
            .unwrap();
        assert!(at <= 10, "{at}");
        // Down steps too, signed.
        let mut shift = LevelShift::default();
        let r = (0..12)
            .map(|_| shift.observe(97.0, 100.0, 1.0))
            .last()
            .unwrap();
        assert!(r.is_anomalous() && r.statistic < 0.0, "{r:?}");
    }

    #[test]
    fn once_the_window_has_absorbed_the_new_level_the_sums_decay() {
        let mut shift = LevelShift::default();
        for _ in 0..10 {
            shift.observe(103.0, 100.0, 1.0);
        }
        assert!(shift.observe(103.0, 100.0, 1.0).is_anomalous());
        let quiet = (0..60)
            .map(|_| shift.observe(103.0, 103.0, 1.0))
            .position(|r| !r.is_anomalous())
            .unwrap();
        assert!(quiet < 60);
        assert_eq!(shift.observe(103.0, 103.0, 0.0).strength, 0.0);
    }
}
