//! The calibrated `anomaly_score` of an episode: one number in [0, 1) that means the same for
//! every detector and series.
//!
//! `score = e / (1 + e)` with the effective strength `e = s * (1 + ln(p) / 4)`, where `s` is the
//! strongest strength of the episode so far (1.0 = at its detector's threshold, which every
//! detector sets at the same false-alarm rate on noise) and `p` the number of anomalous samples
//! in it. So a single sample just at the threshold scores 0.5, twice the threshold 0.67, and
//! persistence adds: 20 samples at the threshold score 0.63. The score never saturates: 100 times
//! the threshold is 0.99.

/// The score of an episode whose strongest strength is `strength` over `persistence` anomalous
/// samples.
pub fn anomaly_score(strength: f64, persistence: u32) -> f64 {
    let s = if strength.is_nan() {
        0.0
    } else {
        strength.clamp(0.0, 1e9)
    };
    let e = s * (1.0 + (persistence.max(1) as f64).ln() / 4.0);
    e / (1.0 + e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_is_half_at_the_threshold_and_grows_with_strength_and_persistence() {
        assert!((anomaly_score(1.0, 1) - 0.5).abs() < 1e-12);
        assert!((anomaly_score(2.0, 1) - 2.0 / 3.0).abs() < 1e-12);
        assert!(anomaly_score(1.0, 20) > 0.6 && anomaly_score(1.0, 20) < 0.65);
        assert!(anomaly_score(100.0, 1) > 0.99 && anomaly_score(100.0, 1) < 1.0);
        assert!(anomaly_score(3.0, 5) > anomaly_score(3.0, 4));
        assert_eq!(anomaly_score(f64::NAN, 1), 0.0);
        assert_eq!(anomaly_score(f64::INFINITY, 1), anomaly_score(1e9, 1));
    }
}
