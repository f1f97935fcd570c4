//! The benchmark's command line: what to measure, on what inputs, how many times, and where the
//! inputs and results go.

use std::path::PathBuf;

/// Throughput and memory of incidentflow against a plain single-threaded loop.
#[derive(clap::Parser)]
#[command(name = "incidentflow-benches", about)]
pub struct Options {
    /// Samples in the synthetic input.
    #[arg(long, default_value_t = 3_000_000)]
    pub samples: u64,
    /// Series in the synthetic input.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub series: u64,
    /// Runs of each measurement (the best is kept).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where the inputs and the results go.
    #[arg(long, default_value = "bench-data")]
    pub dir: PathBuf,
    /// The loadgen scenario.
    #[arg(long, default_value = "large")]
    pub scenario: String,
    /// The scenario's seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Offered load of the latency measurement, samples/s.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// Only the Kafka part, or only the remote write part.
    #[arg(long, value_parser = ["kafka", "remote-write"])]
    pub only: Option<String>,
    /// Only this: the job's throughput against another build of it (BIN, for example the
    /// commit before a change), on both inputs, 1 worker, their runs alternating, and the same
    /// anomalies required of both.
    #[arg(long, value_name = "BIN")]
    pub before: Option<PathBuf>,
    /// Internal: run the reference loop on this input (a child process of the benchmark).
    #[arg(long, value_name = "FILE", hide = true)]
    pub reference_only: Option<PathBuf>,
}
