//! The incident lifecycle as a plain state machine, fed one completed event time at a time with
//! what happened then: the champion's episode events (open, update, close), topology changes and
//! deploys. The rules are in the module above ([`crate::incident`]).
//!
//! This file holds the state (episodes, members, open incidents) and the step; the rules act in
//! `episodes` (episodes coming and going), `grouping` (joining, merging, opening on evidence),
//! `topology` (merges and splits as edges come and go) and `lifecycle` (the longest life, the
//! resolve, the versions published).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::rank::{rank, MemberView, MetricView};
use super::record::{Cause, Incident, Notes, Service, Severity, Status, Support};
use crate::records::{Anomaly, DeployEvent, Direction, EdgeChange, EpisodeStatus, SeriesId};
use crate::time::{format_duration, Time};

mod episodes;
mod grouping;
mod lifecycle;
mod topology;

/// Settings of correlation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorrelationConfig {
    /// How long an incident stays open once none of its episodes that keep it alive is open.
    pub grace_ms: u64,
    /// An episode joins an incident only if it began within this long of the incident's onset
    /// (or within two of its series' sample intervals, when that is longer); two incidents
    /// merge only if their onsets are this close.
    pub merge_window_ms: u64,
    /// An incident is resolved at the latest this long after it opened.
    pub max_duration_ms: u64,
    /// The least event time between two `updated` versions of an incident.
    pub update_interval_ms: u64,
    /// Whether a service with no anomaly may link two anomalous ones (and is then listed).
    pub silent_intermediates: bool,
    /// How long before a service's onset a deploy of it counts as evidence.
    pub deploy_lookback_ms: u64,
    /// Evidence that opens an incident: an anomaly scoring at least this (thousandths)...
    pub strong_score_milli: u32,
    /// ...or anomalies open at once on this many metrics of one service (0: not evidence)...
    pub min_metrics: u32,
    /// ...or this many connected anomalous services (0: not evidence)...
    pub min_services: u32,
    /// ...or a deploy of an anomalous service within the look-back before its onset.
    pub deploy_opens: bool,
    /// An episode that joins an incident keeps it alive only once its score reaches this
    /// (thousandths): weak anomalies alone never keep an incident open.
    pub keep_alive_milli: u32,
    /// How often an open episode that is still anomalous reports (the detectors'
    /// `update_every`). An episode of a series whose interval is known that has reported nothing
    /// for two of these, or three of its intervals when longer, has stopped: its series went
    /// away (a pod that restarted under a new name) or hovers below its threshold.
    pub heartbeat_ms: u64,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            grace_ms: 2 * 60_000,
            merge_window_ms: 2 * 60_000,
            max_duration_ms: 4 * 3_600_000,
            update_interval_ms: 30_000,
            silent_intermediates: false,
            deploy_lookback_ms: 15 * 60_000,
            strong_score_milli: 650,
            min_metrics: 2,
            min_services: 2,
            deploy_opens: true,
            keep_alive_milli: 600,
            heartbeat_ms: 150_000,
        }
    }
}

/// What changed at one time.
#[derive(Default, Debug)]
pub struct Changes {
    /// The champion's episode events.
    pub anomalies: Vec<Anomaly>,
    /// Topology changes.
    pub edges: Vec<EdgeChange>,
    /// Deploys.
    pub deploys: Vec<DeployEvent>,
}

/// An episode: one series' anomaly from its open to its close.
type EpisodeKey = (SeriesId, Time);

#[derive(Clone, Debug, PartialEq)]
enum Owner {
    /// Open, in no incident yet: waiting for evidence.
    Candidate,
    /// Part of an open incident.
    Incident(String),
    /// Its incident has been resolved; it counts nowhere until it closes.
    Retired,
}

#[derive(Clone, Debug)]
struct TrackedEpisode {
    service: Service,
    namespace: Arc<str>,
    metric: Arc<str>,
    started: Time,
    interval_ms: u64,
    peak_milli: u32,
    /// Its strongest deviation as an effective strength (1.0 at the threshold).
    peak_strength: f64,
    direction: Direction,
    /// The reference and the value at its strongest event.
    from: f64,
    to: f64,
    owner: Owner,
    /// Whether it keeps its incident alive.
    sustains: bool,
    /// The strongest event's support record.
    support: Support,
    events: u64,
    /// Its anomalous samples so far.
    samples: u32,
    /// When it stops counting unless it reports again (None: its series' interval is unknown).
    silent_at: Option<Time>,
}

/// What an incident knows of one member service.
#[derive(Clone, Debug, Default)]
struct Member {
    namespace: Option<Arc<str>>,
    onset: Time,
    last: Time,
    events: u64,
    /// The strongest episode per metric.
    metrics: BTreeMap<Arc<str>, MetricView>,
}

impl Member {
    fn add(&mut self, e: &TrackedEpisode, at: Time) {
        if self.events == 0 && self.metrics.is_empty() {
            self.onset = e.started;
            self.namespace = Some(e.namespace.clone());
        }
        self.onset = self.onset.min(e.started);
        self.last = self.last.max(at);
        let view = MetricView {
            started: e.started,
            strength: e.peak_strength,
            score_milli: e.peak_milli,
            direction: e.direction,
            from: e.from,
            to: e.to,
        };
        let slot = self.metrics.entry(e.metric.clone()).or_insert(view);
        if view.strength > slot.strength {
            *slot = MetricView {
                started: slot.started.min(view.started),
                ..view
            };
        } else {
            slot.started = slot.started.min(view.started);
        }
    }

    fn merge(&mut self, other: &Member) {
        if self.metrics.is_empty() {
            *self = other.clone();
            return;
        }
        self.onset = self.onset.min(other.onset);
        self.last = self.last.max(other.last);
        self.events += other.events;
        for (metric, view) in &other.metrics {
            let slot = self.metrics.entry(metric.clone()).or_insert(*view);
            if view.strength > slot.strength {
                *slot = *view;
            }
        }
    }

    fn strongest_milli(&self) -> u32 {
        self.metrics
            .values()
            .map(|m| m.score_milli)
            .max()
            .unwrap_or(0)
    }
}

#[derive(Clone, Debug)]
struct Open {
    id: String,
    created_at: Time,
    /// The earliest start of its episodes.
    onset: Time,
    version: u64,
    members: BTreeMap<Service, Member>,
    support: BTreeMap<(Service, Arc<str>), Support>,
    /// Its open episodes, and those of them that keep it alive.
    episodes: BTreeSet<EpisodeKey>,
    sustaining: BTreeSet<EpisodeKey>,
    /// When it resolves if nothing keeps it alive before.
    resolve_at: Option<Time>,
    /// Whether an episode that kept it alive stopped reporting (for the resolve's text).
    went_silent: bool,
    published: Option<(Vec<Service>, Option<Service>, Severity)>,
    published_at: Time,
    split_from: Option<String>,
}

impl Open {
    /// An incident opened at `t` whose episodes began at `onset`, with no members yet.
    fn new(id: String, t: Time, onset: Time, split_from: Option<String>) -> Self {
        Open {
            id,
            created_at: t,
            onset,
            version: 0,
            members: BTreeMap::new(),
            support: BTreeMap::new(),
            episodes: BTreeSet::new(),
            sustaining: BTreeSet::new(),
            resolve_at: None,
            went_silent: false,
            published: None,
            published_at: t,
            split_from,
        }
    }
}

/// The incident lifecycle, one completed time at a time.
#[derive(Default)]
pub struct Tracker {
    config: CorrelationConfig,
    edges: BTreeMap<(Service, Service), i64>,
    /// The same edges by callee: (callee, caller).
    callers: BTreeMap<(Service, Service), i64>,
    deploys: BTreeMap<Service, Vec<(Time, Arc<str>)>>,
    episodes: BTreeMap<EpisodeKey, TrackedEpisode>,
    /// Open episodes per service (for silent intermediates: a service with none is silent).
    open_by_service: BTreeMap<Service, u32>,
    /// Candidate episodes per service.
    candidates: BTreeMap<Service, BTreeSet<EpisodeKey>>,
    open: BTreeMap<String, Open>,
    /// The open incidents each service is a member of.
    member_of: BTreeMap<Service, BTreeSet<String>>,
    /// Resolutions due: (time, incident), for the grace and the longest life.
    timers: BTreeSet<(Time, String)>,
    /// Episodes that stop counting unless they report before: (time, episode).
    silences: BTreeSet<(Time, EpisodeKey)>,
    /// Incidents with a change held back by the update interval, by when it may be published.
    held_updates: BTreeSet<(Time, String)>,
}

impl Tracker {
    /// A tracker with `config`.
    pub fn new(config: CorrelationConfig) -> Self {
        Tracker {
            config,
            ..Default::default()
        }
    }

    /// The earliest time at which something is due (a resolution or a held update), if any.
    pub fn next_due(&self) -> Option<Time> {
        let timer = self.timers.first().map(|(t, _)| *t);
        let update = self.held_updates.first().map(|(t, _)| *t);
        let silence = self.silences.first().map(|(t, _)| *t);
        timer.into_iter().chain(update).chain(silence).min()
    }

    /// How many incidents are open.
    pub fn open_incidents(&self) -> usize {
        self.open.len()
    }

    /// Applies what happened at `t` (every earlier time already applied) and returns the
    /// incident versions it produces, in id order.
    pub fn step(&mut self, t: Time, changes: Changes) -> Vec<Incident> {
        let mut step = Step::default();
        self.apply_topology(t, &changes, &mut step);
        self.apply_events(t, &changes.anomalies, &mut step);
        self.end_silent_episodes(t, &mut step);
        self.merge_across_added_edges(t, &changes.edges, &mut step);
        self.open_candidates(t, &mut step);
        self.split_across_removed_edges(t, &changes.edges, &mut step);
        self.follow_life(t, &mut step);
        self.resolve_due(t, &mut step);
        self.publish(t, step)
    }
}

/// What one step collects as it goes.
#[derive(Default)]
struct Step {
    /// Candidate services whose evidence may have changed.
    seeds: BTreeSet<Service>,
    /// Incidents whose episodes changed (their life is looked at again).
    touched: BTreeSet<String>,
    /// Incidents with something to publish.
    dirty: BTreeSet<String>,
    /// Incidents that gained a member (reserved for the update's text).
    arrivals: BTreeMap<String, ()>,
    /// Incidents opened now, with the evidence that opened them.
    opened: BTreeMap<String, String>,
    /// Incidents merged into or split now, with what happened.
    notes: BTreeMap<String, String>,
    topology_changed: bool,
    /// The versions made so far, by incident.
    versions: BTreeMap<String, Incident>,
}

/// Of `keys`, the episodes whose service is in `services`.
fn episodes_of<'a>(
    episodes: &BTreeMap<EpisodeKey, TrackedEpisode>,
    keys: impl IntoIterator<Item = &'a EpisodeKey>,
    services: &BTreeSet<Service>,
) -> Vec<EpisodeKey> {
    keys.into_iter()
        .filter(|k| {
            episodes
                .get(k)
                .is_some_and(|e| services.contains(&e.service))
        })
        .copied()
        .collect()
}

/// Adds an episode's evidence to its incident.
fn absorb(incident: &mut Open, e: &TrackedEpisode, at: Time) {
    let member = incident.members.entry(e.service.clone()).or_default();
    member.add(e, at);
    member.events += 1;
    let key = (e.service.clone(), e.metric.clone());
    let keep = incident.support.get(&key).is_none_or(|old| {
        (
            e.support.score_milli,
            std::cmp::Reverse(e.support.timestamp),
        ) > (old.score_milli, std::cmp::Reverse(old.timestamp))
    });
    if keep {
        incident.support.insert(key, e.support.clone());
    }
}

/// The quantity a metric measures: its name without the trailing parts that name a unit or a
/// statistic (`cpu_usage_m` and `cpu_usage_rate_pct` are both `cpu_usage`, `latency_p90_s` and
/// `latency_p99_s` both `latency`), so that one quantity reported several ways does not pass for
/// several metrics agreeing. At least the first part is kept.
pub fn quantity(metric: &str) -> &str {
    const SUFFIXES: [&str; 30] = [
        "s",
        "ms",
        "us",
        "ns",
        "seconds",
        "milliseconds",
        "m",
        "mi",
        "mb",
        "kb",
        "gb",
        "b",
        "bytes",
        "pct",
        "percent",
        "ratio",
        "rate",
        "total",
        "count",
        "sum",
        "avg",
        "average",
        "mean",
        "max",
        "min",
        "median",
        "quantile",
        "bucket",
        "value",
        "per",
    ];
    let mut end = metric.len();
    while let Some(cut) = metric[..end].rfind('_') {
        let part = metric[cut + 1..end].to_ascii_lowercase();
        let statistic = part.len() > 1
            && part.starts_with('p')
            && part[1..].bytes().all(|b| b.is_ascii_digit());
        if cut == 0 || !(statistic || SUFFIXES.contains(&part.as_str())) {
            break;
        }
        end = cut;
    }
    &metric[..end]
}

fn support_of(a: &Anomaly) -> Support {
    Support {
        anomaly_id: a.anomaly_id(),
        service: a.series.service.clone(),
        metric_name: a.series.metric_name.clone(),
        timestamp: a.timestamp,
        score_milli: score_milli(a),
        direction: a.evidence.direction,
    }
}

/// An anomaly's score in thousandths.
fn score_milli(a: &Anomaly) -> u32 {
    (a.anomaly_score.0.clamp(0.0, 1.0) * 1000.0).round() as u32
}

/// An anomaly's deviation as an effective strength, the same for every detector: the score's
/// odds, `score / (1 - score)` (1.0 at its threshold, growing with strength and persistence).
fn effective_strength(a: &Anomaly) -> f64 {
    let s = a.anomaly_score.0.clamp(0.0, 0.999_999);
    s / (1.0 - s)
}

fn incident_id(t: Time, label: &str) -> String {
    let mut key = t.to_le_bytes().to_vec();
    key.extend_from_slice(label.as_bytes());
    format!("inc-{:016x}", xxhash_rust::xxh3::xxh3_64(&key))
}

fn join<'a>(services: impl IntoIterator<Item = &'a Service>) -> String {
    services
        .into_iter()
        .map(|s| &**s)
        .collect::<Vec<_>>()
        .join(", ")
}
