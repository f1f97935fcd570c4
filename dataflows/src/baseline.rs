//! Baselines: the windowed moments of every series as one shared differential arrangement, and
//! the operator that reads a sample's baseline from it as of the sample's own time.
//!
//! The arrangement is keyed by series id with [`Moments`] as the difference, so the accumulated
//! difference of a key at time `t` *is* the baseline at `t`. [`with_baseline`] waits until the
//! arrangement is complete through a sample's time, reads the key's accumulation with a cursor,
//! and then lets the arrangement compact up to the earliest time it may still be asked about:
//! memory follows active series, not the length of the stream.

use differential_dataflow::difference::Semigroup;
use differential_dataflow::operators::arrange::{Arranged, TraceAgent};
use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::implementations::KeySpine;
use differential_dataflow::trace::TraceReader;
use differential_dataflow::{AsCollection, Data, VecCollection};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::progress::Antichain;

use crate::held::{sort_by_series, HeldSamples, SampleUpdate};
use crate::moments::Moments;
use crate::records::{Sample, SeriesId};
use crate::time::Time;

/// Settings of the shared baseline every window-reading detector uses (its window and the
/// samples it must hold before a series is judged), the z-score's threshold, and from when
/// samples are scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineConfig {
    /// Baseline window length in milliseconds.
    pub window_ms: u64,
    /// Fewest baseline samples before a series is scored.
    pub min_points: u64,
    /// |z| above which a sample is anomalous.
    pub threshold: f64,
    /// Samples before this time are not scored: a restart that re-reads only the stretch before
    /// its checkpoint starts with baselines that lack the window before that stretch, and an
    /// anomaly scored against them could be one the uninterrupted run never saw.
    pub score_from: Time,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            window_ms: 30 * 60 * 1000,
            min_points: 20,
            threshold: 4.0,
            score_from: 0,
        }
    }
}

/// The baseline arrangement: series id -> moments of its window.
pub type Baselines<'s> = Arranged<'s, TraceAgent<KeySpine<SeriesId, Time, Moments>>>;

/// Arranges windowed moments (from [`crate::window::window`]) into the shared baselines.
pub fn arrange_baselines<'s>(
    windowed: VecCollection<'s, Time, SeriesId, Moments>,
) -> Baselines<'s> {
    windowed.arrange_by_self_named("Baselines")
}

/// A per-series stage: reads each sample with its baseline, in series and time order, and hears
/// when a batch is done (every later sample is later than the batch's latest). Any closure
/// `FnMut(&Sample, &Moments) -> Option<O>` is one that ignores the end of its batches.
pub trait PerSeries<O> {
    /// What the stage makes of `sample`, whose window before it is `baseline`.
    fn observe(&mut self, sample: &Sample, baseline: &Moments) -> Option<O>;
    /// A batch of samples up to `latest` is done: no later sample is earlier than it.
    fn batch_done(&mut self, _latest: Time) {}
}

impl<O, F: FnMut(&Sample, &Moments) -> Option<O>> PerSeries<O> for F {
    fn observe(&mut self, sample: &Sample, baseline: &Moments) -> Option<O> {
        self(sample, baseline)
    }
}

/// Calls `logic` with every sample and its series' baseline as of the sample's time (the samples
/// before it in the window, never itself) and collects what it returns. `samples` must be
/// partitioned by series like the arrangement (`series.id.hashed()`).
pub fn with_baseline<'s, O, L>(
    samples: VecCollection<'s, Time, Sample>,
    baselines: Baselines<'s>,
    name: &str,
    mut logic: L,
) -> VecCollection<'s, Time, O>
where
    O: Data,
    L: PerSeries<O> + 'static,
{
    let mut trace = baselines.trace.clone();
    samples
        .inner
        .binary_frontier::<_, CapacityContainerBuilder<Vec<(O, Time, isize)>>, _, _, _, _>(
            baselines.stream,
            Pipeline,
            Pipeline,
            name,
            move |_capability, _info| {
                let mut held = HeldSamples::default();
                let mut ready: Vec<SampleUpdate> = Vec::new();
                let mut history: Vec<(Time, Moments)> = Vec::new();
                move |(samples_in, samples_frontier), (batches_in, batches_frontier), output| {
                    samples_in.for_each(|capability, data| {
                        if let Some(cap) = capability.retain_least(0) {
                            held.hold(cap, std::mem::take(data));
                        }
                    });
                    // The batches themselves are read through the trace.
                    batches_in.for_each(|_capability, _batches| {});
                    let complete = batches_frontier.frontier();

                    // Take every sample whose time the arrangement has completed, in series, time
                    // and value order: detectors with state see a series' samples in one order
                    // at every worker count, even two at the same time.
                    if let Some(emit_cap) = held.release(complete, &mut ready) {
                        sort_by_series(&mut ready);
                        let batches = trace
                            .batches_through(Antichain::new().borrow())
                            .unwrap_or_default();
                        let (mut cursor, storage) = cursor_list(batches);
                        let mut session = output.session(&emit_cap);
                        let mut current: Option<SeriesId> = None;
                        let (mut acc, mut next) = (Moments::default(), 0);
                        let mut latest: Time = 0;
                        for (sample, time, copies) in ready.drain(..) {
                            let id = sample.series.id;
                            if current != Some(id) {
                                current = Some(id);
                                history.clear();
                                cursor.seek_key(&storage, &id);
                                if cursor.get_key(&storage) == Some(&id) {
                                    cursor.map_times(&storage, |t, m| history.push((*t, *m)));
                                }
                                history.sort_unstable_by_key(|(t, _)| *t);
                                acc = Moments::default();
                                next = 0;
                            }
                            while next < history.len() && history[next].0 <= time {
                                acc.plus_equals(&history[next].1);
                                next += 1;
                            }
                            latest = latest.max(time);
                            if let Some(out) = logic.observe(&sample, &acc) {
                                session.give((out, time, copies));
                            }
                        }
                        logic.batch_done(latest);
                    }
                    // Hold back output only as far as the samples still waiting.
                    held.settle(complete);

                    // Nothing earlier than the samples still to come or still stashed is ever read.
                    let mut lower = Antichain::new();
                    for t in samples_frontier.frontier().iter() {
                        lower.insert(*t);
                    }
                    for t in held.times() {
                        lower.insert(t);
                    }
                    trace.set_logical_compaction(lower.borrow());
                    trace.set_physical_compaction(lower.borrow());
                }
            },
        )
        .as_collection()
}

/// Calls `logic` with every sample in series and time order once the input has passed its time,
/// as [`with_baseline`] does, but with no window (an empty baseline): for detectors that keep
/// their own state and read no window, so that none is kept. `samples` must be partitioned by
/// series.
pub fn in_series_order<'s, O, L>(
    samples: VecCollection<'s, Time, Sample>,
    name: &str,
    mut logic: L,
) -> VecCollection<'s, Time, O>
where
    O: Data,
    L: PerSeries<O> + 'static,
{
    samples
        .inner
        .unary_frontier::<CapacityContainerBuilder<Vec<(O, Time, isize)>>, _, _, _>(
            Pipeline,
            name,
            move |_capability, _info| {
                let mut held = HeldSamples::default();
                let mut ready: Vec<SampleUpdate> = Vec::new();
                let empty = Moments::default();
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        if let Some(cap) = capability.retain_least(0) {
                            held.hold(cap, std::mem::take(data));
                        }
                    });
                    let complete = frontier.frontier();
                    if let Some(emit_cap) = held.release(complete, &mut ready) {
                        sort_by_series(&mut ready);
                        let mut session = output.session(&emit_cap);
                        let mut latest: Time = 0;
                        for (sample, time, copies) in ready.drain(..) {
                            latest = latest.max(time);
                            if let Some(out) = logic.observe(&sample, &empty) {
                                session.give((out, time, copies));
                            }
                        }
                        logic.batch_done(latest);
                    }
                    held.settle(complete);
                }
            },
        )
        .as_collection()
}
