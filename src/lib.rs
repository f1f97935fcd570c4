//! incidentflow, the job around the dataflow: where samples come from, how the dataflow of
//! `incidentflow_dataflows` is run on them, where its records go, and how the job is operated
//! and judged. Follow one sample:
//!
//! ```text
//! ingest (files, Kafka, topology, deploys, silences) ─▶ dataflow (incidentflow_dataflows::pipeline:
//!   samples → anomalies → incidents → annotated) ─▶ emit (files, Kafka, dead letters,
//!   checkpoint) ─▶ alerts (Alertmanager, PagerDuty, webhooks)
//! ```
//!
//! * `cli`: the command line's types; `run`: the `run` command, from flags to a finished run.
//! * `config`: the job file (TOML, layered with `INCIDENTFLOW__*`), checked.
//! * `ingest`: the input partitions, the feed (decoding, lateness, watermarks), Kafka consumers,
//!   topology and deploy inputs, side inputs, progress.
//! * `dataflow`: the timely workers, and the pipeline wired to the feed and the writers.
//! * `emit`: record writers in event-time order, dead letters, Kafka producers, checkpoints.
//! * `alerts`: alert outputs: policy, payloads, delivery.
//! * `ops`: the metrics registry, HTTP endpoints, shutdown, logs, the feedback book, the clock.
//! * `report`: what the job prints: the summary, the incident review, the embedded demo.
//! * `evaluate`: `incidentflow eval`, whose scoring (against ground truth and responder feedback)
//!   is the `incidentflow-eval` crate.
//! * `kafka`: the Kafka client settings shared by consumers and producers.
//! * `error`: the job's typed errors.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod dataflow;
pub mod emit;
pub mod error;
pub mod evaluate;
pub mod ingest;
pub mod kafka;
pub mod ops;
pub mod report;
pub mod run;
