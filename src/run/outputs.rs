//! The run's outputs, opened before the dataflow starts (so that a bad path or a missing topic
//! stops the job at once): anomalies, challengers and incidents (a file, standard output or a
//! topic, taken up where a checkpoint left a file), dead letters, and the checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cli::{RunArgs, Target};
use crate::config::KafkaSection;
use crate::dataflow::Outputs;
use crate::emit::checkpoint::{Checkpoint, Checkpointer};
use crate::emit::dead_letters::DeadLetterOutput;
use crate::emit::kafka::{dlq_topic, TopicSink};
use crate::emit::records::{open_output, Durability, Listeners, RecordOutput};
use crate::error::JobError;
use crate::ingest::files::InputSource;
use crate::kafka::KafkaClient;

/// What the outputs are opened with.
pub struct OutputPlan<'a> {
    /// The command line.
    pub args: &'a RunArgs,
    /// The topics.
    pub kafka: &'a KafkaSection,
    /// The brokers.
    pub client: &'a KafkaClient,
    /// The samples' source (a Kafka input's refused records go to its dead-letter topic).
    pub input: &'a InputSource,
    /// Where dead letters go when `--dead-letter` is not given (created only when needed).
    pub dead_letter_path: &'a Path,
    /// The checkpoint an earlier run left.
    pub resume: Option<&'a Checkpoint>,
    /// How often to checkpoint.
    pub every: std::time::Duration,
    /// A replay's window (outputs only what falls inside it).
    pub window: (Option<u64>, Option<u64>),
    /// Who hears of each incident version written.
    pub listeners: Listeners,
}

/// Opens every output of process 0.
pub fn open_outputs(plan: OutputPlan<'_>) -> Result<Outputs, JobError> {
    let OutputPlan {
        args,
        kafka,
        client,
        input,
        dead_letter_path,
        resume,
        every,
        window: (from, until),
        listeners,
    } = plan;
    let resume_bytes = |what: &str| resume.and_then(|c| c.bytes(what));
    let open = |target: &Option<Target>, what: &'static str, topic: &str| {
        target
            .as_ref()
            .map(|t| record_output_resumed(resume_bytes(what), t, what, topic, client))
            .transpose()
    };
    let anomalies = open(&args.anomalies_out, "anomalies", &kafka.anomalies_topic)?;
    let incidents = open(&args.incidents_out, "incidents", &kafka.incidents_topic)?;
    let challengers = open(
        &args.challengers_out,
        "challengers",
        &kafka.challengers_topic,
    )?;
    let dead_letter = dead_letter_output(args, kafka, client, input, dead_letter_path)?;
    let mut names = Vec::new();
    if anomalies.is_some() {
        names.push("anomalies");
    }
    if challengers.is_some() {
        names.push("challengers");
    }
    if incidents.is_some() {
        names.push("incidents");
    }
    let durability = Durability {
        window: (from.is_some() || until.is_some())
            .then(|| (from.unwrap_or(0), until.unwrap_or(u64::MAX))),
        resume: resume.map(|c| c.outputs.clone()).unwrap_or_default(),
        checkpointer: match &args.checkpoint {
            None => None,
            Some(path) => {
                let mut c = Checkpointer::new(path.clone(), &names, resume, every);
                if matches!(input, InputSource::Kafka { .. }) {
                    c.commit_to(client).map_err(JobError::Kafka)?;
                }
                Some(Arc::new(Mutex::new(c)))
            }
        },
    };
    Ok(Outputs {
        anomalies,
        dead_letter: Some(dead_letter),
        incidents,
        durability,
        listeners,
        challengers,
    })
}

/// A file (created now, or only when a record is refused), or each Kafka input's `<topic>.dlq`.
fn dead_letter_output(
    args: &RunArgs,
    kafka: &KafkaSection,
    client: &KafkaClient,
    input: &InputSource,
    default_path: &Path,
) -> Result<DeadLetterOutput, JobError> {
    Ok(match &args.dead_letter {
        Some(Target::Kafka) => {
            let mut sinks = BTreeMap::new();
            for (used, topic) in [
                (
                    matches!(input, InputSource::Kafka { .. }),
                    &kafka.samples_topic,
                ),
                (args.topology == Some(Target::Kafka), &kafka.topology_topic),
                (args.deploys == Some(Target::Kafka), &kafka.deploys_topic),
            ] {
                if used {
                    let dlq = dlq_topic(topic);
                    let sink = TopicSink::open(client, &dlq)?;
                    sinks.insert(dlq, sink);
                }
            }
            DeadLetterOutput::Kafka(sinks)
        }
        Some(target) => DeadLetterOutput::Open(
            PathBuf::from(target.to_string()),
            open_output(target).map_err(|source| JobError::Output {
                what: "dead letters",
                name: target.to_string(),
                source,
            })?,
        ),
        None => DeadLetterOutput::Lazy(PathBuf::from(default_path)),
    })
}

/// [`record_output`], taking up a file where a checkpoint says the earlier run left it.
pub fn record_output_resumed(
    resume_bytes: Option<u64>,
    target: &Target,
    what: &'static str,
    topic: &str,
    client: &KafkaClient,
) -> Result<RecordOutput, JobError> {
    let (Some(bytes), Target::File(path)) = (resume_bytes, target) else {
        return record_output(target, what, topic, client);
    };
    let error = |source| JobError::Output {
        what,
        name: target.to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(error)?;
    let len = file.metadata().map_err(error)?.len();
    if len < bytes {
        return Err(JobError::InvalidFile(format!(
            "{target} is {len} bytes but the checkpoint says {bytes} were written: it is not the file the checkpoint belongs to"
        )));
    }
    // What the killed run wrote after its last checkpoint is written again, identically.
    file.set_len(bytes).map_err(error)?;
    let mut file = file;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(error)?;
    Ok(RecordOutput::Lines(
        target.to_string(),
        Box::new(std::io::BufWriter::with_capacity(1 << 16, file)),
    ))
}

/// A file, standard output (`-`) or the Kafka topic (`kafka`).
fn record_output(
    target: &Target,
    what: &'static str,
    topic: &str,
    client: &KafkaClient,
) -> Result<RecordOutput, JobError> {
    if *target == Target::Kafka {
        return Ok(RecordOutput::Kafka(TopicSink::open(client, topic)?));
    }
    open_output(target)
        .map(|writer| RecordOutput::Lines(target.to_string(), writer))
        .map_err(|source| JobError::Output {
            what,
            name: target.to_string(),
            source,
        })
}
