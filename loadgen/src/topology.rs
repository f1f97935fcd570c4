//! The service topology: a layered call graph like a real microservice estate (entry services,
//! two mid tiers, shared dependencies such as databases, caches and queues), spread over
//! namespaces, with a few changes over time (an edge added, an edge removed, a service added).

use incidentflow_dataflows::time::Time;

use crate::rng::Rng;

/// Where a service sits in the call graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Takes user traffic (web, gateways).
    Entry,
    /// Business services calling each other and the shared tier.
    Mid,
    /// Shared dependencies: databases, caches, queues. Call nothing.
    Shared,
}

impl Tier {
    /// The label value written with samples.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Entry => "entry",
            Tier::Mid => "mid",
            Tier::Shared => "shared",
        }
    }
}

/// A service.
#[derive(Clone, Debug)]
pub struct Service {
    /// Unique name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Tier.
    pub tier: Tier,
    /// Mid tier depth (0 for entry, 1 or 2 for mid, 3 for shared).
    pub depth: u8,
    /// When it starts to exist.
    pub added_at: Time,
}

/// An edge added or removed at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeChange {
    /// When.
    pub timestamp: Time,
    /// Calling service (index).
    pub caller: usize,
    /// Called service (index).
    pub callee: usize,
    /// Added (true) or removed.
    pub add: bool,
}

/// Services and the history of their edges.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Every service that ever exists.
    pub services: Vec<Service>,
    /// Edge changes in time order; the initial edges are at the scenario start.
    pub changes: Vec<EdgeChange>,
}

const ENTRY: &[&str] = &["web", "mobile-bff", "gateway", "partner-api", "admin-ui"];
const MID: &[&str] = &[
    "checkout",
    "cart",
    "payment-api",
    "catalog",
    "search",
    "inventory",
    "shipping",
    "pricing",
    "recommendation",
    "user",
    "auth",
    "notification",
    "orders",
    "billing",
    "reviews",
    "ads",
];
const SHARED: &[&str] = &[
    "payments-db",
    "orders-db",
    "user-db",
    "redis-cache",
    "session-cache",
    "kafka-queue",
    "search-index",
    "blob-store",
];
const NAMESPACES: &[&str] = &["shop", "payments", "identity", "platform", "media"];

fn name(list: &[&str], k: usize) -> String {
    let base = list[k % list.len()];
    match k / list.len() {
        0 => base.to_string(),
        n => format!("{base}-{n}"),
    }
}

impl Topology {
    /// A topology of `n` services (at least 4) over `namespaces` namespaces, starting at
    /// `start`, with changes spread over `duration`.
    pub fn generate(
        rng: &mut Rng,
        n: usize,
        namespaces: usize,
        start: Time,
        duration: Time,
    ) -> Topology {
        let namespaces = namespaces.clamp(1, NAMESPACES.len() * 4);
        let mut services = tiered_services(n, namespaces, start);
        let layers = Layers::of(&services);
        let mut edges = initial_edges(rng, &services, &layers);
        let mut changes: Vec<EdgeChange> = edges
            .iter()
            .map(|&(caller, callee)| EdgeChange {
                timestamp: start,
                caller,
                callee,
                add: true,
            })
            .collect();
        // Changes over time: one edge added, one removed, one service added.
        if !layers.shared.is_empty() && !layers.upper_mid.is_empty() {
            changes.extend(rewire(rng, &mut edges, &layers, start, duration));
            let at = start + duration * 2 / 3;
            changes.extend(add_service(&mut services, &layers, namespaces, at));
        }
        changes.sort_by_key(|c| c.timestamp);
        Topology { services, changes }
    }

    /// The edges valid at `time`.
    pub fn edges_at(&self, time: Time) -> Vec<(usize, usize)> {
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for c in self.changes.iter().take_while(|c| c.timestamp <= time) {
            if c.add {
                edges.push((c.caller, c.callee));
            } else {
                edges.retain(|&e| e != (c.caller, c.callee));
            }
        }
        edges
    }

    /// Every service calling `service` directly or through others at `time`, with its distance.
    pub fn upstream(&self, service: usize, time: Time, max_hops: u8) -> Vec<(usize, u8)> {
        let edges = self.edges_at(time);
        let mut found: Vec<(usize, u8)> = vec![(service, 0)];
        let mut frontier = vec![service];
        for hop in 1..=max_hops {
            let mut next = Vec::new();
            for &s in &frontier {
                for &(caller, callee) in &edges {
                    if callee == s && !found.iter().any(|f| f.0 == caller) {
                        found.push((caller, hop));
                        next.push(caller);
                    }
                }
            }
            frontier = next;
        }
        found
    }
}

/// The name of namespace `k` of `namespaces`.
fn namespace(k: usize, namespaces: usize) -> String {
    name(NAMESPACES, k % namespaces)
}

/// `n` services (at least 4), all there from `start`: a tenth of them entry services, a quarter
/// shared ones, the rest the two mid tiers (the first half called by the entries).
fn tiered_services(n: usize, namespaces: usize, start: Time) -> Vec<Service> {
    let n = n.max(4);
    let entries = (n / 10).clamp(1, n / 3);
    let shared = (n / 4).clamp(1, n / 3);
    let mids = n - entries - shared;
    let mut services = Vec::with_capacity(n + 1);
    for k in 0..entries {
        services.push(Service {
            name: name(ENTRY, k),
            namespace: namespace(k, namespaces),
            tier: Tier::Entry,
            depth: 0,
            added_at: start,
        });
    }
    for k in 0..mids {
        let depth = if k < mids.div_ceil(2) { 1 } else { 2 };
        services.push(Service {
            name: name(MID, k),
            namespace: namespace(k, namespaces),
            tier: Tier::Mid,
            depth,
            added_at: start,
        });
    }
    for k in 0..shared {
        services.push(Service {
            name: name(SHARED, k),
            namespace: namespace(k, namespaces),
            tier: Tier::Shared,
            depth: 3,
            added_at: start,
        });
    }
    services
}

/// The services below the entries, by depth (indices in order).
struct Layers {
    /// Depth 1: the mid tier the entry services call.
    upper_mid: Vec<usize>,
    /// Depth 2: the mid tier below it.
    lower_mid: Vec<usize>,
    /// Depth 3: the shared dependencies.
    shared: Vec<usize>,
}

impl Layers {
    fn of(services: &[Service]) -> Layers {
        let by_depth = |d: u8| -> Vec<usize> {
            (0..services.len())
                .filter(|&i| services[i].depth == d)
                .collect()
        };
        Layers {
            upper_mid: by_depth(1),
            lower_mid: by_depth(2),
            shared: by_depth(3),
        }
    }
}

/// The edges at the start, sorted: each service calls a few of the layer below (an upper mid
/// service also some shared ones), and a service nobody calls gets a caller from above.
fn initial_edges(rng: &mut Rng, services: &[Service], layers: &Layers) -> Vec<(usize, usize)> {
    let Layers {
        upper_mid,
        lower_mid,
        shared,
    } = layers;
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (i, service) in services.iter().enumerate() {
        match service.depth {
            0 => {
                let count = 2 + rng.below(2);
                call_some(rng, i, upper_mid, count, &mut edges)
            }
            1 => {
                let next: &[usize] = if lower_mid.is_empty() {
                    shared
                } else {
                    lower_mid
                };
                let (a, b) = (1 + rng.below(2), rng.below(2));
                call_some(rng, i, next, a, &mut edges);
                call_some(rng, i, shared, b, &mut edges);
            }
            2 => {
                let count = 1 + rng.below(2);
                call_some(rng, i, shared, count, &mut edges)
            }
            _ => {}
        }
    }
    // Every service is called by someone or calls something, so none is an island.
    let below_entries = upper_mid
        .iter()
        .chain(lower_mid.iter())
        .chain(shared.iter());
    for (k, &i) in below_entries.enumerate() {
        if !edges.iter().any(|e| e.1 == i) {
            let callers: Vec<usize> = (0..services.len())
                .filter(|&c| services[c].depth < services[i].depth)
                .collect();
            edges.push((callers[k % callers.len()], i));
        }
    }
    edges.sort();
    edges
}

/// Adds up to `count` edges from `from` to services drawn from `pool` (a draw already called is
/// not added twice).
fn call_some(
    rng: &mut Rng,
    from: usize,
    pool: &[usize],
    count: u64,
    edges: &mut Vec<(usize, usize)>,
) {
    for _ in 0..count {
        if pool.is_empty() {
            return;
        }
        let to = pool[rng.below(pool.len() as u64) as usize];
        if !edges.contains(&(from, to)) {
            edges.push((from, to));
        }
    }
}

/// An upper mid service starts calling a shared one at a third of the run (unless it already
/// does), and at half the run one caller with several callees drops one of them.
fn rewire(
    rng: &mut Rng,
    edges: &mut Vec<(usize, usize)>,
    layers: &Layers,
    start: Time,
    duration: Time,
) -> Vec<EdgeChange> {
    let mut changes = Vec::new();
    let at = start + duration / 3;
    let caller = layers.upper_mid[rng.below(layers.upper_mid.len() as u64) as usize];
    let callee = layers.shared[rng.below(layers.shared.len() as u64) as usize];
    if !edges.contains(&(caller, callee)) {
        changes.push(EdgeChange {
            timestamp: at,
            caller,
            callee,
            add: true,
        });
        edges.push((caller, callee));
    }
    let removable: Vec<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|&(c, _)| edges.iter().filter(|e| e.0 == c).count() > 1)
        .collect();
    if !removable.is_empty() {
        let (caller, callee) = removable[rng.below(removable.len() as u64) as usize];
        changes.push(EdgeChange {
            timestamp: start + duration / 2,
            caller,
            callee,
            add: false,
        });
    }
    changes
}

/// A new upper mid service appears at `at`, called by the first service and calling the first
/// shared one.
fn add_service(
    services: &mut Vec<Service>,
    layers: &Layers,
    namespaces: usize,
    at: Time,
) -> [EdgeChange; 2] {
    let new = services.len();
    services.push(Service {
        name: name(MID, new + MID.len() * 8),
        namespace: namespace(new, namespaces),
        tier: Tier::Mid,
        depth: 1,
        added_at: at,
    });
    [
        EdgeChange {
            timestamp: at,
            caller: 0,
            callee: new,
            add: true,
        },
        EdgeChange {
            timestamp: at,
            caller: new,
            callee: layers.shared[0],
            add: true,
        },
    ]
}
