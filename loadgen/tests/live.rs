//! `--live`: the scenario starts now and each sample is written when the wall clock reaches its
//! time, stamped with it (`--speed N` plays it N times faster, stamps still the wall clock's).

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use incidentflow_loadgen::files::wall_ms;

#[test]
fn live_samples_are_written_when_due_and_stamped_with_the_wall_clock() {
    let args = ["--scenario", "small", "--duration", "20m", "--stdout"];
    let all = Command::new(env!("CARGO_BIN_EXE_incidentflow-loadgen"))
        .args(args)
        .output()
        .unwrap();
    let expected = String::from_utf8(all.stdout).unwrap().lines().count();

    // 20 minutes at 200 times: 6 s of wall time (from the start, the second the generator began
    // in; generating the scenario takes part of it, in a debug build a second or two).
    let mut child = Command::new(env!("CARGO_BIN_EXE_incidentflow-loadgen"))
        .args(args)
        .args(["--live", "--speed", "200"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = 0;
    let (mut first, mut last) = (None, 0u64);
    let mut read_from: Option<Instant> = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let read_at = wall_ms();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let at =
            incidentflow_dataflows::time::parse_rfc3339(v["timestamp"].as_str().unwrap()).unwrap();
        // Never ahead of the clock; written when due, not long before it is read.
        assert!(at <= read_at + 5, "stamped {at}, read at {read_at}");
        assert!(read_at - at < 1_500, "stamped {at}, read only at {read_at}");
        first.get_or_insert(at);
        read_from.get_or_insert_with(Instant::now);
        last = last.max(at);
        seen += 1;
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(seen, expected, "every sample of the scenario, once");
    let span = last - first.unwrap();
    assert!(
        (5_500..=6_100).contains(&span),
        "20 minutes at 200 times spans 6 s of stamps, not {span} ms"
    );
    // Written over time, not at once: the lines came over more than a second of reading.
    let reading = read_from.unwrap().elapsed();
    assert!(
        reading >= Duration::from_millis(2_500),
        "read in {reading:?}"
    );
}
