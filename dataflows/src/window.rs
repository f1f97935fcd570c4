//! The rolling window: each sample enters its series' baseline at `t + 1` and leaves it at
//! `t + 1 + W` (see [`crate::time`]).
//!
//! Retractions are held in this operator and released only when the input frontier reaches
//! their time, instead of being handed to the arrangement up front: the arrangement's batcher
//! would otherwise re-sort every future retraction on every tick (the cookbook measured 2.5-5x).
//! When the input ends, retractions later than the newest sample are dropped: no sample is left
//! to read them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

use crate::moments::Moments;
use crate::records::{Sample, SeriesId};
use crate::time::Time;

/// The windowed moments of every series: a collection of series ids whose differences are the
/// moments of the samples in each series' window. `samples` must already be partitioned by series.
pub fn window<'s>(
    samples: VecCollection<'s, Time, Sample>,
    window_ms: u64,
) -> VecCollection<'s, Time, SeriesId, Moments> {
    samples
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<(SeriesId, Time, Moments)>>, _, _, _>(
            Pipeline,
            "Window",
            move |_capability, _info| {
                let mut pending: BinaryHeap<Reverse<(Time, SeriesId, i128, i64)>> =
                    BinaryHeap::new();
                let mut held: Option<Capability<Time>> = None;
                let mut newest: Time = 0;
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        let mut session = output.session(&capability);
                        for (sample, time, copies) in data.drain(..) {
                            let id = sample.series.id;
                            let copies = copies as i64;
                            newest = newest.max(time);
                            session.give((id, time + 1, Moments::of_copies(sample.fixed, copies)));
                            pending.push(Reverse((time + 1 + window_ms, id, sample.fixed, copies)));
                            if held.is_none() {
                                // At the message's stamp: never later than any expiry still to come.
                                held = capability.retain_least(0);
                            }
                        }
                    });
                    let frontier = frontier.frontier();
                    // Release what the input frontier has reached; once the input has ended, what
                    // a sample may still be scored at (up to the newest sample), and drop the rest.
                    let due = |expires: Time| match frontier.first() {
                        Some(f) => *f >= expires,
                        None => expires <= newest,
                    };
                    if let Some(cap) = held.as_mut() {
                        let mut session = output.session(cap);
                        while let Some(Reverse((expires, id, fixed, copies))) =
                            pending.peek().copied()
                        {
                            if !due(expires) {
                                break;
                            }
                            pending.pop();
                            session.give((id, expires, Moments::of_copies(fixed, -copies)));
                        }
                    }
                    if frontier.is_empty() {
                        pending.clear();
                    }
                    // Hold a capability no later than the next expiry; at the input frontier when
                    // that is earlier, so that it moves in whole ticks.
                    match pending.peek() {
                        Some(Reverse((next, ..))) => {
                            if let Some(cap) = held.as_mut() {
                                let target = frontier.first().map_or(*next, |f| (*f).min(*next));
                                if target > *cap.time() {
                                    cap.downgrade(&target);
                                }
                            }
                        }
                        None => held = None,
                    }
                }
            },
        )
        .as_collection()
}
