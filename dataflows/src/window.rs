//! The rolling window: each sample enters its series' baseline at `t + 1` and leaves it at
//! `t + 1 + W` (see [`crate::time`]).
//!
//! Retractions are held in this operator and released only when the input frontier reaches
//! their time, instead of being handed to the arrangement up front: the arrangement's batcher
//! would otherwise re-sort every future retraction on every tick (the cookbook measured 2.5-5x).
//! When the input ends, pending retractions are dropped: no sample is left to read them.

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
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        let mut session = output.session(&capability);
                        for (sample, time, copies) in data.drain(..) {
                            let id = sample.series.id;
                            let copies = copies as i64;
                            session.give((id, time + 1, Moments::of_copies(sample.fixed, copies)));
                            let expires = time + 1 + window_ms;
                            pending.push(Reverse((expires, id, sample.fixed, copies)));
                            if held.as_ref().is_none_or(|h| expires < *h.time()) {
                                held = Some(capability.delayed(&expires, 0));
                            }
                        }
                    });
                    let frontier = frontier.frontier();
                    if frontier.is_empty() {
                        pending.clear();
                        held = None;
                        return;
                    }
                    if let Some(cap) = held.as_mut() {
                        let mut session = output.session(cap);
                        while let Some(Reverse((expires, id, fixed, copies))) =
                            pending.peek().copied()
                        {
                            if frontier.less_than(&expires) {
                                break;
                            }
                            pending.pop();
                            session.give((id, expires, Moments::of_copies(fixed, -copies)));
                        }
                    }
                    match pending.peek() {
                        Some(Reverse((next, ..))) => {
                            if let Some(cap) = held.as_mut() {
                                cap.downgrade(next);
                            }
                        }
                        None => held = None,
                    }
                }
            },
        )
        .as_collection()
}
