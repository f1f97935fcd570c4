//! Every kind of refused line with its reason; samples, edges and deploys decoded.

use super::*;

fn reason(line: &str) -> Reason {
    Decoder::new().decode(line.as_bytes()).unwrap_err().reason
}

#[test]
fn a_valid_sample() {
    let mut d = Decoder::new();
    let s = d
        .decode(br#"{"schema_version":1,"timestamp":"2026-11-25T02:09:00+01:00","namespace":"shop","service":"api","metric_name":"latency_p99","value":0.42,"labels":{"tier":"web","pod":"a"}}"#)
        .unwrap();
    assert_eq!(s.timestamp, 1_795_568_940_000);
    assert_eq!(&*s.series.service, "api");
    let labels: Vec<(&str, &str)> = s.series.labels.iter().map(|(k, v)| (&**k, &**v)).collect();
    assert_eq!(labels, vec![("pod", "a"), ("tier", "web")]);
    assert_eq!(s.value.0, 0.42);
    let again = d
        .decode(br#"{"timestamp":1795568941000,"namespace":"shop","service":"api","metric_name":"latency_p99","value":"0.5","labels":{"tier":"web","pod":"a"}}"#)
        .unwrap();
    assert!(
        Arc::ptr_eq(&s.series, &again.series),
        "the series is interned"
    );
    assert_eq!(d.interned(), 1);
}

#[test]
fn labels_make_the_series_whatever_order_they_come_in() {
    let mut d = Decoder::new();
    let line = |labels: &str| {
        format!(
            r#"{{"timestamp":1795568941000,"namespace":"shop","service":"api","metric_name":"latency","value":1,"labels":{labels}}}"#
        )
    };
    let a = d
        .decode(line(r#"{"pod":"a","zone":"1"}"#).as_bytes())
        .unwrap();
    let a_again = d
        .decode(line(r#"{"zone":"1","pod":"a"}"#).as_bytes())
        .unwrap();
    let b = d
        .decode(line(r#"{"pod":"b","zone":"1"}"#).as_bytes())
        .unwrap();
    let none = d.decode(line("null").as_bytes()).unwrap();
    assert_eq!(a.series.id, a_again.series.id);
    assert_ne!(a.series.id, b.series.id, "two pods are two series");
    assert_ne!(a.series.id, none.series.id);
    assert_eq!(none.series.id, SeriesId::of("shop", "api", "latency"));
    assert_eq!(
        a.series.id,
        SeriesInfo::with_labels("shop", "api", "latency", &[("zone", "1"), ("pod", "a")]).id
    );
}

// Long: a table of refused lines, one row per case, read top to bottom.
#[test]
fn every_kind_of_invalid_line_has_its_reason() {
    let ok = r#""timestamp":"2026-11-25T01:09:00Z","namespace":"shop","service":"api","metric_name":"m""#;
    assert_eq!(
        Decoder::new().decode(b"{\"a\":\xff}").unwrap_err().reason,
        Reason::InvalidUtf8
    );
    assert_eq!(reason("not json"), Reason::NotJson);
    assert_eq!(reason(r#"{"timestamp": "#), Reason::NotJson);
    assert_eq!(reason("[1,2]"), Reason::NotObject);
    assert_eq!(reason(&format!("{{{ok}}}")), Reason::MissingField);
    assert_eq!(
        reason(&format!("{{{ok},\"value\":null}}")),
        Reason::MissingField
    );
    assert_eq!(
        reason(
            r#"{"timestamp":"2026-11-25T01:09:00Z","namespace":"shop","service":" ","metric_name":"m","value":1}"#
        ),
        Reason::EmptyField
    );
    assert_eq!(
        reason(&format!("{{{ok},\"value\":true}}")),
        Reason::InvalidField
    );
    assert_eq!(
        reason(&format!("{{{ok},\"value\":1,\"labels\":{{\"a\":1}}}}")),
        Reason::InvalidField
    );
    assert_eq!(
        reason(&format!("{{{ok},\"value\":\"NaN\"}}")),
        Reason::NonFiniteValue
    );
    assert_eq!(
        reason(&format!("{{{ok},\"value\":\"-Inf\"}}")),
        Reason::NonFiniteValue
    );
    assert_eq!(
        reason(&format!("{{{ok},\"value\":2e18}}")),
        Reason::ValueOutOfRange
    );
    assert_eq!(
        reason(
            r#"{"timestamp":"soon","namespace":"shop","service":"api","metric_name":"m","value":1}"#
        ),
        Reason::BadTimestamp
    );
    assert_eq!(
        reason(
            r#"{"timestamp":1795568940,"namespace":"shop","service":"api","metric_name":"m","value":1}"#
        ),
        Reason::AbsurdTimestamp
    );
    assert_eq!(
        reason(&format!("{{{ok},\"value\":1,\"schema_version\":2}}")),
        Reason::UnknownSchemaVersion
    );
}

#[test]
fn type_errors_say_which_field() {
    let e = Decoder::new()
        .decode(br#"{"timestamp":"2026-11-25T01:09:00Z","namespace":"shop","service":7,"metric_name":"m","value":1}"#)
        .unwrap_err();
    assert_eq!(e.reason, Reason::InvalidField);
    assert!(
        e.detail.contains("invalid type: integer `7`"),
        "{}",
        e.detail
    );
}

#[test]
fn the_table_forgets_series_that_went_quiet_and_keeps_active_ones() {
    let mut d = Decoder::with_idle(60_000);
    let line = |i: u64, ts: u64| {
        format!(
            r#"{{"timestamp":{ts},"namespace":"n","service":"s{i}","metric_name":"m","value":1}}"#
        )
    };
    let t0 = 1_795_568_940_000u64;
    // 3000 series all active within a minute, in a cycle longer than any table doubling.
    let first = d.decode(line(0, t0).as_bytes()).unwrap();
    for round in 0..3 {
        for i in 0..3000 {
            d.decode(line(i, t0 + round * 20_000 + i).as_bytes())
                .unwrap();
        }
    }
    assert_eq!(d.interned(), 3000);
    let again = d.decode(line(0, t0 + 60_000).as_bytes()).unwrap();
    assert!(
        Arc::ptr_eq(&first.series, &again.series),
        "an active series stays interned"
    );
    // Then only new series: the old ones go quiet and are forgotten.
    for i in 10_000..20_000 {
        d.decode(line(i, t0 + 200_000 + i).as_bytes()).unwrap();
    }
    assert!(d.interned() < 12_000, "{}", d.interned());
}

#[test]
fn edges_and_deploys() {
    let e = decode_edge(br#"{"timestamp":"2026-11-25T00:00:00Z","caller":"web","callee":"db","op":"remove","namespace":"shop"}"#).unwrap();
    assert_eq!(
        (&*e.caller, &*e.callee, e.add, e.timestamp),
        ("web", "db", false, 1_795_564_800_000)
    );
    let s = decode_edge(br#"{"caller":"web","callee":"db"}"#).unwrap();
    assert_eq!(
        (s.timestamp, s.add),
        (0, true),
        "no timestamp: static, from the beginning"
    );
    assert_eq!(
        decode_edge(br#"{"caller":"web","callee":"db","op":"flip"}"#)
            .unwrap_err()
            .reason,
        Reason::InvalidField
    );
    assert_eq!(
        decode_edge(br#"{"caller":"web"}"#).unwrap_err().reason,
        Reason::MissingField
    );
    assert_eq!(
        decode_edge(br#"{"caller":"","callee":"db"}"#)
            .unwrap_err()
            .reason,
        Reason::EmptyField
    );
    assert_eq!(decode_edge(b"nope").unwrap_err().reason, Reason::NotJson);
    let d =
        decode_deploy(br#"{"timestamp":"2026-11-25T00:00:00Z","service":"api","version":"v1.2"}"#)
            .unwrap();
    assert_eq!((&*d.service, &*d.version), ("api", "v1.2"));
    assert_eq!(
        decode_deploy(br#"{"service":"api","version":"v1"}"#)
            .unwrap_err()
            .reason,
        Reason::MissingField
    );
    assert_eq!(
        decode_deploy(br#"{"timestamp":5,"service":"api","version":"v1"}"#)
            .unwrap_err()
            .reason,
        Reason::AbsurdTimestamp
    );
}

/// Found by `tests/parsers.rs`: serde_json's default float parse can be one unit in the last
/// place off; the sample must hold exactly the double its text names (`float_roundtrip`).
#[test]
fn a_value_is_read_as_exactly_the_double_written() {
    for text in [
        "4.420908619218292e-201",
        "20029.066000000006",
        "0.1",
        "123456789.12345679",
    ] {
        let line = format!(
            r#"{{"timestamp":"2026-11-25T01:09:00Z","namespace":"n","service":"s","metric_name":"m","value":{text}}}"#
        );
        let sample = Decoder::new().decode(line.as_bytes()).unwrap();
        assert_eq!(sample.value.0, text.parse::<f64>().unwrap(), "{text}");
    }
}
