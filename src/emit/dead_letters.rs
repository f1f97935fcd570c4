//! The dead letters: refused records written by worker 0 (as they arrive, each batch in source
//! order) to a file, created on the first one so that a clean run leaves no empty file, or to
//! `<topic>.dlq` per Kafka source topic; and the sources' counts summed into the outcome, with the
//! Kafka read marks handed to the checkpoint.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::Stream;

use incidentflow_dataflows::limits::{Cap, Capped, CappedStream};
use incidentflow_dataflows::records::{DeadLetter, Invalid, Reason, SourceCounts};
use incidentflow_dataflows::time::Time;

use crate::emit::records::{Diagnostic, LineWriter, WriterContext};

/// The dead-letter file: opened eagerly when named on the command line, else on the first dead
/// letter, so that a clean run leaves no empty file behind.
pub enum DeadLetterOutput {
    /// Already open.
    Open(PathBuf, LineWriter),
    /// Opened when first needed.
    Lazy(PathBuf),
    /// `--dead-letter kafka`: each refused Kafka record to `<its topic>.dlq`, by topic.
    Kafka(BTreeMap<String, crate::emit::kafka::TopicSink>),
}

// Long: one timely sink whose state (the lazily opened file, the Kafka sinks) lives in its closure.
/// Writes dead letters (exchanged to worker 0) and sums the workers' counts.
pub fn write_diagnostics(
    diagnostics: Stream<'_, Time, Vec<Diagnostic>>,
    mut out: Option<DeadLetterOutput>,
    context: WriterContext,
) {
    let (outcome, metrics, writers) = (context.outcome, context.metrics, context.writers);
    let checkpointer = context.durability.checkpointer;
    diagnostics.sink(
        Exchange::new(|_: &Diagnostic| 0u64),
        "WriteDeadLetters",
        move |(input, frontier)| {
            let mut letters = Vec::new();
            let mut counts = Vec::new();
            let mut capped = 0u64;
            input.for_each(|_capability, data| {
                for d in data.drain(..) {
                    match d {
                        Diagnostic::DeadLetter(letter) => letters.push(letter),
                        Diagnostic::Capped(letter) => {
                            capped += 1;
                            letters.push(letter);
                        }
                        Diagnostic::Counts(c) => counts.push(c),
                        Diagnostic::Mark {
                            topic,
                            partition,
                            next_offset,
                            newest,
                        } => {
                            if let Some(c) = &checkpointer {
                                let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
                                c.mark(&topic, partition, next_offset, newest);
                            }
                        }
                    }
                }
            });
            let finished = frontier.is_empty();
            if letters.is_empty() && counts.is_empty() && !finished {
                return;
            }
            let mut outcome = outcome.lock().unwrap_or_else(|p| p.into_inner());
            // After a signal the inputs close early: the input is not done, commit nothing more.
            if finished && !writers.draining() {
                if let Some(c) = &checkpointer {
                    let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(e) = c.settle() {
                        outcome.error.get_or_insert(e);
                    }
                }
            }
            for c in &counts {
                outcome.counts.add(c);
            }
            if capped > 0 {
                // Read and counted valid by the feed, refused since: dead-lettered instead.
                let mut moved = SourceCounts::default();
                (0..capped).for_each(|_| moved.count_dead(Reason::Cardinality));
                outcome.capped += capped;
                outcome.counts.add(&moved);
                metrics.add_counts(&moved);
            }
            letters.sort_by(|a, b| (&a.source, a.offset).cmp(&(&b.source, b.offset)));
            let mut text = String::new();
            for letter in &letters {
                text.push_str(&letter.to_json());
                text.push('\n');
            }
            if let Some(DeadLetterOutput::Lazy(path)) = &out {
                if !letters.is_empty() {
                    out = match File::create(path) {
                        Ok(f) => Some(DeadLetterOutput::Open(
                            path.clone(),
                            Box::new(BufWriter::new(f)),
                        )),
                        Err(e) => {
                            outcome.error.get_or_insert(format!(
                                "cannot create dead-letter file {}: {e}",
                                path.display()
                            ));
                            None
                        }
                    };
                }
            }
            if let Some(DeadLetterOutput::Kafka(sinks)) = out.as_mut() {
                match crate::emit::kafka::send_dead_letters(sinks, &letters, finished) {
                    Ok(()) => {
                        outcome.dead_letters_written += letters.len() as u64;
                        metrics.dead_letters_written(letters.len() as u64);
                    }
                    Err(e) => {
                        outcome
                            .error
                            .get_or_insert(format!("cannot write dead letters: {e}"));
                        out = None;
                    }
                }
            }
            if let Some(DeadLetterOutput::Open(path, w)) = out.as_mut() {
                match w.write_all(text.as_bytes()).and_then(|_| {
                    if finished {
                        w.flush()
                    } else {
                        Ok(())
                    }
                }) {
                    Ok(()) => {
                        outcome.dead_letters_written += letters.len() as u64;
                        metrics.dead_letters_written(letters.len() as u64);
                    }
                    Err(e) => {
                        outcome.error.get_or_insert(format!(
                            "cannot write dead letters to {}: {e}",
                            path.display()
                        ));
                        out = None;
                    }
                }
            }
        },
    );
}

/// The samples a cardinality cap refused, as dead letters on their way to the writer.
pub fn capped_letters(capped: CappedStream<'_>) -> Stream<'_, Time, Vec<Diagnostic>> {
    capped.map(|(capped, _, _)| Diagnostic::Capped(capped_letter(&capped)))
}

/// One refused sample's dead letter: its position is its series and time (the sample was read
/// and decoded before the cap judged it), and the detail says which cap and what lets it in.
fn capped_letter(capped: &Capped) -> DeadLetter {
    let sample = &capped.sample;
    let (cap, holder) = match capped.cap {
        Cap::Namespace => (
            "series_per_namespace",
            format!("namespace \"{}\"", sample.series.namespace),
        ),
        Cap::Total => ("series", "the job".to_string()),
    };
    let detail = format!(
        "series {} at {} is a new series and {holder} already has {} active series \
         ([limits] {cap} = {}); it is let in at its next report after a series of {holder} has \
         been silent for [limits] forget_after, and the series already in keep working",
        sample.series.key(),
        incidentflow_dataflows::time::format_rfc3339(sample.timestamp),
        capped.limit,
        capped.limit,
    );
    DeadLetter {
        source: "cardinality cap".to_string(),
        line: 0,
        offset: 0,
        invalid: Invalid::new(Reason::Cardinality, detail),
        raw: sample.to_line().into_bytes(),
        truncated: false,
        key: None,
    }
}
