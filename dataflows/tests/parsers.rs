//! Property tests of the parsers of outside data in this crate: samples, topology edges, deploys,
//! the JSON Lines splitter, and RFC 3339 times (against chrono, a maintained calendar used only
//! here). Invariants: no panic on any bytes; a valid record decodes, and decodes to the same
//! sample after a round trip through its JSON; a refused one names its reason; times agree with
//! the calendar to the millisecond in every offset, month and leap year.
//!
//! The case counts are proptest's default (256 per property) unless a test sets more; run with
//! `PROPTEST_CASES=100000 cargo test -p incidentflow-dataflows --test parsers --release` for a
//! longer search.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use incidentflow_dataflows::decode::{decode_deploy, decode_edge, json_lines, Decoder};
use incidentflow_dataflows::records::{Reason, Sample};
use incidentflow_dataflows::time::{format_rfc3339, parse_rfc3339, MAX_TIME, MIN_TIME};
use proptest::prelude::*;

/// Text a user might put in a name: letters, digits, punctuation, escapes, non-ASCII.
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.:/ \\-\"\\\\é€😀\t]{1,24}".prop_filter("not blank", |s| !s.trim().is_empty())
}

/// A finite value within range, in the shapes JSON writers use.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e17f64..1e17,
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        Just(0.0),
        Just(-0.0),
        1e-300f64..1e-200,
    ]
}

/// A time in range, as epoch milliseconds.
fn millis() -> impl Strategy<Value = u64> {
    MIN_TIME..MAX_TIME
}

/// A valid sample line: the fields in any order, the time as RFC 3339 (any offset) or epoch ms.
fn sample_line() -> impl Strategy<Value = (String, u64, f64)> {
    (
        name(),
        name(),
        name(),
        value(),
        millis(),
        -14 * 60..=14 * 60i32,
        any::<bool>(),
        proptest::collection::btree_map(name(), name(), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(ns, svc, metric, value, ms, offset, as_text, labels, reversed)| {
                let time = if as_text {
                    let zone = FixedOffset::east_opt(offset * 60).unwrap();
                    let at = zone.timestamp_millis_opt(ms as i64).unwrap();
                    serde_json::to_string(&at.to_rfc3339()).unwrap()
                } else {
                    ms.to_string()
                };
                let mut fields = vec![
                    format!("\"timestamp\":{time}"),
                    format!("\"namespace\":{}", serde_json::to_string(&ns).unwrap()),
                    format!("\"service\":{}", serde_json::to_string(&svc).unwrap()),
                    format!(
                        "\"metric_name\":{}",
                        serde_json::to_string(&metric).unwrap()
                    ),
                    format!("\"value\":{}", serde_json::to_string(&value).unwrap()),
                ];
                if !labels.is_empty() {
                    fields.push(format!(
                        "\"labels\":{}",
                        serde_json::to_string(&labels).unwrap()
                    ));
                }
                if reversed {
                    fields.reverse();
                }
                (format!("{{{}}}", fields.join(",")), ms, value)
            },
        )
}

/// A sample as a line again, from its decoded fields.
fn line_of(s: &Sample) -> String {
    let labels: serde_json::Map<String, serde_json::Value> = s
        .series
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.to_string())))
        .collect();
    serde_json::json!({
        "timestamp": format_rfc3339(s.timestamp),
        "namespace": &*s.series.namespace,
        "service": &*s.series.service,
        "metric_name": &*s.series.metric_name,
        "labels": labels,
        "value": s.value.0,
    })
    .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_decode_or_are_refused_with_a_reason(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut d = Decoder::new();
        if let Err(invalid) = d.decode(&bytes) {
            prop_assert!(Reason::ALL.contains(&invalid.reason));
            prop_assert!(!invalid.detail.is_empty());
        }
        let _ = decode_edge(&bytes);
        let _ = decode_deploy(&bytes);
    }

    #[test]
    fn a_valid_sample_decodes_and_survives_a_round_trip((line, ms, value) in sample_line()) {
        let mut d = Decoder::new();
        let sample = d.decode(line.as_bytes()).map_err(|e| TestCaseError::fail(format!("{line}: {e:?}")))?;
        prop_assert_eq!(sample.timestamp, ms);
        prop_assert_eq!(sample.value.0, value);
        let again = Decoder::new().decode(line_of(&sample).as_bytes()).unwrap();
        prop_assert_eq!(&again, &sample);
        prop_assert_eq!(again.series.id, sample.series.id);
    }

    #[test]
    fn a_damaged_sample_is_refused_with_the_reason_its_damage_gives(
        (line, _, _) in sample_line(),
        damage in 0usize..6,
    ) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let mut o = v.as_object().unwrap().clone();
        let expected = match damage {
            0 => { o.remove("value"); Reason::MissingField }
            1 => { o.insert("service".into(), "  ".into()); Reason::EmptyField }
            2 => { o.insert("value".into(), "NaN".into()); Reason::NonFiniteValue }
            3 => { o.insert("value".into(), 1e19.into()); Reason::ValueOutOfRange }
            4 => { o.insert("timestamp".into(), "yesterday at noon".into()); Reason::BadTimestamp }
            _ => { o.insert("timestamp".into(), 86_400_000u64.into()); Reason::AbsurdTimestamp }
        };
        let damaged = serde_json::Value::Object(o).to_string();
        let refused = Decoder::new().decode(damaged.as_bytes());
        prop_assert_eq!(refused.map_err(|e| e.reason), Err(expected), "{}", damaged);
    }

    #[test]
    fn json_lines_gives_back_every_non_blank_line_with_its_number(
        lines in proptest::collection::vec("[^\n]{0,12}", 0..12),
        crlf in any::<bool>(),
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        let got: Vec<(u64, Vec<u8>)> = json_lines(text.as_bytes()).map(|(n, l)| (n, l.to_vec())).collect();
        for (n, l) in &got {
            prop_assert!(*n >= 1 && *n as usize <= lines.len().max(1));
            prop_assert!(!l.contains(&b'\n'));
            prop_assert!(!l.iter().all(u8::is_ascii_whitespace));
        }
        let numbers: Vec<u64> = got.iter().map(|(n, _)| *n).collect();
        prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn rfc3339_times_agree_with_the_calendar(
        ms in millis(),
        offset in -(23 * 60 + 59)..=(23 * 60 + 59i32),
        digits in 0usize..10,
        lower in any::<bool>(),
    ) {
        let zone = FixedOffset::east_opt(offset * 60).unwrap();
        let at: DateTime<FixedOffset> = zone.timestamp_millis_opt(ms as i64).unwrap();
        // Seconds with 0 to 9 fraction digits, as writers emit them.
        let nanos = format!("{:09}", at.timestamp_subsec_nanos());
        let fraction = if digits == 0 { String::new() } else { format!(".{}", &nanos[..digits]) };
        let mut text = format!("{}{fraction}{}", at.format("%Y-%m-%dT%H:%M:%S"), at.format("%:z"));
        if lower { text = text.replace('T', "t"); }
        let whole_ms = match digits { 0 => ms - ms % 1000, 1 => ms - ms % 100, 2 => ms - ms % 10, _ => ms };
        prop_assert_eq!(parse_rfc3339(&text).ok(), Some(whole_ms), "{}", text);
        // The writer's text is read back exactly, and is what the calendar says.
        let written = format_rfc3339(ms);
        prop_assert_eq!(parse_rfc3339(&written).ok(), Some(ms));
        let calendar = DateTime::parse_from_rfc3339(&written).unwrap().timestamp_millis();
        prop_assert_eq!(calendar, ms as i64, "{}", written);
    }

    #[test]
    fn impossible_dates_are_refused(year in 2000i32..2100, month in 1u32..=12, day in 1u32..=31) {
        let text = format!("{year:04}-{month:02}-{day:02}T00:00:00Z");
        let real = NaiveDate::from_ymd_opt(year, month, day).is_some();
        prop_assert_eq!(parse_rfc3339(&text).is_ok(), real, "{}", text);
    }
}

#[test]
fn leap_seconds_and_day_ends_read_as_the_calendar_reads_them() {
    // A leap second is read as the last millisecond of its minute.
    let leap = parse_rfc3339("2016-12-31T23:59:60Z").unwrap();
    let next = DateTime::parse_from_rfc3339("2017-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    assert_eq!(leap as i64, next - 1);
    // Offsets that cross a day, a month and a year.
    for text in [
        "2024-02-29T23:30:00-01:00",
        "2024-03-01T00:30:00+14:00",
        "2025-12-31T23:59:59.999-12:00",
        "2000-01-01T00:00:00+00:00",
    ] {
        let calendar = DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis();
        assert_eq!(parse_rfc3339(text).unwrap() as i64, calendar, "{text}");
    }
}
