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

use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

use crate::moments::MAX_ABS_VALUE;
use crate::records::{Sample, SeriesId};
use crate::time::Time;

/// The largest rate kept (a larger one, from a huge jump over a millisecond, is clamped to it
/// so that it stays inside what the baselines' fixed point holds).
const MAX_RATE: f64 = MAX_ABS_VALUE / 2.0;

/// Turns the counters among `samples` (partitioned by series) into rates; see the module.
pub fn counter_rates<'s>(
    samples: VecCollection<'s, Time, Sample>,
) -> VecCollection<'s, Time, Sample> {
    type Update = (Sample, Time, isize);
    samples
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<Update>>, _, _, _>(
            Pipeline,
            "CounterRates",
            |_capability, _info| {
                let mut stash: Vec<(Capability<Time>, Vec<Update>)> = Vec::new();
                let mut ready: Vec<Update> = Vec::new();
                let mut counters: HashMap<SeriesId, CounterRate> = HashMap::new();
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        let (counts, passes): (Vec<Update>, Vec<Update>) = data
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
                                stash.push((cap, counts));
                            }
                        }
                    });
                    let complete = frontier.frontier();
                    let mut emit_cap: Option<Capability<Time>> = None;
                    for (cap, records) in stash.iter_mut() {
                        let before = ready.len();
                        let mut i = 0;
                        while i < records.len() {
                            if complete.less_equal(&records[i].1) {
                                i += 1;
                            } else {
                                ready.push(records.swap_remove(i));
                            }
                        }
                        if ready.len() > before
                            && emit_cap.as_ref().is_none_or(|c| cap.time() < c.time())
                        {
                            emit_cap = Some(cap.clone());
                        }
                    }
                    if let Some(emit_cap) = emit_cap {
                        ready.sort_unstable_by_key(|(s, t, c)| (s.series.id, *t, s.fixed, *c));
                        let mut session = output.session(&emit_cap);
                        for (sample, time, copies) in ready.drain(..) {
                            let counter = counters.entry(sample.series.id).or_default();
                            if let Some(rate) = counter.observe(sample.timestamp, sample.value.0) {
                                let rate = rate.clamp(-MAX_RATE, MAX_RATE);
                                let rate = Sample::new(sample.timestamp, sample.series, rate);
                                session.give((rate, time, copies));
                            }
                        }
                    }
                    // Hold back only as far as the counters still waiting.
                    for (cap, records) in stash.iter_mut() {
                        if let Some(earliest) = records.iter().map(|(_, t, _)| *t).min() {
                            if earliest > *cap.time() {
                                cap.downgrade(&earliest);
                            }
                        }
                    }
                    stash.retain(|(_, records)| !records.is_empty());
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
