//! The pipeline as functions over collections: samples in, anomalies out ([`detect`]); the
//! champion's anomalies with the topology, deploys and silences in, annotated incident versions
//! out ([`incidents`]).
//!
//! ```text
//! samples ─► exchange by series ─► (caps) ─► counters to rates ─► window (+ at t+1, − at t+1+W) ─► arrange: Baselines
//!                 │                                                      │
//!                 └──────────────► with_baseline (as of t) ◄─────────────┘ ─► detector bank ─► episodes
//! ```
//!
//! The window is kept only when a running detector reads it (the z-score, the level shift): the
//! champion, the change detector, keeps its own state per series, and without a window-reading
//! challenger the samples go to the bank in series and time order with no window at all.
//!
//! ```text
//! champion's anomalies ─┐
//! edges, deploys ───────┴► track_incidents (worker 0) ─► annotate_incidents (◄─ silences) ─► versions
//! ```

use differential_dataflow::{AsCollection, Hashable, VecCollection};
use timely::dataflow::operators::Exchange;
use timely::dataflow::Stream;

use crate::annotate::{annotate_incidents, Annotator, SilenceRule};

use crate::baseline::{
    arrange_baselines, in_series_order, with_baseline, BaselineConfig, Baselines, PerSeries,
};
use crate::detectors::bank::{Bank, DetectionConfig, Unscored};
use crate::forget::Forgetting;
use crate::held::Update;
use crate::incident::{track_incidents, CorrelationConfig, Incident};
use crate::limits::{cap_series, CappedStream, SeriesCaps};
use crate::moments::Moments;
use crate::rates::counter_rates;
use crate::records::{Anomaly, DeployEvent, EdgeChange, Sample};
use crate::time::Time;
use crate::window::window;

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
    config: &BaselineConfig,
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
    /// The samples refused by a cardinality cap (None: no cap is set).
    pub capped: Option<CappedStream<'s>>,
}

/// Runs the champion and the challengers over one shared baseline: each sample (a counter's as its
/// rate) is read with its window once and handed to the bank of detectors, which reports each detector's episodes.
pub fn detect<'s>(
    samples: VecCollection<'s, Time, Sample>,
    config: &BaselineConfig,
    detection: &DetectionConfig,
) -> Detected<'s> {
    let forgetting = Forgetting::new(detection.forget_after_ms);
    let mut samples = partition_by_series(samples);
    let caps = SeriesCaps {
        forget_after: detection.forget_after_ms,
        ..detection.series_caps
    };
    let mut capped = None;
    if caps.any() {
        let (admitted, refused) = cap_series(samples, caps);
        (samples, capped) = (admitted, Some(refused));
    }
    let samples = counter_rates(samples, forgetting.clone());
    let logic = BankStage(Bank::new(
        &detection.running(),
        config,
        detection.update_every_ms,
        forgetting,
    ));
    // The window and its arrangement are kept only when a running detector reads them.
    let found = if detection.needs_window() {
        let baselines = baselines(samples.clone(), config);
        with_baseline(samples, baselines, "Detect", logic)
    } else {
        in_series_order(samples, "Detect", logic)
    };
    let all = found.clone().flat_map(|(found, _)| found);
    let champion = detection.champion;
    Detected {
        champion: all.clone().filter(move |a| a.detector == champion),
        challengers: all.filter(move |a| a.detector != champion),
        unscored: found.flat_map(|(_, unscored)| unscored),
        capped,
    }
}

/// The detector bank as a per-series stage: each sample's anomalies and its unscored notice;
/// silent series forgotten as each batch ends.
struct BankStage(Bank);

impl PerSeries<(Vec<Anomaly>, Option<Unscored>)> for BankStage {
    fn observe(
        &mut self,
        sample: &Sample,
        baseline: &Moments,
    ) -> Option<(Vec<Anomaly>, Option<Unscored>)> {
        let mut found = Vec::new();
        let unscored = self.0.observe(sample, baseline, &mut found);
        (!found.is_empty() || unscored.is_some()).then_some((found, unscored))
    }

    fn batch_done(&mut self, latest: Time) {
        self.0.forget_silent(latest);
    }
}

/// The correlation's inputs beside the champion's anomalies.
pub struct CorrelationInputs<'s> {
    /// The topology's edge changes.
    pub edges: Stream<'s, Time, Vec<Update<EdgeChange>>>,
    /// The deploys.
    pub deploys: Stream<'s, Time, Vec<Update<DeployEvent>>>,
    /// The silences input: each rule at the time it is in force from.
    pub silences: Stream<'s, Time, Vec<Update<SilenceRule>>>,
}

/// Groups the champion's anomalies over the topology into incidents, ranks their causes and adds
/// the runbooks and silences: the incident versions, at the times they were made.
pub fn incidents<'s>(
    champion: VecCollection<'s, Time, Anomaly>,
    inputs: CorrelationInputs<'s>,
    correlation: &CorrelationConfig,
    annotator: Annotator,
) -> Stream<'s, Time, Vec<Update<Incident>>> {
    let tracked = track_incidents(champion, inputs.edges, inputs.deploys, correlation);
    annotate_incidents(tracked, inputs.silences, annotator)
}
