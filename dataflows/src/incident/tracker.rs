//! The incident lifecycle as a plain state machine, fed one completed event time at a time with
//! what happened then: the champion's episode events (open, update, close), topology changes and
//! deploys. The rules are in the module above ([`crate::incident`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::rank::{rank, MemberView, MetricView};
use super::record::{Cause, Incident, Notes, Service, Severity, Status, Support};
use crate::records::{Anomaly, DeployEvent, Direction, EdgeChange, EpisodeStatus, SeriesId};
use crate::time::{format_duration, Time};

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

    fn apply_topology(&mut self, t: Time, changes: &Changes, step: &mut Step) {
        for e in &changes.edges {
            let diff = if e.add { 1 } else { -1 };
            *self
                .edges
                .entry((e.caller.clone(), e.callee.clone()))
                .or_default() += diff;
            *self
                .callers
                .entry((e.callee.clone(), e.caller.clone()))
                .or_default() += diff;
            for s in [&e.caller, &e.callee] {
                if self.candidates.contains_key(s) {
                    step.seeds.insert(s.clone());
                }
            }
        }
        self.edges.retain(|_, n| *n > 0);
        self.callers.retain(|_, n| *n > 0);
        for d in &changes.deploys {
            let list = self.deploys.entry(d.service.clone()).or_default();
            list.push((d.timestamp, d.version.clone()));
            let keep = self.config.deploy_lookback_ms.saturating_mul(4);
            list.retain(|(at, _)| at.saturating_add(keep) >= t);
            if self.candidates.contains_key(&d.service) {
                step.seeds.insert(d.service.clone());
            }
            step.topology_changed = true;
        }
        step.topology_changed |= !changes.edges.is_empty();
    }

    fn apply_events(&mut self, t: Time, anomalies: &[Anomaly], step: &mut Step) {
        // Closes first, so that a series whose episode closes and reopens at one time ends open.
        let mut ordered: Vec<&Anomaly> = anomalies.iter().collect();
        ordered.sort_by_key(|a| {
            let status = a.episode.map(|e| e.status);
            (
                status != Some(EpisodeStatus::Close),
                a.series.id,
                a.timestamp,
            )
        });
        for a in ordered {
            let Some(info) = a.episode else { continue };
            let key = (a.series.id, info.started_at);
            match info.status {
                EpisodeStatus::Close => self.close_episode(t, key, a.timestamp, false, step),
                EpisodeStatus::Open | EpisodeStatus::Update => {
                    if self.episodes.contains_key(&key) {
                        self.grow_episode(key, a, step);
                    } else {
                        self.new_episode(t, key, a, step);
                    }
                }
            }
        }
    }

    fn new_episode(&mut self, t: Time, key: EpisodeKey, a: &Anomaly, step: &mut Step) {
        // An update of an episode not (or no longer) followed, one that went silent and speaks
        // again, is followed from now: what it does now is what is news.
        let resumed = a.episode.is_some_and(|e| e.status != EpisodeStatus::Open);
        let episode = TrackedEpisode {
            service: a.series.service.clone(),
            namespace: a.series.namespace.clone(),
            metric: a.series.metric_name.clone(),
            started: if resumed { a.timestamp } else { key.1 },
            interval_ms: a.evidence.change.map_or(0, |c| c.interval_ms),
            peak_milli: score_milli(a),
            peak_strength: effective_strength(a),
            direction: a.evidence.direction,
            from: a.expected.0,
            to: a.value.0,
            owner: Owner::Candidate,
            sustains: false,
            support: support_of(a),
            events: 1,
            samples: a.episode.map_or(1, |e| e.samples),
            silent_at: None,
        };
        *self
            .open_by_service
            .entry(episode.service.clone())
            .or_default() += 1;
        let service = episode.service.clone();
        self.episodes.insert(key, episode);
        self.heard_from(key, a.timestamp);
        // Join an open incident it belongs to: one that holds its service or a neighbour, whose
        // onset is close enough. When it could join several, they are one problem: merge them.
        let joinable = self.joinable(t, key);
        match joinable.first().cloned() {
            Some(first) => {
                let survivor = if joinable.len() > 1 {
                    self.merge_all(t, &joinable, "a new anomaly connected them", step)
                } else {
                    first
                };
                self.join(key, &survivor, false, step);
            }
            None => {
                self.candidates
                    .entry(service.clone())
                    .or_default()
                    .insert(key);
                step.seeds.insert(service);
            }
        }
    }

    fn grow_episode(&mut self, key: EpisodeKey, a: &Anomaly, step: &mut Step) {
        let keep_alive = self.config.keep_alive_milli;
        self.heard_from(key, a.timestamp);
        let Some(e) = self.episodes.get_mut(&key) else {
            return;
        };
        e.events += 1;
        let grew = a.episode.is_some_and(|i| i.samples > e.samples);
        e.samples = e.samples.max(a.episode.map_or(0, |i| i.samples));
        let milli = score_milli(a);
        let strength = effective_strength(a);
        if milli > e.peak_milli || strength > e.peak_strength {
            e.peak_milli = e.peak_milli.max(milli);
            if strength > e.peak_strength {
                (e.peak_strength, e.from, e.to) = (strength, a.expected.0, a.value.0);
                e.support = support_of(a);
                e.support.score_milli = e.peak_milli;
            }
        }
        match e.owner.clone() {
            Owner::Candidate => {
                if grew || milli > 0 {
                    step.seeds.insert(e.service.clone());
                }
            }
            Owner::Incident(id) => {
                let upgrade = !e.sustains && e.peak_milli >= keep_alive;
                e.sustains |= upgrade;
                let e = e.clone();
                if let Some(incident) = self.open.get_mut(&id) {
                    if upgrade {
                        incident.sustaining.insert(key);
                    }
                    absorb(incident, &e, a.timestamp);
                    step.touched.insert(id.clone());
                    step.dirty.insert(id);
                }
            }
            Owner::Retired => {}
        }
    }

    /// Sets when episode `key`, heard from at `at`, stops counting unless it reports again.
    fn heard_from(&mut self, key: EpisodeKey, at: Time) {
        let heartbeat = self.config.heartbeat_ms;
        let Some(e) = self.episodes.get_mut(&key) else {
            return;
        };
        if let Some(old) = e.silent_at.take() {
            self.silences.remove(&(old, key));
        }
        if e.interval_ms > 0 {
            let due = at.saturating_add((2 * heartbeat).max(3 * e.interval_ms));
            e.silent_at = Some(due);
            self.silences.insert((due, key));
        }
    }

    /// Ends the episodes that have reported nothing for too long, as if they had closed.
    fn end_silent_episodes(&mut self, t: Time, step: &mut Step) {
        while let Some((due, key)) = self.silences.first().copied() {
            if due > t {
                break;
            }
            self.silences.pop_first();
            self.close_episode(t, key, due, true, step);
        }
    }

    /// Ends episode `key` at `at` (`silent`: it stopped reporting rather than closed).
    fn close_episode(&mut self, t: Time, key: EpisodeKey, at: Time, silent: bool, step: &mut Step) {
        let Some(e) = self.episodes.remove(&key) else {
            return;
        };
        if let Some(due) = e.silent_at {
            self.silences.remove(&(due, key));
        }
        if let Some(n) = self.open_by_service.get_mut(&e.service) {
            *n -= 1;
            if *n == 0 {
                self.open_by_service.remove(&e.service);
            }
        }
        match &e.owner {
            Owner::Candidate => {
                if let Some(set) = self.candidates.get_mut(&e.service) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.candidates.remove(&e.service);
                    }
                }
            }
            Owner::Incident(id) => {
                if let Some(incident) = self.open.get_mut(id) {
                    incident.episodes.remove(&key);
                    incident.went_silent |= incident.sustaining.remove(&key) && silent;
                    if let Some(m) = incident.members.get_mut(&e.service) {
                        m.last = m.last.max(t.max(at));
                    }
                    step.touched.insert(id.clone());
                }
            }
            Owner::Retired => {}
        }
    }

    /// The open incidents the (new) episode `key` may join, oldest first: those with a member
    /// that is its service or connected to it whose onset is within the episode's merge window
    /// of its start. A fault spreading hop by hop joins; a new fault in the same services minutes
    /// later does not.
    fn joinable(&self, t: Time, key: EpisodeKey) -> Vec<String> {
        let Some(e) = self.episodes.get(&key) else {
            return Vec::new();
        };
        let window = self.window_of(e);
        let mut found: BTreeSet<(Time, String)> = BTreeSet::new();
        let mut consider = |service: &Service| {
            for id in self.member_of.get(service).into_iter().flatten() {
                let Some(i) = self.open.get(id) else { continue };
                let near = i
                    .members
                    .get(service)
                    .is_some_and(|m| m.onset.abs_diff(e.started) <= window);
                if near && t <= e.started.saturating_add(window) {
                    found.insert((i.created_at, id.clone()));
                }
            }
        };
        consider(&e.service);
        for n in self.reachable(&e.service) {
            consider(&n);
        }
        found.into_iter().map(|(_, id)| id).collect()
    }

    /// The merge window of an episode: the configured one, or two of its series' sample
    /// intervals when that is longer.
    fn window_of(&self, e: &TrackedEpisode) -> u64 {
        self.config
            .merge_window_ms
            .max(e.interval_ms.saturating_mul(2))
    }

    /// The services an anomaly of `service` connects to: its callers and callees, and with
    /// silent intermediates the services one silent service away.
    fn reachable(&self, service: &Service) -> BTreeSet<Service> {
        let mut out: BTreeSet<Service> = self.neighbours(service).collect();
        if self.config.silent_intermediates {
            let silent: Vec<Service> = out
                .iter()
                .filter(|n| !self.open_by_service.contains_key(*n))
                .cloned()
                .collect();
            for s in silent {
                out.extend(self.neighbours(&s).filter(|n| n != service));
            }
        }
        out
    }

    fn neighbours<'a>(&'a self, service: &'a Service) -> impl Iterator<Item = Service> + 'a {
        let from = |map: &'a BTreeMap<(Service, Service), i64>| {
            map.range((service.clone(), Service::from(""))..)
                .take_while(move |((a, _), _)| a == service)
                .map(|((_, b), _)| b.clone())
        };
        from(&self.edges).chain(from(&self.callers))
    }

    /// Puts episode `key` into incident `id`.
    fn join(&mut self, key: EpisodeKey, id: &str, evidence: bool, step: &mut Step) {
        let keep_alive = self.config.keep_alive_milli;
        let Some(e) = self.episodes.get_mut(&key) else {
            return;
        };
        e.owner = Owner::Incident(id.to_string());
        e.sustains = evidence || e.peak_milli >= keep_alive;
        let e = e.clone();
        if let Some(set) = self.candidates.get_mut(&e.service) {
            set.remove(&key);
            if set.is_empty() {
                self.candidates.remove(&e.service);
            }
        }
        let Some(incident) = self.open.get_mut(id) else {
            return;
        };
        incident.episodes.insert(key);
        if e.sustains {
            incident.sustaining.insert(key);
        }
        let new_member = !incident.members.contains_key(&e.service);
        incident.onset = incident.onset.min(e.started);
        absorb(incident, &e, e.started);
        self.member_of
            .entry(e.service.clone())
            .or_default()
            .insert(id.to_string());
        step.touched.insert(id.to_string());
        step.dirty.insert(id.to_string());
        if new_member {
            step.arrivals.entry(id.to_string()).or_default();
        }
    }

    /// Merges the open incidents `ids` into the oldest; returns its id.
    fn merge_all(&mut self, t: Time, ids: &[String], why: &str, step: &mut Step) -> String {
        let Some(survivor) = ids
            .iter()
            .filter_map(|id| self.open.get(id).map(|i| (i.created_at, id.clone())))
            .min()
            .map(|(_, id)| id)
        else {
            return ids.first().cloned().unwrap_or_default();
        };
        for other in ids.iter().filter(|id| **id != survivor) {
            let Some(gone) = self.open.remove(other) else {
                continue;
            };
            self.cancel_timers(&gone);
            for key in &gone.episodes {
                if let Some(e) = self.episodes.get_mut(key) {
                    e.owner = Owner::Incident(survivor.clone());
                }
            }
            for s in gone.members.keys() {
                if let Some(set) = self.member_of.get_mut(s) {
                    set.remove(other);
                    set.insert(survivor.clone());
                }
            }
            let mut last = self.version(&gone, t, Status::Resolved);
            last.merged_into = Some(survivor.clone());
            last.change = format!("merged into {survivor}: {why}");
            step.versions.insert(gone.id.clone(), last);
            let Some(into) = self.open.get_mut(&survivor) else {
                continue;
            };
            for (s, m) in &gone.members {
                into.members.entry(s.clone()).or_default().merge(m);
            }
            for (k, v) in gone.support {
                let keep = into
                    .support
                    .get(&k)
                    .is_none_or(|old| v.score_milli > old.score_milli);
                if keep {
                    into.support.insert(k, v);
                }
            }
            into.episodes.extend(gone.episodes);
            into.sustaining.extend(gone.sustaining);
            into.went_silent |= gone.went_silent;
            into.onset = into.onset.min(gone.onset);
            step.notes
                .insert(survivor.clone(), format!("merged {} into it", gone.id));
            step.touched.insert(survivor.clone());
            step.dirty.insert(survivor.clone());
        }
        survivor
    }

    /// A new edge between members of two open incidents whose onsets are within the merge
    /// window makes them one.
    fn merge_across_added_edges(&mut self, t: Time, edges: &[EdgeChange], step: &mut Step) {
        for e in edges.iter().filter(|e| e.add) {
            let a: Vec<String> = self
                .member_of
                .get(&e.caller)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            let b: Vec<String> = self
                .member_of
                .get(&e.callee)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            for x in &a {
                for y in &b {
                    if x == y {
                        continue;
                    }
                    let (Some(ix), Some(iy)) = (self.open.get(x), self.open.get(y)) else {
                        continue;
                    };
                    if ix.onset.abs_diff(iy.onset) <= self.config.merge_window_ms {
                        let pair = [x.clone(), y.clone()];
                        self.merge_all(t, &pair, "a new edge connected them", step);
                    }
                }
            }
            // A candidate next to an incident it is close enough to joins it.
            for s in [&e.caller, &e.callee] {
                let keys: Vec<EpisodeKey> = self
                    .candidates
                    .get(s)
                    .into_iter()
                    .flatten()
                    .copied()
                    .collect();
                for key in keys {
                    if let Some(id) = self.joinable(t, key).first().cloned() {
                        self.join(key, &id, false, step);
                    }
                }
            }
        }
    }

    /// Opens an incident for every group of candidates (connected anomalous services with no
    /// incident) that now holds the evidence the settings ask for.
    fn open_candidates(&mut self, t: Time, step: &mut Step) {
        let seeds: Vec<Service> = std::mem::take(&mut step.seeds).into_iter().collect();
        let mut done: BTreeSet<Service> = BTreeSet::new();
        for seed in seeds {
            if done.contains(&seed) || !self.candidates.contains_key(&seed) {
                continue;
            }
            let group = self.candidate_group(&seed);
            done.extend(group.iter().cloned());
            // The episodes of the group that began within the merge window of now: older ones
            // are the noise a service always has, not this problem's start.
            let recent: Vec<EpisodeKey> = group
                .iter()
                .flat_map(|s| self.candidates.get(s).into_iter().flatten().copied())
                .filter(|k| {
                    self.episodes
                        .get(k)
                        .is_some_and(|e| k.1.saturating_add(self.window_of(e)) >= t)
                })
                .collect();
            // Without the older episodes a service may no longer link two others: each connected
            // part of what is recent is judged, and opens, on its own.
            let services: BTreeSet<Service> = recent
                .iter()
                .filter_map(|k| self.episodes.get(k).map(|e| e.service.clone()))
                .collect();
            for part in self.parts(services) {
                let keys: Vec<EpisodeKey> = recent
                    .iter()
                    .filter(|k| {
                        self.episodes
                            .get(k)
                            .is_some_and(|e| part.contains(&e.service))
                    })
                    .copied()
                    .collect();
                self.open_part(t, &seed, keys, step);
            }
        }
    }

    /// Opens an incident of candidate episodes `keys` (connected services) if they hold the
    /// evidence.
    fn open_part(&mut self, t: Time, seed: &Service, keys: Vec<EpisodeKey>, step: &mut Step) {
        let Some(why) = self.evidence(&keys) else {
            return;
        };
        let services: BTreeSet<Service> = keys
            .iter()
            .filter_map(|k| self.episodes.get(k).map(|e| e.service.clone()))
            .collect();
        let label = services.first().cloned().unwrap_or_else(|| seed.clone());
        let id = incident_id(t, &label);
        let onset = keys.iter().map(|k| k.1).min().unwrap_or(t);
        self.open
            .insert(id.clone(), Open::new(id.clone(), t, onset, None));
        self.timers
            .insert((t.saturating_add(self.config.max_duration_ms), id.clone()));
        for key in keys {
            self.join(key, &id, true, step);
        }
        step.opened.insert(id, why);
    }

    /// The connected candidate services around `seed`.
    fn candidate_group(&self, seed: &Service) -> BTreeSet<Service> {
        let mut group: BTreeSet<Service> = BTreeSet::from([seed.clone()]);
        let mut queue: VecDeque<Service> = VecDeque::from([seed.clone()]);
        while let Some(s) = queue.pop_front() {
            for n in self.reachable(&s) {
                if self.candidates.contains_key(&n) && group.insert(n.clone()) {
                    queue.push_back(n);
                }
            }
        }
        group
    }

    /// What makes these candidate episodes an incident, if anything does.
    fn evidence(&self, keys: &[EpisodeKey]) -> Option<String> {
        let episodes: Vec<&TrackedEpisode> =
            keys.iter().filter_map(|k| self.episodes.get(k)).collect();
        let c = &self.config;
        // A strong anomaly that lasts: a lone sample, back to normal at the next, is over before
        // anyone could look.
        if let Some(strong) = episodes
            .iter()
            .filter(|e| e.peak_milli >= c.strong_score_milli && e.samples >= 2)
            .max_by_key(|e| e.peak_milli)
        {
            return Some(format!(
                "a strong anomaly: {} {} scored {:.2} over {} samples",
                strong.service,
                strong.metric,
                strong.peak_milli as f64 / 1000.0,
                strong.samples
            ));
        }
        // Quantities, not names: metrics that differ only in a unit or a statistic are one.
        let mut metrics: BTreeMap<&Service, BTreeSet<&str>> = BTreeMap::new();
        for e in &episodes {
            metrics
                .entry(&e.service)
                .or_default()
                .insert(quantity(&e.metric));
        }
        if c.min_metrics > 0 {
            if let Some((s, m)) = metrics
                .iter()
                .find(|(_, m)| m.len() >= c.min_metrics as usize)
            {
                return Some(format!(
                    "{} metrics of {s} at once ({})",
                    m.len(),
                    m.iter().copied().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if c.min_services > 0 && metrics.len() >= c.min_services as usize {
            return Some(format!(
                "{} connected services at once ({})",
                metrics.len(),
                metrics.keys().map(|s| &***s).collect::<Vec<_>>().join(", ")
            ));
        }
        if c.deploy_opens {
            for e in &episodes {
                if let Some((at, version)) = self.deploy_before(&e.service, e.started) {
                    return Some(format!(
                        "{} deployed {version} {} before its anomaly",
                        e.service,
                        format_duration(e.started - at)
                    ));
                }
            }
        }
        None
    }

    /// The latest deploy of `service` within the look-back before `onset`.
    fn deploy_before(&self, service: &Service, onset: Time) -> Option<(Time, Arc<str>)> {
        self.deploys
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(at, _)| *at <= onset && onset - at <= self.config.deploy_lookback_ms)
            .max_by_key(|(at, _)| *at)
            .cloned()
    }

    /// A removed edge that leaves an open incident's services in several connected parts splits
    /// it: the part with the earliest onset keeps the id, each other part opens `split_from` it.
    fn split_across_removed_edges(&mut self, t: Time, edges: &[EdgeChange], step: &mut Step) {
        let mut candidates: BTreeSet<String> = BTreeSet::new();
        for e in edges.iter().filter(|e| !e.add) {
            let a = self.member_of.get(&e.caller);
            let b = self.member_of.get(&e.callee);
            if let (Some(a), Some(b)) = (a, b) {
                candidates.extend(a.intersection(b).cloned());
            }
        }
        for id in candidates {
            let Some(incident) = self.open.get(&id) else {
                continue;
            };
            let parts = self.parts(incident.members.keys().cloned().collect());
            if parts.len() < 2 {
                continue;
            }
            let keep = parts
                .iter()
                .position(|p| {
                    p.iter().any(|s| {
                        incident
                            .members
                            .get(s)
                            .is_some_and(|m| m.onset == incident.onset)
                    })
                })
                .unwrap_or(0);
            for (k, part) in parts.into_iter().enumerate() {
                if k != keep {
                    self.split_off(t, &id, part, step);
                }
            }
        }
    }

    /// The connected parts of a set of services over the topology now.
    fn parts(&self, mut left: BTreeSet<Service>) -> Vec<BTreeSet<Service>> {
        let mut parts = Vec::new();
        while let Some(seed) = left.pop_first() {
            let mut part = BTreeSet::from([seed.clone()]);
            let mut queue = VecDeque::from([seed]);
            while let Some(s) = queue.pop_front() {
                for n in self.reachable(&s) {
                    if left.remove(&n) {
                        part.insert(n.clone());
                        queue.push_back(n);
                    }
                }
            }
            parts.push(part);
        }
        parts
    }

    fn split_off(&mut self, t: Time, from: &str, part: BTreeSet<Service>, step: &mut Step) {
        let Some(parent) = self.open.get_mut(from) else {
            return;
        };
        let label = part.first().cloned().unwrap_or_else(|| Service::from(""));
        let id = incident_id(t, &label);
        let mut child = Open::new(id.clone(), t, t, Some(from.to_string()));
        for s in &part {
            if let Some(m) = parent.members.remove(s) {
                child.onset = child.onset.min(m.onset);
                child.members.insert(s.clone(), m);
            }
            let moving: Vec<_> = parent
                .support
                .keys()
                .filter(|k| k.0 == *s)
                .cloned()
                .collect();
            for k in moving {
                if let Some(v) = parent.support.remove(&k) {
                    child.support.insert(k, v);
                }
            }
        }
        let moving: Vec<EpisodeKey> = parent
            .episodes
            .iter()
            .filter(|k| {
                self.episodes
                    .get(k)
                    .is_some_and(|e| part.contains(&e.service))
            })
            .copied()
            .collect();
        for key in moving {
            parent.episodes.remove(&key);
            child.episodes.insert(key);
            if parent.sustaining.remove(&key) {
                child.sustaining.insert(key);
            }
            if let Some(e) = self.episodes.get_mut(&key) {
                e.owner = Owner::Incident(id.clone());
            }
        }
        parent.onset = parent
            .members
            .values()
            .map(|m| m.onset)
            .min()
            .unwrap_or(parent.onset);
        for s in &part {
            if let Some(set) = self.member_of.get_mut(s) {
                set.remove(from);
                set.insert(id.clone());
            }
        }
        step.notes.insert(
            from.to_string(),
            format!("split: {} left for {id}", join(&part)),
        );
        step.notes.insert(
            id.clone(),
            format!("split from {from} (the edge between them is gone)"),
        );
        self.timers
            .insert((t.saturating_add(self.config.max_duration_ms), id.clone()));
        step.touched.insert(from.to_string());
        step.touched.insert(id.clone());
        step.dirty.insert(from.to_string());
        self.open.insert(id, child);
    }

    /// Starts the grace of an incident that nothing keeps alive any more, and stops it for one
    /// that something keeps alive again.
    fn follow_life(&mut self, t: Time, step: &mut Step) {
        for id in std::mem::take(&mut step.touched) {
            let Some(incident) = self.open.get_mut(&id) else {
                continue;
            };
            match (incident.sustaining.is_empty(), incident.resolve_at) {
                (true, None) => {
                    let at = t.saturating_add(self.config.grace_ms);
                    incident.resolve_at = Some(at);
                    self.timers.insert((at, id));
                }
                (false, Some(at)) => {
                    incident.resolve_at = None;
                    self.timers.remove(&(at, id));
                }
                _ => {}
            }
        }
    }

    fn resolve_due(&mut self, t: Time, step: &mut Step) {
        while let Some((due, id)) = self.timers.first().cloned() {
            if due > t {
                break;
            }
            self.timers.pop_first();
            let Some(incident) = self.open.get(&id) else {
                continue;
            };
            let why = if incident.resolve_at == Some(due) {
                format!(
                    "resolved: every member recovered{} {} ago",
                    if incident.went_silent {
                        " or stopped reporting"
                    } else {
                        ""
                    },
                    format_duration(self.config.grace_ms)
                )
            } else if incident
                .created_at
                .saturating_add(self.config.max_duration_ms)
                == due
            {
                format!(
                    "resolved: open for {}, the longest an incident lasts{}",
                    format_duration(self.config.max_duration_ms),
                    if incident.sustaining.is_empty() {
                        String::new()
                    } else {
                        "; some of its services are still anomalous".to_string()
                    }
                )
            } else {
                continue; // a stale timer
            };
            let Some(incident) = self.open.remove(&id) else {
                continue;
            };
            self.cancel_timers(&incident);
            for key in &incident.episodes {
                if let Some(e) = self.episodes.get_mut(key) {
                    e.owner = Owner::Retired;
                }
            }
            for s in incident.members.keys() {
                if let Some(set) = self.member_of.get_mut(s) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.member_of.remove(s);
                    }
                }
            }
            let mut last = self.version(&incident, t, Status::Resolved);
            last.change = why;
            step.versions.insert(id, last);
        }
    }

    fn cancel_timers(&mut self, incident: &Open) {
        if let Some(at) = incident.resolve_at {
            self.timers.remove(&(at, incident.id.clone()));
        }
        self.timers.remove(&(
            incident
                .created_at
                .saturating_add(self.config.max_duration_ms),
            incident.id.clone(),
        ));
    }

    /// Publishes the versions of this step: resolutions and merges as they happened, openings
    /// and splits at once, other changes (services added, first cause or severity changed) at
    /// most once per update interval.
    fn publish(&mut self, t: Time, mut step: Step) -> Vec<Incident> {
        if step.topology_changed {
            step.dirty.extend(self.open.keys().cloned());
        }
        step.dirty.extend(step.notes.keys().cloned());
        step.dirty.extend(step.opened.keys().cloned());
        while let Some((due, id)) = self.held_updates.first().cloned() {
            if due > t {
                break;
            }
            self.held_updates.pop_first();
            step.dirty.insert(id);
        }
        let interval = self.config.update_interval_ms;
        for id in std::mem::take(&mut step.dirty) {
            let Some(incident) = self.open.get(&id) else {
                continue;
            };
            let forced = step.notes.contains_key(&id) || step.opened.contains_key(&id);
            let due = incident.published_at.saturating_add(interval);
            if incident.version > 0 && !forced && t < due {
                self.held_updates.insert((due, id));
                continue;
            }
            let draft = self.version(incident, t, Status::Updated);
            let before = incident.published.clone();
            let now = (
                draft.services.clone(),
                draft.ranked_causes.first().map(|c| c.service.clone()),
                draft.severity,
            );
            if before.as_ref() == Some(&now) && !forced {
                continue;
            }
            let Some(incident) = self.open.get_mut(&id) else {
                continue;
            };
            incident.version += 1;
            incident.published_at = t;
            let mut version = draft;
            version.version = incident.version;
            version.status = if incident.version == 1 {
                Status::Open
            } else {
                Status::Updated
            };
            version.change = match (step.notes.remove(&id), step.opened.remove(&id), &before) {
                (Some(note), _, _) => note,
                (None, Some(why), _) => format!("opened: {why}"),
                (None, None, None) => format!("opened: {}", join(&now.0)),
                (None, None, Some((services, _, _))) if *services != now.0 => {
                    let added: Vec<&Service> =
                        now.0.iter().filter(|s| !services.contains(s)).collect();
                    format!("services added: {}", join(added))
                }
                (None, None, Some((_, cause, _))) if *cause != now.1 => {
                    "the first cause changed".to_string()
                }
                _ => "severity changed".to_string(),
            };
            incident.published = Some(now);
            step.versions.insert(id, version);
        }
        step.versions.into_values().collect()
    }

    /// The incident as a version at `t` (version and change filled in by the caller).
    fn version(&self, incident: &Open, t: Time, status: Status) -> Incident {
        let services: Vec<Service> = incident.members.keys().cloned().collect();
        let views: BTreeMap<Service, MemberView> = incident
            .members
            .iter()
            .map(|(s, m)| {
                (
                    s.clone(),
                    MemberView {
                        onset: m.onset,
                        metrics: m.metrics.clone(),
                        deploy: self.deploy_before(s, m.onset),
                    },
                )
            })
            .collect();
        let (ranked_causes, confidence_milli): (Vec<Cause>, u32) =
            rank(&views, &self.edges, &self.callers);
        let strongest = incident
            .members
            .values()
            .map(Member::strongest_milli)
            .max()
            .unwrap_or(0);
        let points = match services.len() {
            n if n >= 5 => 2,
            n if n >= 2 => 1,
            _ => 0,
        } + match strongest {
            s if s >= 900 => 2,
            s if s >= 700 => 1,
            _ => 0,
        };
        let severity = match points {
            p if p >= 4 => Severity::Critical,
            3 => Severity::High,
            2 => Severity::Medium,
            _ => Severity::Low,
        };
        let mut anomalies: Vec<Support> = incident.support.values().cloned().collect();
        anomalies.sort_by(|a, b| {
            b.score_milli
                .cmp(&a.score_milli)
                .then(a.timestamp.cmp(&b.timestamp))
                .then(a.anomaly_id.cmp(&b.anomaly_id))
        });
        anomalies.truncate(50);
        let namespaces: BTreeSet<&Arc<str>> = incident
            .members
            .values()
            .filter_map(|m| m.namespace.as_ref())
            .collect();
        let deploys = views
            .iter()
            .filter_map(|(s, v)| {
                v.deploy
                    .as_ref()
                    .map(|(at, version)| (s.clone(), version.clone(), *at))
            })
            .collect();
        Incident {
            incident_id: incident.id.clone(),
            status,
            version: incident.version + 1,
            created_at: incident.created_at,
            updated_at: t,
            namespace: (namespaces.len() == 1)
                .then(|| namespaces.first().map(|n| (*n).clone()))
                .flatten(),
            severity,
            services,
            silent_services: self.silent_links(incident),
            event_count: incident.members.values().map(|m| m.events).sum(),
            anomalies,
            deploys,
            ranked_causes,
            confidence_milli,
            change: String::new(),
            merged_into: None,
            split_from: incident.split_from.clone(),
            notes: Notes::default(),
        }
    }

    /// The services with no anomaly now that have edges to two or more of the incident's
    /// services, when silent intermediates are on.
    fn silent_links(&self, incident: &Open) -> Vec<Service> {
        if !self.config.silent_intermediates {
            return Vec::new();
        }
        let mut reached: BTreeMap<Service, usize> = BTreeMap::new();
        for m in incident.members.keys() {
            let near: BTreeSet<Service> = self
                .neighbours(m)
                .filter(|n| !self.open_by_service.contains_key(n))
                .filter(|n| !incident.members.contains_key(n))
                .collect();
            for n in near {
                *reached.entry(n).or_default() += 1;
            }
        }
        reached
            .into_iter()
            .filter(|(_, n)| *n >= 2)
            .map(|(s, _)| s)
            .collect()
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
