//! Neighbourhoods: the connected groups of anomalous services, joined with the topology in time.
//!
//! * A service is **active** for `window_ms` after each of its anomalies: the anomaly is inserted
//!   at its time and retracted at time + window (DESIGN's "insert at t, retract at t + W").
//! * The topology is a collection of `(caller, callee)` edges that changes over time (`op` add /
//!   remove, each at its own time), so a late edge changes the neighbourhoods at its own time.
//! * A neighbourhood is a connected component of the active services over the edges whose both
//!   ends are active, computed incrementally with `iterate`. Its label is its least service name,
//!   and a service with no active neighbour is a neighbourhood of its own.
//!
//! Services are identified by name (namespaces are descriptive here, as in the edge stream).

use std::sync::Arc;

use differential_dataflow::operators::Iterate;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::operators::vec::Map;

use crate::records::Anomaly;
use crate::time::Time;

/// A service name.
pub type Service = Arc<str>;

/// The services with an anomaly in the last `window_ms` of event time.
pub fn active_services<'s>(
    anomalies: VecCollection<'s, Time, Anomaly>,
    window_ms: u64,
) -> VecCollection<'s, Time, Service> {
    anomalies
        .inner
        .flat_map(move |(anomaly, time, diff)| {
            let service = anomaly.series.service.clone();
            [
                (service.clone(), time, diff),
                (service, time + window_ms, -diff),
            ]
        })
        .as_collection()
        .distinct()
}

/// Every active service with the label of its neighbourhood (the least name in it), given the
/// active services and the topology's `(caller, callee)` edges.
pub fn neighbourhoods<'s>(
    active: VecCollection<'s, Time, Service>,
    edges: VecCollection<'s, Time, (Service, Service)>,
) -> VecCollection<'s, Time, (Service, Service)> {
    // Edges whose two ends are active, in both directions (a neighbourhood ignores direction).
    let live = edges
        .distinct()
        .semijoin(active.clone())
        .map(|(caller, callee)| (callee, caller))
        .semijoin(active.clone())
        .flat_map(|(callee, caller)| [(caller.clone(), callee.clone()), (callee, caller)]);
    let nodes = active.map(|s| (s.clone(), s));
    nodes.clone().iterate(|inner, labels| {
        let live = live.enter(inner);
        let nodes = nodes.enter(inner);
        labels
            .join_map(live, |_service, label, neighbour| {
                (neighbour.clone(), label.clone())
            })
            .concat(nodes)
            .reduce(|_service, labels, out| out.push((labels[0].0.clone(), 1)))
    })
}
