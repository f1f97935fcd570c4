//! How an incident ends and is told: its longest life, its resolve after the grace, and the
//! versions published (throttled updates, forced opens, merges, splits and resolves).

use super::*;

impl Tracker {
    /// Starts the grace of an incident that nothing keeps alive any more, and stops it for one
    /// that something keeps alive again.
    pub(super) fn follow_life(&mut self, t: Time, step: &mut Step) {
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

    pub(super) fn resolve_due(&mut self, t: Time, step: &mut Step) {
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

    pub(super) fn cancel_timers(&mut self, incident: &Open) {
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
    pub(super) fn publish(&mut self, t: Time, mut step: Step) -> Vec<Incident> {
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
    pub(super) fn version(&self, incident: &Open, t: Time, status: Status) -> Incident {
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
    pub(super) fn silent_links(&self, incident: &Open) -> Vec<Service> {
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
