//! `incidentflow run`: from the command line to a finished run. Loads the job file, lays out
//! the cluster, starts the HTTP endpoints and the side inputs, opens the input and the outputs
//! (taking up a checkpoint, or a replay's window), runs the dataflow (`dataflow`) and prints what
//! it found (`report`).
//!
//! * `window`: a replay's start and end (`--from-time`, `--from-offsets`, `--until`).
//! * `outputs`: the record outputs, dead letters and checkpoint, opened before the run.

pub mod outputs;
pub mod window;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use incidentflow_dataflows::time::{format_rfc3339, parse_duration, parse_rfc3339};

use crate::cli::{RunArgs, Target};
use crate::config::{JobConfig, KafkaSection};
use crate::dataflow::{Cluster, Outputs, RunSpec};
use crate::emit::checkpoint::Checkpoint;
use crate::emit::records::{Durability, Listeners, Outcome};
use crate::error::JobError;
use crate::ingest::feed::FeedSpec;
use crate::ingest::files::InputSource;
use crate::ingest::side_input::{follow, SideSource};
use crate::ingest::silences::SilenceQueue;
use crate::kafka::KafkaClient;
use crate::ops::feedback_book::{FeedbackBook, RESOLVED_KEPT};
use crate::ops::metrics::Metrics;
use crate::ops::shutdown::Shutdown;
use crate::report::summary::{anomaly_digest, Report};
use crate::report::{demo, review};
use outputs::{open_outputs, OutputPlan};
use window::replay_window;

/// How long queued alerts may still take to go out when the job ends.
const ALERT_GRACE: Duration = Duration::from_secs(10);

/// Runs the job as the command line says.
/// `shutdown`: the stop a signal asks for.
// Long: the run's steps in the order they happen, each a call or a few lines; split further, a reader would lose that order.
pub fn run(args: RunArgs, shutdown: Shutdown) -> Result<(), JobError> {
    let mut config = JobConfig::load_layered(args.config.as_deref(), std::env::vars())?;
    if let Some(brokers) = &args.kafka_brokers {
        config.kafka.brokers = brokers.clone();
    }
    if let Some(addr) = &args.metrics_addr {
        config.metrics.addr = addr.clone();
    }
    let kafka = config.kafka.clone();
    let client =
        KafkaClient::new(&kafka.brokers, config.kafka_security()).stopping_on(shutdown.clone());
    let cluster = cluster(&args)?;
    let metrics = Arc::new(Metrics::new());
    if !config.metrics.addr.is_empty() {
        let bound = crate::ops::http::serve(
            &config.metrics.addr,
            config.metrics.ready_max_lag,
            metrics.clone(),
        )
        .map_err(|e| {
            JobError::Startup(format!(
                "cannot serve metrics on {}: {e} (is the port taken?)",
                config.metrics.addr
            ))
        })?;
        tracing::info!("serving /metrics, /healthz and /ready on http://{bound}");
    }
    let (feedback, live_silences) = follow_side_inputs(&args, &kafka, &client, &metrics)?;
    let demo = args.input.is_none();
    let leader = cluster.process_index == 0;
    let input = match remote_write_address(&args, &cluster)? {
        Some(addr) => receive_remote_write(&addr, &config, &metrics, &shutdown)?,
        None => input_source(&args, &kafka)?,
    };
    let (from, until) = replay_window(&args, &client)?;
    let every = parse_duration(&args.checkpoint_every)
        .map(Duration::from_millis)
        .map_err(|e| {
            JobError::Usage(format!("--checkpoint-every {}: {e}", args.checkpoint_every))
        })?;
    // Every process reads the checkpoint (for where to re-read from); process 0 keeps it. A
    // process that cannot see it re-reads its partitions from their start: slower, as exact.
    let resume = match &args.checkpoint {
        Some(path) => Checkpoint::load(path)?,
        None => None,
    };
    let (read_from, score_from) = restart_point(&args, &config, &input, resume.as_ref(), from)?;
    // Where dead letters go when --dead-letter is not given (created only when needed).
    let dead_letter_path = PathBuf::from("dead-letter.jsonl");
    // Alert outputs page people: a replay re-computes the past and sends nothing.
    let replay = from.is_some() || until.is_some();
    let alerts = match leader {
        true => start_alerts(&config, &metrics, replay)?,
        false => None,
    };
    let alerting = alerts.is_some();
    let outputs = if leader {
        open_outputs(OutputPlan {
            args: &args,
            kafka: &kafka,
            client: &client,
            input: &input,
            dead_letter_path: &dead_letter_path,
            resume: resume.as_ref(),
            every,
            window: (from, until),
            listeners: Listeners {
                alerts: alerts.as_ref().map(crate::alerts::Alerts::sender),
                feedback,
            },
        })?
    } else {
        Outputs {
            anomalies: None,
            dead_letter: None,
            incidents: None,
            durability: Durability::default(),
            listeners: Listeners::default(),
            challengers: None,
        }
    };
    let (topology, deploys) = event_inputs(&args, demo)?;
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
    let outcome = crate::dataflow::run(
        RunSpec {
            correlate: topology.is_some()
                || args.spans.is_some()
                || deploys.is_some()
                || args.incidents_out.is_some()
                || alerting,
            feed: FeedSpec {
                input,
                topology,
                deploys,
                spans: args.spans.clone(),
                kafka,
                kafka_client: client,
                until_end: args.until_end,
                until,
                read_from,
                progress: crate::ingest::progress::terminal_bars(),
                first_worker: cluster.process_index * cluster.workers,
            },
            config,
            cluster,
            silences: live_silences,
            score_from,
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        },
        outputs,
    );
    if let Some(Target::File(path)) = demo_topology {
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
    let anomalies_to = args.anomalies_out.as_ref().map(Target::to_string);
    let dead_letter_to = args
        .dead_letter
        .as_ref()
        .map_or(dead_letter_path.display().to_string(), Target::to_string);
    let report = Report {
        outcome: &outcome,
        elapsed,
        anomalies_to: anomalies_to.as_deref(),
        dead_letter_to: &dead_letter_to,
        workers: total_workers,
        metrics: &metrics,
    };
    print_results(&args, &outcome, &report, shutdown.requested())?;
    match &outcome.error {
        Some(e) => Err(JobError::OutputFailed(e.clone())),
        None => Ok(()),
    }
}

/// The alert outputs' delivery threads, when the job has alert outputs (none in a replay, which
/// re-computes the past and pages nobody).
fn start_alerts(
    config: &JobConfig,
    metrics: &Arc<Metrics>,
    replay: bool,
) -> Result<Option<crate::alerts::Alerts>, JobError> {
    if config.alerts.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = config.alerts.keys().map(String::as_str).collect();
    if replay {
        tracing::info!(outputs = ?names, "alert outputs are off during a replay");
        return Ok(None);
    }
    tracing::info!(outputs = ?names, "alert outputs on");
    crate::alerts::Alerts::start(&config.alerts, metrics.clone())
        .map(Some)
        .map_err(|e| JobError::Startup(format!("cannot start the alert outputs: {e}")))
}

/// The topology and deploy inputs, checked (a file must exist; standard input carries the
/// samples); the demo's own topology when it runs with none.
fn event_inputs(args: &RunArgs, demo: bool) -> Result<(Option<Target>, Option<Target>), JobError> {
    for (target, what) in [(&args.topology, "topology"), (&args.deploys, "deploys")] {
        match target {
            Some(Target::File(path)) => {
                std::fs::metadata(path).map_err(|source| JobError::Input {
                    what,
                    name: path.display().to_string(),
                    source,
                })?;
            }
            Some(Target::Stdio) if args.input == Some(Target::Stdio) => {
                return Err(JobError::Usage(format!(
                    "--{what} -: standard input carries the samples; give a file or kafka"
                )))
            }
            Some(Target::Stdio | Target::Kafka) | None => {}
        }
    }
    let on_stdin = [&args.topology, &args.deploys, &args.spans]
        .into_iter()
        .filter(|t| **t == Some(Target::Stdio))
        .count();
    if args.spans == Some(Target::Stdio) && args.input == Some(Target::Stdio) {
        return Err(JobError::Usage(
            "--spans -: standard input carries the samples; give a file or kafka".into(),
        ));
    }
    if on_stdin > 1 {
        return Err(JobError::Usage(
            "standard input carries one stream: give at most one of --topology, --deploys and --spans as -".into(),
        ));
    }
    Ok(match (demo, &args.topology) {
        (true, None) => (
            Some(Target::File(demo::topology_file()?)),
            args.deploys.clone(),
        ),
        _ => (args.topology.clone(), args.deploys.clone()),
    })
}

/// Starts the side inputs: feedback labels (into a book, for `/metrics`) and silences.
fn follow_side_inputs(
    args: &RunArgs,
    kafka: &KafkaSection,
    client: &KafkaClient,
    metrics: &Arc<Metrics>,
) -> Result<(Option<Arc<FeedbackBook>>, Option<SilenceQueue>), JobError> {
    // Standard input carries the samples: `-` is read as a file of that name.
    let source = |arg: &Target, topic: &str| match arg {
        Target::Kafka => SideSource::Topic {
            client: client.clone(),
            topic: topic.to_owned(),
        },
        other => SideSource::File(PathBuf::from(other.to_string())),
    };
    let book = match &args.feedback {
        Some(arg) => {
            let book = Arc::new(FeedbackBook::new(RESOLVED_KEPT));
            let (reader, counts) = (book.clone(), metrics.clone());
            follow(
                "feedback",
                source(arg, &kafka.feedback_topic),
                move |line, at| reader.line(line, at, &counts),
            )?;
            let figures = book.clone();
            metrics.feedback_from(Box::new(move || figures.figures()));
            Some(book)
        }
        None => None,
    };
    // Worker 0, in process 0, enters the silences into the dataflow: no other process reads them.
    let silences = match &args.silences {
        Some(arg) if args.process_index == 0 => {
            let live = SilenceQueue::default();
            let (reader, counts) = (live.clone(), metrics.clone());
            follow(
                "silences",
                source(arg, &kafka.silences_topic),
                move |line, at| reader.line(line, at, &counts),
            )?;
            Some(live)
        }
        _ => None,
    };
    Ok((book, silences))
}

/// The address this process receives remote write on, if that is the input:
/// `--input remote-write://HOST:PORT` (every process listens there: one host each, behind a load
/// balancer) or `remote-write://A0,A1,...` (one address per process, in process-index order).
fn remote_write_address(args: &RunArgs, cluster: &Cluster) -> Result<Option<String>, JobError> {
    let Some(list) = remote_write_list(args) else {
        return Ok(None);
    };
    let addresses: Vec<&str> = list.split(',').map(str::trim).collect();
    match addresses[..] {
        [one] => Ok(Some(one.to_owned())),
        _ if addresses.len() == cluster.processes => {
            Ok(Some(addresses[cluster.process_index].to_owned()))
        }
        _ => Err(JobError::Usage(format!(
            "--input remote-write://{list}: give one address (every process listens on it) or one per process ({} here, in process-index order)",
            cluster.processes
        ))),
    }
}

/// What follows `remote-write://` in `--input`, if that is the input.
fn remote_write_list(args: &RunArgs) -> Option<&str> {
    match &args.input {
        Some(Target::File(path)) => path.to_str()?.strip_prefix("remote-write://"),
        _ => None,
    }
}

/// Starts this process's remote write receiver.
fn receive_remote_write(
    addr: &str,
    config: &JobConfig,
    metrics: &Arc<Metrics>,
    shutdown: &Shutdown,
) -> Result<InputSource, JobError> {
    let mapping = config.remote_write.clone();
    let (bound, queue) =
        crate::ingest::remote_write::serve(addr, mapping, metrics.clone(), shutdown.clone())
            .map_err(|e| {
                JobError::Startup(format!(
                    "cannot receive remote write on {addr}: {e} (is the port taken?)"
                ))
            })?;
    tracing::info!("receiving Prometheus remote write on http://{bound}/api/v1/write");
    Ok(InputSource::RemoteWrite {
        addr: bound.to_string(),
        queue,
    })
}

/// The samples' source: the embedded demo, standard input, the samples topic or a file.
fn input_source(args: &RunArgs, kafka: &KafkaSection) -> Result<InputSource, JobError> {
    Ok(match &args.input {
        None => {
            let (name, bytes) = demo::scenario();
            InputSource::Embedded { name, bytes }
        }
        Some(Target::Stdio) => InputSource::Stdin,
        Some(Target::Kafka) => InputSource::Kafka {
            topic: kafka.samples_topic.clone(),
        },
        Some(Target::File(path)) => {
            let path = path.clone();
            std::fs::metadata(&path).map_err(|source| JobError::Input {
                what: "input",
                name: path.display().to_string(),
                source,
            })?;
            InputSource::Path(path)
        }
    })
}

/// Where a Kafka input starts reading (None: from the beginning) and from when samples are
/// scored: a replay's warm-up, a restart's re-read, `--report-from`.
fn restart_point(
    args: &RunArgs,
    config: &JobConfig,
    input: &InputSource,
    resume: Option<&Checkpoint>,
    from: Option<u64>,
) -> Result<(Option<u64>, u64), JobError> {
    let read_from = match (&args.warm_up, from) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(JobError::Usage(
                "--warm-up goes with --from-time or --from-offsets".into(),
            ))
        }
        (Some(w), Some(from)) => {
            let w =
                parse_duration(w).map_err(|e| JobError::Usage(format!("--warm-up {w}: {e}")))?;
            Some(from.saturating_sub(w))
        }
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
        .filter(|c| is_kafka_input && c.output_time > 0 && window_champion)
        .map(|c| c.reread_from(history))
        .filter(|from| *from > 0);
    let read_from = read_from.or(reread);
    if let Some(c) = resume.filter(|_| args.process_index == 0) {
        let name = args
            .checkpoint
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string());
        let marks = format_rfc3339(c.output_time);
        match reread {
            _ if c.output_time == 0 => tracing::info!("checkpoint {name}: the earlier run had made nothing durable; starting over"),
            Some(from) => tracing::info!(
                "resuming from checkpoint {name}: the outputs before {marks} were written by an earlier run; re-reading {} from {} (the z-score's window, the merge window and grace before that and before the oldest incident open then) to rebuild the state",
                config.kafka.samples_topic,
                format_rfc3339(from)
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
        Some("now") => crate::ops::clock::now_ms(),
        Some(text) => parse_rfc3339(text).map_err(|e| {
            use incidentflow_dataflows::time::TimestampError::{Absurd, Unparseable};
            let (Unparseable(why) | Absurd(why)) = e;
            JobError::Usage(format!("--report-from: {why}; say an RFC 3339 time or now"))
        })?,
    };
    Ok((read_from, score_from.max(report_from)))
}

/// The digests (to standard output unless an output already streams there), the summary (to
/// standard error) and `--summary-out`.
fn print_results(
    args: &RunArgs,
    outcome: &Outcome,
    report: &Report,
    stopped: bool,
) -> Result<(), JobError> {
    let stdout_taken = [&args.anomalies_out, &args.incidents_out].contains(&&Some(Target::Stdio));
    if !stdout_taken && args.incidents_out.is_none() && !outcome.incidents.is_empty() {
        let versions: Vec<_> = outcome.incidents.iter().map(|i| i.record()).collect();
        print!("{}", review::render(&versions));
        if outcome.incident_versions > versions.len() as u64 {
            println!(
                "(the first {} of {} incident versions; write them all with --incidents-out FILE)",
                versions.len(),
                outcome.incident_versions
            );
        }
        println!();
    }
    if !stdout_taken && args.anomalies_out.is_none() {
        print!("{}", anomaly_digest(outcome));
    }
    eprint!("{}", report.human());
    if stopped && remote_write_list(args).is_some() {
        eprintln!("  stopped by a signal: every remote write request answered 204 was processed");
    } else if stopped {
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
    Ok(())
}

/// The workers' layout from `--workers`, `--processes`, `--process-index` and `--hostfile`.
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
