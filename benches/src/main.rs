//! The benchmark harness. On two inputs, a synthetic file (`--samples`, `--series`) and a loadgen
//! scenario (`--scenario large`, generated once into `bench-data/`), it runs the `incidentflow`
//! binary with 1 and 2 workers and the same work as a plain single-threaded loop (the job's
//! decoder, per-series state, the job's champion) as the reference, and checks that all three
//! find the same anomalies. On the scenario it measures the champion against the z-score (the
//! champion before it) per core, and every detector against the champion alone. Then it measures
//! end-to-end latency under an open-loop load of
//! `--rate` samples/s written into the job's stdin. With correlation on (the scenario's topology
//! and deploys), it measures the scenario's throughput again and the latency from a sample to the
//! incident version it opened or updated. It prints and writes the figures
//! (`bench-data/results.md`, `bench-data/results.json`).
//!
//! ```text
//! cargo run --release -p incidentflow-benches -- [--runs 3] [--scenario large] [--rate 100000]
//! ```
//!
//! Rates are records per wall second from JSON file to anomaly file, best of `--runs`; CPU
//! seconds and peak RSS are the child's own (from /proc, printed in its summary).
//!
//! | module | what it holds |
//! |---|---|
//! | this one | `main`, and the order of the measurements in each mode |
//! | `cli` | the command line |
//! | `setup` | the inputs generated, the job built, the machine described |
//! | `reference` | the plain single-threaded loop, run as a child process |
//! | `measure` | one measured run of the job, best of several, output files compared |
//! | `throughput` | the file runs: job against reference, two builds, the scenario comparisons |
//! | `latency` | end-to-end latency through the job's stdin and stdout |
//! | `kafka` | replay and latency through a tansu broker |
//! | `report` | the scenario comparisons in words, and the results written |

mod cli;
mod kafka;
mod latency;
mod measure;
mod reference;
mod remote_write;
mod report;
mod setup;
mod throughput;

use std::path::Path;

use crate::cli::Options;
use crate::kafka::kafka_bench;
use crate::latency::{latency, Timed};
use crate::measure::{best, run_job};
use crate::report::publish;
use crate::setup::ScenarioInput;

fn main() {
    let o = <Options as clap::Parser>::parse();
    let result = match &o.reference_only {
        Some(input) => reference::reference_main(input),
        None if o.samples < o.series => Err("--samples must be at least --series".to_string()),
        None => bench(&o),
    };
    if let Err(e) = result {
        eprintln!("incidentflow-benches: {e}");
        std::process::exit(1);
    }
}

/// Prepares the inputs and the job, then runs one of the three modes: two builds against each
/// other (`--before`), Kafka only (`--only kafka`), or every measurement.
fn bench(o: &Options) -> Result<(), String> {
    std::fs::create_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    let synthetic = setup::synthetic_input(o)?;
    let input = setup::scenario_input(o)?;
    let (exe, job) = setup::build_job()?;
    let machine = setup::machine_description();
    let md = format!("Machine: {machine}.\n\n");
    if let Some(before) = &o.before {
        return before_and_after_only(o, before, &job, &synthetic, &input, md);
    }
    match o.only.as_deref() {
        Some("remote-write") => {
            return only(
                o,
                &job,
                &input,
                md,
                "remote-write",
                remote_write::remote_write_bench,
            )
        }
        Some(_) => return only(o, &job, &input, md, "kafka", kafka_bench),
        None => {}
    }
    let inputs = Inputs {
        exe: &exe,
        job: &job,
        synthetic: &synthetic,
        scenario: &input,
    };
    every_measurement(o, &inputs, md, &machine)
}

/// `--before BIN`: the job's throughput against that build on both inputs, and nothing else.
fn before_and_after_only(
    o: &Options,
    before: &Path,
    job: &Path,
    synthetic: &Path,
    input: &ScenarioInput,
    mut md: String,
) -> Result<(), String> {
    md += &throughput::before_and_after(
        o,
        before,
        job,
        &[("synthetic", synthetic), (&o.scenario, &input.samples)],
    )?;
    publish(o, "results-before-after", &md, None)
}

/// The result of one part of the benchmark: its Markdown section and its figures.
type Part = Result<(String, serde_json::Value), String>;

/// `--only kafka` or `--only remote-write`: the file run's anomalies, then that part (`bench`)
/// checked against them, published as `results-<name>`.
fn only(
    o: &Options,
    job: &Path,
    input: &ScenarioInput,
    mut md: String,
    name: &str,
    bench: fn(&Options, &Path, &[String], &Path) -> Part,
) -> Result<(), String> {
    // The file run's anomalies, to check the part's runs against.
    let reference = run_job(job, &input.samples, &o.dir, &o.scenario, 1, &[])?;
    eprintln!(
        "[{}] {} anomalies from the file",
        o.scenario, reference.anomalies
    );
    let lines: Vec<String> = input.scenario.samples().collect();
    let anomalies = o.dir.join(format!("anomalies-{}-w1.jsonl", o.scenario));
    let (part, json) = bench(o, job, &lines, &anomalies)?;
    md += &part;
    publish(o, &format!("results-{name}"), &md, Some(&json))
}

/// What every measurement reads: this benchmark's binary (for the reference), the job's, and the
/// two inputs.
struct Inputs<'a> {
    exe: &'a Path,
    job: &'a Path,
    synthetic: &'a Path,
    scenario: &'a ScenarioInput,
}

/// Every measurement in turn, each adding its section to `md` and its figures to the JSON:
/// throughput on both inputs, the champion against the z-score, every detector, latency,
/// correlation and its latency, then Kafka.
fn every_measurement(
    o: &Options,
    inputs: &Inputs<'_>,
    mut md: String,
    machine: &str,
) -> Result<(), String> {
    let Inputs {
        exe,
        job,
        synthetic,
        scenario: input,
    } = *inputs;
    let scenario = &input.scenario;
    let (a, a_json) = throughput::throughput(
        o,
        exe,
        job,
        "synthetic",
        "Synthetic input",
        synthetic,
        o.series,
    )?;
    md += &a;
    let title = format!("The {} loadgen scenario (seed {})", o.scenario, o.seed);
    let (b, b_json) = throughput::throughput(
        o,
        exe,
        job,
        &o.scenario,
        &title,
        &input.samples,
        scenario.series() as u64,
    )?;
    md += &b;
    // The champion against the z-score, the champion before it, on the same scenario (1 worker):
    // the cost of judging every series on its own history instead of a window.
    let zscore = throughput::zscore_champion_run(o, job, input)?;
    let alone = best(o.runs, || {
        run_job(job, &input.samples, &o.dir, &o.scenario, 1, &[])
    })?;
    let scenario_samples = scenario.samples().count() as f64;
    let (champion, champion_json) = report::champion_report(o, scenario_samples, &alone, &zscore);
    md += &champion;
    // Every detector on: the champion and five challengers in shadow, against the champion alone
    // on the same scenario (1 worker).
    let all = throughput::every_detector_run(o, job, input)?;
    let (detectors, detectors_json) =
        report::every_detector_report(o, scenario_samples, &alone, &all);
    md += &detectors;
    eprintln!("latency at {} samples/s...", o.rate);
    let lines: Vec<String> = scenario.samples().collect();
    let (c, c_json) = latency(job, lines.clone(), o.rate, 1, Timed::Anomalies)?;
    md += &c;

    // Correlation on: the same scenario with its topology and deploys.
    let correlation = throughput::correlation_runs(o, job, input)?;
    let (corr, correlation_json) =
        report::correlation_report(o, lines.len() as f64, scenario.series(), &correlation);
    md += &corr;
    eprintln!("incident latency at {} samples/s...", o.rate);
    let topology = input.dir.join("topology.jsonl");
    let (d, d_json) = latency(job, lines.clone(), o.rate, 1, Timed::Incidents(&topology))?;
    md += &d;
    let (k, kafka_json) = kafka_bench(
        o,
        job,
        &lines,
        &o.dir.join(format!("anomalies-{}-w1.jsonl", o.scenario)),
    )?;
    md += &k;
    let json = serde_json::json!({"machine": machine, "synthetic": a_json, "scenario": b_json, "champion": champion_json, "every_detector": detectors_json, "correlation": correlation_json, "latency": c_json, "incident_latency": d_json, "kafka": kafka_json});
    publish(o, "results", &md, Some(&json))?;
    eprintln!(
        "wrote {} and {}",
        o.dir.join("results.md").display(),
        o.dir.join("results.json").display()
    );
    Ok(())
}
