//! The topology and deploy events of the feed (worker 0): read from their files or topics
//! before the samples, every valid event put into the dataflow at its own time (a static YAML
//! topology at time 0), refused lines to the dead letters; a job that follows the samples topic
//! also follows the event topics, and an event whose time has passed takes effect now.

use incidentflow_dataflows::decode::{decode_deploy, decode_edge};

use super::{message_lines, oversized, Feed, Inputs, Origin};
use crate::cli::Target;
use crate::error::JobError;
use crate::ingest::files::{InputSource, Partition};
use crate::ingest::topology::{is_yaml, static_yaml_topology};

impl Feed<'_> {
    /// Reads the topology and deploy files (worker 0 only; they are small) and puts every valid
    /// event into the dataflow at its own time, refused lines into the dead-letter output.
    pub fn load_events(&mut self, inputs: &mut Inputs) -> Result<(), JobError> {
        let max_line = self.config.input.max_line_bytes as usize;
        let mut follow: Vec<(String, Vec<(i32, i64)>)> = Vec::new();
        for (path, is_edges) in [(&self.spec.topology, true), (&self.spec.deploys, false)] {
            let path = match path {
                None => continue,
                Some(Target::File(path)) => path,
                Some(Target::Stdio) => {
                    return Err(JobError::Usage(
                        "standard input carries the samples: give the topology and deploys as files or kafka".into(),
                    ))
                }
                Some(Target::Kafka) => {
                let kafka = &self.spec.kafka;
                let topic = if is_edges {
                    &kafka.topology_topic
                } else {
                    &kafka.deploys_topic
                };
                let read = crate::ingest::kafka::read_to_end(&self.spec.kafka_client, topic)?;
                follow.push((topic.clone(), read.ends.clone()));
                for m in read.messages {
                    let name = crate::kafka::source_name(topic, m.partition);
                    for (info, line) in message_lines(&m.payload, m.offset, max_line) {
                        let at = Origin {
                            source: &name,
                            info,
                            key: m.key.as_deref(),
                        };
                        self.load_event(inputs, is_edges, at, &mut line.to_vec(), max_line);
                    }
                }
                continue;
                }
            };
            if is_edges && is_yaml(path) {
                for e in static_yaml_topology(path)? {
                    self.counts.read += 1;
                    self.counts.topology += 1;
                    self.counts.valid += 1;
                    inputs.edges.update_at(e, 0, 1);
                }
                continue;
            }
            let what = if is_edges { "topology" } else { "deploys" };
            read_lines(path, what, max_line, |at, line| {
                self.load_event(inputs, is_edges, at, line, max_line)
            })?;
        }
        match self.spec.spans.clone() {
            None => {}
            Some(Target::File(path)) => self.load_spans(inputs, &path, max_line)?,
            Some(Target::Stdio) => {
                return Err(JobError::Usage(
                    "standard input carries the samples: give the spans as a file or kafka".into(),
                ))
            }
            Some(Target::Kafka) => {
                let topic = self.spec.kafka.spans_topic.clone();
                let read = crate::ingest::kafka::read_to_end(&self.spec.kafka_client, &topic)?;
                follow.push((topic.clone(), read.ends.clone()));
                for m in read.messages {
                    let name = crate::kafka::source_name(&topic, m.partition);
                    for (info, line) in message_lines(&m.payload, m.offset, max_line) {
                        let at = Origin {
                            source: &name,
                            info,
                            key: m.key.as_deref(),
                        };
                        self.load_span_line(inputs, at, &mut line.to_vec(), max_line);
                    }
                }
            }
        }
        // A job that follows the samples topic follows these too: an edge or deploy that comes
        // later takes effect at its own time, or now if that time has passed.
        let live = matches!(self.spec.input, InputSource::Kafka { .. }) && !self.spec.until_end;
        if live && !follow.is_empty() {
            self.follower = Some(crate::ingest::kafka::EventFollower::open(
                &self.spec.kafka_client,
                &follow,
            )?);
        }
        Ok(())
    }

    /// Derives the topology from the spans file (see `ingest::spans`): each line a batch of
    /// spans, counted as one topology record, its edge changes into the dataflow at their times.
    fn load_spans(
        &mut self,
        inputs: &mut Inputs,
        path: &std::path::Path,
        max_line: usize,
    ) -> Result<(), JobError> {
        read_lines(path, "spans", max_line, |at, line| {
            self.load_span_line(inputs, at, line, max_line)
        })?;
        tracing::info!(
            spans = %path.display(),
            "topology from traces: {} edges valid at the end of the file",
            self.span_edges.valid().count()
        );
        Ok(())
    }

    /// One line (or Kafka message) of spans: its edge changes into the dataflow at their times
    /// (or now, if the input has passed them), or dead-lettered. Counted as one topology record.
    fn load_span_line(
        &mut self,
        inputs: &mut Inputs,
        at: Origin,
        line: &mut Vec<u8>,
        max_line: usize,
    ) {
        self.counts.read += 1;
        self.counts.topology += 1;
        let parsed = if at.info.oversized {
            Err(oversized(max_line))
        } else {
            crate::ingest::spans::parse_line(line)
        };
        match parsed {
            Ok(spans) => {
                self.counts.valid += 1;
                let mut changes = Vec::new();
                for span in spans {
                    self.span_edges.span(span, &mut changes);
                }
                let now = inputs.time();
                for change in changes {
                    let at = change.timestamp.max(now);
                    inputs.edges.update_at(change, at, 1);
                }
            }
            Err(invalid) => self.refuse(inputs, at, invalid, line),
        }
    }

    /// Puts the topology and deploy events that arrived since the last call into the dataflow.
    pub(super) fn follow_events(&mut self, inputs: &mut Inputs) {
        let Some(follower) = self.follower.take() else {
            return;
        };
        let max_line = self.config.input.max_line_bytes as usize;
        let topology_topic = self.spec.kafka.topology_topic.clone();
        let spans_topic = self.spec.kafka.spans_topic.clone();
        follower.drain(|m| {
            let is_edges = m.topic == topology_topic;
            let is_spans = m.topic == spans_topic;
            let name = crate::kafka::source_name(m.topic, m.partition);
            for (info, line) in message_lines(m.payload, m.offset, max_line) {
                let at = Origin {
                    source: &name,
                    info,
                    key: m.key,
                };
                if is_spans {
                    self.load_span_line(inputs, at, &mut line.to_vec(), max_line);
                } else {
                    self.load_event(inputs, is_edges, at, &mut line.to_vec(), max_line);
                }
            }
        });
        self.follower = Some(follower);
    }

    /// One line of the topology (`is_edges`) or deploys: into the dataflow at its time, or
    /// dead-lettered.
    fn load_event(
        &mut self,
        inputs: &mut Inputs,
        is_edges: bool,
        at: Origin,
        line: &mut Vec<u8>,
        max_line: usize,
    ) {
        self.counts.read += 1;
        if is_edges {
            self.counts.topology += 1;
        } else {
            self.counts.deploys += 1;
        }
        // An event whose time the input has passed (followed live) takes effect now.
        let now = inputs.time();
        let result = if at.info.oversized {
            Err(oversized(max_line))
        } else if is_edges {
            decode_edge(line).map(|e| inputs.edges.update_at(e.clone(), e.timestamp.max(now), 1))
        } else {
            decode_deploy(line)
                .map(|d| inputs.deploys.update_at(d.clone(), d.timestamp.max(now), 1))
        };
        match result {
            Ok(()) => self.counts.valid += 1,
            Err(invalid) => self.refuse(inputs, at, invalid, line),
        }
    }
}

/// Reads a small file (an edge list, deploys, spans) whole, line by line: each line that is not
/// blank handed to `on` with its position.
fn read_lines(
    path: &std::path::Path,
    what: &'static str,
    max_line: usize,
    mut on: impl FnMut(Origin<'_>, &mut Vec<u8>),
) -> Result<(), JobError> {
    let source = InputSource::Path(path.to_path_buf());
    let name = source.name();
    let error = |source| JobError::Input {
        what,
        name: name.clone(),
        source,
    };
    let len = std::fs::metadata(path).map_err(error)?.len();
    let mut reader = Partition {
        index: 0,
        start: 0,
        end: len,
        first_line: 1,
    }
    .open(&source, max_line)
    .map_err(error)?;
    let mut line = Vec::new();
    while let Some(info) = reader.next_line(&mut line).map_err(error)? {
        if !info.oversized && line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        on(Origin::line(&name, info), &mut line);
    }
    Ok(())
}
