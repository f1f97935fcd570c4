//! Episodes coming and going: a new one joins an incident or waits as a candidate, an update
//! grows it, a close or a silence ends it (and may start its incident's grace).

use super::*;

impl Tracker {
    pub(super) fn apply_events(&mut self, t: Time, anomalies: &[Anomaly], step: &mut Step) {
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

    pub(super) fn new_episode(&mut self, t: Time, key: EpisodeKey, a: &Anomaly, step: &mut Step) {
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

    pub(super) fn grow_episode(&mut self, key: EpisodeKey, a: &Anomaly, step: &mut Step) {
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
    pub(super) fn heard_from(&mut self, key: EpisodeKey, at: Time) {
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
    pub(super) fn end_silent_episodes(&mut self, t: Time, step: &mut Step) {
        while let Some((due, key)) = self.silences.first().copied() {
            if due > t {
                break;
            }
            self.silences.pop_first();
            self.close_episode(t, key, due, true, step);
        }
    }

    /// Ends episode `key` at `at` (`silent`: it stopped reporting rather than closed).
    pub(super) fn close_episode(
        &mut self,
        t: Time,
        key: EpisodeKey,
        at: Time,
        silent: bool,
        step: &mut Step,
    ) {
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
}
