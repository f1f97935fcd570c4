//! Scenarios: a topology, faults injected at root services that travel up to their callers with
//! a lag and attenuation, deploys, and the metric series every service emits, as plain seeded
//! iterators. The same seed and options give the same records, byte for byte.

use std::fmt::Write as _;

use incidentflow_dataflows::time::{format_rfc3339, Time};
use serde::Serialize;

use crate::rng::Rng;
use crate::topology::{Tier, Topology};

/// 2026-11-23T00:00:00Z, a Monday: scenarios start at midnight so that seasonality lines up.
pub const DEFAULT_START: Time = 1_795_392_000_000;

/// The metrics every service emits.
pub const METRICS: [&str; 7] = [
    "latency_p50",
    "latency_p99",
    "error_rate",
    "request_rate",
    "requests_total",
    "cpu",
    "memory",
];

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
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
}

const KINDS: [FaultKind; 5] = [
    FaultKind::LatencySpike,
    FaultKind::ErrorBurst,
    FaultKind::CpuSaturation,
    FaultKind::MemoryLeak,
    FaultKind::TrafficDrop,
];

/// A service a fault reached.
#[derive(Clone, Debug, Serialize)]
pub struct Affected {
    /// Service name.
    pub service: String,
    /// Calls between it and the root (0 for the root).
    pub hops: u8,
    /// When the fault reached it.
    pub start: String,
    /// Strength relative to the root (1 at the root).
    pub intensity: f64,
}

/// One injected fault, as written to the ground-truth file.
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    /// Stable id.
    pub fault_id: String,
    /// What went wrong.
    #[serde(rename = "type")]
    pub kind: FaultKind,
    /// Where it started.
    pub root_service: String,
    /// The root's namespace.
    pub namespace: String,
    /// Every service it reached, the root first.
    pub affected_services: Vec<String>,
    /// The same with hops, onset and strength.
    pub affected: Vec<Affected>,
    /// Onset at the root.
    pub start: String,
    /// End (at the root; callers recover one lag later each).
    pub end: String,
    /// Whether a deploy of the root preceded it.
    pub deploy_before: bool,
    #[serde(skip)]
    root: usize,
    #[serde(skip)]
    start_ms: Time,
    #[serde(skip)]
    end_ms: Time,
    #[serde(skip)]
    reach: Vec<(usize, u8, f64)>,
}

/// The knobs of a scenario.
#[derive(Clone, Debug)]
pub struct ScenarioConfig {
    /// Seed.
    pub seed: u64,
    /// Number of services at the start.
    pub services: usize,
    /// Number of namespaces.
    pub namespaces: usize,
    /// First sample time.
    pub start: Time,
    /// Length of the scenario.
    pub duration: Time,
    /// Time between samples of a series.
    pub interval: Time,
    /// Number of faults.
    pub faults: usize,
}

impl ScenarioConfig {
    /// A named scenario: `small` (10 services, 6 h at 30 s, 4 faults: for tests), `medium`
    /// (300 services, 6 h at 60 s, 16 faults) or `large` (15,000 services = 105,000 series,
    /// 1 h at 60 s, 6 faults: for benchmarks).
    pub fn named(name: &str, seed: u64) -> Option<ScenarioConfig> {
        let base = ScenarioConfig {
            seed,
            services: 10,
            namespaces: 2,
            start: DEFAULT_START,
            duration: 6 * 3_600_000,
            interval: 30_000,
            faults: 4,
        };
        Some(match name {
            "small" => base,
            "medium" => ScenarioConfig {
                services: 300,
                namespaces: 5,
                interval: 60_000,
                faults: 16,
                ..base
            },
            "large" => ScenarioConfig {
                services: 15_000,
                namespaces: 5,
                duration: 60 * 60_000,
                interval: 60_000,
                faults: 6,
                ..base
            },
            _ => return None,
        })
    }
}

/// A generated scenario: its topology, faults and deploys; samples come from [`Scenario::samples`].
pub struct Scenario {
    /// The settings it was made from.
    pub config: ScenarioConfig,
    /// Services and edges.
    pub topology: Topology,
    /// Injected faults, by start.
    pub faults: Vec<Fault>,
    /// Deploys (time, service index, version), by time.
    pub deploys: Vec<(Time, usize, String)>,
}

impl Scenario {
    /// Builds the scenario for `config`.
    pub fn new(config: ScenarioConfig) -> Scenario {
        let mut rng = Rng::new(config.seed, 0);
        let topology = Topology::generate(
            &mut rng,
            config.services,
            config.namespaces,
            config.start,
            config.duration,
        );
        let roots: Vec<usize> = (0..topology.services.len())
            .filter(|&i| {
                topology.services[i].depth >= 2 && topology.services[i].added_at == config.start
            })
            .collect();
        let mut faults: Vec<Fault> = Vec::new();
        let mut deploys: Vec<(Time, usize, String)> = Vec::new();
        let lag = config.interval;
        for k in 0..config.faults {
            let kind = KINDS[k % KINDS.len()];
            // Faults start once baselines exist (after a fifth of the run and at least 25
            // samples of every series: the job scores a series from its 20th sample) and before
            // the last quarter; every second one overlaps the previous in time, somewhere else in
            // the graph.
            let span = config.duration * 3 / 4;
            let warm_up = (config.duration / 5).max(config.interval * 25);
            let mut start_ms =
                config.start + warm_up + rng.below(span.saturating_sub(warm_up).max(1));
            if k % 2 == 1 {
                if let Some(prev) = faults.last() {
                    start_ms = prev.start_ms + (prev.end_ms - prev.start_ms) / 2;
                }
            }
            start_ms = start_ms / config.interval * config.interval;
            let length = match kind {
                FaultKind::MemoryLeak => (config.duration / 4).max(config.interval * 10),
                _ => config.interval * (6 + rng.below(10)),
            };
            let end_ms = (start_ms + length).min(config.start + config.duration - config.interval);
            let busy: Vec<usize> = faults
                .iter()
                .filter(|f| f.end_ms > start_ms && f.start_ms < end_ms)
                .flat_map(|f| f.reach.iter().map(|r| r.0))
                .collect();
            let candidates: Vec<usize> = roots
                .iter()
                .copied()
                .filter(|r| !busy.contains(r))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let root = candidates[rng.below(candidates.len() as u64) as usize];
            let reach: Vec<(usize, u8, f64)> = topology
                .upstream(root, start_ms, 3)
                .into_iter()
                .filter(|(s, _)| !busy.contains(s))
                .map(|(s, hops)| (s, hops, 0.6f64.powi(hops as i32)))
                .collect();
            let deploy_before = k % 2 == 0;
            if deploy_before {
                deploys.push((
                    start_ms - config.interval * (2 + rng.below(4)),
                    root,
                    format!("v{}.{}.{}", 1 + k / 10, k % 10, rng.below(20)),
                ));
            }
            let svc = |i: usize| topology.services[i].name.clone();
            faults.push(Fault {
                fault_id: format!("fault-{:03}", k + 1),
                kind,
                root_service: svc(root),
                namespace: topology.services[root].namespace.clone(),
                affected_services: reach.iter().map(|r| svc(r.0)).collect(),
                affected: reach
                    .iter()
                    .map(|&(s, hops, intensity)| Affected {
                        service: svc(s),
                        hops,
                        start: format_rfc3339(start_ms + hops as u64 * lag),
                        intensity,
                    })
                    .collect(),
                start: format_rfc3339(start_ms),
                end: format_rfc3339(end_ms),
                deploy_before,
                root,
                start_ms,
                end_ms,
                reach,
            });
        }
        // Deploys that precede nothing: the everyday noise a correlator must not blame.
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
        deploys.sort();
        faults.sort_by_key(|f| f.start_ms);
        Scenario {
            config,
            topology,
            faults,
            deploys,
        }
    }

    /// Number of steps (sample times per series).
    pub fn steps(&self) -> u64 {
        self.config.duration / self.config.interval
    }

    /// Number of series at the start.
    pub fn series(&self) -> usize {
        self.topology
            .services
            .iter()
            .filter(|s| s.added_at == self.config.start)
            .count()
            * METRICS.len()
    }

    /// The samples as JSON lines, step by step (within a step, jitter puts them slightly out of order).
    pub fn samples(&self) -> impl Iterator<Item = String> + '_ {
        let mut states: Vec<SeriesState> = (0..self.topology.services.len())
            .map(|i| SeriesState::new(self.config.seed, i))
            .collect();
        let mut jitter = Rng::new(self.config.seed, u64::MAX);
        (0..self.steps()).flat_map(move |step| {
            let t = self.config.start + step * self.config.interval;
            let mut lines = Vec::new();
            for (i, service) in self.topology.services.iter().enumerate() {
                if service.added_at > t {
                    continue;
                }
                let values = states[i].step(self, i, t);
                for (metric, value) in METRICS.iter().zip(values) {
                    if jitter.chance(0.004) {
                        continue; // a missing sample
                    }
                    let jittered = t + jitter.below(self.config.interval / 20 + 1);
                    // A counter is read when it is scraped: what it counted up to `t`, plus
                    // the requests since then (its rate is then exact over any interval).
                    let value = if metric == &"requests_total" {
                        value + (values[3] * (jittered - t) as f64 / 1000.0).round()
                    } else {
                        value
                    };
                    let mut line = String::with_capacity(200);
                    let _ = write!(
                        line,
                        r#"{{"schema_version":1,"timestamp":"{}","namespace":"{}","service":"{}","metric_name":"{metric}","value":{value:.6},"labels":{{"tier":"{}"}}}}"#,
                        format_rfc3339(jittered),
                        service.namespace,
                        service.name,
                        service.tier.name()
                    );
                    lines.push(line);
                }
            }
            lines.into_iter()
        })
    }

    /// The topology as edge-stream JSON lines.
    pub fn edges(&self) -> impl Iterator<Item = String> + '_ {
        self.topology.changes.iter().map(|c| {
            let (caller, callee) = (&self.topology.services[c.caller], &self.topology.services[c.callee]);
            format!(
                r#"{{"schema_version":1,"timestamp":"{}","caller":"{}","callee":"{}","op":"{}","namespace":"{}"}}"#,
                format_rfc3339(c.timestamp),
                caller.name,
                callee.name,
                if c.add { "add" } else { "remove" },
                caller.namespace
            )
        })
    }

    /// The deploys as JSON lines.
    pub fn deploy_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.deploys.iter().map(|(t, s, version)| {
            let service = &self.topology.services[*s];
            format!(
                r#"{{"schema_version":1,"timestamp":"{}","service":"{}","namespace":"{}","version":"{version}"}}"#,
                format_rfc3339(*t),
                service.name,
                service.namespace
            )
        })
    }

    /// The ground truth as JSON lines, one per fault.
    pub fn truth(&self) -> impl Iterator<Item = String> + '_ {
        self.faults
            .iter()
            .map(|f| serde_json::to_string(f).unwrap_or_default())
    }

    /// How strongly each fault touches service `i` at `t`: (kind, intensity, progress in [0, 1]).
    fn effects(&self, i: usize, t: Time) -> Vec<(FaultKind, f64, f64, bool)> {
        let lag = self.config.interval;
        let mut out = Vec::new();
        for f in &self.faults {
            for &(s, hops, intensity) in &f.reach {
                let (from, to) = (f.start_ms + hops as u64 * lag, f.end_ms + hops as u64 * lag);
                if s == i && t >= from && t < to {
                    out.push((
                        f.kind,
                        intensity,
                        (t - from) as f64 / (to - from).max(1) as f64,
                        f.root == i,
                    ));
                }
            }
        }
        out
    }
}

/// The evolving state of one service's series.
struct SeriesState {
    rng: Rng,
    level: f64,
    latency: f64,
    memory: f64,
    requests_total: f64,
    drift: f64,
}

impl SeriesState {
    fn new(seed: u64, service: usize) -> Self {
        let mut rng = Rng::new(seed, service as u64 + 1);
        let level = rng.range(20.0, 2000.0);
        let latency = rng.range(0.02, 0.3);
        let memory = rng.range(200.0, 4000.0) * 1e6;
        let drift = rng.range(-0.02, 0.02);
        let requests_total = rng.range(1e5, 1e8).round();
        SeriesState {
            rng,
            level,
            latency,
            memory,
            requests_total,
            drift,
        }
    }

    /// The seven metric values of service `i` at `t`, in [`METRICS`] order.
    fn step(&mut self, scenario: &Scenario, i: usize, t: Time) -> [f64; 7] {
        let hours = (t - scenario.config.start) as f64 / 3_600_000.0;
        let day = (2.0 * std::f64::consts::PI * (hours / 24.0 - 0.25)).sin(); // peak at 18:00
        let weekday = 1.0 - 0.25 * f64::from(((hours / 24.0) as u64 % 7) >= 5); // quieter weekends
        let trend = 1.0 + self.drift * hours / 24.0;
        let entry = scenario.topology.services[i].tier == Tier::Entry;
        let noise = |rng: &mut Rng, sd: f64| 1.0 + sd * rng.normal();
        let mut rate =
            self.level * (1.0 + 0.35 * day) * weekday * trend * noise(&mut self.rng, 0.03);
        let load = rate / self.level;
        let mut latency = self.latency * (0.8 + 0.2 * load) * noise(&mut self.rng, 0.04);
        let mut errors = (0.002 * noise(&mut self.rng, 0.25)).max(0.0);
        let mut cpu = (0.15 + 0.35 * load) * noise(&mut self.rng, 0.04);
        let mut memory = self.memory * noise(&mut self.rng, 0.005);
        for (kind, a, progress, at_root) in scenario.effects(i, t) {
            match kind {
                FaultKind::LatencySpike => latency *= 1.0 + 5.0 * a,
                FaultKind::ErrorBurst => {
                    errors += 0.2 * a;
                    latency *= 1.0 + 0.8 * a;
                }
                FaultKind::CpuSaturation if at_root => cpu = 0.97 + 0.02 * self.rng.unit(),
                FaultKind::CpuSaturation => latency *= 1.0 + 3.0 * a,
                FaultKind::MemoryLeak if at_root => memory *= 1.0 + 0.8 * progress,
                FaultKind::MemoryLeak => latency *= 1.0 + 2.0 * a * progress,
                FaultKind::TrafficDrop if at_root => rate *= 0.2,
                FaultKind::TrafficDrop => errors += 0.15 * a,
            }
        }
        if entry {
            cpu *= 1.1;
        }
        self.requests_total += (rate * scenario.config.interval as f64 / 1000.0).round();
        [
            latency,
            latency * 2.6 * noise(&mut self.rng, 0.05),
            errors,
            rate,
            self.requests_total,
            cpu.min(1.0),
            memory,
        ]
    }
}
