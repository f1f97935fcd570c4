//! The incident tracker in the dataflow: one operator on worker 0 that feeds the [`Tracker`]
//! the champion's episode events, the topology and the deploys in event-time order, one completed
//! time at a time. Anomalies are few next to samples, and one owner makes every incident exactly
//! one worker's.

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concatenate};
use timely::dataflow::Stream;

use super::record::Incident;
use super::tracker::{Changes, CorrelationConfig, Tracker};
use crate::held::{Held, Update};
use crate::records::{Anomaly, DeployEvent, EdgeChange};
use crate::time::Time;

/// Everything the tracker reads, as one stream.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Input {
    Anomaly(Anomaly),
    Edge(EdgeChange),
    Deploy(DeployEvent),
}

/// Runs the [`Tracker`] on worker 0 over the champion's episode events, the topology's edges
/// and the deploys, one completed time at a time; returns the incident versions, at the times
/// they were made.
pub fn track_incidents<'s>(
    anomalies: VecCollection<'s, Time, Anomaly>,
    edges: Stream<'s, Time, Vec<(EdgeChange, Time, isize)>>,
    deploys: Stream<'s, Time, Vec<(DeployEvent, Time, isize)>>,
    config: &CorrelationConfig,
) -> Stream<'s, Time, Vec<(Incident, Time, isize)>> {
    let scope = anomalies.inner.scope();
    let streams = vec![
        anomalies.inner.map(|(a, t, r)| (Input::Anomaly(a), t, r)),
        edges.map(|(e, t, r)| (Input::Edge(e), t, r)),
        deploys.map(|(d, t, r)| (Input::Deploy(d), t, r)),
    ];
    let config = config.clone();
    scope
        .concatenate(streams)
        .unary_frontier::<CapacityContainerBuilder<Vec<(Incident, Time, isize)>>, _, _, _>(
            Exchange::new(|_: &(Input, Time, isize)| 0u64),
            "Incidents",
            move |_capability, _info| {
                let mut tracker = Tracker::new(config);
                let mut held: Held<Input> = Held::default();
                let mut ready: Vec<Update<Input>> = Vec::new();
                // Held for the tracker's timers (a grace ending, an episode gone silent, a held
                // update), which fall due with no input at their time.
                let mut timer: Option<Capability<Time>> = None;
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        if let Some(cap) = capability.retain_least(0) {
                            if timer.as_ref().is_none_or(|t| cap.time() < t.time()) {
                                timer = Some(cap.clone());
                            }
                            held.hold(cap, std::mem::take(data));
                        }
                    });
                    let frontier = frontier.frontier();
                    let complete = |t: &Time| frontier.first().is_none_or(|f| t < f);
                    let released = held.release(frontier, &mut ready);
                    // A step may set a timer: keep a capability that can still fire it.
                    if let Some(r) = &released {
                        if timer.as_ref().is_none_or(|t| r.time() < t.time()) {
                            timer = Some(r.clone());
                        }
                    }
                    // Stable: one time's updates keep the order they arrived in.
                    ready.sort_by_key(|(_, t, _)| *t);
                    let mut ready_now = ready.drain(..).peekable();
                    // The next time with something to do: input to apply, or a timer.
                    let next_time = |ready: &mut std::iter::Peekable<_>, tracker: &Tracker| {
                        let next_input = ready.peek().map(|(_, t, _): &Update<Input>| *t);
                        next_input.into_iter().chain(tracker.next_due()).min()
                    };
                    while let Some(next) = next_time(&mut ready_now, &tracker) {
                        if !complete(&next) {
                            break;
                        }
                        let Some(cap) = timer.as_ref() else {
                            break;
                        };
                        let mut changes = Changes::default();
                        while let Some((item, _, diff)) = ready_now.next_if(|(_, t, _)| *t == next)
                        {
                            match item {
                                Input::Anomaly(a) => changes
                                    .anomalies
                                    .extend((0..diff.max(0)).map(|_| a.clone())),
                                Input::Edge(e) => changes.edges.push(e),
                                Input::Deploy(d) => changes.deploys.push(d),
                            }
                        }
                        changes.anomalies.sort();
                        changes.edges.sort();
                        changes.deploys.sort();
                        let versions = tracker.step(next, changes);
                        if !versions.is_empty() {
                            let at = cap.delayed(&next);
                            let mut session = output.session(&at);
                            for v in versions {
                                session.give((v, next, 1));
                            }
                        }
                    }
                    drop(ready_now);
                    held.settle(frontier);
                    // Hold the timer's capability no later than the tracker's next timer.
                    match (tracker.next_due(), timer.as_mut()) {
                        (Some(n), Some(cap)) => {
                            let target = frontier.first().map_or(n, |f| (*f).min(n));
                            if target > *cap.time() {
                                cap.downgrade(&target);
                            }
                        }
                        (None, _) => timer = None,
                        _ => {}
                    }
                }
            },
        )
}
