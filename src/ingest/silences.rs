//! The silences input (`--silences FILE|kafka`): lines read by the side-input thread, checked,
//! and queued for worker 0's feed, which enters each into the dataflow's silences collection at
//! its start (or at the input's time, if that has passed it). The matching itself is the
//! dataflow's (`incidentflow_dataflows::annotate`), a function of event time.

use std::sync::{Arc, Mutex};

use incidentflow_dataflows::annotate::SilenceRule;

use crate::config::operations::Silence;
use crate::ops::metrics::Metrics;

/// Silences read and not yet entered into the dataflow: the reader's thread adds them, worker 0's
/// feed takes them.
#[derive(Clone, Default)]
pub struct SilenceQueue(Arc<Mutex<Vec<SilenceRule>>>);

impl SilenceQueue {
    /// A silence line from the side input: queued, or refused with its position and reason (and
    /// counted in `metrics`).
    pub fn line(&self, line: &[u8], position: &str, metrics: &Metrics) {
        match parse_silence(line, position) {
            Ok(rule) => {
                tracing::info!(position, name = %rule.name, "silence added");
                self.0.lock().unwrap_or_else(|p| p.into_inner()).push(rule);
            }
            Err(reason) => {
                metrics.side_input_refused("silences");
                tracing::warn!(position, "silence refused: {reason}");
            }
        }
    }

    /// The silences queued since the last call, in the order they were read.
    pub fn take(&self) -> Vec<SilenceRule> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A silence line, checked: its times parsed and in order, its name set.
fn parse_silence(line: &[u8], position: &str) -> Result<SilenceRule, String> {
    let silence = serde_json::from_slice::<Silence>(line).map_err(|e| e.to_string())?;
    if silence.name.is_empty() {
        return Err("name is empty".into());
    }
    silence.rule(position)
}
