//! Progress of a worker's Kafka partitions: on a terminal, every second, a bar per partition
//! with its offset, high watermark, rate and time to catch up; otherwise the same as one plain
//! line every 10 s (for logs).

use std::time::{Duration, Instant};

use incidentflow_dataflows::time::{format_duration, Time};

use crate::ops::metrics::Metrics;

/// The progress of one worker's partitions.
pub struct Progress {
    pub next: Vec<Option<i64>>,
    at_last: Vec<Option<i64>>,
    last: Instant,
    every: Duration,
    bars: bool,
}

impl Progress {
    pub fn new(partitions: usize) -> Self {
        use std::io::IsTerminal;
        let bars = std::io::stderr().is_terminal();
        Progress {
            next: vec![None; partitions],
            at_last: vec![None; partitions],
            last: Instant::now(),
            every: Duration::from_secs(if bars { 1 } else { 10 }),
            bars,
        }
    }

    pub fn seen(&mut self, k: usize, offset: i64) {
        self.next[k] = Some(offset + 1);
    }

    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.every
    }

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
            parts.push(progress_text(&names[k], at, high, rate, self.bars));
        }
        match (parts.is_empty(), self.bars) {
            (true, _) => {}
            (false, true) => eprintln!("{}", parts.join("\n")),
            (false, false) => tracing::info!("{}", parts.join("; ")),
        }
        self.last = Instant::now();
    }
}

/// One partition's progress: `name` at offset `at` of `high`, reading `rate` messages/s; as a
/// bar (a line of its own) or as a clause of a log line.
fn progress_text(name: &str, at: i64, high: Option<i64>, rate: f64, bar: bool) -> String {
    let Some(high) = high else {
        return format!("{name} {at}, {rate:.0} messages/s");
    };
    let left = (high - at).max(0);
    let eta = if left == 0 {
        "caught up".to_string()
    } else if rate > 0.0 {
        let seconds = (left as f64 / rate).ceil() as Time;
        format!("ETA {}", format_duration(seconds * 1000))
    } else {
        "waiting".to_string()
    };
    let done = (at as f64 / high as f64).clamp(0.0, 1.0);
    if bar {
        const WIDTH: usize = 30;
        let filled = (done * WIDTH as f64).round() as usize;
        format!(
            "{name:<24} [{}{}] {:>3.0}% {at}/{high} {rate:>8.0} msg/s {eta}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            100.0 * done
        )
    } else {
        format!(
            "{name} {at}/{high} ({:.0}%), {rate:.0} messages/s, {eta}",
            100.0 * done
        )
    }
}

#[cfg(test)]
mod tests {
    use super::progress_text;

    #[test]
    fn progress_shows_a_bar_or_a_log_clause() {
        let bar = progress_text("raw.metrics[0]", 500, Some(1000), 250.0, true);
        assert!(bar.contains("[###############---------------]"), "{bar}");
        assert!(bar.contains(" 50% 500/1000"), "{bar}");
        assert!(bar.ends_with("ETA 2s"), "{bar}");
        let line = progress_text("raw.metrics[0]", 1000, Some(1000), 0.0, false);
        assert_eq!(
            line,
            "raw.metrics[0] 1000/1000 (100%), 0 messages/s, caught up"
        );
        let unknown = progress_text("raw.metrics[1]", 7, None, 3.0, false);
        assert_eq!(unknown, "raw.metrics[1] 7, 3 messages/s");
    }
}
