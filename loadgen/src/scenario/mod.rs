//! Scenarios: a topology, faults injected at root services that travel up to their callers with
//! a lag and attenuation, deploys, and the metric series every service emits, as plain seeded
//! iterators. The same seed and options give the same records, byte for byte.
//!
//! | file | what it holds |
//! |---|---|
//! | this one | [`Scenario`]: built from its config, and its topology, deploys and truth as lines |
//! | `config` | the knobs: [`ScenarioConfig`] and the named scenarios, [`Realism`], [`METRICS`] |
//! | `faults` | [`Fault`]s placed on the topology, their truth, and the deploys around them |
//! | `series` | the samples: each service's series step by step, its pods, faults' effects |

mod config;
mod faults;
mod series;

use incidentflow_dataflows::time::{format_rfc3339, Time};

use crate::rng::Rng;
pub use crate::scenario::config::{Realism, ScenarioConfig, DEFAULT_START, METRICS};
pub use crate::scenario::faults::{Fault, FaultKind};
use crate::topology::Topology;

/// How often [`Scenario::spans`] has each edge called.
pub const CALL_EVERY: Time = 60_000;

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
        let (mut faults, mut deploys) = faults::inject_faults(&config, &topology, &mut rng);
        deploys.extend(faults::everyday_deploys(&config, &topology, &mut rng));
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

    /// About how many calls [`Scenario::spans`] holds (edge changes times the calls of a run).
    pub fn calls(&self) -> u64 {
        self.topology.changes.len() as u64 * self.config.duration / CALL_EVERY
    }

    /// One call along every edge of the call graph each [`CALL_EVERY`] while the edge exists
    /// (from its add, on the minute, to before its removal), as OTLP JSON lines: the caller's
    /// client span and the callee's server span, its child. What the OpenTelemetry Collector's
    /// file exporter writes; `incidentflow run --spans` derives the topology from it.
    pub fn spans(&self) -> impl Iterator<Item = String> + '_ {
        let end = self.config.start + self.config.duration;
        let mut open: std::collections::BTreeMap<(usize, usize), Time> = Default::default();
        let mut intervals: Vec<(usize, usize, Time, Time)> = Vec::new();
        for c in &self.topology.changes {
            if c.add {
                open.entry((c.caller, c.callee)).or_insert(c.timestamp);
            } else if let Some(from) = open.remove(&(c.caller, c.callee)) {
                intervals.push((c.caller, c.callee, from, c.timestamp));
            }
        }
        intervals.extend(open.into_iter().map(|((a, b), from)| (a, b, from, end)));
        let mut calls: Vec<(Time, usize, usize)> = intervals
            .into_iter()
            .flat_map(|(a, b, from, until)| {
                (0..)
                    .map(move |k| from + k * CALL_EVERY)
                    .take_while(move |t| *t < until)
                    .map(move |t| (t, a, b))
            })
            .collect();
        calls.sort_unstable();
        calls.into_iter().enumerate().map(move |(n, (t, a, b))| {
            let (caller, callee) = (&self.topology.services[a], &self.topology.services[b]);
            let span = |service: &str, id: &str, parent: &str, kind: u8| {
                format!(
                    r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{n:032x}","spanId":"{id}","parentSpanId":"{parent}","name":"call","kind":{kind},"startTimeUnixNano":"{}","endTimeUnixNano":"{}"}}]}}]}}"#,
                    t * 1_000_000,
                    (t + 5) * 1_000_000
                )
            };
            format!(
                r#"{{"resourceSpans":[{},{}]}}"#,
                span(&caller.name, "0000000000000001", "", 3),
                span(&callee.name, "0000000000000002", "0000000000000001", 2)
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
}
