//! The faults a scenario injects: their kinds, where and when each starts (a root service that no
//! other fault is touching then), how far it travels up the callers with its attenuation, its
//! ground-truth record, and the deploys around them (one before every second textbook fault, and
//! the everyday ones that precede nothing).
//!
//! Every draw from the scenario's random numbers happens here in a fixed order: the same seed
//! gives the same faults and deploys.

use incidentflow_dataflows::time::{format_rfc3339, Time};
use incidentflow_dataflows::truth::{AffectedService, TruthFault};

use crate::rng::Rng;
use crate::scenario::config::ScenarioConfig;
use crate::topology::Topology;

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Latency multiplies.
    LatencySpike,
    /// Errors jump.
    ErrorBurst,
    /// CPU pinned near 100%.
    CpuSaturation,
    /// Memory climbs slowly for the whole fault (a collective anomaly).
    MemoryLeak,
    /// Requests fall away.
    TrafficDrop,
    /// A code path that returns an error: a few more errors at the root and nothing else, a
    /// fault that barely shows in metrics.
    ErrorPath,
}

impl FaultKind {
    /// Its name in the ground truth.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::LatencySpike => "latency_spike",
            FaultKind::ErrorBurst => "error_burst",
            FaultKind::CpuSaturation => "cpu_saturation",
            FaultKind::MemoryLeak => "memory_leak",
            FaultKind::TrafficDrop => "traffic_drop",
            FaultKind::ErrorPath => "error_path",
        }
    }
}

const KINDS: [FaultKind; 5] = [
    FaultKind::LatencySpike,
    FaultKind::ErrorBurst,
    FaultKind::CpuSaturation,
    FaultKind::MemoryLeak,
    FaultKind::TrafficDrop,
];

/// The faults of a realistic train: short ones, a third of them barely showing.
const TRAIN_KINDS: [FaultKind; 6] = [
    FaultKind::CpuSaturation,
    FaultKind::ErrorPath,
    FaultKind::LatencySpike,
    FaultKind::ErrorBurst,
    FaultKind::ErrorPath,
    FaultKind::TrafficDrop,
];

/// One injected fault: its ground-truth record and what the generator needs of it.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The record written to the ground-truth file.
    pub truth: TruthFault,
    pub(crate) kind: FaultKind,
    pub(crate) root: usize,
    pub(crate) start_ms: Time,
    pub(crate) end_ms: Time,
    /// The services it reaches: (service, hops from the root, intensity).
    pub(crate) reach: Vec<(usize, u8, f64)>,
}

/// A deploy: (time, service index, version).
type Deploy = (Time, usize, String);

/// Places `config.faults` faults on `topology` (a fault that finds no free root is skipped), in
/// the order they are drawn, with the deploys that precede them.
pub(crate) fn inject_faults(
    config: &ScenarioConfig,
    topology: &Topology,
    rng: &mut Rng,
) -> (Vec<Fault>, Vec<Deploy>) {
    let roots = root_candidates(topology, config.start);
    let mut faults: Vec<Fault> = Vec::new();
    let mut deploys: Vec<Deploy> = Vec::new();
    let train = config.realism.fault_spacing;
    for k in 0..config.faults {
        let kind = if train > 0 {
            TRAIN_KINDS[k % TRAIN_KINDS.len()]
        } else {
            KINDS[k % KINDS.len()]
        };
        let (start_ms, end_ms) = fault_window(config, k, kind, faults.last(), rng);
        let busy = busy_services(&faults, start_ms, end_ms);
        let candidates: Vec<usize> = roots
            .iter()
            .copied()
            .filter(|r| !busy.contains(r))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let root = candidates[rng.below(candidates.len() as u64) as usize];
        let reach = fault_reach(topology, root, start_ms, kind, &busy);
        let deploy_before = k % 2 == 0 && train == 0;
        if deploy_before {
            deploys.push(deploy_before_fault(config, k, root, start_ms, rng));
        }
        // Its ground-truth record is written from the placed fault.
        let mut fault = Fault {
            truth: TruthFault::default(),
            kind,
            root,
            start_ms,
            end_ms,
            reach,
        };
        fault.truth = fault.truth_record(k, topology, config.interval, deploy_before);
        faults.push(fault);
    }
    (faults, deploys)
}

/// The services a fault may start at: the deepest mid tier and the shared tier, present from the
/// start.
fn root_candidates(topology: &Topology, start: Time) -> Vec<usize> {
    (0..topology.services.len())
        .filter(|&i| topology.services[i].depth >= 2 && topology.services[i].added_at == start)
        .collect()
}

/// When fault `k` runs: [start, end), on the sample grid.
///
/// Faults start once baselines exist (after a fifth of the run and at least 25 samples of every
/// series: the job scores a series from its 20th sample) and before the last quarter; every
/// second one overlaps the `previous` in time, somewhere else in the graph. A train instead: one
/// every `fault_spacing`, give or take an interval, each three intervals long, as fault-injection
/// experiments run.
fn fault_window(
    config: &ScenarioConfig,
    k: usize,
    kind: FaultKind,
    previous: Option<&Fault>,
    rng: &mut Rng,
) -> (Time, Time) {
    let train = config.realism.fault_spacing;
    let span = config.duration * 3 / 4;
    let warm_up = (config.duration / 5).max(config.interval * 25);
    let mut start_ms = if train > 0 {
        let jitter = rng.below(3) * config.interval;
        config.start + warm_up + k as u64 * train + jitter
    } else {
        config.start + warm_up + rng.below(span.saturating_sub(warm_up).max(1))
    };
    if k % 2 == 1 && train == 0 {
        if let Some(prev) = previous {
            start_ms = prev.start_ms + (prev.end_ms - prev.start_ms) / 2;
        }
    }
    start_ms = start_ms / config.interval * config.interval;
    let length = match kind {
        _ if train > 0 => config.interval * 3,
        FaultKind::MemoryLeak => (config.duration / 4).max(config.interval * 10),
        _ => config.interval * (6 + rng.below(10)),
    };
    let end_ms = (start_ms + length).min(config.start + config.duration - config.interval);
    (start_ms, end_ms)
}

/// The services that faults overlapping [start, end) already reach: a new fault leaves them be.
fn busy_services(faults: &[Fault], start_ms: Time, end_ms: Time) -> Vec<usize> {
    faults
        .iter()
        .filter(|f| f.end_ms > start_ms && f.start_ms < end_ms)
        .flat_map(|f| f.reach.iter().map(|r| r.0))
        .collect()
}

/// The services a fault at `root` reaches: its callers up to three hops away that are not
/// `busy`, each with its hops and an intensity that falls by 0.6 a hop.
fn fault_reach(
    topology: &Topology,
    root: usize,
    start_ms: Time,
    kind: FaultKind,
    busy: &[usize],
) -> Vec<(usize, u8, f64)> {
    topology
        .upstream(root, start_ms, 3)
        .into_iter()
        .filter(|(s, _)| !busy.contains(s))
        // A code path returning an error shows at the root alone, if at all.
        .filter(|(_, hops)| kind != FaultKind::ErrorPath || *hops == 0)
        .map(|(s, hops)| (s, hops, 0.6f64.powi(hops as i32)))
        .collect()
}

/// The deploy at `root` a few intervals before fault `k` starts, the suspect a correlator should
/// find.
fn deploy_before_fault(
    config: &ScenarioConfig,
    k: usize,
    root: usize,
    start_ms: Time,
    rng: &mut Rng,
) -> Deploy {
    (
        start_ms - config.interval * (2 + rng.below(4)),
        root,
        format!("v{}.{}.{}", 1 + k / 10, k % 10, rng.below(20)),
    )
}

impl Fault {
    /// The ground-truth record of this fault, the `k`th drawn (`lag`: the delay a hop adds).
    fn truth_record(
        &self,
        k: usize,
        topology: &Topology,
        lag: Time,
        deploy_before: bool,
    ) -> TruthFault {
        let svc = |i: usize| topology.services[i].name.clone();
        TruthFault {
            fault_id: format!("fault-{:03}", k + 1),
            kind: self.kind.name().to_string(),
            root_service: svc(self.root),
            namespace: topology.services[self.root].namespace.clone(),
            affected_services: self.reach.iter().map(|r| svc(r.0)).collect(),
            affected: self
                .reach
                .iter()
                .map(|&(s, hops, intensity)| AffectedService {
                    service: svc(s),
                    hops,
                    start: format_rfc3339(self.start_ms + hops as u64 * lag),
                    intensity,
                })
                .collect(),
            start: format_rfc3339(self.start_ms),
            end: format_rfc3339(self.end_ms),
            deploy_before,
        }
    }
}

/// Deploys that precede nothing: the everyday noise a correlator must not blame.
pub(crate) fn everyday_deploys(
    config: &ScenarioConfig,
    topology: &Topology,
    rng: &mut Rng,
) -> Vec<Deploy> {
    let mut deploys = Vec::new();
    for _ in 0..(config.faults + topology.services.len() / 50) {
        let at = config.start + rng.below(config.duration);
        let s = rng.below(topology.services.len() as u64) as usize;
        if topology.services[s].added_at <= at {
            deploys.push((
                at / 1000 * 1000,
                s,
                format!("v0.{}.{}", rng.below(9), rng.below(20)),
            ));
        }
    }
    deploys
}
