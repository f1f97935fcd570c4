//! Cardinality caps (`[limits] series_per_namespace`, `series`): an exporter that puts a request
//! id in a label makes a series per request; past the caps the new series are dead-lettered as
//! `cardinality` and counted, the series already in keep working, room comes back once series go
//! silent, and the same samples are refused at every worker and process count.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::path::Path;

use common::*;
use incidentflow_dataflows::wire::DeadLetterRecord;

/// Caps that the input below runs into: 8 series per namespace, 12 in the job; a series silent
/// for an hour (and a quarter: its report interval) frees its place.
const CAPS: &str = "[limits]\nseries_per_namespace = 8\nseries = 12\nforget_after = \"1h\"\n";

/// A labelled sample line.
fn labelled(ts: u64, namespace: &str, service: &str, label: (&str, &str)) -> String {
    format!(
        r#"{{"timestamp":"{}","namespace":"{namespace}","service":"{service}","metric_name":"requests","value":1,"labels":{{"{}":"{}"}}}}"#,
        rfc3339(ts),
        label.0,
        label.1
    )
}

/// Six hours and twenty minutes of five steady `shop` services (`s0` with a fault at the end)
/// from `T0 - 6h`, three `payments` series from a minute later; at `T0 - 60min` a burst of 40
/// one-sample `shop` series with a request id in a label; at `T0 - 50min` two new `payments`
/// series; at `T0 + 18min`, after the burst has been silent long enough, one new `shop` series.
fn input() -> String {
    let start = T0 - 360 * MIN;
    let mut text = samples(&[
        ("s0", &[10, 11, 12, 13]),
        ("s1", &[]),
        ("s2", &[]),
        ("s3", &[]),
        ("s4", &[]),
    ]);
    let mut late: Vec<(u64, String)> = Vec::new();
    for minute in 1..380 {
        for p in ["p0", "p1", "p2"] {
            late.push((
                start + minute * MIN,
                sample(start + minute * MIN, "payments", p, "errors", 0.5),
            ));
        }
    }
    for i in 0..40u64 {
        let at = T0 - 60 * MIN + i * 1000;
        late.push((
            at,
            labelled(at, "shop", "api", ("request_id", &format!("r{i:03}"))),
        ));
    }
    for (k, p) in ["p3", "p4"].iter().enumerate() {
        let at = T0 - 50 * MIN + k as u64 * 1000;
        late.push((at, sample(at, "payments", p, "errors", 0.5)));
    }
    let at = T0 + 18 * MIN;
    late.push((at, labelled(at, "shop", "api", ("request_id", "back"))));
    // In time order with the steady samples (a file's records may be late only by the lateness).
    let mut all: Vec<(u64, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let t = v["timestamp"].as_str().unwrap().to_string();
            (
                incidentflow_dataflows::time::parse_rfc3339(&t).unwrap(),
                l.to_string(),
            )
        })
        .collect();
    all.extend(late);
    all.sort_by_key(|(t, _)| *t);
    text.clear();
    for (_, line) in all {
        text += &line;
        text += "\n";
    }
    text
}

fn run(dir: &Path, tag: &str, config: &str, shape: &[&str]) -> Vec<String> {
    let job = dir.join(format!("job-{tag}.toml"));
    std::fs::write(&job, config).unwrap();
    let path = |what: &str| {
        dir.join(format!("{what}-{tag}.json"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let mut args: Vec<String> = vec![
        "run".into(),
        "--input".into(),
        dir.join("input.jsonl").to_str().unwrap().into(),
        "--config".into(),
        job.to_str().unwrap().into(),
        "--anomalies-out".into(),
        path("anomalies"),
        "--dead-letter".into(),
        path("dead"),
        "--summary-out".into(),
        path("summary"),
    ];
    if shape.is_empty() {
        run_two_by_two(dir, &args);
    } else {
        args.extend(shape.iter().map(|s| s.to_string()));
        succeeded(incidentflow().args(&args).output().unwrap());
    }
    args
}

#[test]
fn past_the_caps_new_series_are_dead_lettered_the_old_keep_working_and_room_comes_back() {
    let dir = scratch("limits");
    std::fs::write(dir.join("input.jsonl"), input()).unwrap();
    run(&dir, "free", "", &["--workers", "1"]);
    run(&dir, "w1", CAPS, &["--workers", "1"]);

    // The series that were in first are judged as without caps: s0's fault is found.
    let anomalies = lines(&dir.join("anomalies-w1.json"));
    assert!(
        anomalies.iter().any(|a| a.contains("\"s0\"")),
        "s0's fault should be found: {anomalies:?}"
    );
    assert_eq!(anomalies, lines(&dir.join("anomalies-free.json")));
    let refused = std::fs::read_to_string(dir.join("dead-free.json")).unwrap_or_default();
    assert_eq!(refused, "", "nothing refused without caps");

    // 5 shop + 3 payments series first; of the burst 3 fit the namespace's 8, 37 are refused by
    // it; p3 fits the job's 12, p4 does not; the series that comes after the burst's silence
    // gets in.
    let letters: Vec<DeadLetterRecord> = records(&dir.join("dead-w1.json"));
    assert_eq!(letters.len(), 38, "{letters:#?}");
    assert!(letters.iter().all(|l| l.reason.as_str() == "cardinality"));
    let by_namespace = letters
        .iter()
        .filter(|l| l.detail.contains("[limits] series_per_namespace = 8"))
        .count();
    assert_eq!(by_namespace, 37);
    let job_wide: Vec<_> = letters
        .iter()
        .filter(|l| l.detail.contains("[limits] series = 12"))
        .collect();
    assert_eq!(job_wide.len(), 1);
    assert!(
        job_wide[0].detail.contains("payments/p4/errors"),
        "{job_wide:?}"
    );
    assert!(!letters.iter().any(|l| l.raw.contains("\"back\"")));
    // Each names its series and time, and keeps the sample as it was read.
    for letter in &letters {
        let raw: serde_json::Value = serde_json::from_str(&letter.raw).unwrap();
        assert!(letter.detail.contains(raw["timestamp"].as_str().unwrap()));
        assert!(raw["value"].is_number() && raw["namespace"].is_string());
    }

    // Nothing lost: read = valid + dead-lettered, the refused counted by their reason.
    let s = summary(&dir.join("summary-w1.json"));
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(n("read"), n("valid") + n("dead_lettered"), "{s}");
    assert_eq!(n("dead_lettered"), 38, "{s}");

    // The same samples refused, the same anomalies, at 4 workers and 2 processes x 2 workers.
    run(&dir, "w4", CAPS, &["--workers", "4"]);
    run(&dir, "p2", CAPS, &[]);
    for tag in ["w4", "p2"] {
        assert_eq!(
            lines(&dir.join(format!("anomalies-{tag}.json"))),
            anomalies,
            "{tag}"
        );
        assert_eq!(
            sorted_lines(&dir.join(format!("dead-{tag}.json"))),
            sorted_lines(&dir.join("dead-w1.json")),
            "{tag}"
        );
    }
}
