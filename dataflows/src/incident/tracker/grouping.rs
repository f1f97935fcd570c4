//! Who belongs together: which incidents an episode may join (its service or a neighbour, within
//! the merge window), joining, merging, and opening an incident from candidates that hold the
//! evidence.

use super::*;

impl Tracker {
    /// The open incidents the (new) episode `key` may join, oldest first: those with a member
    /// that is its service or connected to it whose onset is within the episode's merge window
    /// of its start. A fault spreading hop by hop joins; a new fault in the same services minutes
    /// later does not.
    pub(super) fn joinable(&self, t: Time, key: EpisodeKey) -> Vec<String> {
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
    pub(super) fn window_of(&self, e: &TrackedEpisode) -> u64 {
        self.config
            .merge_window_ms
            .max(e.interval_ms.saturating_mul(2))
    }

    /// The services an anomaly of `service` connects to: its callers and callees, and with
    /// silent intermediates the services one silent service away.
    pub(super) fn reachable(&self, service: &Service) -> BTreeSet<Service> {
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

    pub(super) fn neighbours<'a>(
        &'a self,
        service: &'a Service,
    ) -> impl Iterator<Item = Service> + 'a {
        let from = |map: &'a BTreeMap<(Service, Service), i64>| {
            map.range((service.clone(), Service::from(""))..)
                .take_while(move |((a, _), _)| a == service)
                .map(|((_, b), _)| b.clone())
        };
        from(&self.edges).chain(from(&self.callers))
    }

    /// Puts episode `key` into incident `id`.
    pub(super) fn join(&mut self, key: EpisodeKey, id: &str, evidence: bool, step: &mut Step) {
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
    pub(super) fn merge_all(
        &mut self,
        t: Time,
        ids: &[String],
        why: &str,
        step: &mut Step,
    ) -> String {
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
    pub(super) fn merge_across_added_edges(
        &mut self,
        t: Time,
        edges: &[EdgeChange],
        step: &mut Step,
    ) {
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
    pub(super) fn open_candidates(&mut self, t: Time, step: &mut Step) {
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
                let keys = episodes_of(&self.episodes, &recent, &part);
                self.open_part(t, &seed, keys, step);
            }
        }
    }

    /// Opens an incident of candidate episodes `keys` (connected services) if they hold the
    /// evidence.
    pub(super) fn open_part(
        &mut self,
        t: Time,
        seed: &Service,
        keys: Vec<EpisodeKey>,
        step: &mut Step,
    ) {
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
    pub(super) fn candidate_group(&self, seed: &Service) -> BTreeSet<Service> {
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
    pub(super) fn evidence(&self, keys: &[EpisodeKey]) -> Option<String> {
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
    pub(super) fn deploy_before(&self, service: &Service, onset: Time) -> Option<(Time, Arc<str>)> {
        self.deploys
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(at, _)| *at <= onset && onset - at <= self.config.deploy_lookback_ms)
            .max_by_key(|(at, _)| *at)
            .cloned()
    }
}
