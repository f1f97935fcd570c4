//! The time rules of incidentflow, written down once.
//!
//! * Event time is milliseconds since the Unix epoch, UTC ([`Time`]). Timely epochs are these ticks.
//! * Input timestamps are RFC 3339 strings (any offset, normalised to UTC) or epoch milliseconds.
//!   Anything before [`MIN_TIME`] or from [`MAX_TIME`] on is absurd (a seconds-for-milliseconds
//!   mix-up, a zero default) and is rejected rather than processed at a nonsense time.
//! * A rolling window of length `W` is written as "insert at `t + 1`, retract at `t + 1 + W`": the
//!   baseline a sample at `t` is scored against holds exactly the samples of its series in
//!   `[t - W, t)`, never the sample itself.
//! * A source partition's watermark is its largest timestamp so far minus the allowed lateness; a
//!   record below its partition's watermark is late and goes to the dead-letter output.

use std::fmt::Write as _;

/// Event time: milliseconds since 1970-01-01T00:00:00Z.
pub type Time = u64;

/// 2000-01-01T00:00:00Z: earlier timestamps are rejected as absurd.
pub const MIN_TIME: Time = 946_684_800_000;
/// 2100-01-01T00:00:00Z: this and later timestamps are rejected as absurd.
pub const MAX_TIME: Time = 4_102_444_800_000;

/// Why a timestamp was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampError {
    /// Not RFC 3339 / not a whole number of milliseconds.
    Unparseable(String),
    /// Parsed, but outside [`MIN_TIME`, `MAX_TIME`).
    Absurd(String),
}

/// Checks that a parsed time lies in the accepted range; `shown` renders it for the error.
pub fn check_range(ms: i128, shown: impl FnOnce() -> String) -> Result<Time, TimestampError> {
    if ms < MIN_TIME as i128 || ms >= MAX_TIME as i128 {
        let shown = shown();
        let hint = if (MIN_TIME as i128 / 1000..MAX_TIME as i128 / 1000).contains(&ms) {
            " (looks like epoch seconds; epoch timestamps must be in milliseconds)"
        } else {
            ""
        };
        return Err(TimestampError::Absurd(format!(
            "timestamp {shown} is outside 2000-01-01..2100-01-01 UTC{hint}"
        )));
    }
    Ok(ms as Time)
}

/// Epoch milliseconds given as a JSON number.
pub fn from_epoch_millis(ms: f64) -> Result<Time, TimestampError> {
    if !ms.is_finite() || ms.fract() != 0.0 {
        return Err(TimestampError::Unparseable(format!(
            "epoch timestamp {ms} is not a whole number of milliseconds"
        )));
    }
    check_range(ms as i128, || format!("{ms}"))
}

/// Parses an RFC 3339 date-time (`2026-11-25T01:09:00.250+01:00`, `Z`, lower-case `t`/`z` or a
/// space separator accepted) into UTC epoch milliseconds. Fractions below a millisecond are
/// truncated; a leap second `:60` is read as `:59.999`.
pub fn parse_rfc3339(text: &str) -> Result<Time, TimestampError> {
    let bad = |why: &str| {
        TimestampError::Unparseable(format!("timestamp {text:?} is not RFC 3339: {why}"))
    };
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(bad("too short"));
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
        let mut v = 0i64;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return Err(bad("expected a digit"));
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Ok(v)
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad("expected YYYY-MM-DDTHH:MM:SS"));
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, mut second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(bad("day out of range"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("time of day out of range"));
    }
    let mut pos = 19;
    let mut millis = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 3 {
                millis = millis * 10 + (b[pos] - b'0') as i64;
            }
            pos += 1;
        }
        if pos == start {
            return Err(bad("empty fraction"));
        }
        for _ in (pos - start)..3 {
            millis *= 10;
        }
    }
    if second == 60 {
        second = 59;
        millis = 999;
    }
    let offset_minutes = match b.get(pos) {
        Some(b'Z' | b'z') if pos + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if pos + 6 == b.len() && b[pos + 3] == b':' => {
            let (oh, om) = (num(pos + 1..pos + 3)?, num(pos + 4..pos + 6)?);
            if oh > 23 || om > 59 {
                return Err(bad("offset out of range"));
            }
            let m = oh * 60 + om;
            if sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return Err(bad("expected Z or an offset like +01:00 at the end")),
    };
    let days = days_from_civil(year, month, day);
    let ms = ((days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60) as i128)
        * 1000
        + millis as i128;
    check_range(ms, || format!("{text:?}"))
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision:
/// `2026-11-25T01:09:00.000Z`.
pub fn format_rfc3339(ms: Time) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, ms);
    out
}

/// Appends [`format_rfc3339`] of `ms` to `out`.
pub fn write_rfc3339(out: &mut String, ms: Time) {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    );
}

/// `HH:MM:SS` of a time, for one-line human summaries.
pub fn format_clock(ms: Time) -> String {
    let secs = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parses a duration such as `30m`, `10s`, `1h30m`, `250ms` or `2d` into milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "duration {text:?}: expected a number, like 30m, 10s or 1h30m"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {text:?} is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "duration {text:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                ))
            }
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
    }
    Ok(total)
}

/// Formats milliseconds as the shortest duration text [`parse_duration`] reads back (`30m`, `1h30m`).
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_offsets_normalise_to_utc() {
        let utc = parse_rfc3339("2026-11-25T01:09:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-25T02:09:00+01:00").unwrap(), utc);
        assert_eq!(parse_rfc3339("2026-11-24T20:39:00-04:30").unwrap(), utc);
        assert_eq!(
            parse_rfc3339("2026-11-25t01:09:00.250z").unwrap(),
            utc + 250
        );
        assert_eq!(
            parse_rfc3339("2026-11-25 01:09:00.1234567Z").unwrap(),
            utc + 123
        );
        assert_eq!(format_rfc3339(utc + 5), "2026-11-25T01:09:00.005Z");
        assert_eq!(utc, 1_795_568_940_000);
    }

    #[test]
    fn rfc3339_round_trips_over_leap_years() {
        for ms in [MIN_TIME, 951_782_400_000, 1_709_208_000_123, MAX_TIME - 1] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)).unwrap(), ms);
        }
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn bad_timestamps_are_rejected_with_a_reason() {
        for text in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-25T01:09:00",
            "yesterday",
            "2026-11-25T24:00:00Z",
        ] {
            assert!(
                matches!(parse_rfc3339(text), Err(TimestampError::Unparseable(_))),
                "{text}"
            );
        }
        assert!(matches!(
            parse_rfc3339("1970-01-01T00:00:00Z"),
            Err(TimestampError::Absurd(_))
        ));
        let Err(TimestampError::Absurd(why)) = from_epoch_millis(1_795_568_940.0) else {
            panic!()
        };
        assert!(why.contains("epoch seconds"), "{why}");
        assert!(matches!(
            from_epoch_millis(1.5e12 + 0.5),
            Err(TimestampError::Unparseable(_))
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), 1_800_000);
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("250ms").unwrap(), 250);
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(10_000), "10s");
    }
}
