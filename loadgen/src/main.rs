//! `incidentflow-loadgen`: writes a scenario to a directory (samples, topology, deploys and
//! ground truth as JSON Lines) or streams its samples to standard output, as fast as possible or
//! at a target rate (open loop: the schedule does not wait for the reader).

use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use incidentflow_dataflows::time::parse_duration;
use incidentflow_loadgen::scenario::{Scenario, ScenarioConfig};

/// Seeded load generator for incidentflow, with ground truth.
#[derive(Parser)]
#[command(name = "incidentflow-loadgen", version, about)]
struct Args {
    /// small (10 services, for tests), medium (300 services) or large (105,000 series, for
    /// benchmarks): Gaussian noise, faults that show. ops-1m (30 services with pods, a sample a
    /// minute, a train of faults every 8 minutes, a third barely showing) or ops-5m (20 services,
    /// 20 days at five minutes): heavy tails, pod restarts, histogram buckets and their
    /// artefacts, quantised and near-constant series.
    #[arg(long, default_value = "small")]
    scenario: String,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Override the scenario's length (30m, 6h, ...).
    #[arg(long)]
    duration: Option<String>,
    /// Override the number of services.
    #[arg(long)]
    services: Option<usize>,
    /// Override the time between samples of a series (30s, 1m, ...).
    #[arg(long)]
    interval: Option<String>,
    /// Override the number of faults.
    #[arg(long)]
    faults: Option<usize>,
    /// Override how often a pod restarts under a new name (a new series): 20m, 3h, ...; 0s:
    /// never (the churn benchmark's run without churn).
    #[arg(long, value_name = "DURATION")]
    restart_every: Option<String>,
    /// Write samples.jsonl, topology.jsonl, deploys.jsonl and truth.jsonl into this directory.
    #[arg(long, value_name = "DIR", conflicts_with = "stdout")]
    out: Option<PathBuf>,
    /// Stream the samples to standard output instead.
    #[arg(long)]
    stdout: bool,
    /// Emit this many samples per second of wall time (0: as fast as possible).
    #[arg(long, default_value_t = 0, conflicts_with = "live")]
    rate: u64,
    /// Send the samples to a Prometheus remote write receiver (`http://HOST:PORT/api/v1/write`,
    /// the job's `--input remote-write://HOST:PORT`) in WriteRequests of 1,000 samples.
    #[arg(long, value_name = "URL", conflicts_with_all = ["out", "stdout", "kafka"])]
    remote_write: Option<String>,
    /// Live: the scenario starts now (or at --start) and every record is stamped with the
    /// wall-clock time it falls at, so the job's incidents are live (an Alertmanager shows them
    /// firing, then resolved). With --stdout or --remote-write each sample is sent when the wall
    /// clock reaches its time; with --kafka the samples, edges, deploys and spans are produced to
    /// their topics when they fall due; with --out the files of that live run are written at once
    /// (give the same --start to the run that sends the samples).
    #[arg(long)]
    live: bool,
    /// With --live: play the scenario this many times faster, every record still stamped with
    /// the wall-clock time it falls at (a series sampled every minute is sampled every minute / N).
    #[arg(long, default_value_t = 1.0, requires = "live")]
    speed: f64,
    /// With --live: when the scenario starts (epoch seconds or RFC 3339) instead of now, so that
    /// two runs (the files of a live run, and its samples) agree on every time.
    #[arg(long, value_name = "TIME", requires = "live")]
    start: Option<String>,
    /// Produce the scenario to Kafka instead (samples, topology and deploys to their topics,
    /// created when missing).
    #[arg(long, value_name = "HOSTS", conflicts_with_all = ["out", "stdout"])]
    kafka: Option<String>,
    /// Partitions of the samples topic when it is created.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Samples per Kafka message (JSON Lines); 1 gives one sample per message, keyed by series.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Topic names.
    #[arg(long, default_value = "raw.metrics")]
    samples_topic: String,
    #[arg(long, default_value = "raw.topology")]
    topology_topic: String,
    #[arg(long, default_value = "raw.deploys")]
    deploys_topic: String,
    /// The spans topic (OTLP JSON, the job's kafka.spans_topic), produced for scenarios of at most
    /// 500,000 calls.
    #[arg(long, default_value = "otlp_spans")]
    spans_topic: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("incidentflow-loadgen: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config(args: &Args) -> io::Result<ScenarioConfig> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let mut c = ScenarioConfig::named(&args.scenario, args.seed).ok_or_else(|| {
        bad(format!(
            "unknown scenario {:?}: use small, medium, large, ops-1m or ops-5m",
            args.scenario
        ))
    })?;
    if args.live {
        c.start = match &args.start {
            None => incidentflow_loadgen::live::wall_ms() / 1000 * 1000,
            Some(t) => match t.parse::<u64>() {
                Ok(seconds) => seconds.saturating_mul(1000),
                Err(_) => incidentflow_dataflows::time::parse_rfc3339(t).map_err(|_| {
                    bad(format!(
                        "--start {t:?}: give epoch seconds or an RFC 3339 time"
                    ))
                })?,
            },
        };
    }
    if let Some(d) = &args.duration {
        c.duration = parse_duration(d).map_err(bad)?;
    }
    if let Some(i) = &args.interval {
        c.interval = parse_duration(i).map_err(bad)?.max(1000);
    }
    if let Some(s) = args.services {
        c.services = s;
    }
    if let Some(f) = args.faults {
        c.faults = f;
    }
    if let Some(r) = &args.restart_every {
        c.realism.restart_every = parse_duration(r).map_err(bad)?;
    }
    if c.duration < c.interval * 10 {
        return Err(bad("the duration must hold at least 10 intervals".into()));
    }
    Ok(c)
}

fn run(args: &Args) -> io::Result<()> {
    let scenario = Scenario::new(config(args)?);
    let clock = args
        .live
        .then(|| incidentflow_loadgen::live::Clock::new(scenario.config.start, args.speed));
    if let Some(brokers) = &args.kafka {
        let target = incidentflow_loadgen::kafka::KafkaTarget {
            brokers: brokers.clone(),
            samples_topic: args.samples_topic.clone(),
            topology_topic: args.topology_topic.clone(),
            deploys_topic: args.deploys_topic.clone(),
            spans_topic: (scenario.calls() <= incidentflow_loadgen::files::SPANS_MAX)
                .then(|| args.spans_topic.clone()),
            partitions: args.partitions.max(1),
            batch: args.batch.max(1),
        };
        let started = Instant::now();
        let produced = match clock {
            Some(clock) => incidentflow_loadgen::kafka::produce_live(&scenario, &target, clock),
            None => incidentflow_loadgen::kafka::produce_scenario(&scenario, &target, args.rate),
        }
        .map_err(io::Error::other)?;
        eprintln!(
            "incidentflow-loadgen: produced {} samples ({} series), {} edges, {} deploys and {} span batches to {} in {:.1}s",
            produced.samples,
            scenario.series(),
            produced.edges,
            produced.deploys,
            produced.spans,
            brokers,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if let Some(url) = &args.remote_write {
        let sent = match clock {
            Some(clock) => {
                incidentflow_loadgen::remote_write::send_live(scenario.samples(), clock, url)?
            }
            None => incidentflow_loadgen::remote_write::send_all(scenario.samples(), url)?,
        };
        eprintln!(
            "incidentflow-loadgen: sent {} samples to {url} ({} requests sent again after 5xx or 429)",
            sent.samples, sent.retried
        );
        return Ok(());
    }
    match (&args.out, args.stdout, clock) {
        (Some(dir), _, clock) => write_dir(&scenario, dir, args.rate, clock),
        (None, true, Some(clock)) => {
            let out = io::stdout();
            incidentflow_loadgen::files::live(
                scenario.samples(),
                &mut BufWriter::with_capacity(1 << 16, out.lock()),
                clock,
            )
        }
        (None, true, None) => {
            let out = io::stdout();
            incidentflow_loadgen::files::paced(
                scenario.samples(),
                &mut BufWriter::with_capacity(1 << 16, out.lock()),
                args.rate,
            )
        }
        (None, false, _) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "give --out DIR, --stdout, --kafka HOSTS or --remote-write URL",
        )),
    }
}

fn write_dir(
    scenario: &Scenario,
    dir: &Path,
    rate: u64,
    live: Option<incidentflow_loadgen::live::Clock>,
) -> io::Result<()> {
    incidentflow_loadgen::files::write_dir_stamped(scenario, dir, rate, live)?;
    let stamped = match live {
        Some(clock) => format!(
            ", stamped for a live run from {} at {}x",
            incidentflow_dataflows::time::format_rfc3339(clock.start),
            clock.speed
        ),
        None => String::new(),
    };
    eprintln!(
        "incidentflow-loadgen: wrote {} services, {} series, {} faults, {} deploys to {}{stamped}",
        scenario.topology.services.len(),
        scenario.series(),
        scenario.faults.len(),
        scenario.deploys.len(),
        dir.display()
    );
    Ok(())
}
