//! The live clock: a scenario played now. A scenario that starts at `start` is played `speed`
//! times faster from the wall clock's `start`: a record of scenario time `t` falls due at
//! `start + (t - start) / speed` and is stamped with that time, samples, edges, deploys, spans
//! and the truth alike, so that every stream of a live run, and every file written for it,
//! agrees on when things happen.

use std::time::Duration;

use incidentflow_dataflows::time::{format_rfc3339, parse_rfc3339, Time};

use crate::scenario::Scenario;

/// When scenario time falls on the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The scenario's start, which is also the wall-clock time it starts at.
    pub start: Time,
    /// How many times faster than real time the scenario plays (above 0).
    pub speed: f64,
}

impl Clock {
    /// A clock from `start` at `speed` (a speed that is not above 0 plays in real time).
    pub fn new(start: Time, speed: f64) -> Clock {
        let speed = if speed > 0.0 { speed } else { 1.0 };
        Clock { start, speed }
    }

    /// The wall-clock time (ms) that scenario time `t` falls at.
    pub fn at(&self, t: Time) -> Time {
        self.start + (t.saturating_sub(self.start) as f64 / self.speed) as Time
    }

    /// `line` with every time in it moved to when it falls: each string value that is an RFC
    /// 3339 time, and each OTLP `...UnixNano` value (nanoseconds, as a string). With the time the
    /// line is due: its first time (0 when it has none: due at once).
    pub fn restamp(&self, line: &str) -> (Time, String) {
        let mut out = String::with_capacity(line.len());
        let mut due = None;
        let mut rest = line;
        while let Some(open) = rest.find('"') {
            let (before, from_quote) = rest.split_at(open);
            out.push_str(before);
            let body = &from_quote[1..];
            let Some(len) = string_len(body) else {
                out.push_str(from_quote);
                return (due.unwrap_or(0), out);
            };
            let text = &body[..len];
            out.push('"');
            if let Ok(t) = parse_rfc3339(text).map(|t| self.at(t)) {
                due.get_or_insert(t);
                out.push_str(&format_rfc3339(t));
            } else if let Some(nanos) = out
                .ends_with("UnixNano\":\"")
                .then(|| text.parse::<u64>().ok())
                .flatten()
            {
                let t = self.at(nanos / 1_000_000);
                due.get_or_insert(t);
                out.push_str(&(t * 1_000_000 + nanos % 1_000_000).to_string());
            } else {
                out.push_str(text);
            }
            out.push('"');
            rest = &body[len + 1..];
        }
        out.push_str(rest);
        (due.unwrap_or(0), out)
    }
}

/// The length of the JSON string whose text starts `body` (up to its closing quote, escapes
/// skipped); None when it does not close.
fn string_len(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Which of a scenario's streams a record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// A metric sample.
    Samples,
    /// A topology edge change.
    Topology,
    /// A deploy.
    Deploys,
    /// A batch of spans (OTLP JSON).
    Spans,
}

/// The scenario's samples, edges, deploys and (with `spans`) spans, restamped by `clock`, in the
/// order they fall due: each with its due time and its stream.
pub fn schedule<'a>(
    scenario: &'a Scenario,
    clock: Clock,
    spans: bool,
) -> impl Iterator<Item = (Time, Stream, String)> + 'a {
    let mut streams: Vec<(Stream, Box<dyn Iterator<Item = String> + 'a>)> = vec![
        (Stream::Topology, Box::new(scenario.edges())),
        (Stream::Deploys, Box::new(scenario.deploy_lines())),
        (Stream::Samples, Box::new(scenario.samples())),
    ];
    if spans {
        streams.push((Stream::Spans, Box::new(scenario.spans())));
    }
    let mut heads: Vec<Option<(Time, String)>> = streams
        .iter_mut()
        .map(|(_, lines)| lines.next().map(|l| clock.restamp(&l)))
        .collect();
    std::iter::from_fn(move || {
        // The earliest head; on a tie the stream listed first (an edge before the samples of its
        // time, as in a scenario's files).
        let k = (0..heads.len())
            .filter(|k| heads[*k].is_some())
            .min_by_key(|k| heads[*k].as_ref().map(|(due, _)| *due))?;
        let (due, line) = heads[k].take()?;
        heads[k] = streams[k].1.next().map(|l| clock.restamp(&l));
        Some((due, streams[k].0, line))
    })
}

/// Sleeps until the wall clock reaches `due` (ms since the epoch); at once when it has.
pub fn wait_until(due: Time) {
    let now = wall_ms();
    if due > now {
        std::thread::sleep(Duration::from_millis(due - now));
    }
}

/// Milliseconds since the epoch, now.
pub fn wall_ms() -> Time {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Time)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Time = 1_795_564_800_000; // 2026-11-25T00:00:00Z

    #[test]
    fn every_time_in_a_line_moves_and_nothing_else() {
        let clock = Clock::new(T0, 60.0);
        let line = r#"{"timestamp":"2026-11-25T01:00:00.000Z","service":"2026-11-25T01:00:00Z is \"not\" moved, \"2026-11-25T00:00:00Z\"","value":1}"#;
        let (due, moved) = clock.restamp(line);
        assert_eq!(due, T0 + 60_000);
        assert_eq!(
            moved,
            r#"{"timestamp":"2026-11-25T00:01:00.000Z","service":"2026-11-25T01:00:00Z is \"not\" moved, \"2026-11-25T00:00:00Z\"","value":1}"#
        );
        let span = format!(
            r#"{{"startTimeUnixNano":"{}","endTimeUnixNano":"{}","name":"123"}}"#,
            (T0 + 3_600_000) * 1_000_000 + 7,
            (T0 + 7_200_000) * 1_000_000
        );
        let (due, moved) = clock.restamp(&span);
        assert_eq!(due, T0 + 60_000);
        assert_eq!(
            moved,
            format!(
                r#"{{"startTimeUnixNano":"{}","endTimeUnixNano":"{}","name":"123"}}"#,
                (T0 + 60_000) * 1_000_000 + 7,
                (T0 + 120_000) * 1_000_000
            )
        );
        assert_eq!(
            clock.restamp(r#"{"a":"b"}"#),
            (0, r#"{"a":"b"}"#.to_owned())
        );
        assert_eq!(clock.restamp(r#"{"a":"unclosed"#).1, r#"{"a":"unclosed"#);
        // At speed 1 from the scenario's own start nothing changes.
        let same = Clock::new(T0, 1.0).restamp(line);
        assert_eq!(same, (T0 + 3_600_000, line.to_owned()));
    }

    #[test]
    fn a_schedule_holds_every_record_once_in_due_order() {
        let mut config = crate::scenario::ScenarioConfig::named("small", 3).unwrap();
        config.duration = 20 * 60_000;
        config.start = T0;
        let scenario = Scenario::new(config);
        let all: Vec<(Time, Stream, String)> =
            schedule(&scenario, Clock::new(T0, 10.0), true).collect();
        let count = |s: Stream| all.iter().filter(|(_, k, _)| *k == s).count();
        assert_eq!(count(Stream::Samples), scenario.samples().count());
        assert_eq!(count(Stream::Topology), scenario.edges().count());
        assert_eq!(count(Stream::Deploys), scenario.deploy_lines().count());
        assert_eq!(count(Stream::Spans), scenario.spans().count());
        // In due order but for the samples' own jitter, all within the 2 minutes played.
        let late = all.windows(2).filter(|w| w[1].0 + 1_000 < w[0].0).count();
        assert_eq!(late, 0);
        assert!(all
            .iter()
            .all(|(due, _, _)| (T0..=T0 + 120_000).contains(due)));
    }
}
