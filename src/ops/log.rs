//! The job's log: `tracing` events to standard error, as readable lines on a terminal and as
//! JSON objects otherwise (for Kubernetes' log collectors), filtered by `RUST_LOG` (default:
//! `info` for incidentflow, `warn` for its libraries).
//!
//! The end-of-run summary and command errors are printed, not logged: they are the command's
//! answer, read by a person.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber (once; a second call does nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,incidentflow=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if std::io::stderr().is_terminal() {
        builder.compact().try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .try_init()
    };
}
