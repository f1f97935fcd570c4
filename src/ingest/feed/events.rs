//! The topology and deploy events of the feed (worker 0): read from their files, topics or
//! standard input (when the samples are not there) before the samples, every valid event put
//! into the dataflow at its own time (a static YAML topology at time 0), refused lines to the
//! dead letters. A job that reads its samples live (following a topic, or by remote write) also
//! follows the event topics and standard input, and an event whose time has passed takes effect
//! now.

use incidentflow_dataflows::decode::{decode_deploy, decode_edge};

use super::{message_lines, oversized, Feed, Inputs, Origin};
use crate::cli::Target;
use crate::error::JobError;
use crate::ingest::files::{InputSource, LineInfo, Partition};
use crate::ingest::topology::{is_yaml, static_yaml_topology};

impl Feed<'_> {
    /// Reads the topology, deploys and spans (worker 0 only; from files, topics or standard
    /// input) and puts every valid event into the dataflow at its own time, refused lines into
    /// the dead-letter output; sets up the following of topics and standard input when live.
    pub fn load_events(&mut self, inputs: &mut Inputs) -> Result<(), JobError> {
        let max_line = self.config.input.max_line_bytes as usize;
        let mut follow: Vec<(String, Vec<(i32, i64)>)> = Vec::new();
        // The samples read live: the event topics and standard input are followed.
        let live = match self.spec.input {
            InputSource::Kafka { .. } => !self.spec.until_end,
            InputSource::RemoteWrite { .. } | InputSource::Stdin => true,
            InputSource::Path(_) | InputSource::Embedded { .. } => false,
        };
        self.events_on_stdin(inputs, live, max_line)?;
        let spec = self.spec;
        for kind in EventKind::ALL {
            match kind.target(spec) {
                None | Some(Target::Stdio) => {}
                Some(Target::Kafka) => {
                    let topic = kind.topic(&spec.kafka);
                    let read = crate::ingest::kafka::read_to_end(&spec.kafka_client, topic)?;
                    follow.push((topic.to_owned(), read.ends.clone()));
                    for m in read.messages {
                        let name = crate::kafka::source_name(topic, m.partition);
                        let key = m.key.as_deref();
                        self.load_message(inputs, kind, &name, &m.payload, m.offset, key);
                    }
                }
                Some(Target::File(path)) if matches!(kind, EventKind::Edges) && is_yaml(path) => {
                    for e in static_yaml_topology(path)? {
                        self.counts.read += 1;
                        self.counts.topology += 1;
                        self.counts.valid += 1;
                        inputs.edges.update_at(e, 0, 1);
                    }
                }
                Some(Target::File(path)) => {
                    let source = InputSource::Path(path.clone());
                    read_lines(&source, kind.name(), max_line, |at, line| {
                        self.load_kind(inputs, kind, at, line, max_line)
                    })?;
                    if matches!(kind, EventKind::Spans) {
                        tracing::info!(
                            spans = %path.display(),
                            "topology from traces: {} edges valid at the end of the file",
                            self.span_edges.valid().count()
                        );
                    }
                }
            }
        }
        // A job that reads its samples live follows these too: an edge or deploy that comes
        // later takes effect at its own time, or now if that time has passed.
        if live && !follow.is_empty() {
            self.follower = Some(crate::ingest::kafka::EventFollower::open(
                &self.spec.kafka_client,
                &follow,
            )?);
        }
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

    /// Reads the events on standard input (`--topology -`, `--deploys -` or `--spans -`, when
    /// the samples come from elsewhere): to its end now, or, when the samples are read `live`,
    /// followed on a thread of its own and taken in by [`Feed::follow_events`].
    fn events_on_stdin(
        &mut self,
        inputs: &mut Inputs,
        live: bool,
        max_line: usize,
    ) -> Result<(), JobError> {
        // `run` has checked that at most one is, and that the samples are not.
        let spec = self.spec;
        let on_stdin = EventKind::ALL
            .into_iter()
            .find(|kind| matches!(kind.target(spec), Some(Target::Stdio)));
        let Some(kind) = on_stdin else {
            return Ok(());
        };
        if live {
            self.stdin_events = Some((kind, follow_stdin(kind, max_line)?));
            return Ok(());
        }
        read_lines(&InputSource::Stdin, kind.name(), max_line, |at, line| {
            self.load_kind(inputs, kind, at, line, max_line)
        })
    }

    /// The lines of a Kafka message of `kind`'s topic, each into the dataflow or dead-lettered.
    fn load_message(
        &mut self,
        inputs: &mut Inputs,
        kind: EventKind,
        name: &str,
        payload: &[u8],
        offset: i64,
        key: Option<&[u8]>,
    ) {
        let max_line = self.config.input.max_line_bytes as usize;
        for (info, line) in message_lines(payload, offset, max_line) {
            let at = Origin {
                source: name,
                info,
                key,
            };
            self.load_kind(inputs, kind, at, &mut line.to_vec(), max_line);
        }
    }

    /// One event line of `kind` into the dataflow, or dead-lettered.
    fn load_kind(
        &mut self,
        inputs: &mut Inputs,
        kind: EventKind,
        at: Origin,
        line: &mut Vec<u8>,
        max_line: usize,
    ) {
        match kind {
            EventKind::Edges => self.load_event(inputs, true, at, line, max_line),
            EventKind::Deploys => self.load_event(inputs, false, at, line, max_line),
            EventKind::Spans => self.load_span_line(inputs, at, line, max_line),
        }
    }

    /// Puts the events that arrived since the last call (on the followed topics, on standard
    /// input) into the dataflow.
    pub(super) fn follow_events(&mut self, inputs: &mut Inputs) {
        let max_line = self.config.input.max_line_bytes as usize;
        if let Some((kind, lines)) = self.stdin_events.take() {
            for (info, mut line) in lines.try_iter().take(10_000) {
                self.load_kind(
                    inputs,
                    kind,
                    Origin::line("stdin", info),
                    &mut line,
                    max_line,
                );
            }
            self.stdin_events = Some((kind, lines));
        }
        let Some(follower) = self.follower.take() else {
            return;
        };
        let kafka = &self.spec.kafka;
        follower.drain(|m| {
            let Some(kind) = EventKind::ALL
                .into_iter()
                .find(|k| k.topic(kafka) == m.topic)
            else {
                return;
            };
            let name = crate::kafka::source_name(m.topic, m.partition);
            self.load_message(inputs, kind, &name, m.payload, m.offset, m.key);
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

/// Reads a small file (an edge list, deploys, spans) or standard input whole, line by line:
/// each line that is not blank handed to `on` with its position.
fn read_lines(
    source: &InputSource,
    what: &'static str,
    max_line: usize,
    mut on: impl FnMut(Origin<'_>, &mut Vec<u8>),
) -> Result<(), JobError> {
    let name = source.name();
    let error = |source| JobError::Input {
        what,
        name: name.clone(),
        source,
    };
    let end = match source {
        InputSource::Path(path) => std::fs::metadata(path).map_err(error)?.len(),
        _ => u64::MAX,
    };
    let mut reader = Partition {
        index: 0,
        start: 0,
        end,
        first_line: 1,
    }
    .open(source, max_line)
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

/// Which kind of event a stream carries.
#[derive(Clone, Copy, Debug)]
pub(super) enum EventKind {
    /// Topology edge changes.
    Edges,
    /// Deploys.
    Deploys,
    /// Spans, each client -> server call an edge.
    Spans,
}

impl EventKind {
    const ALL: [EventKind; 3] = [EventKind::Edges, EventKind::Deploys, EventKind::Spans];

    /// Where the job was told to read it.
    fn target(self, spec: &super::FeedSpec) -> &Option<Target> {
        match self {
            EventKind::Edges => &spec.topology,
            EventKind::Deploys => &spec.deploys,
            EventKind::Spans => &spec.spans,
        }
    }

    /// Its topic, as the job file names it.
    fn topic(self, kafka: &crate::config::KafkaSection) -> &str {
        match self {
            EventKind::Edges => &kafka.topology_topic,
            EventKind::Deploys => &kafka.deploys_topic,
            EventKind::Spans => &kafka.spans_topic,
        }
    }

    /// What it is called in errors.
    fn name(self) -> &'static str {
        match self {
            EventKind::Edges => "topology",
            EventKind::Deploys => "deploys",
            EventKind::Spans => "spans",
        }
    }
}

/// Lines of standard input as they arrive, with their positions.
pub(super) type StdinLines = std::sync::mpsc::Receiver<(LineInfo, Vec<u8>)>;

/// Reads standard input on a thread of its own, its non-blank lines handed over as they arrive
/// (at most 4,096 waiting: a writer faster than the job waits).
fn follow_stdin(kind: EventKind, max_line: usize) -> Result<StdinLines, JobError> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(4096);
    std::thread::Builder::new()
        .name("stdin-events".into())
        .spawn(move || {
            let read = read_lines(&InputSource::Stdin, kind.name(), max_line, |at, line| {
                // Refused only once the feed has ended, when the process is ending too.
                let _ = sender.send((at.info, std::mem::take(line)));
            });
            match read {
                Ok(()) => tracing::info!("standard input ended"),
                Err(e) => tracing::warn!("{e}"),
            }
        })
        .map_err(|e| JobError::Startup(format!("cannot start the standard input reader: {e}")))?;
    Ok(receiver)
}
