//! `--live`: the scenario starts now and each sample is written when the wall clock reaches its
//! time, stamped with it (`--speed N` plays it N times faster, stamps still the wall clock's).

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use incidentflow_loadgen::live::wall_ms;

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

/// `--live --start T --out DIR` writes the files of the live run that starts at T: the samples
/// `--live --start T --stdout` sends, and the edges, deploys, spans and truth on the same clock.
#[test]
fn the_files_of_a_live_run_agree_with_its_samples_on_every_time() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-files");
    let _ = std::fs::remove_dir_all(&dir);
    // An hour ago: the samples are all due, written at once.
    let start = wall_ms() / 1000 - 3600;
    let args = |more: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_incidentflow-loadgen"))
            .args(["--scenario", "small", "--live", "--speed", "60"])
            .args(["--start", &start.to_string()])
            .args(more)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out.stdout
    };
    args(&["--out", dir.to_str().unwrap()]);
    let sent = args(&["--stdout"]);
    let file = std::fs::read(dir.join("samples.jsonl")).unwrap();
    assert_eq!(sent, file);
    let ms = |text: &str| incidentflow_dataflows::time::parse_rfc3339(text).unwrap();
    let (first, last) = (start * 1000, start * 1000 + 6 * 60_000);
    for name in ["samples.jsonl", "topology.jsonl", "deploys.jsonl"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let at = ms(v["timestamp"].as_str().unwrap());
            assert!((first..last).contains(&at), "{name}: {line}");
        }
    }
    let topology = std::fs::read_to_string(dir.join("topology.jsonl")).unwrap();
    assert!(topology.starts_with(&format!(
        "{{\"schema_version\":1,\"timestamp\":\"{}\"",
        incidentflow_dataflows::time::format_rfc3339(first)
    )));
    let truth = std::fs::read_to_string(dir.join("truth.jsonl")).unwrap();
    for line in truth.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in ["start", "end"] {
            assert!(
                (first..=last).contains(&ms(v[key].as_str().unwrap())),
                "{line}"
            );
        }
    }
    let spans = std::fs::read_to_string(dir.join("spans.jsonl")).unwrap();
    for line in spans.lines().step_by(97) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let nanos: u64 = v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((first..last).contains(&(nanos / 1_000_000)), "{line}");
    }
}
