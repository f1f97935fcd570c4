//! Updates an operator holds until a frontier has passed their time: the one way this workspace
//! waits for a time to be complete before acting on it. The per-series stages hold their samples
//! here (the baseline lookup, [`crate::baseline::with_baseline`], and the counter rates,
//! [`crate::rates::counter_rates`]) and release them in series and time order, the same at every
//! worker count and however the input interleaved; the incident tracker holds its anomalies,
//! edges and deploys, the annotation its incident versions, and the binary's record writers their
//! records, each releasing in time order.
//!
//! Not here: the rolling window ([`crate::window`]) schedules its own future retractions, a timer
//! queue of a whole window's samples that a heap serves in `log n`; this type, which looks at
//! every held update on each release, suits updates held only until their time completes.

use timely::dataflow::operators::Capability;
use timely::progress::frontier::AntichainRef;

use crate::records::Sample;
use crate::time::Time;

/// An update as a collection carries it: the record, its time, its copies.
pub type Update<D> = (D, Time, isize);

/// A sample update as the collection carries it.
pub type SampleUpdate = Update<Sample>;

/// The updates held, each batch under the capability it came with.
pub struct Held<D> {
    held: Vec<(Capability<Time>, Vec<Update<D>>)>,
}

/// Samples held by a per-series stage.
pub type HeldSamples = Held<Sample>;

impl<D> Default for Held<D> {
    fn default() -> Self {
        Held { held: Vec::new() }
    }
}

impl<D> Held<D> {
    /// Holds `updates` under `capability`.
    pub fn hold(&mut self, capability: Capability<Time>, updates: Vec<Update<D>>) {
        if !updates.is_empty() {
            self.held.push((capability, updates));
        }
    }

    /// Moves every held update whose time `complete` has passed into `ready` (in no particular
    /// order: the caller sorts by what its stage needs), and returns the earliest capability they
    /// were held under (None: none was ready); everything in `ready` may be emitted under it.
    pub fn release(
        &mut self,
        complete: AntichainRef<'_, Time>,
        ready: &mut Vec<Update<D>>,
    ) -> Option<Capability<Time>> {
        let mut emit: Option<Capability<Time>> = None;
        for (cap, updates) in self.held.iter_mut() {
            let before = ready.len();
            let mut i = 0;
            while i < updates.len() {
                if complete.less_equal(&updates[i].1) {
                    i += 1;
                } else {
                    ready.push(updates.swap_remove(i));
                }
            }
            if ready.len() > before && emit.as_ref().is_none_or(|c| cap.time() < c.time()) {
                emit = Some(cap.clone());
            }
        }
        emit
    }

    /// Holds each capability back only as far as its updates still waiting, which are all at
    /// or beyond `complete`, and no further than `complete` itself (it moves in whole ticks:
    /// fewer distinct capability times than the updates' own milliseconds); drops the batches
    /// released in full.
    pub fn settle(&mut self, complete: AntichainRef<'_, Time>) {
        for (cap, updates) in self.held.iter_mut() {
            if let Some(earliest) = updates.iter().map(|(_, t, _)| *t).min() {
                let target = complete
                    .iter()
                    .copied()
                    .min()
                    .map_or(earliest, |c| c.min(earliest));
                if target > *cap.time() {
                    cap.downgrade(&target);
                }
            }
        }
        self.held.retain(|(_, updates)| !updates.is_empty());
    }

    /// The times of the capabilities still held.
    pub fn times(&self) -> impl Iterator<Item = Time> + '_ {
        self.held.iter().map(|(cap, _)| *cap.time())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Drops everything held, and the capabilities with it.
    pub fn clear(&mut self) {
        self.held.clear();
    }
}

/// Puts released samples in the order a per-series stage reads them: series, time, value, copies.
pub fn sort_by_series(ready: &mut [SampleUpdate]) {
    ready.sort_unstable_by_key(|(s, t, c)| (s.series.id, *t, s.fixed, *c));
}
