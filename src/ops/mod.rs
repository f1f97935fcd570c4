//! Operating the job.
//!
//! * `metrics`: the process's counters and gauges, in the Prometheus text format.
//! * `http`: `/metrics`, `/healthz` and `/ready`.
//! * `shutdown`: SIGTERM drains the outputs and checkpoints.
//! * `log`: JSON logs off a terminal, filtered by `RUST_LOG`.
//! * `feedback_book`: a running job's responder labels, for `/metrics`.
//! * `clock`: the wall clock in milliseconds.
//! * `process`: this process's CPU time and peak memory.

pub mod clock;
pub mod feedback_book;
pub mod http;
pub mod log;
pub mod metrics;
pub mod process;
pub mod shutdown;
