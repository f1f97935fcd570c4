//! Property tests of the job's own parsers of outside data (those of the dataflow crate are in
//! `dataflows/tests/parsers.rs`): silences and feedback lines from their side inputs, the
//! checkpoint file, the job file, the static YAML topology, Prometheus remote write bodies and
//! span lines (OTLP and Zipkin JSON).
//! On any bytes: no panic; a line
//! refused is counted; a well-formed one is taken; a file that is not one is a clear error naming
//! it. 2,000 cases each (`PROPTEST_CASES` sets more).

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use common::scratch;
use incidentflow::config::JobConfig;
use incidentflow::emit::checkpoint::Checkpoint;
use incidentflow::ingest::remote_write::{self, proto, RemoteWriteSection};
use incidentflow::ingest::silences::SilenceQueue;
use incidentflow::ingest::topology::static_yaml_topology;
use incidentflow::ops::feedback_book::FeedbackBook;
use incidentflow::ops::metrics::Metrics;
use proptest::prelude::*;

/// A remote write request: series with any label text (the mapping's labels sometimes absent),
/// values across the doubles' range, times in and out of 2000..2100.
fn write_request() -> impl Strategy<Value = proto::WriteRequest> {
    let label = ("[a-z_]{1,8}|__name__|namespace|job|service", "\\PC{0,12}")
        .prop_map(|(name, value)| proto::Label { name, value });
    let sample = (any::<f64>(), -10i64..5_000_000_000_000)
        .prop_map(|(value, timestamp)| proto::Sample { value, timestamp });
    let series = (
        proptest::collection::vec(label, 0..6),
        proptest::collection::vec(sample, 0..4),
    )
        .prop_map(|(labels, samples)| proto::TimeSeries { labels, samples });
    proptest::collection::vec(series, 0..5)
        .prop_map(|timeseries| proto::WriteRequest { timeseries })
}

/// Bytes that are sometimes JSON-like, sometimes not.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "\\{[\"a-z:,0-9 \\[\\]{}.-]{0,80}\\}".prop_map(String::into_bytes),
    ]
}

/// A silence line with its fields of any content; well-formed when `start` < `end`.
fn silence() -> impl Strategy<Value = (String, bool)> {
    (
        "[a-z ]{0,8}",
        proptest::collection::vec("[a-z*-]{0,6}", 0..3),
        0u64..3_000_000_000_000,
        0u64..3_000_000_000_000,
    )
        .prop_map(|(name, services, start, end)| {
            let time = |ms: u64| incidentflow_dataflows::time::format_rfc3339(ms);
            let line = serde_json::json!({
                "name": name, "services": services, "start": time(start), "end": time(end),
            })
            .to_string();
            let in_range = (incidentflow_dataflows::time::MIN_TIME
                ..incidentflow_dataflows::time::MAX_TIME)
                .contains(&start)
                && (incidentflow_dataflows::time::MIN_TIME..incidentflow_dataflows::time::MAX_TIME)
                    .contains(&end);
            (line, !name.is_empty() && start < end && in_range)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn side_input_lines_are_taken_or_refused_and_counted(line in bytes()) {
        let metrics = Metrics::new();
        let (queue, book) = (SilenceQueue::default(), FeedbackBook::new(10));
        queue.line(&line, "in.jsonl:1", &metrics);
        book.line(&line, "in.jsonl:1", &metrics);
        let scrape = metrics.render();
        let refused = scrape.contains("incidentflow_side_input_refused_total{input=\"silences\"} 1");
        prop_assert_eq!(queue.take().len() + usize::from(refused), 1, "{}", scrape);
        prop_assert_eq!(book.figures().invalid <= 1, true);
    }

    #[test]
    fn a_silence_is_taken_exactly_when_it_is_well_formed((line, well_formed) in silence()) {
        let (metrics, queue) = (Metrics::new(), SilenceQueue::default());
        queue.line(line.as_bytes(), "silences.jsonl:1", &metrics);
        let taken = queue.take();
        prop_assert_eq!(taken.len() == 1, well_formed, "{}", line);
        if let Some(rule) = taken.first() {
            prop_assert!(rule.start < rule.end);
        }
    }

    #[test]
    fn a_checkpoint_file_is_read_or_refused_naming_it(text in bytes()) {
        let path = scratch("parsers-checkpoint").join("checkpoint.json");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = Checkpoint::load(&path) {
            prop_assert!(e.to_string().contains("checkpoint.json"), "{}", e);
        }
    }

    #[test]
    fn a_job_file_is_read_or_refused_naming_it(text in "[a-z_\\[\\]=\" .0-9\n]{0,120}") {
        let path = scratch("parsers-job").join("job.toml");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = JobConfig::load_layered(Some(&path), std::iter::empty()) {
            prop_assert!(e.to_string().contains("job.toml"), "{}", e);
        }
    }

    #[test]
    fn a_yaml_topology_is_read_or_refused_naming_it(text in "[a-z:\\- \n\\[\\],]{0,120}") {
        let path = scratch("parsers-yaml").join("topology.yaml");
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = static_yaml_topology(&path) {
            prop_assert!(e.to_string().contains("topology.yaml"), "{}", e);
        }
    }

    #[test]
    fn a_remote_write_body_of_any_bytes_is_decoded_or_refused_with_a_reason(body in bytes()) {
        let compressed = snap::raw::Encoder::new().compress_vec(&body).unwrap();
        for candidate in [&body, &compressed] {
            if let Err(why) = remote_write::decode(candidate) {
                prop_assert!(why.contains("snappy") || why.contains("protobuf"), "{}", why);
            }
        }
    }

    #[test]
    fn every_remote_write_sample_becomes_a_line_that_decodes_to_it(request in write_request()) {
        let body = remote_write::encode(&request);
        let decoded = remote_write::decode(&body).unwrap();
        prop_assert_eq!(&decoded, &request);
        let mut lines = Vec::new();
        let stale = remote_write::to_lines(&decoded, &RemoteWriteSection::default(), &mut lines);
        let samples: Vec<&proto::Sample> =
            request.timeseries.iter().flat_map(|s| s.samples.iter()).collect();
        let kept: Vec<&&proto::Sample> =
            samples.iter().filter(|s| s.value.to_bits() != remote_write::STALE_NAN).collect();
        prop_assert_eq!(stale as usize, samples.len() - kept.len());
        let text = String::from_utf8(lines).unwrap();
        prop_assert_eq!(text.lines().count(), kept.len());
        let mut decoder = incidentflow_dataflows::decode::Decoder::new();
        for (line, sample) in text.lines().zip(kept) {
            match decoder.decode(line.as_bytes()) {
                // Taken: the time and value sent, exactly.
                Ok(s) => {
                    prop_assert_eq!(s.timestamp as i64, sample.timestamp);
                    // (equal as numbers: -0 may come back as 0)
                    prop_assert!(s.value.0 == sample.value, "{} {}", s.value.0, sample.value);
                }
                // Refused: for a reason the sample gives (no service or metric label, a value
                // or time out of range), never because the line was not the contract.
                Err(invalid) => {
                    let reason = invalid.reason.as_str();
                    prop_assert!(
                        ["missing_field", "empty_field", "non_finite_value",
                         "value_out_of_range", "absurd_timestamp", "bad_timestamp"]
                            .contains(&reason),
                        "{}: {}", reason, line
                    );
                }
            }
        }
    }

    #[test]
    fn a_span_line_of_any_bytes_gives_spans_or_a_reason(line in prop_oneof![
        bytes(),
        "\\{\"resourceSpans\":\\[\\{\"resource\":\\{\"attributes\":\\[\\]\\}[a-z\":,\\[\\]{}0-9]{0,60}".prop_map(String::into_bytes),
        "\\[\\{\"traceId\":\"[a-z0-9]{0,4}\"[a-zA-Z\":,{}0-9]{0,60}".prop_map(String::into_bytes),
    ]) {
        match incidentflow::ingest::spans::parse_line(&line) {
            Ok(spans) => {
                let mut edges = incidentflow::ingest::spans::SpanEdges::new(60_000);
                let mut out = Vec::new();
                for span in spans {
                    prop_assert!(!span.service.is_empty() && !span.trace_id.is_empty());
                    edges.span(span, &mut out);
                }
                prop_assert!(out.iter().all(|e| e.caller != e.callee));
            }
            Err(invalid) => prop_assert!(!invalid.detail.is_empty()),
        }
    }
}
