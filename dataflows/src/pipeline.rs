//! The detection pipeline as one function over collections: samples in, anomalies out.
//!
//! ```text
//! samples ─► exchange by series ─► window (+ at t+1, − at t+1+W) ─► arrange: Baselines
//!                 │                                                      │
//!                 └──────────────► with_baseline (as of t) ◄─────────────┘ ─► z-score ─► anomalies
//! ```

use differential_dataflow::{AsCollection, Hashable, VecCollection};
use timely::dataflow::operators::Exchange;

use crate::baseline::{arrange_baselines, with_baseline, Baselines};
use crate::records::{Anomaly, Sample};
use crate::time::Time;
use crate::window::window;
use crate::zscore::{score, ZScoreConfig};

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

/// Detects anomalies: every sample scored by the z-score detector against its series' baseline.
pub fn detect_anomalies<'s>(
    samples: VecCollection<'s, Time, Sample>,
    config: &ZScoreConfig,
) -> VecCollection<'s, Time, Anomaly> {
    let samples = partition_by_series(samples);
    let baselines = baselines(samples.clone(), config);
    let config = config.clone();
    with_baseline(samples, baselines, "ZScore", move |sample, baseline| {
        score(sample, baseline, &config)
    })
}
