//! The oracle end to end: a messy file (gaps, records out of order, late records, bad lines) run
//! through the binary gives exactly the anomalies a naive recomputation finds from the same file
//! read line by line with the documented lateness rule: each series' samples in time order (a
//! counter's turned into rates), each with the moments of the samples before it in its window,
//! handed to the detectors' pure logic (unit-tested on its own). Once with the default champion
//! (the change detector, which keeps its own state and reads no window) and once with the
//! z-score (which reads the shared window).

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::collections::BTreeMap;

use common::*;
use differential_dataflow::difference::Semigroup;
use incidentflow_dataflows::baseline::BaselineConfig;
use incidentflow_dataflows::decode::Decoder;
use incidentflow_dataflows::detectors::bank::{Bank, DetectionConfig};
use incidentflow_dataflows::forget::Forgetting;
use incidentflow_dataflows::moments::Moments;
use incidentflow_dataflows::rates::CounterRate;
use incidentflow_dataflows::records::{Detector, Sample};

#[test]
fn the_binary_matches_a_naive_recomputation() {
    let dir = scratch("oracle-file");
    let text = messy_input(11, 60, 60);
    let input = dir.join("messy.jsonl");
    std::fs::write(&input, &text).unwrap();
    for champion in [Detector::Change, Detector::ZScore] {
        std::fs::write(
            dir.join("job.toml"),
            // A short warm-up and a low threshold for the z-score: the file is short, and more
            // anomalies make a stronger comparison.
            format!(
                "[baseline]\nwindow = \"15m\"\nmin_points = 5\n[zscore]\nthreshold = 3.0\n\
                 [time]\nallowed_lateness = \"30s\"\n[detectors]\nchampion = \"{}\"\n",
                champion.name()
            ),
        )
        .unwrap();
        let out = dir.join(format!("anomalies-{}.jsonl", champion.name()));
        run_ok(&[
            "--input",
            input.to_str().unwrap(),
            "--config",
            dir.join("job.toml").to_str().unwrap(),
            "--anomalies-out",
            out.to_str().unwrap(),
            "--workers",
            "2",
        ]);
        let expected = naive(&text, champion);
        assert!(expected.len() > 30, "{champion:?}: {}", expected.len());
        if champion == Detector::ZScore {
            assert!(
                expected
                    .iter()
                    .any(|a| a.contains("\"flat_baseline\":true")),
                "the flat series moves"
            );
        } else {
            assert!(
                expected
                    .iter()
                    .any(|a| a.contains("\"service\":\"svc-0\"") && a.contains("\"open\"")),
                "the flat series moves"
            );
        }
        assert!(
            expected.iter().any(|a| a.contains("requests_total")),
            "a counter's rate is judged"
        );
        assert_eq!(sorted_lines(&out), expected, "{champion:?}");
    }
}

/// The anomalies of `champion` on `text` by brute force: one partition (the file is smaller than
/// a partition), the newest-minus-lateness rule, each series in time order.
fn naive(text: &str, champion: Detector) -> Vec<String> {
    let mut decoder = Decoder::new();
    let mut newest = 0u64;
    let mut by_series: BTreeMap<_, Vec<Sample>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(s) = decoder.decode(line.as_bytes()) else {
            continue;
        };
        if newest > 0 && s.timestamp + 30_000 < newest {
            continue; // late
        }
        newest = newest.max(s.timestamp);
        by_series.entry(s.series.id).or_default().push(s);
    }
    let config = BaselineConfig {
        window_ms: 15 * 60_000,
        min_points: 5,
        threshold: 3.0,
        score_from: 0,
    };
    let mut expected = Vec::new();
    let mut bank = Bank::new(
        &[champion],
        &config,
        150_000,
        Forgetting::new(DetectionConfig::default().forget_after_ms),
    );
    for samples in by_series.values_mut() {
        samples.sort_by_key(|s| (s.timestamp, s.fixed));
        if samples[0].series.metric_name.ends_with("_total") {
            let mut counter = CounterRate::default();
            *samples = samples.iter().filter_map(|s| counter.rate_of(s)).collect();
        }
        for s in samples.iter() {
            let mut baseline = Moments::default();
            if champion == Detector::ZScore {
                for o in samples.iter().filter(|o| {
                    o.timestamp < s.timestamp && o.timestamp + config.window_ms >= s.timestamp
                }) {
                    baseline.plus_equals(&Moments::of(o.fixed));
                }
            }
            let mut found = Vec::new();
            bank.observe(s, &baseline, &mut found);
            expected.extend(found.iter().map(|a| a.to_json()));
        }
    }
    expected.sort();
    expected
}
