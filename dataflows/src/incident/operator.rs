//! The incident tracker in the dataflow: one operator on worker 0 that feeds the [`Tracker`]
//! the champion's episode events, the topology and the deploys in event-time order, one completed
//! time at a time. Anomalies are few next to samples, and one owner makes every incident exactly
//! one worker's.

use std::collections::BTreeMap;

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
                let mut pending: BTreeMap<Time, Vec<(Input, isize)>> = BTreeMap::new();
                let mut held: Option<Capability<Time>> = None;
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        for (item, time, diff) in data.drain(..) {
                            pending.entry(time).or_default().push((item, diff));
                        }
                        if let Some(cap) = capability.retain_least(0) {
                            if held.as_ref().is_none_or(|h| cap.time() < h.time()) {
                                held = Some(cap);
                            }
                        }
                    });
                    let frontier = frontier.frontier();
                    let complete = |t: &Time| frontier.first().is_none_or(|f| t < f);
                    // The next time with something to do: input to apply, or a timer (a grace ending, an
                    // episode gone silent, a held update).
                    let next_time = |pending: &BTreeMap<Time, _>, tracker: &Tracker| {
                        pending
                            .keys()
                            .next()
                            .copied()
                            .into_iter()
                            .chain(tracker.next_due())
                            .min()
                    };
                    while let Some(next) = next_time(&pending, &tracker) {
                        if !complete(&next) {
                            break;
                        }
                        let Some(cap) = held.as_ref() else { break };
                        let mut changes = Changes::default();
                        for (item, diff) in pending.remove(&next).unwrap_or_default() {
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
                    // Hold a capability no later than the next thing to do.
                    match (next_time(&pending, &tracker), held.as_mut()) {
                        (Some(n), Some(cap)) => {
                            let target = frontier.first().map_or(n, |f| (*f).min(n));
                            if target > *cap.time() {
                                cap.downgrade(&target);
                            }
                        }
                        (None, _) => held = None,
                        _ => {}
                    }
                }
            },
        )
}
