//! Runbooks and silences: what the job's settings and its silences input add to an incident
//! version before it is written. A pure function of the version and of the silences in the
//! dataflow at its time, so a replay annotates exactly as the live run did.
//!
//! Silences are an input collection: the settings' ones are in force from their start; one that
//! arrives on the silences input enters the collection at its start, or at the input's time
//! when it arrives later than that (a version already written is not changed). Each version waits
//! here until the silences' frontier has passed its time, then is matched against every silence
//! at or before it. A replay reads the silences input to its end first, so it applies each from
//! its start: the same as the live run for a silence made before its start reached the job (the
//! usual case: Alertmanager's start "now" is ahead of the job's event clock by its lateness), and
//! earlier than the live run for one backdated past what the job had already written.
//!
//! Both match the likely cause (the first ranked cause): its service, and for runbooks the metric
//! and direction of its strongest anomaly. Remediation stays advisory: the runbook's action is a
//! recommendation for a person; incidentflow never executes anything, because a wrong root cause
//! acted on automatically turns one outage into two.

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;
use timely::progress::Antichain;

use crate::held::{Held, Update};
use crate::incident::Incident;
use crate::records::Direction;
use crate::time::Time;

/// `[[runbooks]]`: incidents that match get a runbook link and a recommended action. Advisory:
/// nothing is ever executed.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runbook {
    /// A name for it.
    pub name: String,
    /// Service names (a trailing `*` matches a prefix); empty: any. Matched against the likely
    /// cause's service.
    pub services: Vec<String>,
    /// Metric names (a trailing `*` matches a prefix); empty: any. Matched against the likely
    /// cause's anomalies.
    pub metrics: Vec<String>,
    /// `up` or `down`; empty: either.
    pub direction: String,
    /// The runbook's address.
    pub url: String,
    /// What a responder should do first.
    pub action: String,
}

/// A silence or maintenance window, its times parsed: a matching version is still computed and
/// written, marked suppressed with the rule's name, and not sent to the alert outputs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SilenceRule {
    /// Its name (shown in `suppressed_by`).
    pub name: String,
    /// Service names (a trailing `*` matches a prefix), matched against the likely cause's
    /// service; empty: any.
    pub services: Vec<String>,
    /// From (event time of the incident version).
    pub start: Time,
    /// Until (exclusive).
    pub end: Time,
}

/// Whether `name` matches one of `patterns` (a trailing `*` matches a prefix); empty: any.
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
}

/// The runbooks and the settings' silences, ready to match.
#[derive(Clone, Debug, Default)]
pub struct Annotator {
    runbooks: Vec<Runbook>,
    silences: Vec<SilenceRule>,
}

impl Annotator {
    /// From the settings' runbooks and silences.
    pub fn new(runbooks: Vec<Runbook>, silences: Vec<SilenceRule>) -> Self {
        Annotator { runbooks, silences }
    }

    /// Whether the settings add nothing.
    pub fn is_empty(&self) -> bool {
        self.runbooks.is_empty() && self.silences.is_empty()
    }

    /// Sets the version's runbook and suppression; `arrived`: the silences input's rules in force
    /// at the version's time, after the settings' ones.
    pub fn annotate<'a>(
        &'a self,
        incident: &mut Incident,
        arrived: impl IntoIterator<Item = &'a SilenceRule>,
    ) {
        let Some(cause) = incident.ranked_causes.first() else {
            return;
        };
        let service = &*cause.service;
        // The cause's strongest anomaly (the supports are strongest first).
        let strongest = incident.anomalies.iter().find(|a| &*a.service == service);
        let metric = strongest.map_or("", |a| &*a.metric_name);
        let direction = strongest.map_or("", |a| match a.direction {
            Direction::Up => "up",
            Direction::Down => "down",
        });
        incident.notes.runbook = self
            .runbooks
            .iter()
            .find(|r| {
                matches_any(&r.services, service)
                    && matches_any(&r.metrics, metric)
                    && (r.direction.is_empty() || r.direction == direction)
            })
            .map(|r| (r.name.clone(), r.url.clone(), r.action.clone()));
        let at = incident.updated_at;
        incident.notes.suppressed_by = self
            .silences
            .iter()
            .chain(arrived)
            .find(|s| (s.start..s.end).contains(&at) && matches_any(&s.services, service))
            .map(|s| s.name.clone());
    }
}

/// Annotates every incident version on worker 0: each waits until `silences` (the silences input,
/// each rule at the time it is in force from) has passed its time, then is matched against the
/// settings' rules and every arrived rule at or before it.
pub fn annotate_incidents<'s>(
    incidents: Stream<'s, Time, Vec<Update<Incident>>>,
    silences: Stream<'s, Time, Vec<Update<SilenceRule>>>,
    annotator: Annotator,
) -> Stream<'s, Time, Vec<Update<Incident>>> {
    incidents.binary_frontier::<_, CapacityContainerBuilder<Vec<Update<Incident>>>, _, _, _, _>(
        silences,
        Exchange::new(|_: &Update<Incident>| 0u64),
        Exchange::new(|_: &Update<SilenceRule>| 0u64),
        "Annotate",
        move |_capability, _info| {
            let mut held: Held<Incident> = Held::default();
            let mut ready: Vec<Update<Incident>> = Vec::new();
            // The silences input's rules, each with the time it entered.
            let mut arrived: Vec<(SilenceRule, Time)> = Vec::new();
            move |(incidents_in, incidents_frontier), (silences_in, silences_frontier), output| {
                incidents_in.for_each(|capability, data| {
                    if let Some(cap) = capability.retain_least(0) {
                        held.hold(cap, std::mem::take(data));
                    }
                });
                silences_in.for_each(|_capability, data| {
                    for (rule, time, copies) in data.drain(..) {
                        if copies > 0 {
                            arrived.push((rule, time));
                        }
                    }
                });
                // Complete when both inputs have passed it (the times are totally ordered).
                let mut complete = Antichain::new();
                for t in incidents_frontier
                    .frontier()
                    .iter()
                    .chain(silences_frontier.frontier().iter())
                {
                    complete.insert(*t);
                }
                if let Some(cap) = held.release(complete.borrow(), &mut ready) {
                    ready.sort_by_key(|(_, t, _)| *t);
                    let mut session = output.session(&cap);
                    for (mut incident, time, copies) in ready.drain(..) {
                        let in_force = arrived.iter().filter(|(_, at)| *at <= time).map(|(r, _)| r);
                        annotator.annotate(&mut incident, in_force);
                        session.give((incident, time, copies));
                    }
                }
                held.settle(complete.borrow());
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use differential_dataflow::input::InputSession;
    use timely::dataflow::operators::Inspect;

    use super::*;
    use crate::incident::{Cause, Severity, Status};

    /// A version of incident `id` at `at`, blaming `service`.
    fn version(id: &str, at: Time, service: &str) -> Incident {
        Incident {
            incident_id: id.into(),
            status: Status::Open,
            version: 1,
            created_at: at,
            updated_at: at,
            namespace: None,
            severity: Severity::Low,
            services: vec![service.into()],
            silent_services: Vec::new(),
            event_count: 1,
            anomalies: Vec::new(),
            deploys: Vec::new(),
            ranked_causes: vec![Cause {
                service: service.into(),
                score_milli: 900,
                metric: None,
                strength_milli: 1000,
                reasons: Vec::new(),
            }],
            confidence_milli: 900,
            change: String::new(),
            merged_into: None,
            split_from: None,
            notes: Default::default(),
        }
    }

    fn rule(name: &str, service: &str, start: Time, end: Time) -> SilenceRule {
        SilenceRule {
            name: name.into(),
            services: vec![service.into()],
            start,
            end,
        }
    }

    /// Runs the operator at `workers` threads: versions of `db` at 10, 20, ..., 90; silences
    /// entered while the input is at `entered_at` (each at its start, or then if later). Returns
    /// (version time, suppressed by) in time order.
    fn run(
        workers: usize,
        silences: Vec<SilenceRule>,
        entered_at: Time,
    ) -> Vec<(Time, Option<String>)> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        let settings = Annotator::new(Vec::new(), vec![rule("settings", "db", 80, 85)]);
        timely::execute(timely::Config::process(workers), move |worker| {
            let (out, settings, silences) = (out.clone(), settings.clone(), silences.clone());
            let (mut versions, mut rules) = worker.dataflow::<Time, _, _>(|scope| {
                let mut versions = InputSession::<Time, Incident, isize>::new();
                let mut rules = InputSession::<Time, SilenceRule, isize>::new();
                annotate_incidents(
                    versions.to_collection(scope).inner,
                    rules.to_collection(scope).inner,
                    settings,
                )
                .inspect(move |(v, t, _)| {
                    out.lock()
                        .unwrap()
                        .push((*t, v.notes.suppressed_by.clone()));
                });
                (versions, rules)
            });
            let mine = worker.index() == 0;
            for t in (10..100).step_by(10) {
                if t == entered_at && mine {
                    for r in &silences {
                        rules.update_at(r.clone(), r.start.max(t), 1);
                    }
                }
                if mine {
                    versions.update_at(version("i", t, "db"), t, 1);
                }
                versions.advance_to(t + 1);
                rules.advance_to(t + 1);
            }
        })
        .unwrap();
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        seen
    }

    #[test]
    fn a_silence_applies_from_its_start_or_from_when_it_entered_and_only_to_its_service() {
        let silences = vec![rule("work", "db", 30, 60), rule("other", "web", 0, 100)];
        // Entered before its start: in force from its start, as a replay would read it.
        let early = run(1, silences.clone(), 10);
        let names: Vec<Option<&str>> = early.iter().map(|(_, s)| s.as_deref()).collect();
        assert_eq!(
            names,
            [
                None,
                None,
                Some("work"),
                Some("work"),
                Some("work"),
                None,
                None,
                Some("settings"),
                None
            ]
        );
        // Entered at 40, after its start: versions already written at 30 stay as they were.
        let late = run(1, silences.clone(), 40);
        assert_eq!(late[2], (30, None));
        assert_eq!(late[3], (40, Some("work".into())));
        // The same at four workers.
        assert_eq!(run(4, silences.clone(), 10), early);
        assert_eq!(run(4, silences, 40), late);
    }
}
