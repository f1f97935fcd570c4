//! `incidentflow`: the command line. Parses flags, loads the job file, opens the outputs, runs
//! the dataflow and prints the summary. Exit status: 0 on success; 1 with a one-line reason on a
//! configuration or I/O error. Bad records never change the exit status.

mod alerts;
mod annotate;
mod checkpoint;
mod compare;
mod config;
mod demo;
mod error;
mod eval;
mod feedback;
mod kafka;
mod log;
mod metrics;
mod review;
mod runtime;
mod shutdown;
mod side_input;
mod sink;
mod source;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use crate::config::JobConfig;
use crate::error::JobError;
use crate::runtime::{Cluster, Outputs, RunSpec};
use crate::sink::{open_output, DeadLetterOutput, RecordOutput};
use crate::source::InputSource;
use crate::summary::{anomaly_digest, Report};

/// How long queued alerts may still take to go out when the job ends.
const ALERT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Streaming AIOps: rolling baselines and anomaly detection over metric samples, on
/// timely/differential dataflow.
#[derive(Parser)]
#[command(name = "incidentflow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the job. With no --input it runs the embedded demo scenario.
    Run(Box<RunArgs>),
    /// Score anomalies (and incidents) against a ground-truth file from incidentflow-loadgen.
    Eval(EvalArgs),
    /// Summarise an incidents file for a responder.
    Review {
        /// Incident versions written by `run --incidents-out`.
        incidents: PathBuf,
    },
    /// The job file: print the defaults, or check a file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the default job file, every key with a comment.
    PrintDefault,
    /// Check a job file (with the INCIDENTFLOW__* environment laid over it): types, ranges,
    /// topics, URLs, secrets; says exactly what is wrong.
    Validate {
        /// The job file.
        file: PathBuf,
    },
}

#[derive(Args)]
struct EvalArgs {
    /// Ground truth: one injected fault per line (incidentflow-loadgen's truth.jsonl).
    #[arg(long, value_name = "FILE")]
    truth: Option<PathBuf>,
    /// Responder feedback labels (JSON Lines), joined to --incidents.
    #[arg(long, value_name = "FILE")]
    feedback: Option<PathBuf>,
    /// The challengers' anomalies (the job's --challengers-out), compared with the champion's
    /// (--anomalies) as episodes.
    #[arg(long, value_name = "FILE")]
    challengers: Option<PathBuf>,
    /// A per-sample detector's anomalies of one series no further apart than this are one episode.
    #[arg(long, default_value = "5m")]
    episode_gap: String,
    /// The time between a series' samples, to give delays in sample intervals.
    #[arg(long, default_value = "1m")]
    interval: String,
    /// The job's anomalies (JSON Lines).
    #[arg(long, value_name = "FILE")]
    anomalies: Option<PathBuf>,
    /// The job's incident versions (JSON Lines).
    #[arg(long, value_name = "FILE")]
    incidents: Option<PathBuf>,
    /// How long after a fault's end an anomaly or incident still counts as caused by it.
    #[arg(long, default_value = "5m")]
    grace: String,
    /// Where to write the evaluation as JSON.
    #[arg(long, value_name = "FILE", default_value = "eval.json")]
    out: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    /// Samples as JSON Lines: a file, - for standard input, or kafka for the samples topic. Omit
    /// to run the embedded demo.
    #[arg(long, value_name = "FILE|-|kafka")]
    input: Option<String>,
    /// Write anomalies as JSON Lines to FILE (- for standard output, kafka for the anomalies topic).
    #[arg(long, value_name = "FILE|-|kafka")]
    anomalies_out: Option<String>,
    /// Write refused records here, or kafka for each Kafka input's `<topic>.dlq` [default:
    /// ./dead-letter.jsonl, created only when needed].
    #[arg(long, value_name = "FILE|kafka")]
    dead_letter: Option<PathBuf>,
    /// Job file (TOML) with the detector settings.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write the challengers' anomaly episodes ([detectors] challengers) as JSON Lines to FILE (-
    /// for standard output, kafka for the challengers topic).
    #[arg(long, value_name = "FILE|-|kafka")]
    challengers_out: Option<String>,
    /// Responder feedback labels (JSON Lines), a file or kafka for the feedback topic: read at
    /// start, then followed; reported on /metrics.
    #[arg(long, value_name = "FILE|kafka")]
    feedback: Option<String>,
    /// Silences (JSON Lines: name, services, start, end), a file or kafka for the silences topic:
    /// read at start, then followed; they add to the job file's [[silences]].
    #[arg(long, value_name = "FILE|kafka")]
    silences: Option<String>,
    /// Worker threads per process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Number of processes in the cluster.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    processes: u16,
    /// This process's index in the cluster (0-based).
    #[arg(long, default_value_t = 0)]
    process_index: u16,
    /// File with one host:port per process, in process-index order.
    #[arg(long, value_name = "FILE")]
    hostfile: Option<PathBuf>,
    /// The service topology: an edge stream or a static edge list (JSON Lines or YAML), or kafka
    /// for the topology topic.
    #[arg(long, value_name = "FILE|kafka")]
    topology: Option<PathBuf>,
    /// Deploy events (JSON Lines), or kafka for the deploys topic.
    #[arg(long, value_name = "FILE|kafka")]
    deploys: Option<PathBuf>,
    /// Write every incident version as JSON Lines to FILE (- for standard output, kafka for the
    /// incidents topic).
    #[arg(long, value_name = "FILE|-|kafka")]
    incidents_out: Option<String>,
    /// Also write the run summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    summary_out: Option<PathBuf>,
    /// Kafka bootstrap servers (host:port,...) for inputs and outputs named `kafka` [default:
    /// the job file's kafka.brokers].
    #[arg(long, value_name = "HOSTS")]
    kafka_brokers: Option<String>,
    /// Stop when the Kafka inputs reach the offsets that were their ends when the job started
    /// (without it the job follows the topics until it is stopped).
    #[arg(long)]
    until_end: bool,
    /// Serve /metrics (Prometheus), /healthz and /ready on this address, e.g. 0.0.0.0:9100
    /// [default: the job file's metrics.addr; empty: not served].
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
    /// Keep a checkpoint of how far the outputs are durable in FILE, and resume from it when it
    /// exists: a restart after a crash loses nothing and writes nothing twice to a file output.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// How often the checkpoint is taken (each time the outputs are flushed: a Kafka output waits
    /// for its deliveries).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    checkpoint_every: String,
    /// Replay: write only the outputs from this event time on (RFC 3339). The input is still read
    /// from its start, so the state at that time is the live run's and every key's output in the
    /// replay equals the live run's over the same range.
    #[arg(long, value_name = "TIME", conflicts_with = "from_offsets")]
    from_time: Option<String>,
    /// Replay from the records at these offsets (topic:partition:offset,...): the earliest of
    /// their timestamps is the replay's start, as with --from-time.
    #[arg(long, value_name = "T:P:O,...")]
    from_offsets: Option<String>,
    /// Replay: stop at this event time (RFC 3339), or at the records at these offsets
    /// (topic:partition:offset,...: the earliest of their times), writing only outputs before it;
    /// each Kafka partition is read until it passes it by the allowed lateness (with --until-end,
    /// or until it reaches its end).
    #[arg(long, value_name = "TIME|T:P:O,...")]
    until: Option<String>,
    /// Replay: read the samples topic from this long before the replay's start (found with
    /// offsets-for-times: the producer must stamp messages with their event time, as the loadgen
    /// does) instead of from its beginning. Faster, and exact when the warm-up covers the baseline
    /// window and every incident open at the start; not set: read everything before (exact).
    #[arg(long, value_name = "DURATION")]
    warm_up: Option<String>,
    /// Warm start: learn from every sample, but report (anomalies, incidents, alerts) only those
    /// at or after TIME (RFC 3339) or `now` (the wall clock at start). A first start on a topic
    /// that holds days of history builds its baselines, seasonal ones included, at full speed
    /// without paging anyone about the past.
    #[arg(long, value_name = "TIME|now")]
    report_from: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init();
    let result = match cli.command {
        Command::Run(args) => shutdown::on_signals()
            .map_err(|e| JobError::Usage(format!("cannot handle SIGTERM: {e}")))
            .and_then(|()| run(*args)),
        Command::Eval(args) => eval_command(args),
        Command::Review { incidents } => review::run(&incidents).map(|text| print!("{text}")),
        Command::Config(ConfigCommand::PrintDefault) => {
            print!("{}", config::DEFAULT_FILE);
            Ok(())
        }
        Command::Config(ConfigCommand::Validate { file }) => {
            JobConfig::load_layered(Some(&file), std::env::vars()).map(|c| {
                println!(
                    "{}: valid ({} alert outputs, {} runbooks, {} silences)",
                    file.display(),
                    c.alerts.len(),
                    c.runbooks.len(),
                    c.silences.len()
                )
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("incidentflow: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The replay window from --from-time / --from-offsets and --until.
fn replay_window(
    args: &RunArgs,
    kafka: &config::KafkaSection,
) -> Result<(Option<u64>, Option<u64>), JobError> {
    let time = |flag: &str, text: &str| {
        incidentflow_dataflows::time::parse_rfc3339(text).map_err(|e| {
            JobError::Usage(format!(
                "{flag} {text}: {e:?} (use RFC 3339, e.g. 2026-11-23T01:00:00Z)"
            ))
        })
    };
    let mut from = match &args.from_time {
        Some(t) => Some(time("--from-time", t)?),
        None => None,
    };
    if let Some(list) = &args.from_offsets {
        let offsets = parse_offsets(list).map_err(|item| {
            JobError::Usage(format!(
                "--from-offsets: {item:?} is not topic:partition:offset"
            ))
        })?;
        from = Some(earliest_time_at(&offsets, kafka)?);
    }
    // --until takes a time, or offsets: the earliest time of the records at them.
    let until = match &args.until {
        Some(text) => match parse_offsets(text) {
            Ok(offsets) => Some(earliest_time_at(&offsets, kafka)?),
            Err(_) => Some(time("--until", text)?),
        },
        None => None,
    };
    if let (Some(f), Some(u)) = (from, until) {
        if f >= u {
            return Err(JobError::Usage(
                "--until must be later than the replay's start".into(),
            ));
        }
    }
    if (from.is_some() || until.is_some()) && args.checkpoint.is_some() {
        return Err(JobError::Usage(
            "a replay (--from-time, --from-offsets, --until) does not take --checkpoint".into(),
        ));
    }
    Ok((from, until))
}

/// `topic:partition:offset,...` as a list; the item that is not, as the error.
fn parse_offsets(list: &str) -> Result<Vec<(String, i32, i64)>, String> {
    let mut offsets = Vec::new();
    for item in list.split(',').filter(|s| !s.trim().is_empty()) {
        let mut parts = item.trim().rsplitn(3, ':');
        let offset = parts.next().and_then(|o| o.parse::<i64>().ok());
        let partition = parts.next().and_then(|p| p.parse::<i32>().ok());
        match (parts.next(), partition, offset) {
            (Some(topic), Some(p), Some(o)) if !topic.is_empty() && o >= 0 => {
                offsets.push((topic.to_owned(), p, o))
            }
            _ => return Err(item.to_owned()),
        }
    }
    if offsets.is_empty() {
        return Err(list.to_owned());
    }
    Ok(offsets)
}

/// The earliest event time of the records at `offsets` (each message's first sample).
fn earliest_time_at(
    offsets: &[(String, i32, i64)],
    kafka: &config::KafkaSection,
) -> Result<u64, JobError> {
    let mut earliest = u64::MAX;
    for (topic, partition, offset) in offsets {
        earliest = earliest.min(kafka::timestamp_at(
            &kafka.brokers,
            topic,
            *partition,
            *offset,
        )?);
    }
    Ok(earliest)
}

/// [`record_output`], taking up a file where a checkpoint says the earlier run left it.
fn record_output_resumed(
    resume_bytes: Option<u64>,
    target: &str,
    what: &'static str,
    topic: &str,
    kafka: &config::KafkaSection,
) -> Result<RecordOutput, JobError> {
    let Some(bytes) = resume_bytes.filter(|_| target != "-" && target != "kafka") else {
        return record_output(target, what, topic, kafka);
    };
    let error = |source| JobError::Output {
        what,
        name: target.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .map_err(error)?;
    let len = file.metadata().map_err(error)?.len();
    if len < bytes {
        return Err(JobError::Usage(format!(
            "{target} is {len} bytes but the checkpoint says {bytes} were written: it is not the file the checkpoint belongs to"
        )));
    }
    // What the killed run wrote after its last checkpoint is written again, identically.
    file.set_len(bytes).map_err(error)?;
    let mut file = file;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(error)?;
    Ok(RecordOutput::Lines(Box::new(
        std::io::BufWriter::with_capacity(1 << 16, file),
    )))
}

/// A file, standard output (`-`) or the Kafka topic (`kafka`).
fn record_output(
    target: &str,
    what: &'static str,
    topic: &str,
    kafka: &config::KafkaSection,
) -> Result<RecordOutput, JobError> {
    if target == "kafka" {
        return Ok(RecordOutput::Kafka(kafka::TopicSink::open(
            &kafka.brokers,
            topic,
        )?));
    }
    open_output(target)
        .map(RecordOutput::Lines)
        .map_err(|source| JobError::Output {
            what,
            name: target.to_owned(),
            source,
        })
}

fn eval_command(args: EvalArgs) -> Result<(), JobError> {
    if args.anomalies.is_none() && args.incidents.is_none() {
        return Err(JobError::Usage(
            "eval needs --anomalies FILE and/or --incidents FILE to score".into(),
        ));
    }
    if args.truth.is_none() && args.feedback.is_none() {
        return Err(JobError::Usage(
            "eval scores against --truth FILE (injected faults) and/or --feedback FILE (responder labels)".into(),
        ));
    }
    if args.feedback.is_some() && args.incidents.is_none() {
        return Err(JobError::Usage(
            "--feedback labels incidents: give the job's --incidents FILE too".into(),
        ));
    }
    let grace = incidentflow_dataflows::time::parse_duration(&args.grace)
        .map_err(|e| JobError::Usage(format!("--grace: {e}")))?;
    let duration = |flag: &str, text: &str| {
        incidentflow_dataflows::time::parse_duration(text)
            .map_err(|e| JobError::Usage(format!("--{flag} {text}: {e}")))
    };
    let text = eval::run(
        eval::EvalInputs {
            truth: args.truth.as_deref(),
            anomalies: args.anomalies.as_deref(),
            challengers: args.challengers.as_deref(),
            incidents: args.incidents.as_deref(),
            feedback: args.feedback.as_deref(),
            grace_ms: grace,
            episode_gap_ms: duration("episode-gap", &args.episode_gap)?,
            interval_ms: duration("interval", &args.interval)?,
        },
        &args.out,
    )?;
    print!("{text}");
    eprintln!("incidentflow eval: wrote {}", args.out.display());
    Ok(())
}

fn cluster(args: &RunArgs) -> Result<Cluster, JobError> {
    let processes = args.processes as usize;
    let process_index = args.process_index as usize;
    if process_index >= processes {
        return Err(JobError::Usage(format!(
            "--process-index {process_index} is out of range for --processes {processes}"
        )));
    }
    let addresses = match (&args.hostfile, processes) {
        (_, 1) => Vec::new(),
        (None, _) => {
            return Err(JobError::Usage(
                "--processes above 1 needs --hostfile with one host:port per process".into(),
            ))
        }
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|source| JobError::Input {
                what: "hostfile",
                name: path.display().to_string(),
                source,
            })?;
            let hosts: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect();
            if hosts.len() < processes {
                return Err(JobError::Usage(format!(
                    "hostfile {} lists {} hosts; --processes {processes} needs {processes}",
                    path.display(),
                    hosts.len()
                )));
            }
            hosts.into_iter().take(processes).collect()
        }
    };
    Ok(Cluster {
        workers: args.workers as usize,
        processes,
        process_index,
        addresses,
    })
}

fn run(args: RunArgs) -> Result<(), JobError> {
    let mut config = JobConfig::load_layered(args.config.as_deref(), std::env::vars())?;
    if let Some(brokers) = &args.kafka_brokers {
        config.kafka.brokers = brokers.clone();
    }
    if let Some(addr) = &args.metrics_addr {
        config.metrics.addr = addr.clone();
    }
    let kafka = config.kafka.clone();
    kafka::use_security(config.kafka_security());
    let cluster = cluster(&args)?;
    if !config.metrics.addr.is_empty() {
        let addr = &config.metrics.addr;
        let bound = metrics::serve(addr, config.metrics.ready_max_lag).map_err(|e| {
            JobError::Usage(format!(
                "cannot serve metrics on {addr}: {e} (is the port taken?)"
            ))
        })?;
        tracing::info!("serving /metrics, /healthz and /ready on http://{bound}");
    }
    for (what, arg, topic) in [
        ("feedback", &args.feedback, &kafka.feedback_topic),
        ("silences", &args.silences, &kafka.silences_topic),
    ] {
        let Some(arg) = arg else { continue };
        let source = match arg.as_str() {
            "kafka" => side_input::SideSource::Topic {
                brokers: kafka.brokers.clone(),
                topic: topic.clone(),
            },
            path => side_input::SideSource::File(PathBuf::from(path)),
        };
        if what == "silences" {
            annotate::live_silences_on();
            side_input::follow(what, source, annotate::silence_line)?;
        } else {
            side_input::follow(what, source, |line, at| feedback::BOOK.line(line, at))?;
        }
    }
    let demo = args.input.is_none();
    let input = match args.input.as_deref() {
        None => {
            let (name, bytes) = demo::scenario();
            InputSource::Embedded { name, bytes }
        }
        Some("-") => InputSource::Stdin,
        Some("kafka") => InputSource::Kafka {
            topic: kafka.samples_topic.clone(),
        },
        Some(path) => {
            let path = PathBuf::from(path);
            std::fs::metadata(&path).map_err(|source| JobError::Input {
                what: "input",
                name: path.display().to_string(),
                source,
            })?;
            InputSource::Path(path)
        }
    };
    let leader = cluster.process_index == 0;
    let (from, until) = replay_window(&args, &kafka)?;
    let read_from = match (&args.warm_up, from) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(JobError::Usage(
                "--warm-up goes with --from-time or --from-offsets".into(),
            ))
        }
        (Some(w), Some(from)) => {
            let w = incidentflow_dataflows::time::parse_duration(w)
                .map_err(|e| JobError::Usage(format!("--warm-up {w}: {e}")))?;
            Some(from.saturating_sub(w))
        }
    };
    let every = incidentflow_dataflows::time::parse_duration(&args.checkpoint_every)
        .map(std::time::Duration::from_millis)
        .map_err(|e| {
            JobError::Usage(format!("--checkpoint-every {}: {e}", args.checkpoint_every))
        })?;
    // Every process reads the checkpoint (for where to re-read from); process 0 keeps it. A
    // process that cannot see it re-reads its partitions from their start: slower, as exact.
    let resume = match &args.checkpoint {
        Some(path) => checkpoint::Checkpoint::load(path)?,
        None => None,
    };
    let is_kafka_input = matches!(input, InputSource::Kafka { .. });
    // What the state at a time depends on: the baseline window before the anomalies and the
    // grace that keeps an incident open after them, give or take the allowed lateness (the
    // oldest incident open then is added by the checkpoint).
    let history = config.baseline.window.0
        + config.correlation.grace.0
        + config.correlation.merge_window.0
        + config.time.allowed_lateness.0;
    // A restart from Kafka re-reads only what the state at the checkpoint depends on. That is a
    // bounded stretch when the champion judges from its window alone (the z-score); the change
    // detector's state is its whole history (a fading sketch of every change the series made),
    // so with it a restart re-reads the samples topic from its beginning, which is as exact.
    let window_champion =
        config.detectors.champion == incidentflow_dataflows::records::Detector::ZScore;
    let reread = resume
        .as_ref()
        .filter(|c| is_kafka_input && c.output_time > 0 && window_champion)
        .map(|c| c.reread_from(history))
        .filter(|from| *from > 0);
    let read_from = read_from.or(reread);
    if let Some(c) = resume.as_ref().filter(|_| leader) {
        let name = args
            .checkpoint
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string());
        let marks = incidentflow_dataflows::time::format_rfc3339(c.output_time);
        match reread {
            _ if c.output_time == 0 => tracing::info!("checkpoint {name}: the earlier run had made nothing durable; starting over"),
            Some(from) => tracing::info!(
                "resuming from checkpoint {name}: the outputs before {marks} were written by an earlier run; re-reading {} from {} (the z-score's window, the merge window and grace before that and before the oldest incident open then) to rebuild the state",
                kafka.samples_topic,
                incidentflow_dataflows::time::format_rfc3339(from)
            ),
            None => tracing::info!(
                "resuming from checkpoint {name}: the outputs before {marks} were written by an earlier run; reading the input again from its start to rebuild the state (the champion's state is its history)"
            ),
        }
    }
    // A bounded re-read scores samples only once their baselines hold a whole window, and never
    // later than the first output wanted.
    let score_from = read_from.map_or(0, |r| {
        let full = r + config.baseline.window.0 + config.time.allowed_lateness.0;
        full.min(from.unwrap_or(u64::MAX))
    });
    let report_from = match args.report_from.as_deref() {
        None => 0,
        Some("now") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        Some(text) => incidentflow_dataflows::time::parse_rfc3339(text).map_err(|e| {
            use incidentflow_dataflows::time::TimestampError::{Absurd, Unparseable};
            let (Unparseable(why) | Absurd(why)) = e;
            JobError::Usage(format!("--report-from: {why}; say an RFC 3339 time or now"))
        })?,
    };
    let score_from = score_from.max(report_from);
    let dead_letter_path = args
        .dead_letter
        .clone()
        .unwrap_or_else(|| PathBuf::from("dead-letter.jsonl"));
    // Alert outputs page people: a replay re-computes the past and sends nothing.
    let replay = from.is_some() || until.is_some();
    let alerts = if leader && !config.alerts.is_empty() {
        let names: Vec<&str> = config.alerts.keys().map(String::as_str).collect();
        if replay {
            tracing::info!(outputs = ?names, "alert outputs are off during a replay");
            None
        } else {
            tracing::info!(outputs = ?names, "alert outputs on");
            Some(
                alerts::Alerts::start(&config.alerts)
                    .map_err(|e| JobError::Usage(format!("cannot start the alert outputs: {e}")))?,
            )
        }
    } else {
        None
    };
    let alerting = alerts.is_some();
    let outputs = if leader {
        let resume_bytes = |what: &str| resume.as_ref().and_then(|c| c.bytes(what));
        let anomalies = match &args.anomalies_out {
            Some(target) => Some(record_output_resumed(
                resume_bytes("anomalies"),
                target,
                "anomalies",
                &kafka.anomalies_topic,
                &kafka,
            )?),
            None => None,
        };
        let dead_letter = match &args.dead_letter {
            Some(path) if runtime::is_kafka(path) => {
                // Each Kafka input's refused records go to `<topic>.dlq`.
                let mut sinks = std::collections::BTreeMap::new();
                for (used, topic) in [
                    (
                        matches!(input, InputSource::Kafka { .. }),
                        &kafka.samples_topic,
                    ),
                    (
                        args.topology.as_deref().is_some_and(runtime::is_kafka),
                        &kafka.topology_topic,
                    ),
                    (
                        args.deploys.as_deref().is_some_and(runtime::is_kafka),
                        &kafka.deploys_topic,
                    ),
                ] {
                    if used {
                        let dlq = kafka::dlq_topic(topic);
                        let sink = kafka::TopicSink::open(&kafka.brokers, &dlq)?;
                        sinks.insert(dlq, sink);
                    }
                }
                DeadLetterOutput::Kafka(sinks)
            }
            Some(path) => DeadLetterOutput::Open(
                path.clone(),
                open_output(&path.to_string_lossy()).map_err(|source| JobError::Output {
                    what: "dead letters",
                    name: path.display().to_string(),
                    source,
                })?,
            ),
            None => DeadLetterOutput::Lazy(dead_letter_path.clone()),
        };
        let incidents = match &args.incidents_out {
            Some(target) => Some(record_output_resumed(
                resume_bytes("incidents"),
                target,
                "incidents",
                &kafka.incidents_topic,
                &kafka,
            )?),
            None => None,
        };
        let challengers = match &args.challengers_out {
            Some(target) => Some(record_output_resumed(
                resume_bytes("challengers"),
                target,
                "challengers",
                &kafka.challengers_topic,
                &kafka,
            )?),
            None => None,
        };
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
        let durability = sink::Durability {
            window: (from.is_some() || until.is_some())
                .then(|| (from.unwrap_or(0), until.unwrap_or(u64::MAX))),
            resume: resume
                .as_ref()
                .map(|c| c.outputs.clone())
                .unwrap_or_default(),
            checkpointer: match &args.checkpoint {
                None => None,
                Some(path) => {
                    let mut c =
                        checkpoint::Checkpointer::new(path.clone(), &names, resume.as_ref(), every);
                    if matches!(input, InputSource::Kafka { .. }) {
                        c.commit_to(&kafka.brokers).map_err(JobError::Kafka)?;
                    }
                    Some(std::sync::Arc::new(std::sync::Mutex::new(c)))
                }
            },
        };
        Outputs {
            anomalies,
            dead_letter: Some(dead_letter),
            incidents,
            durability,
            alerts: alerts.as_ref().map(alerts::Alerts::sender),
            challengers,
        }
    } else {
        Outputs {
            anomalies: None,
            dead_letter: None,
            incidents: None,
            durability: sink::Durability::default(),
            alerts: None,
            challengers: None,
        }
    };
    for (path, what) in [(&args.topology, "topology"), (&args.deploys, "deploys")] {
        if let Some(path) = path.as_ref().filter(|p| !runtime::is_kafka(p)) {
            std::fs::metadata(path).map_err(|source| JobError::Input {
                what,
                name: path.display().to_string(),
                source,
            })?;
        }
    }
    let (topology, deploys) = match (demo, &args.topology) {
        (true, None) => (Some(demo::topology_file()?), args.deploys.clone()),
        _ => (args.topology.clone(), args.deploys.clone()),
    };
    if demo && leader {
        tracing::info!(
            "no --input given; running the embedded demo (a small shop whose database goes bad)"
        );
    }
    let total_workers = cluster.workers * cluster.processes;
    let started = Instant::now();
    let demo_topology = if demo && args.topology.is_none() {
        topology.clone()
    } else {
        None
    };
    let outcome = runtime::run(
        RunSpec {
            correlate: topology.is_some()
                || deploys.is_some()
                || args.incidents_out.is_some()
                || alerting,
            input,
            config,
            cluster,
            topology,
            deploys,
            kafka,
            until_end: args.until_end,
            until,
            read_from,
            score_from,
        },
        outputs,
    );
    if let Some(path) = demo_topology {
        let _ = std::fs::remove_file(path); // the demo's own temporary file
    }
    // What is queued still goes out, for a while.
    if let Some(alerts) = alerts {
        alerts.finish(ALERT_GRACE);
    }
    let outcome = outcome?;
    let elapsed = started.elapsed();
    if !leader {
        eprintln!(
            "incidentflow: process {} finished in {:.2}s; process 0 prints the totals.",
            args.process_index,
            elapsed.as_secs_f64()
        );
        return Ok(());
    }
    let report = Report {
        outcome: &outcome,
        elapsed,
        anomalies_to: args.anomalies_out.as_deref(),
        dead_letter_to: &dead_letter_path.to_string_lossy(),
        workers: total_workers,
    };
    // The digests go to standard output unless an output already streams there.
    let stdout_taken = [&args.anomalies_out, &args.incidents_out]
        .iter()
        .any(|o| o.as_deref() == Some("-"));
    if !stdout_taken && args.incidents_out.is_none() && !outcome.incidents.is_empty() {
        let versions: Vec<serde_json::Value> = outcome
            .incidents
            .iter()
            .filter_map(|i| serde_json::from_str(&i.to_json()).ok())
            .collect();
        print!("{}", review::render(&versions));
        println!();
    }
    if !stdout_taken && args.anomalies_out.is_none() {
        print!("{}", anomaly_digest(&outcome));
    }
    eprint!("{}", report.human());
    if shutdown::requested() {
        eprintln!("  stopped by a signal before the end of the input: run it again with the same --checkpoint to go on");
    }
    if let Some(path) = &args.summary_out {
        let text = serde_json::to_string_pretty(&report.json()).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|source| JobError::Output {
            what: "the summary",
            name: path.display().to_string(),
            source,
        })?;
    }
    match &outcome.error {
        Some(e) => Err(JobError::OutputFailed(e.clone())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_offsets;

    #[test]
    fn offsets_lists_parse_and_times_are_not_taken_for_them() {
        assert_eq!(
            parse_offsets("raw.metrics:0:10, raw.metrics:3:0"),
            Ok(vec![
                ("raw.metrics".to_string(), 0, 10),
                ("raw.metrics".to_string(), 3, 0)
            ])
        );
        // A topic name may hold colons; the last two parts are the partition and offset.
        assert_eq!(
            parse_offsets("a:b:1:2"),
            Ok(vec![("a:b".to_string(), 1, 2)])
        );
        assert!(parse_offsets("2026-11-23T01:00:00Z").is_err());
        assert!(parse_offsets("raw.metrics:0:-1").is_err());
        assert!(parse_offsets("raw.metrics:0").is_err());
        assert!(parse_offsets("").is_err());
    }
}
