//! Incidents: one per problem, from the champion's anomaly episodes and the service topology,
//! with a stable id, versions, merges and splits, and a ranked root-cause hypothesis.
//!
//! | file | what it holds |
//! |---|---|
//! | [`record`] | the incident version and its JSON (the output contract) |
//! | [`tracker`] | the lifecycle as a plain state machine, one completed time at a time (a folder: episodes, grouping, topology, lifecycle) |
//! | [`rank`] | the root-cause ranking |
//! | [`operator`] | the tracker in the dataflow, on worker 0 |
//! | `tests`, `properties` | the rules on hand-made episodes; every rule on seeded random streams |
//!
//! The rules:
//! * **An episode is the unit.** The champion reports each anomaly as an episode (open, updates,
//!   close). An open episode belongs to at most one incident; a service is in an incident while
//!   an episode of it that the incident owns is open.
//! * **Opening needs evidence a responder would accept.** Episodes in no incident wait as
//!   candidates, grouped with the candidates of the services they are connected to (an edge
//!   either way; with `silent_intermediates`, also through one service with no anomaly). A group
//!   opens an incident when it holds a **strong** anomaly (score at least `strong_score`), or
//!   anomalies on **`min_metrics` metrics** of one service at once (metrics that differ only in
//!   a unit or a statistic, `cpu_usage_m` and `cpu_usage_rate_pct`, count once), or **`min_services`
//!   services**, or a **deploy** of one of them within `deploy_lookback` before its anomaly.
//!   Only the group's episodes that began within the merge window of that moment join: the
//!   noise a service had before is not this problem's start.
//! * **Joining is bounded in time.** A new episode joins an open incident that holds its service
//!   or a neighbour only if that member's onset is within `merge_window` of the episode's start
//!   (or within two of its series' sample intervals, when that is longer: samples five minutes
//!   apart cannot show a spreading fault sooner). A fault spreading hop by hop joins; a fault
//!   minutes after another in the same services is a new incident, not a chain.
//! * **Merges and splits.** An episode that may join two incidents, or a new edge between their
//!   members, merges them when their onsets are within the merge window: the oldest keeps its id,
//!   the others are resolved `merged_into` it. A removed edge that leaves an incident's services
//!   in several connected parts splits it: the part with the earliest onset keeps the id, each
//!   other part opens `split_from` it.
//! * **It ends with the fault.** An incident stays open while one of its episodes that keeps it
//!   alive is open, and `grace` after the last of them closes; then it is resolved. The episodes
//!   that opened it keep it alive, and so does any that joined later once its score reaches
//!   `keep_alive_score`: weak anomalies alone never keep an incident open. An episode that has
//!   reported nothing for two heartbeats (`update_every`), or three of its series' intervals
//!   when longer, counts as ended: its series went away (a pod restarted under a new name) or
//!   hovers below its threshold (with the change detector, which knows each series' interval).
//!   Once every member has recovered, the next problem is a new incident.
//! * **Bounds.** An incident is resolved at the latest `max_duration` after it opened (its
//!   still-open episodes then count nowhere until they close, so a problem that lasts longer is
//!   not paged again until it changes); merging is bounded by the merge window.
//! * **Versions.** Opening, merging, splitting and resolving are published at once; other changes
//!   (services added, the first cause or the severity changed) at most once per
//!   `update_interval` of event time per incident.
//! * **Ids.** `incident_id` = `inc-` + a hash of the opening time and the least service name of
//!   the group: the same input gives the same id in every run, at every worker count.
//! * **Causes** and **severity**: see [`rank`] and [`tracker`].

pub mod operator;
pub mod rank;
pub mod record;
pub mod tracker;

pub use operator::track_incidents;
pub use record::{
    Cause, CauseRecord, Incident, IncidentRecord, Notes, Service, Severity, Status, Support,
};
pub use tracker::{Changes, CorrelationConfig, Tracker};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
