//! Where the dataflow's records go.
//!
//! * `records`: the writers of anomalies, challengers and incident versions (in event-time
//!   order, on worker 0, identical at every worker count); what the run found (`Outcome`).
//! * `dead_letters`: the refused records (a file, or a `.dlq` topic per source) and the counts.
//! * `kafka`: the keyed producers and the dead-letter topics.
//! * `checkpoint`: how far the outputs are durable, for a restart that loses nothing.

pub mod checkpoint;
pub mod dead_letters;
pub mod kafka;
pub mod records;
