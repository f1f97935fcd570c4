//! Neighbourhoods: the connected groups of anomalous services, joined with the topology in time.
//!
//! * A service is **active** for `window_ms` after each of its anomalies: the anomaly is inserted
//!   at its time and retracted at time + window (DESIGN's "insert at t, retract at t + W"), a
//!   differential `distinct` sharded by service.
//! * The topology is a collection of `(caller, callee)` edges that changes over time (`op` add /
//!   remove, each at its own time), so a late edge changes the neighbourhoods at its own time.
//! * A neighbourhood is a connected component of the active services over the edges whose both
//!   ends are active. Its label is its least service name, and a service with no active
//!   neighbour is a neighbourhood of its own.
//!
//! The components are kept incrementally by [`Components`], one completed time at a time, on
//! worker 0 (the incident tracker that reads them lives there too): a service or an edge that
//! joins merges the groups it touches (the group with the lesser label takes the other's
//! members); one that leaves is followed by a search from each of its neighbours at once, which
//! stops as soon as they have all met (nothing split) or one has run out (a split, and then only
//! that group is walked again), so a leaf leaving a group of thousands costs next to nothing.
//! The first version used differential's `iterate` (min-label propagation), which is the textbook
//! way, but every anomaly at its own millisecond was a round of the loop over a giant component:
//! on the large scenario with 27,000 anomalies it ran for minutes and took over 10 GB. This one
//! does the same job in a fraction of a second, and `tests/neighbourhood.rs` checks it against a
//! brute-force union-find at every time.
//!
//! Services are identified by name (namespaces are descriptive here, as in the edge stream).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concatenate};

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
/// active services and the topology's `(caller, callee)` edges. Runs [`Components`] on worker 0.
///
/// With `silent_intermediates`, two active services that both have an edge to the same service
/// with no anomaly (one silent hop, not a chain of them) are in the same neighbourhood too.
pub fn neighbourhoods<'s>(
    active: VecCollection<'s, Time, Service>,
    edges: VecCollection<'s, Time, (Service, Service)>,
    silent_intermediates: bool,
) -> VecCollection<'s, Time, (Service, Service)> {
    let scope = active.inner.scope();
    let streams = vec![
        active.inner.map(|(s, t, r)| (Change::Active(s), t, r)),
        edges.inner.map(|((a, b), t, r)| (Change::Edge(a, b), t, r)),
    ];
    type Out = Vec<((Service, Service), Time, isize)>;
    scope
        .concatenate(streams)
        .unary_frontier::<CapacityContainerBuilder<Out>, _, _, _>(
            Exchange::new(|_: &(Change, Time, isize)| 0u64),
            "Neighbourhoods",
            |_capability, _info| {
                let mut components = Components::new(silent_intermediates);
                let mut pending: BTreeMap<Time, Pending> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        let Some(cap) = capability.retain_least(0) else {
                            return;
                        };
                        for (change, time, diff) in data.drain(..) {
                            pending
                                .entry(time)
                                .or_insert_with(|| (cap.delayed(&time), Vec::new()))
                                .1
                                .push((change, diff));
                        }
                    });
                    let frontier = frontier.frontier();
                    while let Some(entry) = pending.first_entry() {
                        if frontier.first().is_some_and(|f| f <= entry.key()) {
                            break; // not complete yet
                        }
                        let (time, (cap, changes)) = entry.remove_entry();
                        let (mut active, mut edges) = (Vec::new(), Vec::new());
                        for (change, diff) in changes {
                            match change {
                                Change::Active(s) => active.push((s, diff)),
                                Change::Edge(a, b) => edges.push(((a, b), diff)),
                            }
                        }
                        let updates = components.apply(active, edges);
                        if !updates.is_empty() {
                            let mut session = output.session(&cap);
                            for (label, diff) in updates {
                                session.give((label, time, diff));
                            }
                        }
                    }
                }
            },
        )
        .as_collection()
}

/// What waits for a time to complete: its capability and its changes.
type Pending = (Capability<Time>, Vec<(Change, isize)>);

/// One input of the neighbourhood operator.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Change {
    Active(Service),
    Edge(Service, Service),
}

/// Connected components of the active services, kept incrementally.
#[derive(Default, Debug)]
pub struct Components {
    /// Whether one service with no anomaly may link two active ones.
    silent_intermediates: bool,
    /// Undirected adjacency with the net count of each edge (present when above zero).
    neighbours: HashMap<Service, HashMap<Service, i64>>,
    active: HashSet<Service>,
    label: HashMap<Service, Service>,
    /// The members of each component, by label.
    members: HashMap<Service, BTreeSet<Service>>,
}

impl Components {
    /// Components over direct edges, or also over one silent service when `silent_intermediates`.
    pub fn new(silent_intermediates: bool) -> Self {
        Components {
            silent_intermediates,
            ..Default::default()
        }
    }

    /// Applies what changed at one time (active services and edges, as differences) and returns
    /// the label updates `((service, label), diff)`, retractions first.
    pub fn apply(
        &mut self,
        mut active: Vec<(Service, isize)>,
        mut edges: Vec<((Service, Service), isize)>,
    ) -> Vec<((Service, Service), isize)> {
        consolidate(&mut active);
        consolidate(&mut edges);
        // The label each touched service had before this time.
        let mut before: HashMap<Service, Option<Service>> = HashMap::new();
        // Components to walk again, by their label.
        let mut dirty: BTreeSet<Service> = BTreeSet::new();

        for (s, _) in active.iter().filter(|(_, d)| *d < 0) {
            if !self.active.remove(s) {
                continue;
            }
            self.note(&mut before, s);
            let Some(label) = self.label.remove(s) else {
                continue;
            };
            if let Some(group) = self.members.get_mut(&label) {
                group.remove(s);
            }
            if dirty.contains(&label) {
                continue; // walked below anyway
            }
            let neighbours = self.links(s);
            if !self.still_connected(&neighbours) {
                dirty.insert(label); // it held the group together: walk what is left
            } else if label == *s {
                self.relabel(&label, &mut before); // the group lost its least name
            }
        }
        for ((a, b), diff) in &edges {
            if a == b {
                continue;
            }
            let was = self.present(a, b);
            for (x, y) in [(a, b), (b, a)] {
                let map = self.neighbours.entry(x.clone()).or_default();
                *map.entry(y.clone()).or_default() += *diff as i64;
                if map.get(y) == Some(&0) {
                    map.remove(y);
                }
                if map.is_empty() {
                    self.neighbours.remove(x);
                }
            }
            if was == self.present(a, b) {
                continue;
            }
            // The active services whose links this edge made or broke: its active ends, and
            // with silent intermediates, the active neighbours of an end with no anomaly.
            let mut touching: Vec<Service> = Vec::new();
            for (x, y) in [(a, b), (b, a)] {
                if self.active.contains(x) {
                    touching.push(x.clone());
                } else if self.silent_intermediates && self.active.contains(y) {
                    touching.extend(self.active_neighbours(x).cloned());
                }
            }
            let mut by_label: BTreeMap<Service, Vec<Service>> = BTreeMap::new();
            for s in touching {
                if let Some(label) = self.label.get(&s) {
                    by_label.entry(label.clone()).or_default().push(s);
                }
            }
            if !was {
                // One service of each group stands for it (labels change as groups merge).
                let stand_ins: Vec<Service> =
                    by_label.into_values().map(|s| s[0].clone()).collect();
                for other in stand_ins.iter().skip(1) {
                    if let (Some(x), Some(y)) = (
                        self.label.get(&stand_ins[0]).cloned(),
                        self.label.get(other).cloned(),
                    ) {
                        self.merge(&x, &y, &mut before, &mut dirty);
                    }
                }
            } else {
                for (label, seeds) in by_label {
                    if !dirty.contains(&label) && !self.still_connected(&seeds) {
                        dirty.insert(label);
                    }
                }
            }
        }
        for (s, _) in active.iter().filter(|(_, d)| *d > 0) {
            if !self.active.insert(s.clone()) {
                continue;
            }
            self.note(&mut before, s);
            self.label.insert(s.clone(), s.clone());
            self.members.insert(s.clone(), BTreeSet::from([s.clone()]));
            let labels: BTreeSet<Service> = self
                .links(s)
                .iter()
                .filter_map(|n| self.label.get(n).cloned())
                .collect();
            for other in labels {
                if let Some(mine) = self.label.get(s).cloned() {
                    self.merge(&mine, &other, &mut before, &mut dirty);
                }
            }
        }

        // Walk the touched components again.
        let mut todo: Vec<Service> = Vec::new();
        for label in &dirty {
            if let Some(group) = self.members.remove(label) {
                todo.extend(group);
            }
        }
        for s in &todo {
            self.note(&mut before, s);
            self.label.remove(s);
        }
        let mut seen: HashSet<Service> = HashSet::new();
        for start in todo {
            if !self.active.contains(&start) || !seen.insert(start.clone()) {
                continue;
            }
            let mut group: BTreeSet<Service> = BTreeSet::new();
            let mut stack = vec![start];
            while let Some(s) = stack.pop() {
                // A service of an untouched component reached through a new link joins too.
                if let Some(old) = self.label.remove(&s) {
                    before.entry(s.clone()).or_insert(Some(old.clone()));
                    self.members.remove(&old);
                }
                let next: Vec<Service> = self
                    .links(&s)
                    .into_iter()
                    .filter(|n| !seen.contains(n))
                    .collect();
                for n in next {
                    seen.insert(n.clone());
                    stack.push(n);
                }
                group.insert(s);
            }
            let Some(least) = group.first().cloned() else {
                continue;
            };
            for s in &group {
                self.label.insert(s.clone(), least.clone());
            }
            self.members.insert(least, group);
        }

        let mut updates: Vec<((Service, Service), isize)> = Vec::new();
        for (s, old) in before {
            let new = self.label.get(&s);
            if old.as_ref() == new {
                continue;
            }
            if let Some(old) = old {
                updates.push(((s.clone(), old), -1));
            }
            if let Some(new) = new {
                updates.push(((s, new.clone()), 1));
            }
        }
        updates.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        updates
    }

    /// Records `s`'s label before this time, once.
    fn note(&self, before: &mut HashMap<Service, Option<Service>>, s: &Service) {
        before
            .entry(s.clone())
            .or_insert_with(|| self.label.get(s).cloned());
    }

    /// Joins the groups labelled `a` and `b`: the one with the lesser label takes the other's
    /// members (a group to be walked again stays marked under its new label).
    fn merge(
        &mut self,
        a: &Service,
        b: &Service,
        before: &mut HashMap<Service, Option<Service>>,
        dirty: &mut BTreeSet<Service>,
    ) {
        if a == b {
            return;
        }
        let (keep, gone) = if a < b { (a, b) } else { (b, a) };
        let Some(moving) = self.members.remove(gone) else {
            return;
        };
        for s in &moving {
            self.note(before, s);
            self.label.insert(s.clone(), keep.clone());
        }
        self.members.entry(keep.clone()).or_default().extend(moving);
        if dirty.remove(gone) {
            dirty.insert(keep.clone());
        }
    }

    /// Whether the active services `seeds` are still connected to each other through active
    /// services. One search runs from every seed in turn, and searches that meet join: it stops
    /// when all have met, or when one runs out, which is then a whole component of its own. So
    /// finding that a leaf left costs next to nothing, and a split costs the smaller side.
    fn still_connected(&self, seeds: &[Service]) -> bool {
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let n = seeds.len();
        let mut parent: Vec<usize> = (0..n).collect();
        let mut claimed: HashMap<Service, usize> = HashMap::new();
        let mut queues: Vec<VecDeque<Service>> = vec![VecDeque::new(); n];
        let mut groups = n;
        for (i, s) in seeds.iter().enumerate() {
            if let Some(&j) = claimed.get(s) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[a] = b;
                    groups -= 1;
                }
            } else {
                claimed.insert(s.clone(), i);
                queues[i].push_back(s.clone());
            }
        }
        while groups > 1 {
            for i in 0..n {
                if root(&mut parent, i) != i {
                    continue;
                }
                let Some(s) = queues[i].pop_front() else {
                    return false; // this search saw all it can reach and met no other
                };
                for next in &self.links(&s) {
                    match claimed.get(next) {
                        None => {
                            claimed.insert(next.clone(), i);
                            queues[i].push_back(next.clone());
                        }
                        Some(&j) => {
                            let other = root(&mut parent, j);
                            if other != i {
                                parent[other] = i;
                                groups -= 1;
                                let rest = std::mem::take(&mut queues[other]);
                                queues[i].extend(rest);
                            }
                        }
                    }
                }
                if groups == 1 {
                    break;
                }
            }
        }
        true
    }

    /// Gives the group labelled `old` (which lost its least member) its new least name.
    fn relabel(&mut self, old: &Service, before: &mut HashMap<Service, Option<Service>>) {
        let Some(group) = self.members.remove(old) else {
            return;
        };
        let Some(least) = group.first().cloned() else {
            return;
        };
        for s in &group {
            self.note(before, s);
            self.label.insert(s.clone(), least.clone());
        }
        self.members.insert(least, group);
    }

    fn present(&self, a: &Service, b: &Service) -> bool {
        self.neighbours
            .get(a)
            .and_then(|m| m.get(b))
            .is_some_and(|n| *n > 0)
    }

    /// The active services `s` is linked to: those it has an edge to, and with silent
    /// intermediates, those that have an edge to a service with no anomaly that `s` has one to.
    fn links(&self, s: &Service) -> Vec<Service> {
        let mut out: Vec<Service> = self.active_neighbours(s).cloned().collect();
        if self.silent_intermediates {
            let silent = self
                .neighbours
                .get(s)
                .into_iter()
                .flatten()
                .filter(|(n, count)| **count > 0 && !self.active.contains(*n));
            for (w, _) in silent {
                out.extend(self.active_neighbours(w).filter(|x| *x != s).cloned());
            }
            out.sort();
            out.dedup();
        }
        out
    }

    /// The active services with an edge to `s`.
    fn active_neighbours<'a>(&'a self, s: &Service) -> impl Iterator<Item = &'a Service> + 'a {
        self.neighbours
            .get(s)
            .into_iter()
            .flatten()
            .filter(|(n, count)| **count > 0 && self.active.contains(*n))
            .map(|(n, _)| n)
    }
}
