//! Counters into rates. A metric named like a Prometheus counter (`..._total`) only grows, so its
//! value says nothing and its rate everything: each sample becomes the increase per second since
//! the series' previous sample. A decrease is a reset (the process restarted and counts from 0):
//! the increase is the new value. Irregular intervals and gaps are fine (the rate is over the
//! actual interval); a second sample at the same time, or an earlier one, gives no rate.

use crate::time::Time;

/// Whether a metric is a counter, by the Prometheus naming convention.
pub fn is_counter(metric_name: &str) -> bool {
    metric_name.ends_with("_total")
}

/// One counter series' previous sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CounterRate {
    previous: Option<(Time, f64)>,
}

impl CounterRate {
    /// The rate per second at `t` (None for the first sample, or one not after the previous).
    pub fn observe(&mut self, t: Time, value: f64) -> Option<f64> {
        if !value.is_finite() {
            return None;
        }
        let previous = self.previous.replace((t, value));
        let (t0, v0) = previous?;
        if t <= t0 {
            self.previous = Some((t0, v0));
            return None;
        }
        let increase = if value >= v0 { value - v0 } else { value };
        Some(increase * 1000.0 / (t - t0) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_rates_through_resets_and_gaps() {
        assert!(is_counter("http_requests_total") && !is_counter("latency_p99"));
        let mut c = CounterRate::default();
        assert_eq!(c.observe(0, 100.0), None);
        assert_eq!(c.observe(10_000, 150.0), Some(5.0));
        // A gap of a minute: the rate over it.
        assert_eq!(c.observe(70_000, 450.0), Some(5.0));
        // A restart: counting from 0 again.
        assert_eq!(c.observe(80_000, 20.0), Some(2.0));
        // Not after the previous sample: no rate, and the previous stays.
        assert_eq!(c.observe(80_000, 30.0), None);
        assert_eq!(c.observe(90_000, 40.0), Some(2.0));
        // A constant counter is a zero rate, not an error.
        assert_eq!(c.observe(100_000, 40.0), Some(0.0));
    }
}
