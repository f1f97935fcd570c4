//! The file driver: a scenario written to a directory as JSON Lines (samples, topology, deploys,
//! ground truth), and samples paced at a target rate. The binary and the tests both use it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::scenario::Scenario;

/// Writes `samples.jsonl`, `topology.jsonl`, `deploys.jsonl`, `truth.jsonl` and (for scenarios
/// of at most [`SPANS_MAX`] calls) `spans.jsonl` into `dir`, the samples at `rate` lines per
/// second (0: as fast as possible).
pub fn write_dir(scenario: &Scenario, dir: &Path, rate: u64) -> io::Result<()> {
    write_dir_stamped(scenario, dir, rate, None)
}

/// [`write_dir`], with every time in the files the one a live run on the `live` clock stamps
/// (`--live --out`: the files of a live run, written at once).
pub fn write_dir_stamped(
    scenario: &Scenario,
    dir: &Path,
    rate: u64,
    live: Option<crate::live::Clock>,
) -> io::Result<()> {
    let stamp = |line: String| match live {
        Some(clock) => clock.restamp(&line).1,
        None => line,
    };
    std::fs::create_dir_all(dir)?;
    let create = |name: &str| -> io::Result<BufWriter<File>> {
        Ok(BufWriter::with_capacity(
            1 << 20,
            File::create(dir.join(name))?,
        ))
    };
    for (name, lines) in [
        (
            "topology.jsonl",
            Box::new(scenario.edges()) as Box<dyn Iterator<Item = String>>,
        ),
        ("deploys.jsonl", Box::new(scenario.deploy_lines())),
        ("truth.jsonl", Box::new(scenario.truth())),
    ] {
        let mut w = create(name)?;
        for line in lines {
            writeln!(w, "{}", stamp(line))?;
        }
        w.flush()?;
    }
    // The spans of the call graph, for scenarios whose calls fit in a few hundred MB.
    if scenario.calls() <= SPANS_MAX {
        let mut w = create("spans.jsonl")?;
        for line in scenario.spans() {
            writeln!(w, "{}", stamp(line))?;
        }
        w.flush()?;
    }
    let mut w = create("samples.jsonl")?;
    paced(scenario.samples().map(stamp), &mut w, rate)
}

/// The most calls [`write_dir`] writes as spans (about 700 bytes each).
pub const SPANS_MAX: u64 = 500_000;

/// Writes `lines`, at `rate` lines per second when it is above 0 (open loop: line i is due at
/// start + i / rate whatever the reader does; a late writer catches up without sleeping).
pub fn paced(
    lines: impl Iterator<Item = String>,
    out: &mut impl Write,
    rate: u64,
) -> io::Result<()> {
    let start = Instant::now();
    for (i, line) in lines.enumerate() {
        if rate > 0 && i % 256 == 0 {
            out.flush()?;
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes `lines` live: each when the wall clock reaches its time (see [`crate::live::Clock`]),
/// stamped with it.
pub fn live(
    lines: impl Iterator<Item = String>,
    out: &mut impl Write,
    clock: crate::live::Clock,
) -> io::Result<()> {
    for line in lines {
        let (due, line) = clock.restamp(&line);
        if due > crate::live::wall_ms() {
            out.flush()?;
            crate::live::wait_until(due);
        }
        writeln!(out, "{line}")?;
    }
    out.flush()
}
