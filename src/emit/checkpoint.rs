//! Checkpoints (`--checkpoint FILE`): how far the outputs are durable, so that a restart loses
//! nothing and repeats nothing that differs.
//!
//! * The file (JSON, replaced atomically: written beside, synced, renamed) holds, for each output
//!   (anomalies, incidents), the event time before which everything it will ever write has been
//!   written and flushed (Kafka: delivered), for a file output its length at that point, and for
//!   the incidents the earliest start of those open then. `output_time` is the least of the marks.
//! * A restart re-reads the input (the outputs are a deterministic function of it, so everything
//!   before an output's mark comes out the same and is not written again), truncates each output
//!   file to its recorded length, and writes each output from its own mark on. A file input is
//!   read from its beginning, and so is a Kafka input when the champion's state is its history
//!   (the change detector); with the z-score as champion, from [`Checkpoint::reread_from`]: the
//!   baseline window, the merge window and the grace (and the allowed lateness) before the
//!   earlier of the marks and the start of the oldest incident open at its mark, which is what
//!   the state at the marks depends on. A Kafka output may receive again records at or after its
//!   mark that the killed run had already sent: the same records with the same keys, which a
//!   compacted topic or a consumer keyed on the id absorbs.
//! * Consumer offsets are committed to the group `incidentflow` once the outputs of the records
//!   before them are durable; the restart relies on the file, not on them.

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
    /// Per Kafka partition (`topic[partition]`): the offset before which every record's direct
    /// outputs are durable, as committed to the consumer group `incidentflow`.
    #[serde(default)]
    pub committed: BTreeMap<String, i64>,
}

/// One output's durable point.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputMark {
    /// Everything before this event time is written and flushed.
    pub durable_before: Time,
    /// A file output's length at that point.
    pub bytes: Option<u64>,
    /// Incidents: the earliest start (through splits) of those open at `durable_before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_since: Option<Time>,
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

    /// The event time from which a restart re-reads the input to rebuild the state at every
    /// output's mark: `history` (the baseline window, merge window, grace and allowed lateness)
    /// before the earliest mark or open incident's start.
    pub fn reread_from(&self, history: Time) -> Time {
        let needed = self
            .outputs
            .values()
            .map(|m| m.durable_before.min(m.open_since.unwrap_or(Time::MAX)))
            .min()
            .unwrap_or(0);
        needed.saturating_sub(history)
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
    /// Progress marks of the Kafka partitions: (next offset, newest timestamp), oldest first.
    marks: BTreeMap<(String, i32), Vec<(i64, Time)>>,
    /// Commits consumer offsets to Kafka (when the input is Kafka).
    committer: Option<rdkafka::consumer::BaseConsumer>,
    /// Outputs that have written and flushed everything (the run's end).
    done: std::collections::BTreeSet<String>,
    /// Every input record has been read and every mark received.
    inputs_done: bool,
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
        Checkpointer {
            path,
            state,
            every,
            marks: BTreeMap::new(),
            committer: None,
            done: Default::default(),
            inputs_done: false,
        }
    }

    /// Commits consumer offsets of the Kafka input to the brokers as the outputs become durable.
    pub fn commit_to(&mut self, client: &crate::kafka::KafkaClient) -> Result<(), String> {
        let consumer = client
            .config()
            .set("group.id", "incidentflow")
            .set("enable.auto.commit", "false")
            .set("log_level", "3")
            .create()
            .map_err(|e| {
                format!(
                    "cannot create the offset committer for {}: {e}",
                    client.brokers
                )
            })?;
        self.committer = Some(consumer);
        Ok(())
    }

    /// Commits what the latest marks allow and rewrites the file (marks may come after the
    /// outputs' last report).
    pub fn settle(&mut self) -> Result<(), String> {
        self.inputs_done = true;
        self.commit();
        self.write()
    }

    /// `what` has written and flushed everything it ever will in this run.
    pub fn output_done(&mut self, what: &str) {
        self.done.insert(what.to_owned());
    }

    /// A partition's progress (see `Diagnostic::Mark`).
    pub fn mark(&mut self, topic: &str, partition: i32, next_offset: i64, newest: Time) {
        let marks = self.marks.entry((topic.to_owned(), partition)).or_default();
        if marks.last().is_none_or(|(o, _)| *o < next_offset) {
            marks.push((next_offset, newest));
        }
    }

    /// Moves each partition's committed offset to its latest mark whose records' direct outputs
    /// are all durable (newest before `output_time`), and commits them.
    fn commit(&mut self) {
        // At the end of the run, with every output flushed, every record read is reflected.
        let all_done = self.inputs_done && self.state.outputs.keys().all(|k| self.done.contains(k));
        let output_time = if all_done {
            Time::MAX
        } else {
            self.state.output_time
        };
        let mut list = rdkafka::TopicPartitionList::new();
        for ((topic, partition), marks) in &mut self.marks {
            let Some(i) = marks.iter().rposition(|(_, newest)| *newest < output_time) else {
                continue;
            };
            let offset = marks[i].0;
            marks.drain(..i);
            let name = format!("{topic}[{partition}]");
            if self.state.committed.get(&name) != Some(&offset) {
                self.state.committed.insert(name, offset);
                let _ =
                    list.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(offset));
            }
        }
        if let Some(consumer) = &self.committer {
            if list.count() > 0 {
                use rdkafka::consumer::Consumer;
                // Best effort: a failed commit is retried with the next checkpoint; the
                // checkpoint file, not the group offset, is what a restart relies on.
                let _ = consumer.commit(&list, rdkafka::consumer::CommitMode::Sync);
            }
        }
    }

    /// How often each output should make itself durable and report.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// `what` is durable before `before` (its file `bytes` long, the oldest incident open then
    /// started at `open_since`): rewrites the file.
    pub fn durable(
        &mut self,
        what: &str,
        before: Time,
        bytes: Option<u64>,
        open_since: Option<Time>,
    ) -> Result<(), String> {
        let mark = self.state.outputs.entry(what.to_string()).or_default();
        if before >= mark.durable_before {
            mark.durable_before = before;
            mark.open_since = open_since;
        }
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
        self.commit();
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
