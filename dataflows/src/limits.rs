//! Cardinality caps: at most so many active series per namespace and in the whole job. One
//! misconfigured exporter that puts a request id in a label makes a new series per request; past
//! a cap, the samples of new series are refused (the binary dead-letters them as `cardinality`)
//! and the series already admitted keep working, as Prometheus's `sample_limit` protects it.
//!
//! The caps are the job's, not a process's: which series a process sees depends on how many
//! processes there are, so a per-process cap would make the output depend on the cluster's
//! shape. Admission is decided the same way at every worker count and on every replay:
//!
//! ```text
//! samples (by series) ─► Touches ─► broadcast ─┐
//!        │                                     ▼
//!        └──────────────────────────────────► Admit ─► admitted samples
//!                                                   └► refused samples
//! ```
//!
//! Each series' owner reports a *touch* at its first sample and then at its first sample a
//! quarter of `forget_after` after its last touch (a function of the series' own samples alone).
//! Every worker receives every touch and keeps the same admission book: at each time, in time
//! order, it frees the series not touched for `forget_after` and a quarter (silent ones: a pod
//! that is gone), then takes that time's touches in series-id order, admitting a new series while
//! both its namespace and the job are under their caps. A sample passes when its series is
//! admitted at its time. A refused series asks again at its next touch, so it gets in once room
//! is made. With `forget_after = 0s` series are never freed and touch once.
//!
//! The cost is kept off the common path: a series touched recently needs no touch (its sample
//! is not held), and a sample of a series admitted for at least its time passes at once; only
//! samples of series not (yet) admitted wait for their time to complete.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::Stream;
use timely::progress::Antichain;

use crate::decode::SeriesMap;
use crate::held::{Held, SampleUpdate, Update};
use crate::records::{Sample, SeriesId, SeriesInfo};
use crate::time::Time;

/// The caps (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesCaps {
    /// Active series per namespace.
    pub per_namespace: u64,
    /// Active series in the whole job.
    pub total: u64,
    /// A series not seen for this long is no longer active (0: never).
    pub forget_after: Time,
}

impl SeriesCaps {
    /// Whether any cap is set.
    pub fn any(&self) -> bool {
        self.per_namespace > 0 || self.total > 0
    }

    /// How often an active series reports itself (never again: `Time::MAX`).
    fn touch_every(&self) -> Time {
        match self.forget_after {
            0 => Time::MAX,
            f => (f / 4).max(1),
        }
    }

    /// How long after its last touch an admitted series is freed.
    fn free_after(&self) -> Time {
        match self.forget_after {
            0 => Time::MAX,
            f => f.saturating_add(self.touch_every()),
        }
    }
}

/// Which cap refused a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cap {
    /// `series_per_namespace`.
    Namespace,
    /// `series`, the job's.
    Total,
}

/// A sample refused by a cap, with what the cap was.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capped {
    /// The sample.
    pub sample: Sample,
    /// The cap that refused it (the namespace's when both are full).
    pub cap: Cap,
    /// The cap's value.
    pub limit: u64,
}

/// The refused samples, as updates.
pub type CappedStream<'s> = Stream<'s, Time, Vec<Update<Capped>>>;

/// Splits `samples` (partitioned by series) into those of admitted series and those refused.
pub fn cap_series<'s>(
    samples: VecCollection<'s, Time, Sample>,
    caps: SeriesCaps,
) -> (VecCollection<'s, Time, Sample>, CappedStream<'s>) {
    let touches = touches(samples.inner.clone(), caps).broadcast();
    let (admitted, refused) = admit(samples.inner, touches, caps)
        .ok_err::<Vec<SampleUpdate>, _, Vec<Update<Capped>>, _, _>(|r| r);
    (admitted.as_collection(), refused)
}

/// A series' report that it is active: the series and the time of the sample that made it.
type Touch = (Arc<SeriesInfo>, Time);

/// At each series' owner: the touches its samples make.
fn touches<'s>(
    samples: Stream<'s, Time, Vec<SampleUpdate>>,
    caps: SeriesCaps,
) -> Stream<'s, Time, Vec<Touch>> {
    let every = caps.touch_every();
    samples.unary_frontier::<CapacityContainerBuilder<Vec<Touch>>, _, _, _>(
        Pipeline,
        "SeriesTouches",
        move |_capability, _info| {
            let mut held = Held::<Sample>::default();
            let mut ready: Vec<SampleUpdate> = Vec::new();
            // Each series' last touch; only those whose next touch is not yet due are kept.
            let mut last: SeriesMap<Time> = SeriesMap::default();
            let mut swept_at: Time = 0;
            move |(input, frontier), output| {
                input.for_each(|capability, data| {
                    // A sample before its series' next touch makes none: every sample still to
                    // come is at or after the frontier, which is past the last touch.
                    data.retain(|(s, t, _)| {
                        last.get(&s.series.id)
                            .is_none_or(|at| t.saturating_sub(*at) >= every)
                    });
                    if let Some(cap) = capability.retain_least(0) {
                        held.hold(cap, std::mem::take(data));
                    }
                });
                let complete = frontier.frontier();
                if let Some(cap) = held.release(complete, &mut ready) {
                    ready.sort_unstable_by_key(|(s, t, _)| (s.series.id, *t));
                    let mut session = output.session(&cap);
                    for (sample, time, _) in ready.drain(..) {
                        let due = last
                            .get(&sample.series.id)
                            .is_none_or(|at| time.saturating_sub(*at) >= every);
                        if due {
                            last.insert(sample.series.id, time);
                            session.give((sample.series, time));
                        }
                    }
                }
                held.settle(complete);
                // Forget the touches whose next is due anyway, once a touch interval.
                if let Some(now) = complete.first().copied() {
                    if every < Time::MAX && now.saturating_sub(swept_at) >= every {
                        last.retain(|_, at| now.saturating_sub(*at) < every);
                        swept_at = now;
                    }
                }
            }
        },
    )
}

/// What one sample became: passed on, or refused.
type Admission = Result<SampleUpdate, Update<Capped>>;

/// The admission book, the same at every worker: the admitted series, when each was last
/// touched, and how many each namespace holds.
#[derive(Default)]
struct Book {
    admitted: SeriesMap<(Arc<str>, Time)>,
    per_namespace: HashMap<Arc<str>, u64>,
    /// (free at, series): an entry is stale when the series was touched since.
    expiries: BinaryHeap<Reverse<(Time, SeriesId)>>,
}

impl Book {
    /// Frees the series not touched for `free_after` by time `now`.
    fn free_silent(&mut self, now: Time, caps: SeriesCaps) {
        while let Some(Reverse((at, id))) = self.expiries.peek().copied() {
            if at >= now {
                break;
            }
            self.expiries.pop();
            let current = self.admitted.get(&id).map(|(_, last)| *last);
            if current.is_some_and(|last| last.saturating_add(caps.free_after()) == at) {
                if let Some((namespace, _)) = self.admitted.remove(&id) {
                    if let Some(n) = self.per_namespace.get_mut(&namespace) {
                        *n -= 1;
                        if *n == 0 {
                            self.per_namespace.remove(&namespace);
                        }
                    }
                }
            }
        }
    }

    /// Takes a touch: refreshes an admitted series, admits a new one if there is room.
    fn touch(&mut self, series: &SeriesInfo, time: Time, caps: SeriesCaps) {
        let free_at = time.saturating_add(caps.free_after());
        if let Some((_, last)) = self.admitted.get_mut(&series.id) {
            *last = time;
        } else {
            if self.refusal(&series.namespace, caps).is_some() {
                return;
            }
            let namespace = series.namespace.clone();
            *self.per_namespace.entry(namespace.clone()).or_default() += 1;
            self.admitted.insert(series.id, (namespace, time));
        }
        if free_at < Time::MAX {
            self.expiries.push(Reverse((free_at, series.id)));
        }
    }

    /// The cap a new series of `namespace` would break, if any.
    fn refusal(&self, namespace: &Arc<str>, caps: SeriesCaps) -> Option<(Cap, u64)> {
        let in_namespace = self.per_namespace.get(namespace).copied().unwrap_or(0);
        if caps.per_namespace > 0 && in_namespace >= caps.per_namespace {
            return Some((Cap::Namespace, caps.per_namespace));
        }
        if caps.total > 0 && self.admitted.len() as u64 >= caps.total {
            return Some((Cap::Total, caps.total));
        }
        None
    }

    /// Whether `series` is admitted at `time` whatever touches come before it.
    fn surely_admitted(&self, series: SeriesId, time: Time, caps: SeriesCaps) -> bool {
        self.admitted
            .get(&series)
            .is_some_and(|(_, last)| last.saturating_add(caps.free_after()) >= time)
    }

    /// What a sample of `series` at a time whose touches are taken becomes.
    fn judge(&self, update: SampleUpdate, caps: SeriesCaps) -> Admission {
        if self.admitted.contains_key(&update.0.series.id) {
            return Ok(update);
        }
        let (cap, limit) = self
            .refusal(&update.0.series.namespace, caps)
            .unwrap_or((Cap::Total, caps.total));
        let (sample, time, copies) = update;
        Err((Capped { sample, cap, limit }, time, copies))
    }
}

/// At every worker: the same book from every touch; this worker's samples judged by it.
// Long: one timely operator, whose state (the book, the held samples and touches) lives in its closure.
fn admit<'s>(
    samples: Stream<'s, Time, Vec<SampleUpdate>>,
    touches: Stream<'s, Time, Vec<Touch>>,
    caps: SeriesCaps,
) -> Stream<'s, Time, Vec<Admission>> {
    samples.binary_frontier::<_, CapacityContainerBuilder<Vec<Admission>>, _, _, _, _>(
        touches,
        Pipeline,
        Pipeline,
        "AdmitSeries",
        move |_capability, _info| {
            let mut book = Book::default();
            let mut held = Held::<Sample>::default();
            let mut ready: Vec<SampleUpdate> = Vec::new();
            let mut pending: BTreeMap<Time, Vec<Arc<SeriesInfo>>> = BTreeMap::new();
            move |(samples, samples_frontier), (touches, touches_frontier), output| {
                touches.for_each(|_capability, data| {
                    for (series, time) in data.drain(..) {
                        pending.entry(time).or_default().push(series);
                    }
                });
                samples.for_each(|capability, data| {
                    let mut session = output.session(&capability);
                    let mut waiting = Vec::new();
                    for update in data.drain(..) {
                        if book.surely_admitted(update.0.series.id, update.1, caps) {
                            session.give(Ok(update));
                        } else {
                            waiting.push(update);
                        }
                    }
                    if let Some(cap) = capability.retain_least(0) {
                        held.hold(cap, waiting);
                    }
                });
                let complete: Antichain<Time> = samples_frontier
                    .frontier()
                    .iter()
                    .chain(touches_frontier.frontier().iter())
                    .min()
                    .copied()
                    .into_iter()
                    .collect();
                let emit = held.release(complete.borrow(), &mut ready);
                ready.sort_unstable_by_key(|(s, t, _)| (*t, s.series.id));
                let mut judged = Vec::with_capacity(ready.len());
                let mut samples_left = ready.drain(..).peekable();
                // Each complete time in order: its samples judged after its touches are taken.
                while let Some(entry) = pending.first_entry() {
                    let time = *entry.key();
                    if complete.less_equal(&time) {
                        break;
                    }
                    let mut series = entry.remove();
                    while let Some(update) = samples_left.next_if(|u| u.1 < time) {
                        judged.push(book.judge(update, caps));
                    }
                    book.free_silent(time, caps);
                    series.sort_unstable_by_key(|s| s.id);
                    for s in &series {
                        book.touch(s, time, caps);
                    }
                }
                for update in samples_left {
                    judged.push(book.judge(update, caps));
                }
                if let Some(cap) = emit {
                    let mut session = output.session(&cap);
                    for admission in judged {
                        session.give(admission);
                    }
                }
                held.settle(complete.borrow());
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Time = 3_600_000;

    fn series(namespace: &str, service: &str) -> SeriesInfo {
        SeriesInfo::new(namespace, service, "m")
    }

    #[test]
    fn the_book_admits_under_both_caps_keeps_the_touched_and_frees_the_silent() {
        let caps = SeriesCaps {
            per_namespace: 2,
            total: 3,
            forget_after: HOUR,
        };
        let mut book = Book::default();
        let (a, b, c) = (series("x", "a"), series("x", "b"), series("x", "c"));
        let (d, e) = (series("y", "d"), series("y", "e"));
        for s in [&a, &b, &c, &d, &e] {
            book.touch(s, 0, caps);
        }
        // x holds its 2, the job its 3: c by the namespace's cap, e by the job's.
        assert!(book.surely_admitted(a.id, 0, caps) && book.surely_admitted(b.id, 0, caps));
        assert!(book.surely_admitted(d.id, 0, caps));
        assert_eq!(book.refusal(&c.namespace, caps), Some((Cap::Namespace, 2)));
        assert_eq!(book.refusal(&e.namespace, caps), Some((Cap::Total, 3)));
        // a keeps reporting, b goes silent: after an hour and a quarter b's place is free.
        book.touch(&a, HOUR, caps);
        let later = HOUR + HOUR / 4 + 1;
        book.free_silent(later, caps);
        assert!(book.surely_admitted(a.id, later, caps));
        assert!(!book.admitted.contains_key(&b.id) && !book.admitted.contains_key(&d.id));
        book.touch(&c, later, caps);
        assert!(book.surely_admitted(c.id, later, caps));
        assert_eq!(book.per_namespace.get(&c.namespace), Some(&2));
        // A stale expiry (a was touched since) frees nothing.
        assert!(book.admitted.contains_key(&a.id));
        // Never forgetting: nothing is freed, however long the silence.
        let forever = SeriesCaps {
            forget_after: 0,
            ..caps
        };
        let mut book = Book::default();
        book.touch(&a, 0, forever);
        book.free_silent(Time::MAX - 1, forever);
        assert!(book.surely_admitted(a.id, Time::MAX - 1, forever));
    }
}
