//! Where the dataflow's records go.
//!
//! * `records`: the writers of anomalies, challengers and incident versions (in event-time
//!   order, on worker 0, identical at every worker count) and of dead letters; what the run
//!   found (`Outcome`).
//! * `kafka`: the keyed producers and the dead-letter topics.
//! * `checkpoint`: how far the outputs are durable, for a restart that loses nothing.

pub mod checkpoint;
pub mod kafka;
pub mod records;
