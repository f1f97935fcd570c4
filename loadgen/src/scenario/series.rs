//! The samples of a scenario: every service's seven series stepped through time (seasonality,
//! drift, noise, and what the faults touching it do), and in a realistic scenario its pods
//! (restarts, heavy tails, histogram buckets and their artefacts, quantised series), written as
//! JSON lines.

use std::fmt::Write as _;

use incidentflow_dataflows::time::{format_rfc3339, Time};

use crate::rng::Rng;
use crate::scenario::config::{Realism, METRICS};
use crate::scenario::faults::FaultKind;
use crate::scenario::Scenario;
use crate::topology::Tier;

/// The upper bounds of the latency histogram's buckets (seconds), as Prometheus clients have them
/// by default: a percentile read from a histogram of few requests lands on one of them.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Scenario {
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
