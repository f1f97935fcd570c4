//! Episodes, not points: a series' anomaly opens when a detector's strength reaches 1.5 at once,
//! or 1 on two samples in a row. A lone sample a little past the threshold is what noise does:
//! on the medium scenario 90% of the z-score's false episodes opened below 1.18 and lasted one
//! sample, and on the large one (105,000 series) they opened between 1.25 and 1.37, while the
//! faults' episodes last five samples and more, or start stronger (a tenth of them below 1.5,
//! and those are confirmed by their next sample, one interval later); it stays
//! open while it keeps above 0.7 (hysteresis: a value hovering at the threshold does not open and
//! close over and over), and closes after 3 samples in a row below that. While open it reports
//! again when its score has grown by 0.05 since it last did, or when `heartbeat` of event time has
//! passed since its last report and it is still anomalous (so that whoever follows the stream,
//! correlation first, knows it goes on); its score (see [`super::score`]) grows with the
//! strongest strength seen and with the number of anomalous samples. One episode is one stream of
//! events (open, updates, close), not an event per sample; a new one opens only after the last
//! has closed.

use super::score::anomaly_score;
use crate::time::Time;

/// Strength at which an episode opens, on two samples in a row.
pub const OPEN: f64 = 1.0;
/// Strength at which one sample opens an episode by itself.
pub const OPEN_AT_ONCE: f64 = 1.5;
/// Strength below which a sample counts towards closing.
pub const STAY: f64 = 0.7;
/// Samples in a row below `STAY` that close an episode.
pub const RECOVER: u32 = 3;
/// Score growth that is reported as an update.
pub const REPORT_GROWTH: f64 = 0.05;

/// What an observation did to the episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// Nothing to report.
    None,
    /// An episode opened at this sample.
    Opened { score: f64 },
    /// The open episode's score grew.
    Updated { score: f64 },
    /// The episode closed at this sample (the series has recovered); it began at `started` and
    /// had `samples` anomalous samples.
    Closed {
        score: f64,
        started: Time,
        samples: u32,
    },
}

#[derive(Clone, Debug, PartialEq)]
struct Open {
    started: Time,
    peak: f64,
    anomalous: u32,
    calm: u32,
    reported: f64,
    reported_at: Time,
}

/// One series' episode for one detector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Episode {
    open: Option<Open>,
    /// A sample past `OPEN` but not `OPEN_AT_ONCE`, waiting for the next: (time, strength).
    pending: Option<(Time, f64)>,
}

impl Episode {
    /// Whether an episode is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Whether a sample past `OPEN` (but not `OPEN_AT_ONCE`) waits for the next to open one.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// When the open episode began.
    pub fn started(&self) -> Option<Time> {
        self.open.as_ref().map(|o| o.started)
    }

    /// The open episode's anomalous samples so far.
    pub fn samples(&self) -> u32 {
        self.open.as_ref().map_or(0, |o| o.anomalous)
    }

    /// Follows the episode with one sample's strength at `t`; an open episode that is still
    /// anomalous reports at least every `heartbeat` ms of event time (0: only when it grows).
    pub fn observe(&mut self, t: Time, strength: f64, heartbeat: Time) -> Change {
        let strength = if strength.is_nan() { 0.0 } else { strength };
        match self.open.as_mut() {
            None if strength >= OPEN => {
                let pending = self.pending.take();
                let (started, peak, anomalous) = match pending {
                    Some((at, before)) => (at, before.max(strength), 2),
                    None if strength >= OPEN_AT_ONCE => (t, strength, 1),
                    None => {
                        self.pending = Some((t, strength));
                        return Change::None;
                    }
                };
                let score = anomaly_score(peak, anomalous);
                self.open = Some(Open {
                    started,
                    peak,
                    anomalous,
                    calm: 0,
                    reported: score,
                    reported_at: t,
                });
                Change::Opened { score }
            }
            None => {
                self.pending = None;
                Change::None
            }
            Some(open) if strength >= STAY => {
                open.calm = 0;
                open.anomalous = open.anomalous.saturating_add(1);
                open.peak = open.peak.max(strength);
                let score = anomaly_score(open.peak, open.anomalous);
                let due = heartbeat > 0 && strength >= OPEN && t >= open.reported_at + heartbeat;
                // Its second anomalous sample is always reported: it is what tells a lone spike
                // from an anomaly that lasts.
                let confirmed = open.anomalous == 2 && strength >= OPEN;
                if score >= open.reported + REPORT_GROWTH || due || confirmed {
                    open.reported = score;
                    open.reported_at = t;
                    Change::Updated { score }
                } else {
                    Change::None
                }
            }
            Some(open) => {
                open.calm += 1;
                if open.calm < RECOVER {
                    return Change::None;
                }
                let score = anomaly_score(open.peak, open.anomalous);
                let (started, samples) = (open.started, open.anomalous);
                self.open = None;
                Change::Closed {
                    score,
                    started,
                    samples,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(strengths: &[f64]) -> Vec<(usize, Change)> {
        let mut e = Episode::default();
        strengths
            .iter()
            .enumerate()
            .map(|(i, s)| (i, e.observe(i as Time, *s, 0)))
            .filter(|(_, c)| *c != Change::None)
            .collect()
    }

    #[test]
    fn a_spike_is_one_episode_that_opens_and_closes() {
        let changes = run(&[0.1, 0.2, 3.0, 0.2, 0.1, 0.1, 0.1]);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(matches!(changes[0], (2, Change::Opened { score }) if (score - 0.75).abs() < 1e-9));
        assert!(matches!(changes[1], (5, Change::Closed { started: 2, .. })));
    }

    #[test]
    fn a_lone_sample_just_past_the_threshold_opens_nothing_two_in_a_row_do() {
        assert!(run(&[0.2, 1.1, 0.3, 0.2, 1.2, 0.1]).is_empty());
        let changes = run(&[0.2, 1.1, 1.05, 0.3, 0.2, 0.1]);
        // Opened at the second, dated from the first.
        assert!(
            matches!(changes[0], (2, Change::Opened { .. })),
            "{changes:?}"
        );
        assert!(
            matches!(changes[1], (5, Change::Closed { started: 1, .. })),
            "{changes:?}"
        );
    }

    #[test]
    fn a_value_hovering_at_the_threshold_does_not_flap() {
        // 1.05, 1.05, 0.9, 1.05, 1.05, 0.9, ... for 200 samples: one episode, open throughout.
        let hovering: Vec<f64> = (0..200)
            .map(|i| if i % 3 == 2 { 0.9 } else { 1.05 })
            .collect();
        let changes = run(&hovering);
        let opened = changes
            .iter()
            .filter(|(_, c)| matches!(c, Change::Opened { .. }))
            .count();
        assert_eq!(opened, 1, "{changes:?}");
        assert!(!changes
            .iter()
            .any(|(_, c)| matches!(c, Change::Closed { .. })));
        // Updates only as the score grows with persistence, not every sample.
        assert!(changes.len() < 10, "{changes:?}");
    }

    #[test]
    fn it_re_arms_only_after_recovery() {
        let changes = run(&[2.0, 0.5, 0.5, 2.0, 0.1, 0.1, 0.1, 2.0]);
        let kinds: Vec<&str> = changes
            .iter()
            .map(|(_, c)| match c {
                Change::Opened { .. } => "open",
                Change::Updated { .. } => "update",
                Change::Closed { .. } => "close",
                Change::None => "",
            })
            .collect();
        // The second 2.0 came before recovery: the same episode (reported as its second
        // anomalous sample); only after three calm samples does a new one open.
        assert_eq!(kinds, ["open", "update", "close", "open"]);
    }

    #[test]
    fn a_long_episode_reports_at_each_heartbeat_while_it_lasts() {
        let mut e = Episode::default();
        let changes: Vec<Change> = (0..100)
            .map(|t| e.observe(t, 2.0, 30))
            .filter(|c| *c != Change::None)
            .collect();
        // Open at 0, a growth or two, then heartbeats at least every 30.
        assert!(matches!(changes[0], Change::Opened { .. }));
        assert!(changes.len() >= 4 && changes.len() <= 8, "{changes:?}");
    }
}
