//! The job's errors outside the dataflow: what went wrong and, where it helps, what to do.
//! Bad records are not errors: they are data, dead-lettered and counted.

use std::io;
use std::path::PathBuf;

/// Why `incidentflow` stopped. Each prints as the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job file cannot be read.
    #[error("cannot read config {}: {source}", path.display())]
    ConfigUnreadable { path: PathBuf, source: io::Error },
    /// The job file is not valid.
    #[error("config {}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// Settings from the environment that are not valid (no file to name).
    #[error("{0}")]
    Settings(String),
    /// Flags that do not go together, or a flag's value that is not valid.
    #[error("{0}")]
    Usage(String),
    /// A file the command reads holds something else than it should (a line that is not a
    /// record of its kind, an output that is not the one the checkpoint describes).
    #[error("{0}")]
    InvalidFile(String),
    /// A part of the job could not start (a thread, the signal handler, the HTTP endpoints).
    #[error("{0}")]
    Startup(String),
    /// An input cannot be read.
    #[error("cannot read {what} {name}: {source}")]
    Input {
        what: &'static str,
        name: String,
        source: io::Error,
    },
    /// An output cannot be written.
    #[error("cannot write {what} to {name}: {source} (check the path and free space)")]
    Output {
        what: &'static str,
        name: String,
        source: io::Error,
    },
    /// An output failed while the job ran; the run's counts are still printed.
    #[error("{0}")]
    OutputFailed(String),
    /// The workers could not be started (for a cluster: a peer is unreachable or a port taken).
    #[error("cannot start the workers: {0}")]
    Cluster(String),
    /// A worker thread stopped abnormally.
    #[error("a worker failed: {0}")]
    Worker(String),
    /// An evaluation could not be made.
    #[error(transparent)]
    Eval(#[from] incidentflow_eval::EvalError),
    /// Kafka cannot be reached or refused a request.
    #[error("kafka: {0}")]
    Kafka(String),
}
