//! Evaluation: how right incidentflow's output is. `incidentflow eval` calls it; it reads the
//! files it scores and, when asked, writes its report as JSON.
//!
//! | module | what it holds |
//! |---|---|
//! | [`truth`] | the ground-truth faults and the anomalies as eval reads them; ratio and percentile |
//! | [`eval`] | anomalies and incidents scored against the truth; the report and its text |
//! | [`compare`] | champion and challengers side by side, as episodes |
//! | [`feedback`] | responder labels joined to incidents, and what they say |

pub mod compare;
pub mod eval;
pub mod feedback;
pub mod truth;

use std::io;

/// Why an evaluation could not be made. Each prints as the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file cannot be read.
    #[error("cannot read {what} {name}: {source}")]
    Input {
        what: &'static str,
        name: String,
        source: io::Error,
    },
    /// A file holds something else than it should.
    #[error("{0}")]
    InvalidFile(String),
    /// The report cannot be written.
    #[error("cannot write {what} to {name}: {source} (check the path and free space)")]
    Output {
        what: &'static str,
        name: String,
        source: io::Error,
    },
}
