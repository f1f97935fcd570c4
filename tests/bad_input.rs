//! The bad-input test: a file mixing every kind of invalid line with valid ones. The job
//! finishes, the valid records are processed, every invalid one is in the dead-letter file with
//! its line number and reason, and read = valid + dead-lettered.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use common::*;
use incidentflow_dataflows::records::{EpisodeStatus, Reason};
use incidentflow_dataflows::wire::{AnomalyRecord, DeadLetterRecord};

#[test]
fn every_invalid_line_is_dead_lettered_with_its_reason_and_the_counts_add_up() {
    let dir = scratch("bad-input");
    let ok = |i: u64, v: f64| sample(T0 + i * 60_000, "shop", "api", "latency_p99", v);
    let good = r#""namespace":"shop","service":"api","metric_name":"latency_p99""#;
    // (line text, expected reason or None for a valid record)
    let mut lines: Vec<(Vec<u8>, Option<&str>)> = Vec::new();
    // Fifteen steady minutes (the champion judges from the eleventh sample), a spike, steady.
    let values = [
        0.42, 0.41, 0.43, 0.42, 0.44, 0.40, 0.42, 0.43, 0.41, 0.42, 0.44, 0.40, 0.43, 0.42, 0.41,
        1.86, 0.42, 0.43, 0.41, 0.42,
    ];
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (b"{\"timestamp\":\"2026-11-25T00:00:00Z\",\"namespace\":\"shop\xff\"}".to_vec(), "invalid_utf8"),
        (b"this is not json".to_vec(), "not_json"),
        (b"{\"timestamp\": 17955648".to_vec(), "not_json"),
        (b"[1, 2, 3]".to_vec(), "not_object"),
        (format!(r#"{{"timestamp":"2026-11-25T00:00:30Z",{good}}}"#).into_bytes(), "missing_field"),
        (br#"{"timestamp":"2026-11-25T00:00:30Z","namespace":"shop","service":"","metric_name":"m","value":1}"#.to_vec(), "empty_field"),
        (format!(r#"{{"timestamp":"2026-11-25T00:00:30Z",{good},"value":[1]}}"#).into_bytes(), "invalid_field"),
        (format!(r#"{{"timestamp":"2026-11-25T00:00:30Z",{good},"value":"NaN"}}"#).into_bytes(), "non_finite_value"),
        (format!(r#"{{"timestamp":"2026-11-25T00:00:30Z",{good},"value":"+Inf"}}"#).into_bytes(), "non_finite_value"),
        (format!(r#"{{"timestamp":"2026-11-25T00:00:30Z",{good},"value":1e300}}"#).into_bytes(), "value_out_of_range"),
        (format!(r#"{{"timestamp":"25/11/2026 00:00",{good},"value":1}}"#).into_bytes(), "bad_timestamp"),
        (format!(r#"{{"timestamp":1795564830,{good},"value":1}}"#).into_bytes(), "absurd_timestamp"),
        (format!(r#"{{"timestamp":"1970-01-01T00:00:00Z",{good},"value":1}}"#).into_bytes(), "absurd_timestamp"),
        (format!(r#"{{"schema_version":7,"timestamp":"2026-11-25T00:00:30Z",{good},"value":1}}"#).into_bytes(), "unknown_schema_version"),
        (format!(r#"{{"timestamp":"2026-11-25T00:00:30Z",{good},"value":1,"pad":"{}"}}"#, "x".repeat(5000)).into_bytes(), "oversized"),
    ];
    let mut bad = bad.into_iter();
    for (i, v) in values.iter().enumerate() {
        lines.push((ok(i as u64, *v).into_bytes(), None));
        if let Some((text, reason)) = bad.next() {
            lines.push((text, Some(reason)));
        }
        if i == 5 {
            lines.push((b"   ".to_vec(), None)); // a blank line is not a record
        }
    }
    for (text, reason) in bad {
        lines.push((text, Some(reason)));
    }
    // Late: 19 minutes behind the newest record of the partition (allowed lateness 10s).
    lines.push((ok(0, 0.5).into_bytes(), Some("late")));
    let mut file = Vec::new();
    for (text, _) in &lines {
        file.extend_from_slice(text);
        file.extend_from_slice(b"\r\n");
    }
    let input = dir.join("mixed.jsonl");
    std::fs::write(&input, &file).unwrap();
    std::fs::write(dir.join("job.toml"), "[input]\nmax_line_bytes = 4096\n").unwrap();

    let (anomalies, dead, summary_path) = (
        dir.join("anomalies.jsonl"),
        dir.join("dead.jsonl"),
        dir.join("summary.json"),
    );
    run_ok(&[
        "--input",
        input.to_str().unwrap(),
        "--config",
        dir.join("job.toml").to_str().unwrap(),
        "--anomalies-out",
        anomalies.to_str().unwrap(),
        "--dead-letter",
        dead.to_str().unwrap(),
        "--summary-out",
        summary_path.to_str().unwrap(),
    ]);

    // The valid records were processed: the spike among them is found (an episode that opens
    // at it and closes once the series is back).
    let found: Vec<AnomalyRecord> = records(&anomalies);
    let statuses: Vec<EpisodeStatus> = found
        .iter()
        .map(|a| a.episode.as_ref().unwrap().status)
        .collect();
    assert_eq!(
        statuses,
        [EpisodeStatus::Open, EpisodeStatus::Close],
        "{found:#?}"
    );
    assert_eq!(found[0].value, 1.86);

    // Every invalid line is dead-lettered with its line number, reason and original text.
    let letters: Vec<DeadLetterRecord> = records(&dead);
    let expected: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, (_, r))| r.map(|r| (i + 1, r)))
        .collect();
    assert_eq!(letters.len(), expected.len(), "{letters:#?}");
    for (letter, (line, reason)) in letters.iter().zip(&expected) {
        assert_eq!(letter.line, *line as u64, "{letter:?}");
        assert_eq!(letter.reason.as_str(), *reason, "{letter:?}");
        assert_eq!(letter.source, input.to_str().unwrap());
        assert!(!letter.detail.is_empty());
        let original = &lines[line - 1].0;
        if *reason == "oversized" {
            assert!(letter.truncated);
            assert_eq!(letter.raw.len(), 4096);
        } else if *reason == "invalid_utf8" {
            assert!(letter.raw_base64.is_some());
        } else {
            assert_eq!(letter.raw.as_bytes(), original.as_slice());
        }
    }
    let late = letters.iter().find(|l| l.reason == Reason::Late).unwrap();
    assert!(late.detail.contains("allowed lateness is 10s"), "{late:?}");

    // The counts add up.
    let s = summary(&summary_path);
    let invalid = expected.len() as u64;
    assert_eq!(s["read"], values.len() as u64 + invalid);
    assert_eq!(s["valid"], values.len() as u64);
    assert_eq!(s["dead_lettered"], invalid);
    assert_eq!(
        s["read"].as_u64().unwrap(),
        s["valid"].as_u64().unwrap() + s["dead_lettered"].as_u64().unwrap()
    );
    assert_eq!(s["dead_lettered_by_reason"]["non_finite_value"], 2);
    assert_eq!(s["dead_lettered_by_reason"]["late"], 1);
    assert_eq!(s["anomalies"], 2, "the episode's open and close");
}

#[test]
fn configuration_and_io_errors_exit_non_zero_with_one_line() {
    let dir = scratch("cli-errors");
    let out = incidentflow()
        .args([
            "run",
            "--input",
            dir.join("missing.jsonl").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read input") && err.contains("missing.jsonl"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    std::fs::write(dir.join("job.toml"), "[baseline]\nwindw = \"1h\"\n").unwrap();
    std::fs::write(dir.join("in.jsonl"), "").unwrap();
    let out = incidentflow()
        .args([
            "run",
            "--input",
            dir.join("in.jsonl").to_str().unwrap(),
            "--config",
            dir.join("job.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `windw`") && err.contains("job.toml"),
        "{err}"
    );

    let out = incidentflow()
        .args(["run", "--processes", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hostfile"));
}

/// Runs the job on `lines` (a file, or standard input when `piped`); returns the summary and
/// the dead letters.
fn run_lines(
    name: &str,
    lines: &[String],
    piped: bool,
) -> (serde_json::Value, Vec<DeadLetterRecord>) {
    let dir = scratch(name);
    let input = dir.join("in.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (dead, summary_path) = (dir.join("dead.jsonl"), dir.join("summary.json"));
    let out = incidentflow()
        .args([
            "run",
            "--input",
            if piped { "-" } else { input.to_str().unwrap() },
        ])
        .args(["--dead-letter", dead.to_str().unwrap()])
        .args(["--summary-out", summary_path.to_str().unwrap()])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let letters = if dead.exists() {
        records(&dead)
    } else {
        Vec::new()
    };
    (summary(&summary_path), letters)
}

#[test]
fn one_record_from_a_wrong_clock_is_dead_lettered_as_future_and_the_rest_are_judged() {
    const DAY: u64 = 24 * 3_600_000;
    let minute = |i: u64| {
        let value = 1.0 + (i % 3) as f64 * 0.01;
        sample(T0 + i * 60_000, "shop", "api", "latency_p99", value)
    };
    // 201 lines, a minute apart; lines 1 and 52 stamped five days ahead (still behind the wall
    // clock, so only their partition can tell).
    let mut lines: Vec<String> = (0..201).map(minute).collect();
    lines[0] = sample(T0 + 5 * DAY, "shop", "db", "latency_p99", 1.0);
    lines[51] = sample(T0 + 5 * DAY, "shop", "api", "latency_p99", 1.0);
    let (s, letters) = run_lines("future-file", &lines, false);
    let reasons: Vec<(u64, &str)> = letters
        .iter()
        .map(|l| (l.line, l.reason.as_str()))
        .collect();
    assert_eq!(reasons, [(1, "future"), (52, "future")], "{letters:#?}");
    assert!(
        letters[1]
            .detail
            .contains("ahead of the newest record of its partition"),
        "{:?}",
        letters[1]
    );
    assert_eq!(s["read"], 201);
    assert_eq!(s["valid"], 199);
    assert_eq!(s["dead_lettered_by_reason"]["future"], 2);

    // Read live, a sample ahead of the wall clock by more than max_ahead: refused, its
    // partition aside (the first line, so that nothing before it says where the data is).
    let mut lines: Vec<String> = (0..30).map(minute).collect();
    lines[0] = sample(T0 + 700 * DAY, "shop", "api", "latency_p99", 1.0);
    let (s, letters) = run_lines("future-wall", &lines, true);
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert!(
        letters[0].detail.contains("ahead of the wall clock"),
        "{:?}",
        letters[0]
    );
    assert_eq!(s["valid"], 29);
}

#[test]
fn a_gap_in_the_data_confirmed_by_the_records_after_it_loses_nothing() {
    // Two hours of minutes, then nothing for six hours, then two hours more: every record kept.
    let lines: Vec<String> = (0..120)
        .chain(480..600)
        .map(|i| sample(T0 + i * 60_000, "shop", "api", "latency_p99", 1.0))
        .collect();
    let (s, letters) = run_lines("future-gap", &lines, false);
    assert!(letters.is_empty(), "{letters:#?}");
    assert_eq!(s["valid"], 240);
    // The same gap with fewer records after it than confirm it: those are refused, counted.
    let lines: Vec<String> = (0..120)
        .chain(480..485)
        .map(|i| sample(T0 + i * 60_000, "shop", "api", "latency_p99", 1.0))
        .collect();
    let (s, letters) = run_lines("future-short", &lines, false);
    assert_eq!(letters.len(), 5, "{letters:#?}");
    assert_eq!(s["read"], s["valid"].as_u64().unwrap() + 5);
}
