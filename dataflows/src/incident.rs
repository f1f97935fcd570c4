//! Incidents: one per neighbourhood episode, with a stable id, versions, merges and splits, and a
//! ranked root-cause hypothesis.
//!
//! [`Tracker`] is the lifecycle as a plain state machine, fed one completed event time at a time
//! with what changed then (neighbourhood labels, anomalies, topology edges, deploys), and
//! [`track_incidents`] runs it in the dataflow on worker 0: anomalies are few next to samples,
//! and one owner makes every incident exactly one worker's.
//!
//! The rules:
//! * A neighbourhood owned by no open incident opens one once it holds `min_anomalies` anomalies
//!   in the window and at least one of them is strong (scores at least `strong_score`, 0.65 by
//!   default: |z| 7.4 at the default threshold 4). Weak anomalies (|z| just above the threshold)
//!   are what noise produces, and across hundreds of series they meet a neighbour's within
//!   minutes; they join an open incident but do not open one:
//!   `incident_id` = `inc-` + a hash of the time and the neighbourhood's label, so the
//!   same input gives the same id everywhere.
//! * A neighbourhood touching one open incident updates it when it gains services.
//! * A neighbourhood touching several open incidents (a new anomaly or a new edge joined them)
//!   merges them: the oldest keeps its id, the others are resolved as `merged_into` it.
//! * An open incident whose active services now lie in several neighbourhoods because an edge
//!   between two of them was removed splits: it keeps the part with its earliest anomaly, each
//!   other part opens a new incident `split_from` it. An anomaly ageing out of the window does not
//!   split an incident; its parts stay one problem while they are active.
//! * An incident with no active service for `quiet_ms` is resolved.
//! * Opening, merging, splitting and resolving are published at once; other changes (services
//!   added, the first cause or the severity changed) at most once per `update_interval_ms` of
//!   event time per incident, so an anomaly storm of thousands of services gives a version every
//!   half minute, not one per anomaly.
//! * Causes: every member scores up to 1 from its position in the call graph (none of the services
//!   it calls was anomalous at the same time and about as strongly: 0.35), its onset (the first
//!   strong anomaly: the earliest gets 0.3, later ones less, a member with only weak anomalies
//!   none unless no member has a strong one), the strength of its
//!   strongest anomaly (0.2 x score) and a deploy within `deploy_lookback_ms` before its onset
//!   (0.15). Confidence grows with the margin between the first two causes and the evidence; a
//!   lone service is at most 0.35.
//! * Severity: critical, high, medium or low from the number of services and the strongest score.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Capability, Concatenate};
use timely::dataflow::Stream;

use crate::neighbourhood::Service;
use crate::records::{Anomaly, DeployEvent, EdgeChange};
use crate::time::{format_clock, format_duration, format_rfc3339, Time};

/// Settings of correlation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorrelationConfig {
    /// How long an anomaly keeps its service active.
    pub window_ms: u64,
    /// How long an incident stays open with no active service.
    pub quiet_ms: u64,
    /// The least event time between two `updated` versions of an incident.
    pub update_interval_ms: u64,
    /// Whether a service with no anomaly may link two anomalous ones (and is then listed).
    pub silent_intermediates: bool,
    /// How long before a service's onset a deploy of it counts as evidence.
    pub deploy_lookback_ms: u64,
    /// A neighbourhood opens an incident once it holds this many anomalies in the window...
    pub min_anomalies: u64,
    /// ...and one of them scores at least this (in thousandths).
    pub strong_score_milli: u32,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            window_ms: 5 * 60_000,
            quiet_ms: 5 * 60_000,
            update_interval_ms: 30_000,
            silent_intermediates: false,
            deploy_lookback_ms: 15 * 60_000,
            min_anomalies: 1,
            strong_score_milli: 650,
        }
    }
}

/// open, updated or resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The first version.
    Open,
    /// A later version of an open incident.
    Updated,
    /// The last version.
    Resolved,
}

/// How bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// One service, mild deviations.
    Low,
    /// Worth a look.
    Medium,
    /// Several services or strong deviations.
    High,
    /// Many services and strong deviations.
    Critical,
}

/// One possible cause.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cause {
    /// The service.
    pub service: Service,
    /// Score in [0, 1], in thousandths (integers keep the record comparable and exact).
    pub score_milli: u32,
    /// Why, for a responder.
    pub reasons: Vec<String>,
}

/// An anomaly supporting an incident.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Support {
    /// The anomaly's id.
    pub anomaly_id: String,
    /// Its service.
    pub service: Service,
    /// Its metric.
    pub metric_name: Arc<str>,
    /// Its time.
    pub timestamp: Time,
    /// Its score, in thousandths.
    pub score_milli: u32,
    /// Which way it left its baseline.
    pub direction: crate::records::Direction,
}

/// One version of an incident.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id.
    pub incident_id: String,
    /// open, updated, resolved.
    pub status: Status,
    /// 1, 2, ...
    pub version: u64,
    /// When it opened.
    pub created_at: Time,
    /// This version's time.
    pub updated_at: Time,
    /// How bad.
    pub severity: Severity,
    /// Every service it has held, by name.
    pub services: Vec<Service>,
    /// With silent intermediates on: services with no anomaly that link two of its active
    /// services now (not members, not causes).
    pub silent_services: Vec<Service>,
    /// Anomalies it has gathered.
    pub event_count: u64,
    /// The anomalies behind it (the strongest per service and metric, at most 50).
    pub anomalies: Vec<Support>,
    /// Deploys of member services within the look-back before their onset.
    pub deploys: Vec<(Service, Arc<str>, Time)>,
    /// Ranked causes, most likely first.
    pub ranked_causes: Vec<Cause>,
    /// Confidence in the first cause, in thousandths.
    pub confidence_milli: u32,
    /// What this version changed.
    pub change: String,
    /// When resolved by a merge: the incident it joined.
    pub merged_into: Option<String>,
    /// When opened by a split: the incident it came from.
    pub split_from: Option<String>,
    /// Added outside the dataflow from the job's settings (runbooks, silences).
    pub notes: Notes,
}

/// What the job's settings add to an incident version: the matching runbook and silence.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Notes {
    /// The runbook whose pattern the likely cause matches: (name, url, recommended action).
    pub runbook: Option<(String, String, String)>,
    /// The silence or maintenance window that suppresses it (written, not alerted).
    pub suppressed_by: Option<String>,
}

impl Incident {
    /// The incident version as one line of JSON (the output contract).
    pub fn to_json(&self) -> String {
        let milli = |m: u32| m as f64 / 1000.0;
        let out = IncidentJson {
            schema_version: crate::records::SCHEMA_VERSION,
            incident_id: &self.incident_id,
            status: self.status,
            version: self.version,
            created_at: format_rfc3339(self.created_at),
            updated_at: format_rfc3339(self.updated_at),
            severity: self.severity,
            services: &self.services,
            silent_services: &self.silent_services,
            event_count: self.event_count,
            change: &self.change,
            merged_into: self.merged_into.as_deref(),
            split_from: self.split_from.as_deref(),
            runbook: self
                .notes
                .runbook
                .as_ref()
                .map(|(name, url, action)| RunbookJson {
                    name,
                    url,
                    recommended_action: action,
                }),
            suppressed_by: self.notes.suppressed_by.as_deref(),
            hypothesis: HypothesisJson {
                ranked_causes: self
                    .ranked_causes
                    .iter()
                    .map(|c| CauseJson {
                        service: &c.service,
                        score: milli(c.score_milli),
                        reasons: &c.reasons,
                    })
                    .collect(),
                confidence: milli(self.confidence_milli),
            },
            anomalies: self
                .anomalies
                .iter()
                .map(|a| SupportJson {
                    anomaly_id: &a.anomaly_id,
                    service: &a.service,
                    metric_name: &a.metric_name,
                    timestamp: format_rfc3339(a.timestamp),
                    anomaly_score: milli(a.score_milli),
                    direction: a.direction,
                })
                .collect(),
            deploys: self
                .deploys
                .iter()
                .map(|(service, version, t)| DeployJson {
                    service,
                    version,
                    timestamp: format_rfc3339(*t),
                })
                .collect(),
        };
        serde_json::to_string(&out).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[derive(Serialize)]
struct IncidentJson<'a> {
    schema_version: u32,
    incident_id: &'a str,
    status: Status,
    version: u64,
    created_at: String,
    updated_at: String,
    severity: Severity,
    services: &'a [Service],
    #[serde(skip_serializing_if = "<[Service]>::is_empty")]
    silent_services: &'a [Service],
    event_count: u64,
    change: &'a str,
    merged_into: Option<&'a str>,
    split_from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runbook: Option<RunbookJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed_by: Option<&'a str>,
    hypothesis: HypothesisJson<'a>,
    anomalies: Vec<SupportJson<'a>>,
    deploys: Vec<DeployJson<'a>>,
}

#[derive(Serialize)]
struct RunbookJson<'a> {
    name: &'a str,
    url: &'a str,
    /// Advisory: what a responder should do first. Nothing is executed.
    recommended_action: &'a str,
}

#[derive(Serialize)]
struct HypothesisJson<'a> {
    ranked_causes: Vec<CauseJson<'a>>,
    confidence: f64,
}

#[derive(Serialize)]
struct CauseJson<'a> {
    service: &'a str,
    score: f64,
    reasons: &'a [String],
}

#[derive(Serialize)]
struct SupportJson<'a> {
    anomaly_id: &'a str,
    service: &'a str,
    metric_name: &'a str,
    timestamp: String,
    anomaly_score: f64,
    direction: crate::records::Direction,
}

#[derive(Serialize)]
struct DeployJson<'a> {
    service: &'a str,
    version: &'a str,
    timestamp: String,
}

/// What the tracker knows of a member service.
#[derive(Clone, Debug, Default)]
struct Member {
    /// First anomaly.
    onset: Time,
    /// Last anomaly.
    last: Time,
    /// First anomaly at or above the strong score, if any: a weak blip before the real trouble
    /// does not make a service the earliest.
    strong_onset: Option<Time>,
    strongest: u32,
    count: u64,
}

impl Member {
    fn new(t: Time) -> Self {
        Member {
            onset: t,
            last: t,
            strong_onset: None,
            strongest: 0,
            count: 0,
        }
    }

    fn add(&mut self, t: Time, score: u32, strong: u32) {
        if self.count == 0 {
            self.onset = t;
            self.last = t;
        }
        self.onset = self.onset.min(t);
        self.last = self.last.max(t);
        if score >= strong {
            self.strong_onset = Some(self.strong_onset.map_or(t, |s| s.min(t)));
        }
        self.strongest = self.strongest.max(score);
        self.count += 1;
    }

    fn merge(&mut self, other: &Member) {
        self.onset = self.onset.min(other.onset);
        self.last = self.last.max(other.last);
        self.strong_onset = match (self.strong_onset, other.strong_onset) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.strongest = self.strongest.max(other.strongest);
        self.count += other.count;
    }

    /// The onset the ranking uses: the first strong anomaly, else the first.
    fn ranked_onset(&self) -> Time {
        self.strong_onset.unwrap_or(self.onset)
    }
}

#[derive(Clone, Debug)]
struct Open {
    id: String,
    created_at: Time,
    version: u64,
    members: BTreeMap<Service, Member>,
    support: BTreeMap<(Service, Arc<str>), Support>,
    quiet_since: Option<Time>,
    published: Option<(Vec<Service>, Option<Service>, Severity)>,
    /// When the last version was published.
    published_at: Time,
    split_from: Option<String>,
}

/// The incident lifecycle, one completed time at a time.
#[derive(Default)]
pub struct Tracker {
    config: CorrelationConfig,
    labels: BTreeMap<Service, Service>,
    edges: BTreeMap<(Service, Service), i64>,
    /// The same edges by callee: (callee, caller).
    callers: BTreeMap<(Service, Service), i64>,
    deploys: BTreeMap<Service, Vec<(Time, Arc<str>)>>,
    open: BTreeMap<String, Open>,
    owner: BTreeMap<Service, String>,
    /// Every service's anomalies in the last window, for the opening rule and to seed a new incident.
    recent: BTreeMap<Service, std::collections::VecDeque<Support>>,
    /// The active services of each neighbourhood, by label.
    groups: BTreeMap<Service, BTreeSet<Service>>,
    /// The active services each open incident owns.
    active: BTreeMap<String, BTreeSet<Service>>,
    /// Quiet incidents by the time they resolve.
    timers: BTreeSet<(Time, String)>,
    /// Incidents with a change held back by the update interval, by when it may be published.
    held_updates: BTreeSet<(Time, String)>,
}

/// What changed at one time.
#[derive(Default, Debug)]
pub struct Changes {
    /// Neighbourhood label updates: ((service, label), diff).
    pub labels: Vec<((Service, Service), isize)>,
    /// Anomalies that fired.
    pub anomalies: Vec<Anomaly>,
    /// Topology changes.
    pub edges: Vec<EdgeChange>,
    /// Deploys.
    pub deploys: Vec<DeployEvent>,
}

impl Tracker {
    /// A tracker with `config`.
    pub fn new(config: CorrelationConfig) -> Self {
        Tracker {
            config,
            ..Default::default()
        }
    }

    /// The earliest time at which a quiet incident resolves, if any.
    pub fn next_due(&self) -> Option<Time> {
        let quiet = self.timers.first().map(|(t, _)| *t);
        let update = self.held_updates.first().map(|(t, _)| *t);
        quiet.into_iter().chain(update).min()
    }

    /// Applies what changed at `t` (every earlier time already applied) and returns the incident
    /// versions it produces, in id order. The work is proportional to what changed: only the
    /// neighbourhoods that gained or lost services, or whose services fired, are looked at.
    pub fn step(&mut self, t: Time, changes: Changes) -> Vec<Incident> {
        // Neighbourhood membership, kept incrementally. Retractions come first in `labels`.
        let mut touched: BTreeSet<Service> = BTreeSet::new();
        let mut moved: BTreeSet<Service> = BTreeSet::new();
        // The services that joined each neighbourhood at `t`.
        let mut arrivals: BTreeMap<Service, Vec<Service>> = BTreeMap::new();
        for ((service, label), diff) in changes.labels {
            if diff > 0 {
                arrivals
                    .entry(label.clone())
                    .or_default()
                    .push(service.clone());
                if let Some(old) = self.labels.insert(service.clone(), label.clone()) {
                    self.leave_group(&old, &service);
                    touched.insert(old);
                }
                self.groups
                    .entry(label.clone())
                    .or_default()
                    .insert(service.clone());
                touched.insert(label);
            } else if self.labels.get(&service) == Some(&label) {
                self.labels.remove(&service);
                self.leave_group(&label, &service);
                touched.insert(label);
            }
            moved.insert(service);
        }
        // Services no longer in any neighbourhood leave their incident.
        let mut looked_at: BTreeSet<String> = BTreeSet::new();
        for service in &moved {
            if !self.labels.contains_key(service) {
                self.recent.remove(service); // its anomalies are all older than the window now
                if let Some(id) = self.owner.remove(service) {
                    if let Some(active) = self.active.get_mut(&id) {
                        active.remove(service);
                        looked_at.insert(id);
                    }
                }
            }
        }
        let topology_changed = !changes.edges.is_empty() || !changes.deploys.is_empty();
        // Net counts per edge, as the neighbourhoods keep them: present while above zero.
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
        }
        self.edges.retain(|_, n| *n != 0);
        self.callers.retain(|_, n| *n != 0);
        for d in &changes.deploys {
            let list = self.deploys.entry(d.service.clone()).or_default();
            list.push((d.timestamp, d.version.clone()));
            list.retain(|(at, _)| at + self.config.deploy_lookback_ms * 4 >= t);
        }
        for a in &changes.anomalies {
            self.recent
                .entry(a.series.service.clone())
                .or_default()
                .push_back(support_of(a));
            if !self.owner.contains_key(&a.series.service) {
                if let Some(label) = self.labels.get(&a.series.service) {
                    touched.insert(label.clone()); // it may now have the evidence to open
                }
            }
        }
        let window = self.config.window_ms;
        for a in &changes.anomalies {
            if let Some(list) = self.recent.get_mut(&a.series.service) {
                while list.front().is_some_and(|x| x.timestamp + window <= t) {
                    list.pop_front();
                }
            }
        }
        let mut versions: BTreeMap<String, Incident> = BTreeMap::new();
        let mut notes: BTreeMap<String, String> = BTreeMap::new();
        let mut dirty: BTreeSet<String> = BTreeSet::new();

        // Splits: when an edge between two of an incident's active services is removed and its
        // active services now lie in several neighbourhoods, it stays with the one holding its
        // earliest onset and lets go of the others. An anomaly that merely ages out of the window
        // does not split an incident: the problem is the same one while its parts stay active.
        let removed: Vec<(&Service, &Service)> = changes
            .edges
            .iter()
            .filter(|e| !e.add)
            .map(|e| (&e.caller, &e.callee))
            .collect();
        let mut candidates: BTreeSet<String> = BTreeSet::new();
        for (a, b) in &removed {
            for s in [a, b] {
                if let Some(id) = self.owner.get(*s) {
                    candidates.insert(id.clone());
                }
            }
        }
        let mut released: BTreeMap<Service, String> = BTreeMap::new();
        for id in &candidates {
            let Some(active) = self.active.get(id) else {
                continue;
            };
            if !removed
                .iter()
                .any(|(a, b)| active.contains(*a) && active.contains(*b))
            {
                continue;
            }
            let labels: BTreeSet<&Service> =
                active.iter().filter_map(|s| self.labels.get(s)).collect();
            if labels.len() < 2 {
                continue;
            }
            let incident = &self.open[id];
            let keep = labels
                .iter()
                .min_by_key(|l| {
                    self.groups[**l]
                        .iter()
                        .filter_map(|s| incident.members.get(s).map(|m| (m.onset, s.clone())))
                        .min()
                })
                .map(|l| (*l).clone());
            for label in labels {
                if Some(label) != keep.as_ref() {
                    released.insert(label.clone(), id.clone());
                }
            }
        }
        touched.extend(released.keys().cloned());

        // Services with a strong anomaly at `t`: only they (or arrivals bringing one) can give an
        // unowned neighbourhood what it lacked to open.
        let strong_now: BTreeSet<Service> = changes
            .anomalies
            .iter()
            .filter(|a| score_milli(a) >= self.config.strong_score_milli)
            .map(|a| a.series.service.clone())
            .collect();
        for label in touched {
            let Some(group) = self.groups.get(&label) else {
                continue;
            };
            let from = released.get(&label).cloned();
            // Once a time is applied a neighbourhood is owned by one incident or by none, so one
            // service that was already in it speaks for all of them; the services that arrived
            // at `t` may bring other incidents. This keeps the work proportional to the change,
            // not to the size of the neighbourhood.
            let arrived: Vec<Service> = arrivals
                .get(&label)
                .into_iter()
                .flatten()
                .filter(|s| group.contains(*s))
                .cloned()
                .collect();
            let settled = group.iter().find(|s| !moved.contains(*s)).cloned();
            let settled_owner = settled.as_ref().and_then(|s| self.owner.get(s).cloned());
            let ids: BTreeSet<String> = arrived
                .iter()
                .filter_map(|s| self.owner.get(s).cloned())
                .chain(settled_owner.clone())
                .filter(|id| Some(id) != from.as_ref())
                .collect();
            let id = match ids.len() {
                0 => {
                    let fresh = self.config.min_anomalies > 1
                        || strong_now
                            .iter()
                            .any(|s| self.labels.get(s) == Some(&label))
                        || arrived.iter().any(|s| self.has_strong_recent(s, t));
                    if from.is_none() && !fresh {
                        continue; // nothing new that could open it
                    }
                    let members = self.groups.get(&label).cloned().unwrap_or_default();
                    if from.is_none() && !self.enough_evidence(&members, t) {
                        continue; // not yet an incident: weak anomalies are noise until a strong one
                    }
                    let id = incident_id(t, &label);
                    let mut incident = Open {
                        id: id.clone(),
                        created_at: t,
                        version: 0,
                        members: BTreeMap::new(),
                        support: BTreeMap::new(),
                        quiet_since: None,
                        published: None,
                        published_at: t,
                        split_from: from.clone(),
                    };
                    if let Some(parent) = from.as_ref().and_then(|p| self.open.get_mut(p)) {
                        for s in &members {
                            if let Some(m) = parent.members.remove(s) {
                                incident.members.insert(s.clone(), m);
                            }
                            let moving: Vec<_> = parent
                                .support
                                .keys()
                                .filter(|k| k.0 == *s)
                                .cloned()
                                .collect();
                            for k in moving {
                                if let Some(v) = parent.support.remove(&k) {
                                    incident.support.insert(k, v);
                                }
                            }
                        }
                        notes.insert(
                            parent.id.clone(),
                            format!("split: {} left for {id}", join(&members)),
                        );
                        notes.insert(
                            id.clone(),
                            format!("split from {} (the edge between them is gone)", parent.id),
                        );
                    } else {
                        // Seed it with its services' earlier anomalies (those at t join below).
                        for s in &members {
                            let window = self.config.window_ms;
                            for support in self
                                .recent
                                .get(s)
                                .into_iter()
                                .flatten()
                                .filter(|a| a.timestamp < t && a.timestamp + window > t)
                            {
                                let strong = self.config.strong_score_milli;
                                incident
                                    .members
                                    .entry(s.clone())
                                    .or_insert_with(|| Member::new(support.timestamp))
                                    .add(support.timestamp, support.score_milli, strong);
                                incident.support.insert(
                                    (s.clone(), support.metric_name.clone()),
                                    support.clone(),
                                );
                            }
                        }
                    }
                    self.open.insert(id.clone(), incident);
                    id
                }
                1 => ids.into_iter().next().unwrap_or_default(),
                _ => {
                    let survivor = ids
                        .iter()
                        .min_by_key(|id| (self.open[*id].created_at, (*id).clone()))
                        .cloned()
                        .unwrap_or_default();
                    for other in ids.iter().filter(|id| **id != survivor) {
                        let Some(gone) = self.open.remove(other) else {
                            continue;
                        };
                        self.cancel_timer(&gone);
                        for s in self.active.remove(other).into_iter().flatten() {
                            self.owner.insert(s.clone(), survivor.clone());
                            self.active.entry(survivor.clone()).or_default().insert(s);
                        }
                        let entry = self.open.get_mut(&survivor).expect("survivor is open");
                        for (s, m) in gone.members.iter() {
                            match entry.members.get_mut(s) {
                                Some(e) => e.merge(m),
                                None => {
                                    entry.members.insert(s.clone(), m.clone());
                                }
                            }
                        }
                        entry.support.extend(gone.support.clone());
                        notes.insert(survivor.clone(), format!("merged {} into it", gone.id));
                        let mut last = self.publish(&gone, t, Status::Resolved);
                        last.merged_into = Some(survivor.clone());
                        last.change =
                            format!("merged into {survivor}: a new anomaly or edge connected them");
                        versions.insert(gone.id.clone(), last);
                    }
                    survivor
                }
            };
            looked_at.insert(id.clone());
            let assign: Vec<Service> = if settled.is_some() && settled_owner.as_ref() != Some(&id) {
                self.groups
                    .get(&label)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect()
            } else {
                arrived
            };
            for s in &assign {
                if let Some(old) = self.owner.insert(s.clone(), id.clone()) {
                    if old != id {
                        if let Some(active) = self.active.get_mut(&old) {
                            active.remove(s);
                        }
                        looked_at.insert(old.clone());
                    }
                }
                self.active.entry(id.clone()).or_default().insert(s.clone());
                let window = self.config.window_ms;
                let strong = self.config.strong_score_milli;
                let earlier: Vec<Support> = self
                    .recent
                    .get(s)
                    .into_iter()
                    .flatten()
                    .filter(|a| a.timestamp < t && a.timestamp + window > t)
                    .cloned()
                    .collect();
                let incident = self.open.get_mut(&id).expect("owned incident is open");
                if !incident.members.contains_key(s) {
                    // A service that joins brings its anomalies still in the window (those at
                    // `t` join below), so its onset and strength are its own, not the join's.
                    let mut member = Member::new(t);
                    for support in earlier {
                        member.add(support.timestamp, support.score_milli, strong);
                        incident
                            .support
                            .entry((s.clone(), support.metric_name.clone()))
                            .or_insert(support);
                    }
                    incident.members.insert(s.clone(), member);
                    dirty.insert(id.clone());
                }
            }
        }

        // Anomalies join the incident that owns their service.
        for a in &changes.anomalies {
            let Some(id) = self.owner.get(&a.series.service) else {
                continue;
            };
            let Some(incident) = self.open.get_mut(id) else {
                continue;
            };
            dirty.insert(id.clone());
            let support = support_of(a);
            let strong = self.config.strong_score_milli;
            incident
                .members
                .entry(a.series.service.clone())
                .or_insert_with(|| Member::new(a.timestamp))
                .add(a.timestamp, support.score_milli, strong);
            let key = (a.series.service.clone(), a.series.metric_name.clone());
            let keep = incident.support.get(&key).is_none_or(|old| {
                (support.score_milli, std::cmp::Reverse(a.timestamp))
                    > (old.score_milli, std::cmp::Reverse(old.timestamp))
            });
            if keep {
                incident.support.insert(key, support);
            }
        }

        // Quiet periods: start one for an incident that lost its last active service, stop one
        // for an incident active again, and resolve those that are due.
        looked_at.extend(candidates);
        for id in looked_at {
            let quiet = self.active.get(&id).is_none_or(|a| a.is_empty());
            let Some(incident) = self.open.get_mut(&id) else {
                continue;
            };
            match (quiet, incident.quiet_since) {
                (true, None) => {
                    incident.quiet_since = Some(t);
                    self.timers.insert((t + self.config.quiet_ms, id.clone()));
                }
                (false, Some(since)) => {
                    incident.quiet_since = None;
                    self.timers
                        .remove(&(since + self.config.quiet_ms, id.clone()));
                }
                _ => {}
            }
        }
        self.active.retain(|_, a| !a.is_empty());
        while let Some((due, id)) = self.timers.first().cloned() {
            if due > t {
                break;
            }
            self.timers.pop_first();
            if let Some(incident) = self.open.remove(&id) {
                let mut last = self.publish(&incident, t, Status::Resolved);
                last.change = format!(
                    "resolved: no anomaly for {}",
                    format_duration(self.config.quiet_ms)
                );
                versions.insert(id, last);
            }
        }

        // Publish every open incident whose services, first cause or severity changed.
        if topology_changed {
            dirty.extend(self.open.keys().cloned());
        }
        dirty.extend(notes.keys().cloned());
        while let Some((due, id)) = self.held_updates.first().cloned() {
            if due > t {
                break;
            }
            self.held_updates.pop_first();
            dirty.insert(id);
        }
        let interval = self.config.update_interval_ms;
        for id in dirty {
            let Some(incident) = self.open.get(&id) else {
                continue;
            };
            let due = incident.published_at + interval;
            if incident.version > 0 && !notes.contains_key(&id) && t < due {
                self.held_updates.insert((due, id)); // published when the interval is over
                continue;
            }
            let (draft, top) = (
                self.publish(incident, t, Status::Updated),
                incident.published.clone(),
            );
            let now = (
                draft.services.clone(),
                draft.ranked_causes.first().map(|c| c.service.clone()),
                draft.severity,
            );
            if top.as_ref() == Some(&now) && !notes.contains_key(&id) {
                continue;
            }
            let incident = self.open.get_mut(&id).expect("listed");
            incident.version += 1;
            incident.published_at = t;
            let mut version = draft;
            version.version = incident.version;
            version.status = if incident.version == 1 {
                Status::Open
            } else {
                Status::Updated
            };
            version.change = notes.remove(&id).unwrap_or_else(|| match &top {
                None => format!("opened: {}", join(&now.0)),
                Some((before, _, _)) if *before != now.0 => {
                    let added: Vec<&Service> =
                        now.0.iter().filter(|s| !before.contains(s)).collect();
                    format!("services added: {}", join(added))
                }
                Some((_, cause, _)) if *cause != now.1 => "the first cause changed".to_string(),
                _ => "severity changed".to_string(),
            });
            incident.published = Some(now);
            versions.insert(id, version);
        }
        versions.into_values().collect()
    }

    fn leave_group(&mut self, label: &Service, service: &Service) {
        if let Some(group) = self.groups.get_mut(label) {
            group.remove(service);
            if group.is_empty() {
                self.groups.remove(label);
            }
        }
    }

    fn cancel_timer(&mut self, incident: &Open) {
        if let Some(since) = incident.quiet_since {
            self.timers
                .remove(&(since + self.config.quiet_ms, incident.id.clone()));
        }
    }

    /// Whether `service` had a strong anomaly in the window before `t`.
    fn has_strong_recent(&self, service: &Service, t: Time) -> bool {
        let window = self.config.window_ms;
        self.recent.get(service).is_some_and(|list| {
            list.iter().any(|a| {
                a.timestamp + window > t && a.score_milli >= self.config.strong_score_milli
            })
        })
    }

    /// Whether a neighbourhood's anomalies in the window before `t` are enough to open an incident.
    fn enough_evidence(&self, members: &BTreeSet<Service>, t: Time) -> bool {
        let window = self.config.window_ms;
        let anomalies = members
            .iter()
            .filter_map(|s| self.recent.get(s))
            .flatten()
            .filter(|a| a.timestamp + window > t);
        let (count, strongest) =
            anomalies.fold((0u64, 0u32), |(n, m), a| (n + 1, m.max(a.score_milli)));
        count >= self.config.min_anomalies && strongest >= self.config.strong_score_milli
    }

    /// The incident as a version at `t` (version and change filled in by the caller).
    fn publish(&self, incident: &Open, t: Time, status: Status) -> Incident {
        let services: Vec<Service> = incident.members.keys().cloned().collect();
        let (ranked_causes, confidence_milli) = self.rank(incident);
        let strongest = incident
            .members
            .values()
            .map(|m| m.strongest)
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
        Incident {
            incident_id: incident.id.clone(),
            status,
            version: incident.version + 1,
            created_at: incident.created_at,
            updated_at: t,
            severity,
            services,
            silent_services: self.silent_links(incident),
            event_count: incident.members.values().map(|m| m.count).sum(),
            anomalies,
            deploys: self.recent_deploys(incident),
            ranked_causes,
            confidence_milli,
            change: String::new(),
            merged_into: None,
            split_from: incident.split_from.clone(),
            notes: Notes::default(),
        }
    }

    /// The services with no anomaly that have edges to two or more of the incident's active
    /// services, when silent intermediates are on.
    fn silent_links(&self, incident: &Open) -> Vec<Service> {
        if !self.config.silent_intermediates {
            return Vec::new();
        }
        let Some(active) = self.active.get(&incident.id) else {
            return Vec::new();
        };
        let mut reached: BTreeMap<&Service, usize> = BTreeMap::new();
        for m in active {
            let callees = self
                .edges
                .range((m.clone(), Service::from(""))..)
                .take_while(|((caller, _), _)| caller == m)
                .filter(|(_, n)| **n > 0)
                .map(|((_, callee), _)| callee);
            let callers = self
                .callers
                .range((m.clone(), Service::from(""))..)
                .take_while(|((callee, _), _)| callee == m)
                .filter(|(_, n)| **n > 0)
                .map(|((_, caller), _)| caller);
            let mut near: BTreeSet<&Service> = callees.chain(callers).collect();
            near.retain(|n| !self.labels.contains_key(*n));
            for n in near {
                *reached.entry(n).or_default() += 1;
            }
        }
        reached
            .into_iter()
            .filter(|(_, n)| *n >= 2)
            .map(|(s, _)| s.clone())
            .collect()
    }

    fn recent_deploys(&self, incident: &Open) -> Vec<(Service, Arc<str>, Time)> {
        let mut out = Vec::new();
        for (s, m) in &incident.members {
            for (at, version) in self.deploys.get(s).into_iter().flatten() {
                if *at <= m.onset && m.onset - at <= self.config.deploy_lookback_ms {
                    out.push((s.clone(), version.clone(), *at));
                }
            }
        }
        out
    }

    fn rank(&self, incident: &Open) -> (Vec<Cause>, u32) {
        let members = &incident.members;
        // Onset order counts strong anomalies when there are any: a weak blip minutes before the
        // problem is the noise every series has, not its start.
        let any_strong = members.values().any(|m| m.strong_onset.is_some());
        let first = members
            .values()
            .filter(|m| !any_strong || m.strong_onset.is_some())
            .map(Member::ranked_onset)
            .min()
            .unwrap_or(0);
        let window = self.config.window_ms;
        let mut causes: Vec<(u32, Time, Cause)> = Vec::new();
        for (s, m) in members {
            let mut score = 0.0;
            let mut reasons = Vec::new();
            let calls: Vec<&Service> = self
                .edges
                .range((s.clone(), Service::from(""))..)
                .take_while(|((caller, _), _)| caller == s)
                .filter(|(_, n)| **n > 0)
                .map(|((_, callee), _)| callee)
                .collect();
            let sick: Vec<&Service> = calls
                .iter()
                .copied()
                .filter(|c| {
                    // A dependency explains a service's trouble when it was anomalous at the same
                    // time and about as strongly; a weak blip elsewhere in the incident does not.
                    members.get(*c).is_some_and(|d| {
                        d.onset <= m.last + window
                            && d.last + window >= m.onset
                            && d.strongest * 5 >= m.strongest * 4
                    })
                })
                .collect();
            if sick.is_empty() {
                score += 0.35;
                reasons.push(if calls.is_empty() {
                    "calls no other service".to_string()
                } else {
                    "all its dependencies healthy".to_string()
                });
            } else {
                reasons.push(format!(
                    "depends on anomalous {}",
                    sick.iter().map(|x| &***x).collect::<Vec<_>>().join(", ")
                ));
            }
            let onset = m.ranked_onset();
            let behind = onset.saturating_sub(first);
            if any_strong && m.strong_onset.is_none() {
                reasons.push(format!(
                    "only weak anomalies (first at {})",
                    format_clock(m.onset)
                ));
            } else if behind == 0 {
                score += 0.3;
                reasons.push(format!("earliest anomaly ({})", format_clock(onset)));
            } else {
                score += 0.3
                    * (1.0 - behind as f64 / self.config.window_ms.max(1) as f64).max(0.0)
                    * 0.5;
                reasons.push(format!(
                    "anomalous {} after the first",
                    format_duration(behind)
                ));
            }
            score += 0.2 * m.strongest as f64 / 1000.0;
            reasons.push(format!(
                "strongest anomaly score {:.2}",
                m.strongest as f64 / 1000.0
            ));
            let deploy = self
                .deploys
                .get(s)
                .into_iter()
                .flatten()
                .filter(|(at, _)| *at <= m.onset && m.onset - at <= self.config.deploy_lookback_ms)
                .max_by_key(|(at, _)| *at);
            if let Some((at, version)) = deploy {
                score += 0.15;
                reasons.push(format!(
                    "deployed {version} {} before",
                    format_duration(m.onset - at)
                ));
            }
            let milli = (score.min(1.0) * 1000.0).round() as u32;
            causes.push((
                milli,
                m.onset,
                Cause {
                    service: s.clone(),
                    score_milli: milli,
                    reasons,
                },
            ));
        }
        causes.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(a.1.cmp(&b.1))
                .then(a.2.service.cmp(&b.2.service))
        });
        let ranked: Vec<Cause> = causes.into_iter().map(|c| c.2).collect();
        let confidence = match ranked.as_slice() {
            [] => 0.0,
            [only] => 0.35 * only.score_milli as f64 / 1000.0,
            [top, second, ..] => {
                let margin =
                    (top.score_milli - second.score_milli) as f64 / top.score_milli.max(1) as f64;
                (0.35 + 0.45 * margin + 0.15 * top.score_milli as f64 / 1000.0).min(0.95)
            }
        };
        (ranked, (confidence * 1000.0).round() as u32)
    }
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

/// Everything the tracker reads, as one stream.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Input {
    Label(Service, Service),
    Anomaly(Anomaly),
    Edge(EdgeChange),
    Deploy(DeployEvent),
}

/// Runs the [`Tracker`] on worker 0 over the neighbourhood labels, anomalies, edges and deploys,
/// one completed time at a time; returns the incident versions, at the times they were made.
pub fn track_incidents<'s>(
    labels: VecCollection<'s, Time, (Service, Service)>,
    anomalies: VecCollection<'s, Time, Anomaly>,
    edges: Stream<'s, Time, Vec<(EdgeChange, Time, isize)>>,
    deploys: Stream<'s, Time, Vec<(DeployEvent, Time, isize)>>,
    config: &CorrelationConfig,
) -> Stream<'s, Time, Vec<(Incident, Time, isize)>> {
    let scope = labels.inner.scope();
    let streams = vec![
        labels
            .inner
            .map(|((s, l), t, r)| (Input::Label(s, l), t, r)),
        anomalies.inner.map(|(a, t, r)| (Input::Anomaly(a), t, r)),
        edges.map(|(e, t, r)| (Input::Edge(e), t, r)),
        deploys.map(|(d, t, r)| (Input::Deploy(d), t, r)),
    ];
    let config = config.clone();
    scope
        .concatenate(streams)
        .unary_frontier::<CapacityContainerBuilder<Vec<(Incident, Time, isize)>>, _, _, _>(
            Exchange::new(|_: &(Input, Time, isize)| 0u64),
            "Incidents",
            move |_capability, _info| {
                let mut tracker = Tracker::new(config);
                let mut pending: BTreeMap<Time, Vec<(Input, isize)>> = BTreeMap::new();
                let mut held: Option<Capability<Time>> = None;
                move |(input, frontier), output| {
                    input.for_each(|capability, data| {
                        for (item, time, diff) in data.drain(..) {
                            pending.entry(time).or_default().push((item, diff));
                        }
                        if let Some(cap) = capability.retain_least(0) {
                            if held.as_ref().is_none_or(|h| cap.time() < h.time()) {
                                held = Some(cap);
                            }
                        }
                    });
                    let frontier = frontier.frontier();
                    let complete = |t: &Time| frontier.first().is_none_or(|f| t < f);
                    // The next time with something to do: input to apply or a quiet period ending.
                    let next_time = |pending: &BTreeMap<Time, _>, tracker: &Tracker| {
                        pending
                            .keys()
                            .next()
                            .copied()
                            .into_iter()
                            .chain(tracker.next_due())
                            .min()
                    };
                    while let Some(next) = next_time(&pending, &tracker) {
                        if !complete(&next) {
                            break;
                        }
                        let Some(cap) = held.as_ref() else { break };
                        let mut changes = Changes::default();
                        let mut labels: Vec<((Service, Service), isize)> = Vec::new();
                        for (item, diff) in pending.remove(&next).unwrap_or_default() {
                            match item {
                                Input::Label(s, l) => labels.push(((s, l), diff)),
                                Input::Anomaly(a) => changes
                                    .anomalies
                                    .extend((0..diff.max(0)).map(|_| a.clone())),
                                Input::Edge(e) => changes.edges.push(e),
                                Input::Deploy(d) => changes.deploys.push(d),
                            }
                        }
                        // Retractions first, so that a relabelled service ends with its new label.
                        differential_dataflow::consolidation::consolidate(&mut labels);
                        labels.sort_by_key(|(_, diff)| *diff);
                        changes.labels = labels;
                        changes.anomalies.sort();
                        changes.edges.sort();
                        changes.deploys.sort();
                        let versions = tracker.step(next, changes);
                        if !versions.is_empty() {
                            let at = cap.delayed(&next);
                            let mut session = output.session(&at);
                            for v in versions {
                                session.give((v, next, 1));
                            }
                        }
                    }
                    // Hold a capability no later than the next thing to do.
                    match (next_time(&pending, &tracker), held.as_mut()) {
                        (Some(n), Some(cap)) => {
                            let target = frontier.first().map_or(n, |f| (*f).min(n));
                            if target > *cap.time() {
                                cap.downgrade(&target);
                            }
                        }
                        (None, _) => held = None,
                        _ => {}
                    }
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Detector, Direction, Evidence, SeriesInfo, F64};

    fn anomaly(service: &str, metric: &str, t: Time, score: f64) -> Anomaly {
        Anomaly {
            timestamp: t,
            series: Arc::new(SeriesInfo::new("ns", service, metric)),
            value: F64(1.0),
            expected: F64(0.0),
            lower_bound: F64(0.0),
            upper_bound: F64(0.0),
            anomaly_score: F64(score),
            detector: Detector::ZScore,
            window_ms: 0,
            evidence: Evidence {
                baseline_points: 5,
                baseline_stddev: F64(0.1),
                z: None,
                direction: Direction::Up,
                flat_baseline: false,
                statistic: None,
            },
            episode: None,
        }
    }

    fn label(service: &str) -> ((Service, Service), isize) {
        ((Arc::from(service), Arc::from(service)), 1)
    }

    #[test]
    fn weak_anomalies_wait_for_a_strong_one_and_then_bring_their_evidence() {
        let mut tracker = Tracker::new(CorrelationConfig::default());
        let weak = tracker.step(
            1000,
            Changes {
                labels: vec![label("api")],
                anomalies: vec![anomaly("api", "cpu", 1000, 0.55)],
                ..Default::default()
            },
        );
        assert!(weak.is_empty(), "one weak anomaly opens nothing");
        let another = tracker.step(
            31_000,
            Changes {
                anomalies: vec![anomaly("api", "errors", 31_000, 0.64)],
                ..Default::default()
            },
        );
        assert!(
            another.is_empty(),
            "weak anomalies alone are what noise makes"
        );
        let second = tracker.step(
            61_000,
            Changes {
                anomalies: vec![anomaly("api", "latency", 61_000, 0.66)],
                ..Default::default()
            },
        );
        assert_eq!(second.len(), 1);
        assert_eq!(
            (
                second[0].status,
                second[0].event_count,
                second[0].created_at
            ),
            (Status::Open, 3, 61_000)
        );
        assert_eq!(
            second[0].anomalies.len(),
            3,
            "the earlier anomalies are part of the evidence"
        );
        let strong = tracker.step(
            62_000,
            Changes {
                labels: vec![label("db")],
                anomalies: vec![anomaly("db", "cpu", 62_000, 0.95)],
                ..Default::default()
            },
        );
        assert_eq!(strong.len(), 1, "one strong anomaly opens at once");
        assert_eq!(strong[0].services, vec![Arc::<str>::from("db")]);
        assert!(
            strong[0].confidence_milli <= 350,
            "a lone service is not a confident diagnosis"
        );
    }
}
