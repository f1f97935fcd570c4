//! Counters into rates, before the shared baseline. A metric named like a Prometheus counter
//! (`..._total`) only grows, so its value says nothing and its rate everything: each sample
//! becomes the increase per second since the series' previous sample, and from here on every
//! stage (the window, the baseline, every detector, the anomaly's `value`) sees the rate. A
//! decrease is a reset (the process restarted and counts from 0): the increase is the new value.
//! Irregular intervals and gaps are fine (the rate is over the actual interval); a second sample
//! at the same time, or an earlier one, gives no rate, and neither does a series' first sample.
//!
//! [`counter_rates`] holds a counter's samples until the input's frontier has passed their time
//! and then takes each series' samples in (time, value) order, so the rates are the same at every
//! worker count and however the input interleaved. Other samples pass straight through.

use std::collections::HashMap;
use std::sync::Arc;

use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::forget::Forgetting;
use crate::held::{sort_by_series, HeldSamples, SampleUpdate};
use crate::moments::MAX_ABS_VALUE;
use crate::records::{Sample, SeriesId};
use crate::time::Time;

/// The largest rate kept (a larger one, from a huge jump over a millisecond, is clamped to it
/// so that it stays inside what the baselines' fixed point holds).
const MAX_RATE: f64 = MAX_ABS_VALUE / 2.0;

/// Turns the counters among `samples` (partitioned by series) into rates; see the module.
pub fn counter_rates<'s>(
    samples: VecCollection<'s, Time, Sample>,
    forgetting: Forgetting,
) -> VecCollection<'s, Time, Sample> {
    samples
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<SampleUpdate>>, _, _, _>(
            Pipeline,
            "CounterRates",
            move |_capability, _info| {
                let mut forgetting = forgetting;
                let mut held = HeldSamples::default();
                let mut ready: Vec<SampleUpdate> = Vec::new();
                let mut counters: HashMap<SeriesId, CounterRate> = HashMap::new();
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        let (counts, passes): (Vec<SampleUpdate>, Vec<SampleUpdate>) = data
                            .drain(..)
                            .partition(|(s, _, _)| is_counter(&s.series.metric_name));
                        if !passes.is_empty() {
                            let mut session = output.session(&capability);
                            for update in passes {
                                session.give(update);
                            }
                        }
                        if !counts.is_empty() {
                            if let Some(cap) = capability.retain_least(0) {
                                held.hold(cap, counts);
                            }
                        }
                    });
                    let complete = frontier.frontier();
                    if let Some(emit_cap) = held.release(complete, &mut ready) {
                        sort_by_series(&mut ready);
                        let ready_last = ready.iter().map(|(_, t, _)| *t).max();
                        let mut session = output.session(&emit_cap);
                        for (sample, time, copies) in ready.drain(..) {
                            let counter = counters.entry(sample.series.id).or_default();
                            if counter.is_silent(&forgetting, time) {
                                *counter = CounterRate::default();
                            }
                            if let Some(rate) = counter.rate_of(&sample) {
                                session.give((rate, time, copies));
                            }
                        }
                        if let Some(now) = ready_last.filter(|t| forgetting.sweep_due(*t)) {
                            counters.retain(|_, c| !c.is_silent(&forgetting, now));
                        }
                    }
                    // Hold back only as far as the counters still waiting.
                    held.settle(complete);
                }
            },
        )
        .as_collection()
}

/// Whether a metric is a counter, by the Prometheus naming convention.
pub fn is_counter(metric_name: &str) -> bool {
    metric_name.ends_with("_total")
}

/// One counter series' previous sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CounterRate {
    previous: Option<(Time, f64)>,
    /// The gap between its last two samples.
    interval: Time,
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
        self.interval = t - t0;
        let increase = if value >= v0 { value - v0 } else { value };
        Some(increase * 1000.0 / (t - t0) as f64)
    }

    /// Whether the counter has been silent at `now` by `forgetting`'s rule (so it comes back
    /// cold: its next sample gives no rate).
    pub fn is_silent(&self, forgetting: &Forgetting, now: Time) -> bool {
        self.previous
            .is_some_and(|(last, _)| forgetting.is_silent(last, self.interval, now))
    }

    /// `sample` as its rate (clamped to the largest kept), or None as [`CounterRate::observe`].
    pub fn rate_of(&mut self, sample: &Sample) -> Option<Sample> {
        let rate = self.observe(sample.timestamp, sample.value.0)?;
        let rate = rate.clamp(-MAX_RATE, MAX_RATE);
        Some(Sample::new(
            sample.timestamp,
            Arc::clone(&sample.series),
            rate,
        ))
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
