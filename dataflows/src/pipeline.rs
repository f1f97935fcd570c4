//! The detection pipeline as one function over collections: samples in, anomalies out.
//!
//! ```text
//! samples ─► exchange by series ─► counters to rates ─► window (+ at t+1, − at t+1+W) ─► arrange: Baselines
//!                 │                                                      │
//!                 └──────────────► with_baseline (as of t) ◄─────────────┘ ─► detector bank ─► episodes
//! ```

use differential_dataflow::{AsCollection, Hashable, VecCollection};
use timely::dataflow::operators::Exchange;

use crate::baseline::{arrange_baselines, with_baseline, Baselines};
use crate::detectors::bank::{Bank, DetectionConfig, Unscored};
use crate::rates::counter_rates;
use crate::records::{Anomaly, EpisodeStatus, Sample};
use crate::time::Time;
use crate::window::window;
use crate::zscore::ZScoreConfig;

/// Moves every sample to the worker that owns its series (the owner of its baseline key).
pub fn partition_by_series<'s>(
    samples: VecCollection<'s, Time, Sample>,
) -> VecCollection<'s, Time, Sample> {
    samples
        .inner
        .exchange(|(sample, _, _): &(Sample, Time, isize)| sample.series.id.hashed())
        .as_collection()
}

/// Builds the shared baselines of `samples` (already partitioned by series).
pub fn baselines<'s>(
    samples: VecCollection<'s, Time, Sample>,
    config: &ZScoreConfig,
) -> Baselines<'s> {
    arrange_baselines(window(samples, config.window_ms))
}

/// What the detectors found: the champion's anomalies and the challengers'.
pub struct Detected<'s> {
    /// The champion's anomaly events (every event, its episodes' closes included).
    pub champion: VecCollection<'s, Time, Anomaly>,
    /// The challengers' anomaly events, each tagged with its detector.
    pub challengers: VecCollection<'s, Time, Anomaly>,
    /// The series the z-score cannot judge, their windows too sparse (each once).
    pub unscored: VecCollection<'s, Time, Unscored>,
}

impl<'s> Detected<'s> {
    /// What correlation reads of the champion: its anomalies, but not the closes of episodes
    /// (a series that recovers is not new evidence).
    pub fn evidence(&self) -> VecCollection<'s, Time, Anomaly> {
        self.champion
            .clone()
            .filter(|a| a.episode.is_none_or(|e| e.status != EpisodeStatus::Close))
    }
}

/// Runs the champion and the challengers over one shared baseline: each sample (a counter's as its
/// rate) is read with its window once and handed to the bank of detectors, which reports each detector's episodes.
pub fn detect<'s>(
    samples: VecCollection<'s, Time, Sample>,
    config: &ZScoreConfig,
    detection: &DetectionConfig,
) -> Detected<'s> {
    let samples = counter_rates(partition_by_series(samples));
    let baselines = baselines(samples.clone(), config);
    let mut bank = Bank::new(&detection.running(), config, detection.update_every_ms);
    let found = with_baseline(samples, baselines, "Detect", move |sample, baseline| {
        let mut found = Vec::new();
        let unscored = bank.observe(sample, baseline, &mut found);
        (!found.is_empty() || unscored.is_some()).then_some((found, unscored))
    });
    let all = found.clone().flat_map(|(found, _)| found);
    let champion = detection.champion;
    Detected {
        champion: all.clone().filter(move |a| a.detector == champion),
        challengers: all.filter(move |a| a.detector != champion),
        unscored: found.flat_map(|(_, unscored)| unscored),
    }
}
