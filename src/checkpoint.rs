//! Checkpoints (`--checkpoint FILE`): how far the outputs are durable, so that a restart loses
//! nothing and repeats nothing that differs.
//!
//! * The file (JSON, replaced atomically: written beside, synced, renamed) holds, for each output
//!   (anomalies, incidents), the event time before which everything it will ever write has been
//!   written and flushed (Kafka: delivered), and for a file output its length at that point.
//!   `output_time` is the least of them.
//! * A restart reads the inputs again from their beginning (the outputs are a deterministic
//!   function of the input, so everything before an output's mark comes out the same and is not
//!   written again), truncates each output file to its recorded length, and writes each output
//!   from its own mark on. A Kafka output may receive again records at or after `output_time` that
//!   the killed run had already sent: the same records with the same keys, which a compacted topic
//!   or a consumer keyed on the id absorbs.
//! * What this first version lacks: the restart re-reads the whole input (not only the window
//!   before the checkpoint), and consumer offsets are not committed to Kafka.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use incidentflow_dataflows::time::Time;
use serde::{Deserialize, Serialize};

use crate::error::JobError;

/// The checkpoint file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// Every output is durable before this event time (ms since the epoch).
    pub output_time: Time,
    /// Per output.
    pub outputs: BTreeMap<String, OutputMark>,
}

/// One output's durable point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputMark {
    /// Everything before this event time is written and flushed.
    pub durable_before: Time,
    /// A file output's length at that point.
    pub bytes: Option<u64>,
}

impl Checkpoint {
    /// Reads a checkpoint file; None when it does not exist (a first run).
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, JobError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| JobError::Config {
                    path: path.to_owned(),
                    message: format!("not a checkpoint: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(JobError::Input {
                what: "checkpoint",
                name: path.display().to_string(),
                source,
            }),
        }
    }

    /// Where `what` resumes: its recorded length, if it was a file.
    pub fn bytes(&self, what: &str) -> Option<u64> {
        self.outputs.get(what).and_then(|m| m.bytes)
    }
}

/// Keeps the checkpoint file up to date as the sinks report what is durable.
pub struct Checkpointer {
    path: PathBuf,
    state: Checkpoint,
    every: Duration,
}

impl Checkpointer {
    /// A checkpointer for the outputs `names`, rewriting the file at most `every`, starting from
    /// `resume` when restarting.
    pub fn new(
        path: PathBuf,
        names: &[&str],
        resume: Option<&Checkpoint>,
        every: Duration,
    ) -> Self {
        let mut state = resume.cloned().unwrap_or(Checkpoint {
            version: 1,
            ..Default::default()
        });
        state.outputs.retain(|k, _| names.contains(&k.as_str()));
        for name in names {
            state.outputs.entry((*name).to_string()).or_default();
        }
        Checkpointer { path, state, every }
    }

    /// How often each output should make itself durable and report.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// `what` is durable before `before` (its file `bytes` long): rewrites the file.
    pub fn durable(&mut self, what: &str, before: Time, bytes: Option<u64>) -> Result<(), String> {
        let mark = self.state.outputs.entry(what.to_string()).or_default();
        mark.durable_before = mark.durable_before.max(before);
        if bytes.is_some() {
            mark.bytes = bytes;
        }
        let output_time = self
            .state
            .outputs
            .values()
            .map(|m| m.durable_before)
            .min()
            .unwrap_or(0);
        self.state.output_time = self.state.output_time.max(output_time);
        self.write()
    }

    fn write(&mut self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.state).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("tmp");
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
        written
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("cannot write checkpoint {}: {e}", self.path.display()))
    }
}
