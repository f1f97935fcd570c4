//! What a scenario is made from: its knobs ([`ScenarioConfig`], the named scenarios), how much it
//! looks like production ([`Realism`]), and the fixed start and metric names every scenario
//! shares. Plain data, read by the fault injection and the series.

use incidentflow_dataflows::time::Time;

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
