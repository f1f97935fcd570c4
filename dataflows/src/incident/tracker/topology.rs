//! The topology changing under open incidents: an added edge may merge two, a removed one may
//! split one into its connected parts.

use super::*;

impl Tracker {
    pub(super) fn apply_topology(&mut self, t: Time, changes: &Changes, step: &mut Step) {
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

    /// A removed edge that leaves an open incident's services in several connected parts splits
    /// it: the part with the earliest onset keeps the id, each other part opens `split_from` it.
    pub(super) fn split_across_removed_edges(
        &mut self,
        t: Time,
        edges: &[EdgeChange],
        step: &mut Step,
    ) {
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
    pub(super) fn parts(&self, mut left: BTreeSet<Service>) -> Vec<BTreeSet<Service>> {
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

    pub(super) fn split_off(
        &mut self,
        t: Time,
        from: &str,
        part: BTreeSet<Service>,
        step: &mut Step,
    ) {
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
        let moving = episodes_of(&self.episodes, &parent.episodes, &part);
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
}
