//! Incidents scored against the ground truth: versions grouped into incidents, merged ones folded
//! into their survivor, each fault's matching incidents and the rank of its root among the first
//! one's causes, and the incident-level figures (see the rules in [`crate::eval`]).

use std::collections::BTreeMap;

use incidentflow_dataflows::time::Time;

use crate::eval::report::{FaultScore, IncidentFigures};
use crate::truth::{ratio, AnomalyRef, TruthFault};

/// What eval reads of an incident version.
#[derive(Clone, Debug)]
pub struct IncidentVersion {
    /// Id.
    pub incident_id: String,
    /// Version number (later wins).
    pub version: u64,
    /// Start.
    pub created_at: Time,
    /// This version's time.
    pub updated_at: Time,
    /// Member services.
    pub services: Vec<String>,
    /// Ranked causes, most likely first.
    pub causes: Vec<String>,
    /// The incident this one was merged into, if it was.
    pub merged_into: Option<String>,
}

/// An incident as scored: its newest version, and the span (from, to) of all its versions.
type Spanned = (IncidentVersion, Time, Time);

/// Scores the incident `versions` against `truth` (`spans`: each fault's [start, end + grace]),
/// filling the incident columns of `per_fault`; `anomalies` (when given) for the compression.
pub(crate) fn score_incidents(
    truth: &[TruthFault],
    spans: &[(Time, Time)],
    versions: &[IncidentVersion],
    anomalies: Option<&[AnomalyRef]>,
    per_fault: &mut [FaultScore],
) -> IncidentFigures {
    let latest = newest_versions(versions);
    let (incidents, merged) = fold_merged(&latest);
    let (matching, first) = match_incidents(truth, spans, &incidents, per_fault);
    let ranks = rank_roots(truth, &first, per_fault);
    let total = incidents.len() as u64;
    IncidentFigures {
        total,
        merged,
        matching,
        precision: ratio(matching, total),
        recall: ratio(ranks.found, truth.len() as u64),
        duplicates: per_fault
            .iter()
            .map(|r| r.incidents.saturating_sub(1))
            .sum(),
        compression: anomalies
            .filter(|_| total > 0)
            .map(|a| a.len() as f64 / total as f64),
        root_cause_top1: ratio(ranks.top1, ranks.found),
        root_cause_top3: ratio(ranks.top3, ranks.found),
        propagating_top1: ratio(ranks.propagating_top1, ranks.propagating_found),
        propagating_top3: ratio(ranks.propagating_top3, ranks.propagating_found),
    }
}

/// The newest version of each incident, with the span of all its versions.
fn newest_versions(versions: &[IncidentVersion]) -> BTreeMap<&str, Spanned> {
    let mut latest: BTreeMap<&str, Spanned> = BTreeMap::new();
    for v in versions {
        let entry = latest
            .entry(&v.incident_id)
            .or_insert_with(|| (v.clone(), v.created_at, v.updated_at));
        entry.1 = entry.1.min(v.created_at);
        entry.2 = entry.2.max(v.updated_at);
        if (v.version, v.updated_at) >= (entry.0.version, entry.0.updated_at) {
            entry.0 = v.clone();
        }
    }
    latest
}

/// Merged incidents folded into the incident that survived them (the survivor's newest version,
/// its span widened by theirs), and how many were merged.
fn fold_merged(latest: &BTreeMap<&str, Spanned>) -> (BTreeMap<String, Spanned>, u64) {
    let mut merged = 0u64;
    let mut folded: BTreeMap<String, Spanned> = BTreeMap::new();
    for (id, (_, from, to)) in latest {
        let target = survivor(latest, id);
        if target != *id {
            merged += 1;
        }
        let (newest, target_from, target_to) = &latest[target.as_str()];
        let entry = folded
            .entry(target.clone())
            .or_insert_with(|| (newest.clone(), *target_from, *target_to));
        entry.1 = entry.1.min(*from);
        entry.2 = entry.2.max(*to);
    }
    (folded, merged)
}

/// The incident `id` ends up in, following `merged_into` (at most once per incident, so a loop
/// of merges stops).
fn survivor(latest: &BTreeMap<&str, Spanned>, id: &str) -> String {
    let mut id = id.to_string();
    for _ in 0..latest.len() {
        match latest
            .get(id.as_str())
            .and_then(|l| l.0.merged_into.clone())
        {
            Some(next) if latest.contains_key(next.as_str()) => id = next,
            _ => break,
        }
    }
    id
}

/// Matches every incident to the faults it overlaps and contains the root of, counting it in each
/// fault's row. Returns how many incidents matched a fault, and per fault its first matching
/// incident (the earliest to start) with its start.
fn match_incidents<'a>(
    truth: &[TruthFault],
    spans: &[(Time, Time)],
    incidents: &'a BTreeMap<String, Spanned>,
    per_fault: &mut [FaultScore],
) -> (u64, Vec<Option<(Time, &'a IncidentVersion)>>) {
    let mut matching = 0u64;
    let mut first: Vec<Option<(Time, &IncidentVersion)>> = vec![None; truth.len()];
    for (incident, from, to) in incidents.values() {
        let mut hit = false;
        for (k, f) in truth.iter().enumerate() {
            let (start, end) = spans[k];
            if *from <= end && *to >= start && incident.services.contains(&f.root_service) {
                hit = true;
                per_fault[k].incidents += 1;
                if first[k].is_none_or(|(t, _)| *from < t) {
                    first[k] = Some((*from, incident));
                }
            }
        }
        matching += u64::from(hit);
    }
    (matching, first)
}

/// How well the first matching incidents rank the faults' roots: counts over the faults found,
/// and over those of them that propagate (reached more than their root).
#[derive(Default)]
struct RootRanks {
    found: u64,
    top1: u64,
    top3: u64,
    propagating_found: u64,
    propagating_top1: u64,
    propagating_top3: u64,
}

/// Ranks each fault's root among its first matching incident's causes, writing the rank into its
/// row.
fn rank_roots(
    truth: &[TruthFault],
    first: &[Option<(Time, &IncidentVersion)>],
    per_fault: &mut [FaultScore],
) -> RootRanks {
    let mut ranks = RootRanks::default();
    for (k, f) in truth.iter().enumerate() {
        let Some((_, incident)) = first[k] else {
            continue;
        };
        let rank = incident
            .causes
            .iter()
            .position(|c| *c == f.root_service)
            .map(|r| r + 1);
        per_fault[k].root_rank = rank;
        let propagates = f.affected_services.len() > 1;
        ranks.found += 1;
        ranks.propagating_found += u64::from(propagates);
        if rank == Some(1) {
            ranks.top1 += 1;
            ranks.propagating_top1 += u64::from(propagates);
        }
        if rank.is_some_and(|r| r <= 3) {
            ranks.top3 += 1;
            ranks.propagating_top3 += u64::from(propagates);
        }
    }
    ranks
}
