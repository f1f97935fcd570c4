//! incidentflow's load generator: seeded, deterministic scenarios written as plain iterators
//! (samples, topology edges, deploys, ground truth), with thin drivers in the binary.
//!
//! | module | what it holds |
//! |---|---|
//! | [`rng`] | the seeded PRNG |
//! | [`topology`] | the layered call graph and its changes over time |
//! | [`scenario`] | faults, deploys and the metric series, and the named scenarios |
//! | [`files`] | a scenario written to a directory, and pacing |
//! | [`kafka`] | a scenario produced to Kafka topics, at once or live |
//! | [`remote_write`] | samples sent as Prometheus remote write, at once or live |
//! | [`live`] | the live clock: a scenario played from now, every record restamped |

pub mod files;
pub mod kafka;
pub mod live;
pub mod remote_write;
/// The workspace's seeded random numbers (in the dataflow crate, shared with the tests).
pub use incidentflow_dataflows::rng;
pub mod scenario;
pub mod topology;
