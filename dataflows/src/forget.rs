//! Per-series state forgotten once its series has gone silent, so that memory follows the active
//! series and not every series ever seen (in Kubernetes each pod restart makes new series, a new
//! `pod` label, and the old ones never come back).
//!
//! The rule is per series and in event time, so it gives the same output at every worker count
//! and on every replay: a series silent for longer than `forget_after`, or ten of its own
//! intervals when that is longer (a daily series is not forgotten between its samples), comes
//! back cold, as if new. The sweep that frees the memory of series that never return only
//! removes state the rule would reset anyway: the stages read samples in time order, so a series
//! swept at time `t` can only return later than `t`.

use crate::time::Time;

/// Intervals of its own a series may be silent for before it is forgotten, when that is longer
/// than `forget_after`.
pub const INTERVALS: Time = 10;

/// The forgetting rule, and when next to sweep.
#[derive(Clone, Debug)]
pub struct Forgetting {
    after: Time,
    next_sweep: Time,
}

impl Forgetting {
    /// Forgets series silent for `after` ms (0: never).
    pub fn new(after: Time) -> Self {
        Forgetting {
            after,
            next_sweep: 0,
        }
    }

    /// Whether a series last seen at `last`, sampled about every `interval`, comes back cold
    /// at `now`.
    pub fn is_silent(&self, last: Time, interval: Time, now: Time) -> bool {
        self.after > 0
            && now.saturating_sub(last) > self.after.max(interval.saturating_mul(INTERVALS))
    }

    /// Whether a sweep is due at `now` (every quarter of `forget_after` of event time).
    pub fn sweep_due(&mut self, now: Time) -> bool {
        if self.after == 0 || now < self.next_sweep {
            return false;
        }
        self.next_sweep = now.saturating_add((self.after / 4).max(1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_means_past_the_bound_or_ten_intervals() {
        let f = Forgetting::new(3_600_000);
        assert!(!f.is_silent(0, 60_000, 3_600_000));
        assert!(f.is_silent(0, 60_000, 3_600_001));
        // A series sampled every 6 hours is not silent between its samples.
        assert!(!f.is_silent(0, 6 * 3_600_000, 6 * 3_600_000));
        assert!(f.is_silent(0, 6 * 3_600_000, 61 * 3_600_000));
        assert!(!Forgetting::new(0).is_silent(0, 1, u64::MAX));
    }

    #[test]
    fn sweeps_come_a_quarter_of_the_bound_apart() {
        let mut f = Forgetting::new(4_000);
        assert!(f.sweep_due(0));
        assert!(!f.sweep_due(999));
        assert!(f.sweep_due(1_000));
        assert!(!Forgetting::new(0).sweep_due(10_000));
    }
}
