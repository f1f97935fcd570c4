//! The command line's types (clap): `run`, `eval`, `review` and `config`, with every flag and its
//! help. `main.rs` parses them and dispatches; the library's commands take them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where a stream of records comes from or goes: a file, standard input or output (`-`), or
/// the topic the job file's `[kafka]` section names for it (`kafka`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `-`.
    Stdio,
    /// `kafka`.
    Kafka,
    /// Anything else.
    File(PathBuf),
}

impl std::str::FromStr for Target {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "-" => Target::Stdio,
            "kafka" => Target::Kafka,
            path => Target::File(PathBuf::from(path)),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stdio => f.write_str("-"),
            Target::Kafka => f.write_str("kafka"),
            Target::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Streaming AIOps: rolling baselines and anomaly detection over metric samples, on
/// timely/differential dataflow.
#[derive(Parser)]
#[command(name = "incidentflow", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
pub enum ConfigCommand {
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
pub struct EvalArgs {
    /// Ground truth: one injected fault per line (incidentflow-loadgen's truth.jsonl).
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Responder feedback labels (JSON Lines), joined to --incidents.
    #[arg(long, value_name = "FILE")]
    pub feedback: Option<PathBuf>,
    /// The challengers' anomalies (the job's --challengers-out), compared with the champion's
    /// (--anomalies) as episodes.
    #[arg(long, value_name = "FILE")]
    pub challengers: Option<PathBuf>,
    /// A per-sample detector's anomalies of one series no further apart than this are one episode.
    #[arg(long, default_value = "5m")]
    pub episode_gap: String,
    /// The time between a series' samples, to give delays in sample intervals.
    #[arg(long, default_value = "1m")]
    pub interval: String,
    /// The job's anomalies (JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub anomalies: Option<PathBuf>,
    /// The job's incident versions (JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub incidents: Option<PathBuf>,
    /// How long after a fault's end an anomaly or incident still counts as caused by it.
    #[arg(long, default_value = "5m")]
    pub grace: String,
    /// Also write the evaluation as JSON to FILE (the report is printed either way).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct RunArgs {
    /// Samples as JSON Lines: a file, - for standard input, or kafka for the samples topic; or
    /// remote-write://HOST:PORT to receive Prometheus remote write (in a cluster every process
    /// listens there, or on its own of HOST:PORT,HOST:PORT,... in process-index order). Omit to
    /// run the embedded demo.
    #[arg(long, value_name = "FILE|-|kafka|remote-write://HOST:PORT")]
    pub input: Option<Target>,
    /// Write anomalies as JSON Lines to FILE (- for standard output, kafka for the anomalies topic).
    #[arg(long, value_name = "FILE|-|kafka")]
    pub anomalies_out: Option<Target>,
    /// Write refused records here, or kafka for each Kafka input's `<topic>.dlq` [default:
    /// ./dead-letter.jsonl, created only when needed].
    #[arg(long, value_name = "FILE|kafka")]
    pub dead_letter: Option<Target>,
    /// Job file (TOML) with the detector settings.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write the challengers' anomaly episodes ([detectors] challengers) as JSON Lines to FILE (-
    /// for standard output, kafka for the challengers topic).
    #[arg(long, value_name = "FILE|-|kafka")]
    pub challengers_out: Option<Target>,
    /// Responder feedback labels (JSON Lines), a file or kafka for the feedback topic: read at
    /// start, then followed; reported on /metrics.
    #[arg(long, value_name = "FILE|kafka")]
    pub feedback: Option<Target>,
    /// Silences (JSON Lines: name, services, start, end), a file or kafka for the silences topic:
    /// read at start, then followed; they add to the job file's [[silences]].
    #[arg(long, value_name = "FILE|kafka")]
    pub silences: Option<Target>,
    /// Worker threads per process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Number of processes in the cluster.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub processes: u16,
    /// This process's index in the cluster (0-based).
    #[arg(long, default_value_t = 0)]
    pub process_index: u16,
    /// File with one host:port per process, in process-index order.
    #[arg(long, value_name = "FILE")]
    pub hostfile: Option<PathBuf>,
    /// The service topology: an edge stream or a static edge list (JSON Lines or YAML), kafka for
    /// the topology topic, or - for standard input (when the samples come from elsewhere).
    #[arg(long, value_name = "FILE|kafka|-")]
    pub topology: Option<Target>,
    /// Deploy events (JSON Lines), kafka for the deploys topic, or - for standard input.
    #[arg(long, value_name = "FILE|kafka|-")]
    pub deploys: Option<Target>,
    /// The topology from traces: spans as OTLP JSON or Zipkin v2 JSON (a batch a line or a
    /// message), from a file, kafka for the spans topic, or - for standard input; each client ->
    /// server call an edge, removed after [traces] edge_expiry without a span. With samples read
    /// live (kafka, remote write) the topics and standard input are followed.
    #[arg(long, value_name = "FILE|kafka|-")]
    pub spans: Option<Target>,
    /// Write every incident version as JSON Lines to FILE (- for standard output, kafka for the
    /// incidents topic).
    #[arg(long, value_name = "FILE|-|kafka")]
    pub incidents_out: Option<Target>,
    /// Also write the run summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub summary_out: Option<PathBuf>,
    /// Kafka bootstrap servers (host:port,...) for inputs and outputs named `kafka` [default:
    /// the job file's kafka.brokers].
    #[arg(long, value_name = "HOSTS")]
    pub kafka_brokers: Option<String>,
    /// Stop when the Kafka inputs reach the offsets that were their ends when the job started
    /// (without it the job follows the topics until it is stopped).
    #[arg(long)]
    pub until_end: bool,
    /// Serve /metrics (Prometheus), /healthz and /ready on this address, e.g. 0.0.0.0:9100
    /// [default: the job file's metrics.addr; empty: not served].
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Keep a checkpoint of how far the outputs are durable in FILE, and resume from it when it
    /// exists: a restart after a crash loses nothing and writes nothing twice to a file output.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// How often the checkpoint is taken (each time the outputs are flushed: a Kafka output waits
    /// for its deliveries).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub checkpoint_every: String,
    /// Replay: write only the outputs from this event time on (RFC 3339). The input is still read
    /// from its start, so the state at that time is the live run's and every key's output in the
    /// replay equals the live run's over the same range.
    #[arg(long, value_name = "TIME", conflicts_with = "from_offsets")]
    pub from_time: Option<String>,
    /// Replay from the records at these offsets (topic:partition:offset,...): the earliest of
    /// their timestamps is the replay's start, as with --from-time.
    #[arg(long, value_name = "T:P:O,...")]
    pub from_offsets: Option<String>,
    /// Replay: stop at this event time (RFC 3339), or at the records at these offsets
    /// (topic:partition:offset,...: the earliest of their times), writing only outputs before it;
    /// each Kafka partition is read until it passes it by the allowed lateness (with --until-end,
    /// or until it reaches its end).
    #[arg(long, value_name = "TIME|T:P:O,...")]
    pub until: Option<String>,
    /// Replay: read the samples topic from this long before the replay's start (found with
    /// offsets-for-times: the producer must stamp messages with their event time, as the loadgen
    /// does) instead of from its beginning. Faster, and exact when the warm-up covers the baseline
    /// window and every incident open at the start; not set: read everything before (exact).
    #[arg(long, value_name = "DURATION")]
    pub warm_up: Option<String>,
    /// Warm start: learn from every sample, but report (anomalies, incidents, alerts) only those
    /// at or after TIME (RFC 3339) or `now` (the wall clock at start). A first start on a topic
    /// that holds days of history builds its baselines, seasonal ones included, at full speed
    /// without paging anyone about the past.
    #[arg(long, value_name = "TIME|now")]
    pub report_from: Option<String>,
}
