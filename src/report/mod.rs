//! What the job tells the person who ran it.
//!
//! * `summary`: the end-of-run summary (and its JSON for `--summary-out`), the anomaly digest.
//! * `review`: an incidents file summarised for a responder (`incidentflow review`).
//! * `demo`: the embedded demo scenario that `incidentflow run` runs with no input.

pub mod demo;
pub mod review;
pub mod summary;
