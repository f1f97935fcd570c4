//! Scenarios: a topology, faults injected at root services that travel up to their callers with
//! a lag and attenuation, deploys, and the metric series every service emits, as plain seeded
//! iterators. The same seed and options give the same records, byte for byte.

use std::fmt::Write as _;

use incidentflow_dataflows::time::{format_rfc3339, Time};
use incidentflow_dataflows::truth::{AffectedService, TruthFault};

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

/// The upper bounds of the latency histogram's buckets (seconds), as Prometheus clients have them
/// by default: a percentile read from a histogram of few requests lands on one of them.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What makes a scenario look like production rather than a textbook: each on or off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Realism {
    /// Now and then a sample is an outlier many times its level (a slow request, a GC pause):
    /// noise with a heavy tail, not only Gaussian.
    pub heavy_tails: bool,
    /// Pods per service: latency, CPU and memory come per pod (label `pod`); 0 or 1: per service.
    pub pods: usize,
    /// A pod restarts about this often (ms): a new `pod` label value (a new series), memory back
    /// to its floor (a step), a burst of CPU. 0: never.
    pub restart_every: Time,
    /// Quantised and near-constant series: the p99 read from histogram buckets, errors counted
    /// in whole requests, a thread count that hardly moves.
    pub quantised: bool,
    /// Histogram artefacts: now and then the p99 of a third of the services jumps to the top
    /// bucket for one sample, all at once, with no fault behind it.
    pub artefacts: bool,
    /// Faults come as a train, one every this long (ms, give or take an interval) from the end of
    /// the warm-up through the first half of the run, each three intervals long; 0: placed at
    /// random as in the textbook scenarios.
    pub fault_spacing: Time,
}

/// One injected fault: its ground-truth record and what the generator needs of it.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The record written to the ground-truth file.
    pub truth: TruthFault,
    kind: FaultKind,
    root: usize,
    start_ms: Time,
    end_ms: Time,
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
    /// How much it looks like production (none for the textbook scenarios).
    pub realism: Realism,
}

impl ScenarioConfig {
    /// A named scenario. The textbook ones, Gaussian noise and faults that show: `small` (10
    /// services, 6 h at 30 s, 4 faults: for tests), `medium` (300 services, 6 h at 60 s, 16
    /// faults) or `large` (15,000 services = 105,000 series, 1 h at 60 s, 6 faults: for
    /// benchmarks). The realistic ones (see [`Realism`]): `ops-1m` (30 services with two pods
    /// each, 12 h at one minute, a train of 24 faults every eight minutes, a third of them
    /// barely showing, then quiet hours) and `ops-5m` (20 services, 20 days at five minutes, 30
    /// faults at random).
    pub fn named(name: &str, seed: u64) -> Option<ScenarioConfig> {
        let base = ScenarioConfig {
            seed,
            services: 10,
            namespaces: 2,
            start: DEFAULT_START,
            duration: 6 * 3_600_000,
            interval: 30_000,
            faults: 4,
            realism: Realism::default(),
        };
        let real = Realism {
            heavy_tails: true,
            pods: 2,
            restart_every: 3 * 3_600_000,
            quantised: true,
            artefacts: true,
            fault_spacing: 0,
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
            "ops-1m" => ScenarioConfig {
                services: 30,
                namespaces: 1,
                duration: 12 * 3_600_000,
                interval: 60_000,
                faults: 24,
                realism: Realism {
                    fault_spacing: 8 * 60_000,
                    ..real
                },
                ..base
            },
            "ops-5m" => ScenarioConfig {
                services: 20,
                namespaces: 1,
                duration: 20 * 86_400_000,
                interval: 300_000,
                faults: 30,
                realism: Realism {
                    pods: 1,
                    restart_every: 4 * 86_400_000,
                    ..real
                },
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
        let train = config.realism.fault_spacing;
        for k in 0..config.faults {
            let kind = if train > 0 {
                TRAIN_KINDS[k % TRAIN_KINDS.len()]
            } else {
                KINDS[k % KINDS.len()]
            };
            // Faults start once baselines exist (after a fifth of the run and at least 25
            // samples of every series: the job scores a series from its 20th sample) and before
            // the last quarter; every second one overlaps the previous in time, somewhere else in
            // the graph. A train instead: one every `fault_spacing`, give or take an interval,
            // each three intervals long, as fault-injection experiments run.
            let span = config.duration * 3 / 4;
            let warm_up = (config.duration / 5).max(config.interval * 25);
            let mut start_ms = if train > 0 {
                let jitter = rng.below(3) * config.interval;
                config.start + warm_up + k as u64 * train + jitter
            } else {
                config.start + warm_up + rng.below(span.saturating_sub(warm_up).max(1))
            };
            if k % 2 == 1 && train == 0 {
                if let Some(prev) = faults.last() {
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
                // A code path returning an error shows at the root alone, if at all.
                .filter(|(_, hops)| kind != FaultKind::ErrorPath || *hops == 0)
                .map(|(s, hops)| (s, hops, 0.6f64.powi(hops as i32)))
                .collect();
            let deploy_before = k % 2 == 0 && train == 0;
            if deploy_before {
                deploys.push((
                    start_ms - config.interval * (2 + rng.below(4)),
                    root,
                    format!("v{}.{}.{}", 1 + k / 10, k % 10, rng.below(20)),
                ));
            }
            let svc = |i: usize| topology.services[i].name.clone();
            faults.push(Fault {
                truth: TruthFault {
                    fault_id: format!("fault-{:03}", k + 1),
                    kind: kind.name().to_string(),
                    root_service: svc(root),
                    namespace: topology.services[root].namespace.clone(),
                    affected_services: reach.iter().map(|r| svc(r.0)).collect(),
                    affected: reach
                        .iter()
                        .map(|&(s, hops, intensity)| AffectedService {
                            service: svc(s),
                            hops,
                            start: format_rfc3339(start_ms + hops as u64 * lag),
                            intensity,
                        })
                        .collect(),
                    start: format_rfc3339(start_ms),
                    end: format_rfc3339(end_ms),
                    deploy_before,
                },
                kind,
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
            * self.series_per_service()
    }

    /// Series per service: the seven [`METRICS`], or in a realistic scenario three per service
    /// (a thread count more when quantised) and four per pod.
    fn series_per_service(&self) -> usize {
        let real = &self.config.realism;
        if *real == Realism::default() {
            METRICS.len()
        } else {
            3 + usize::from(real.quantised) + 4 * real.pods.max(1)
        }
    }

    /// The samples as JSON lines, step by step (within a step, jitter puts them slightly out of order).
    pub fn samples(&self) -> impl Iterator<Item = String> + '_ {
        let mut states: Vec<SeriesState> = (0..self.topology.services.len())
            .map(|i| SeriesState::new(self.config.seed, i))
            .collect();
        let real = &self.config.realism;
        let mut pods: Vec<Pods> = (0..self.topology.services.len())
            .map(|i| Pods::new(self.config.seed, i, real, self.config.start))
            .collect();
        let artefacts = self.artefacts();
        let mut jitter = Rng::new(self.config.seed, u64::MAX);
        (0..self.steps()).flat_map(move |step| {
            let t = self.config.start + step * self.config.interval;
            let artefact = artefacts.binary_search_by_key(&t, |(at, _)| *at).ok();
            let mut lines = Vec::new();
            for (i, service) in self.topology.services.iter().enumerate() {
                if service.added_at > t {
                    continue;
                }
                let values = states[i].step(self, i, t);
                let series: Vec<(&str, Option<String>, f64)> = if *real == Realism::default() {
                    METRICS
                        .iter()
                        .zip(values)
                        .map(|(m, v)| (*m, None, v))
                        .collect()
                } else {
                    let hit = artefact.is_some_and(|k| artefacts[k].1.contains(&i));
                    pods[i].series(self, &states[i], values, t, hit)
                };
                for (metric, pod, value) in series {
                    if jitter.chance(0.004) {
                        continue; // a missing sample
                    }
                    let jittered = t + jitter.below(self.config.interval / 20 + 1);
                    // A counter is read when it is scraped: what it counted up to `t`, plus
                    // the requests since then (its rate is then exact over any interval).
                    let value = if metric == "requests_total" {
                        value + (values[3] * (jittered - t) as f64 / 1000.0).round()
                    } else {
                        value
                    };
                    let pod = pod.map_or(String::new(), |p| format!(r#","pod":"{p}""#));
                    let mut line = String::with_capacity(200);
                    let _ = write!(
                        line,
                        r#"{{"schema_version":1,"timestamp":"{}","namespace":"{}","service":"{}","metric_name":"{metric}","value":{value:.6},"labels":{{"tier":"{}"{pod}}}}}"#,
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

    /// The histogram artefacts: (time, the services whose p99 jumps to the top bucket then), about
    /// every 90 minutes, a third of the services each time; none unless the scenario has them.
    fn artefacts(&self) -> Vec<(Time, Vec<usize>)> {
        if !self.config.realism.artefacts {
            return Vec::new();
        }
        let mut rng = Rng::new(self.config.seed, u64::MAX - 1);
        let (mut out, mut t) = (Vec::new(), self.config.start);
        let n = self.topology.services.len() as u64;
        loop {
            t += 60 * 60_000 + rng.below(60 * 60_000);
            t = t / self.config.interval * self.config.interval;
            if t >= self.config.start + self.config.duration {
                return out;
            }
            let hit: Vec<usize> = (0..n)
                .filter(|_| rng.chance(0.33))
                .map(|i| i as usize)
                .collect();
            out.push((t, hit));
        }
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
            .map(|f| serde_json::to_string(&f.truth).unwrap_or_default())
    }

    /// The index of the service a series state belongs to.
    fn service_index(&self, state: &SeriesState) -> usize {
        state.service
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
    service: usize,
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
            service,
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
                FaultKind::ErrorPath => errors += 0.004 * a,
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

/// The pods of one service in a realistic scenario, and what they add to its series: latency,
/// CPU and memory per pod (label `pod`), each pod restarting now and then under a new name with
/// its memory back to its floor; outliers with a heavy tail; the p99 read from histogram buckets;
/// errors counted in whole requests; a thread count that hardly moves.
struct Pods {
    rng: Rng,
    /// Per pod: (level factor, generation, when it last restarted, when it restarts next).
    pods: Vec<(f64, u32, Time, Time)>,
    threads: f64,
    threads_base: f64,
}

impl Pods {
    fn new(seed: u64, service: usize, real: &Realism, start: Time) -> Self {
        let mut rng = Rng::new(seed, (service as u64 + 1) << 32);
        let restart = |rng: &mut Rng| {
            if real.restart_every == 0 {
                Time::MAX
            } else {
                start + (rng.range(0.3, 1.7) * real.restart_every as f64) as Time
            }
        };
        let pods = (0..real.pods.max(1))
            .map(|_| {
                let factor = rng.range(0.85, 1.15);
                let next = restart(&mut rng);
                (factor, 0, start, next)
            })
            .collect();
        let threads_base = (32.0 * (1 + rng.below(8)) as f64).round();
        Pods {
            rng,
            pods,
            threads: threads_base,
            threads_base,
        }
    }

    /// The series of service `i` at `t` from its service-level `values` (in [`METRICS`] order):
    /// (metric, pod, value). `artefact`: the p99 jumps to the top bucket at this sample.
    fn series(
        &mut self,
        scenario: &Scenario,
        state: &SeriesState,
        values: [f64; 7],
        t: Time,
        artefact: bool,
    ) -> Vec<(&'static str, Option<String>, f64)> {
        let real = &scenario.config.realism;
        let name = &scenario.topology.services[scenario.service_index(state)].name;
        let interval_s = scenario.config.interval as f64 / 1000.0;
        let requests = (values[3] * interval_s).max(1.0);
        let errors = if real.quantised {
            (values[2] * requests).round() / requests
        } else {
            values[2]
        };
        let mut out: Vec<(&'static str, Option<String>, f64)> = vec![
            ("error_rate", None, errors),
            ("request_rate", None, values[3]),
            ("requests_total", None, values[4]),
        ];
        if real.quantised {
            if self.rng.chance(0.02) {
                self.threads += if self.rng.chance(0.5) { 1.0 } else { -1.0 };
            } else if self.rng.chance(0.2) {
                self.threads = self.threads_base;
            }
            out.push(("threads", None, self.threads));
        }
        let per_pod = self.pods.len() > 1;
        let memory_effect = values[6] / state.memory;
        for k in 0..self.pods.len() {
            let (factor, mut generation, mut since, mut next) = self.pods[k];
            let mut burst = 1.0;
            if t >= next {
                generation += 1;
                since = t;
                next = t + (self.rng.range(0.3, 1.7) * real.restart_every.max(1) as f64) as Time;
                burst = 2.5;
            }
            self.pods[k] = (factor, generation, since, next);
            let pod = per_pod.then(|| format!("{name}-{:x}{k}", 0xa11 + generation as u64 * 7919));
            let noise = |rng: &mut Rng| {
                let tail = if real.heavy_tails && rng.chance(0.004) {
                    1.0 + 4.0 / rng.unit().max(0.02).sqrt()
                } else {
                    1.0
                };
                (1.0 + 0.03 * rng.normal()) * tail
            };
            let p50 = values[0] * factor * noise(&mut self.rng);
            let mut p99 = values[1] * factor * noise(&mut self.rng);
            if real.quantised {
                p99 = BUCKETS
                    .iter()
                    .copied()
                    .find(|b| *b >= p99)
                    .unwrap_or(BUCKETS[BUCKETS.len() - 1]);
            }
            if artefact {
                p99 = BUCKETS[BUCKETS.len() - 1];
            }
            let cpu = (values[5] * factor * burst * noise(&mut self.rng)).min(1.0);
            // Memory grows from its floor after a restart, over about a restart interval.
            let age = t.saturating_sub(since) as f64 / real.restart_every.max(1) as f64;
            let memory = state.memory * factor * (0.6 + 0.4 * age.min(1.0)) * memory_effect;
            out.push(("latency_p50", pod.clone(), p50));
            out.push(("latency_p99", pod.clone(), p99));
            out.push(("cpu", pod.clone(), cpu));
            out.push(("memory", pod, memory));
        }
        out
    }
}
