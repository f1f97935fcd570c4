//! Samples an operator holds until a frontier has passed their time, then releases in one order
//! (series, time, value, copies): what lets a stateful per-series stage see each series' samples
//! in time order, the same at every worker count and however the input interleaved. The baseline
//! lookup ([`crate::baseline::with_baseline`]) and the counter-rate stage
//! ([`crate::rates::counter_rates`]) hold their samples here.

use timely::dataflow::operators::Capability;
use timely::progress::frontier::AntichainRef;

use crate::records::Sample;
use crate::time::Time;

/// A sample update as the collection carries it.
pub type SampleUpdate = (Sample, Time, isize);

/// The samples held, each batch under the capability it came with.
#[derive(Default)]
pub struct HeldSamples {
    held: Vec<(Capability<Time>, Vec<SampleUpdate>)>,
}

impl HeldSamples {
    /// Holds `samples` under `capability`.
    pub fn hold(&mut self, capability: Capability<Time>, samples: Vec<SampleUpdate>) {
        if !samples.is_empty() {
            self.held.push((capability, samples));
        }
    }

    /// Moves every held sample whose time `complete` has passed into `ready`, sorted by series,
    /// time, value and copies, and returns the earliest capability they were held under (None:
    /// none was ready); everything in `ready` may be emitted under it.
    pub fn release(
        &mut self,
        complete: AntichainRef<'_, Time>,
        ready: &mut Vec<SampleUpdate>,
    ) -> Option<Capability<Time>> {
        let mut emit: Option<Capability<Time>> = None;
        for (cap, samples) in self.held.iter_mut() {
            let before = ready.len();
            let mut i = 0;
            while i < samples.len() {
                if complete.less_equal(&samples[i].1) {
                    i += 1;
                } else {
                    ready.push(samples.swap_remove(i));
                }
            }
            if ready.len() > before && emit.as_ref().is_none_or(|c| cap.time() < c.time()) {
                emit = Some(cap.clone());
            }
        }
        ready.sort_unstable_by_key(|(s, t, c)| (s.series.id, *t, s.fixed, *c));
        emit
    }

    /// Holds each capability back only as far as its samples still waiting, which are all at
    /// or beyond `complete`, and no further than `complete` itself (it moves in whole ticks:
    /// fewer distinct capability times than the samples' own milliseconds); drops the batches
    /// released in full.
    pub fn settle(&mut self, complete: AntichainRef<'_, Time>) {
        for (cap, samples) in self.held.iter_mut() {
            if let Some(earliest) = samples.iter().map(|(_, t, _)| *t).min() {
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
        self.held.retain(|(_, samples)| !samples.is_empty());
    }

    /// The times of the capabilities still held.
    pub fn times(&self) -> impl Iterator<Item = Time> + '_ {
        self.held.iter().map(|(cap, _)| *cap.time())
    }
}
