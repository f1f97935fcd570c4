//! Progress of a worker's Kafka partitions: on a terminal, a bar per partition (indicatif,
//! redrawn in place, every worker's bars in one stack) with its offset, high watermark, rate and
//! time to catch up; otherwise the same as one plain log line every 10 s. Either way each
//! partition's lag goes to the metrics.

use std::time::{Duration, Instant};

use incidentflow_dataflows::time::{format_duration, Time};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::ops::metrics::Metrics;

/// The progress of one worker's partitions.
pub struct Progress {
    /// Each partition's next offset to read (None before its first record).
    pub next: Vec<Option<i64>>,
    at_last: Vec<Option<i64>>,
    last: Instant,
    every: Duration,
    /// One bar per partition, on a terminal.
    bars: Option<Vec<ProgressBar>>,
}

/// Where the bars are drawn: one stack for the whole process, when standard error is a
/// terminal (None otherwise: plain log lines).
pub fn terminal_bars() -> Option<MultiProgress> {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal().then(MultiProgress::new)
}

impl Progress {
    /// Progress of the partitions `names`, drawn in `bars` when given.
    pub fn new(names: &[String], bars: Option<&MultiProgress>) -> Self {
        let style = ProgressStyle::with_template(
            "{prefix:24} [{bar:30}] {percent:>3}% {pos}/{len} {per_sec:>12} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>-");
        let bars = bars.map(|multi| {
            names
                .iter()
                .map(|name| {
                    let bar = multi.add(ProgressBar::new(0));
                    bar.set_style(style.clone());
                    bar.set_prefix(name.clone());
                    bar
                })
                .collect()
        });
        Progress {
            next: vec![None; names.len()],
            at_last: vec![None; names.len()],
            last: Instant::now(),
            every: Duration::from_secs(if bars.is_some() { 1 } else { 10 }),
            bars,
        }
    }

    /// Partition `k`'s record at `offset` is read.
    pub fn seen(&mut self, k: usize, offset: i64) {
        self.next[k] = Some(offset + 1);
    }

    /// Whether it is time to report.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

    /// Updates the bars (or logs a line) and the lag metrics.
    pub fn report(
        &mut self,
        consumer: &crate::ingest::kafka::PartitionConsumer,
        names: &[String],
        metrics: &Metrics,
    ) {
        let seconds = self.last.elapsed().as_secs_f64().max(1e-3);
        let mut parts = Vec::new();
        for (k, (partition, _)) in consumer.partitions.iter().enumerate() {
            let at = self.next[k].unwrap_or(0);
            let rate = (at - self.at_last[k].unwrap_or(0)) as f64 / seconds;
            self.at_last[k] = Some(at);
            let high = consumer.high_watermark(*partition).filter(|h| *h > 0);
            if let Some(high) = high {
                metrics.kafka_lag(&names[k], (high - at).max(0));
            }
            match self.bars.as_ref().and_then(|b| b.get(k)) {
                Some(bar) => {
                    bar.set_length(high.unwrap_or(at).max(0) as u64);
                    bar.set_position(at.max(0) as u64);
                    bar.set_message(eta(at, high, rate));
                }
                None => parts.push(progress_line(&names[k], at, high, rate)),
            }
        }
        if !parts.is_empty() {
            tracing::info!("{}", parts.join("; "));
        }
        self.last = Instant::now();
    }
}

/// How long until `at` reaches `high` at `rate` messages/s.
fn eta(at: i64, high: Option<i64>, rate: f64) -> String {
    let Some(high) = high else {
        return String::new();
    };
    let left = (high - at).max(0);
    if left == 0 {
        "caught up".to_string()
    } else if rate > 0.0 {
        let seconds = (left as f64 / rate).ceil() as Time;
        format!("ETA {}", format_duration(seconds * 1000))
    } else {
        "waiting".to_string()
    }
}

/// One partition's progress as a clause of a log line: `name` at offset `at` of `high`, reading
/// `rate` messages/s.
fn progress_line(name: &str, at: i64, high: Option<i64>, rate: f64) -> String {
    let Some(high) = high else {
        return format!("{name} {at}, {rate:.0} messages/s");
    };
    let done = (at as f64 / high as f64).clamp(0.0, 1.0);
    format!(
        "{name} {at}/{high} ({:.0}%), {rate:.0} messages/s, {}",
        100.0 * done,
        eta(at, Some(high), rate)
    )
}

#[cfg(test)]
mod tests {
    use super::progress_line;

    #[test]
    fn progress_is_a_log_clause_off_a_terminal() {
        let line = progress_line("raw.metrics[0]", 500, Some(1000), 250.0);
        assert_eq!(
            line,
            "raw.metrics[0] 500/1000 (50%), 250 messages/s, ETA 2s"
        );
        let line = progress_line("raw.metrics[0]", 1000, Some(1000), 0.0);
        assert_eq!(
            line,
            "raw.metrics[0] 1000/1000 (100%), 0 messages/s, caught up"
        );
        let unknown = progress_line("raw.metrics[1]", 7, None, 3.0);
        assert_eq!(unknown, "raw.metrics[1] 7, 3 messages/s");
    }
}
