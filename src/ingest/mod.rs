//! Where the job's records come from, and how they enter the dataflow.
//!
//! * `files`: a file, standard input or the embedded demo, cut into partitions at line
//!   boundaries; the line reader.
//! * `feed`: a worker's partitions decoded, checked for lateness and fed in event time; refused
//!   records to the dead letters. `feed/events.rs`: the topology and deploy events (worker 0);
//!   `feed/inputs.rs`: the dataflow's inputs, advanced together (silences entered there).
//! * `kafka`: the consumers (the samples topic's partitions per worker, bounded reads, followers).
//! * `topology`: `kafka` as an event file argument, and the static YAML topology.
//! * `side_input`: feedback and silences, read beside the samples; `silences`: the silences
//!   read, queued for worker 0's feed, which enters them into the dataflow.
//! * `progress`: the Kafka partitions' progress on a terminal or in the log.

pub mod feed;
pub mod files;
pub mod kafka;
pub mod progress;
pub mod remote_write;
pub mod side_input;
pub mod silences;
pub mod spans;
pub mod topology;
