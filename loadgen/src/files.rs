//! The file driver: a scenario written to a directory as JSON Lines (samples, topology, deploys,
//! ground truth), and samples paced at a target rate. The binary and the tests both use it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use incidentflow_dataflows::time::Time;

use crate::scenario::Scenario;

/// Writes `samples.jsonl`, `topology.jsonl`, `deploys.jsonl`, `truth.jsonl` and (for scenarios
/// of at most [`SPANS_MAX`] calls) `spans.jsonl` into `dir`, the samples at `rate` lines per
/// second (0: as fast as possible).
pub fn write_dir(scenario: &Scenario, dir: &Path, rate: u64) -> io::Result<()> {
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
            writeln!(w, "{line}")?;
        }
        w.flush()?;
    }
    // The spans of the call graph, for scenarios whose calls fit in a few hundred MB.
    let calls = scenario.topology.changes.len() as u64 * scenario.config.duration
        / crate::scenario::CALL_EVERY;
    if calls <= SPANS_MAX {
        let mut w = create("spans.jsonl")?;
        for line in scenario.spans() {
            writeln!(w, "{line}")?;
        }
        w.flush()?;
    }
    let mut w = create("samples.jsonl")?;
    paced(scenario.samples(), &mut w, rate)
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

/// Writes `lines` live (see [`live_schedule`]): each when the wall clock reaches its time.
pub fn live(
    lines: impl Iterator<Item = String>,
    out: &mut impl Write,
    start: Time,
    speed: f64,
) -> io::Result<()> {
    for (due, line) in live_schedule(lines, start, speed) {
        let now = wall_ms();
        if due > now {
            out.flush()?;
            std::thread::sleep(Duration::from_millis(due - now));
        }
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// `lines` live: a line stamped `t` (the scenario starting at `start`) is due when the wall clock
/// reaches `start + (t - start) / speed`, and is stamped with that time. At `speed` 1 the
/// scenario plays in real time; at `speed` N, N times faster, every line still stamped with the
/// wall-clock time it is due at (the series' intervals shrink N times). A line without a
/// timestamp is due at once, as it is. Each line with its due time; the caller waits for it.
pub fn live_schedule(
    lines: impl Iterator<Item = String>,
    start: Time,
    speed: f64,
) -> impl Iterator<Item = (Time, String)> {
    let speed = if speed > 0.0 { speed } else { 1.0 };
    lines.map(move |line| {
        let stamped = split_timestamp(&line).and_then(|(before, stamp, after)| {
            let at = incidentflow_dataflows::time::parse_rfc3339(stamp).ok()?;
            let due = start + (at.saturating_sub(start) as f64 / speed) as Time;
            let stamp = incidentflow_dataflows::time::format_rfc3339(due);
            Some((due, format!("{before}{stamp}{after}")))
        });
        stamped.unwrap_or((0, line))
    })
}

/// The text of a line's `"timestamp":"..."` value, and what is before and after it.
fn split_timestamp(line: &str) -> Option<(&str, &str, &str)> {
    const KEY: &str = "\"timestamp\":\"";
    let from = line.find(KEY)? + KEY.len();
    let len = line[from..].find('"')?;
    Some((&line[..from], &line[from..from + len], &line[from + len..]))
}

/// Milliseconds since the epoch, now.
pub fn wall_ms() -> Time {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Time)
}
