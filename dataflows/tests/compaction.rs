//! Memory follows the active series and their window, not the length of the stream: the baseline
//! arrangement holds about as many updates after 400 seconds of samples as after 100.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

use std::sync::Arc;

use differential_dataflow::input::InputSession;
use differential_dataflow::trace::TraceReader;
use incidentflow_dataflows::baseline::with_baseline;
use incidentflow_dataflows::baseline::BaselineConfig;
use incidentflow_dataflows::detectors::zscore::reading;
use incidentflow_dataflows::moments::Moments;
use incidentflow_dataflows::pipeline::{baselines, partition_by_series};
use incidentflow_dataflows::records::{Sample, SeriesInfo};
use incidentflow_dataflows::time::Time;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;
use timely::progress::Antichain;

#[test]
fn the_arrangement_stays_bounded_as_the_stream_grows() {
    let sizes = timely::execute_directly(|worker| {
        let config = BaselineConfig {
            window_ms: 10_000,
            ..BaselineConfig::default()
        };
        let probe = ProbeHandle::new();
        let (mut input, trace) = worker.dataflow::<Time, _, _>(|scope| {
            let mut input = InputSession::<Time, Sample, isize>::new();
            let samples = partition_by_series(input.to_collection(scope));
            let arranged = baselines(samples.clone(), &config);
            let mut trace = arranged.trace.clone();
            // This handle only looks: compaction is left to the scoring stage's own handle.
            trace.set_logical_compaction(Antichain::new().borrow());
            trace.set_physical_compaction(Antichain::new().borrow());
            let config = config.clone();
            with_baseline(
                samples,
                arranged,
                "Score",
                move |s: &Sample, m: &Moments| {
                    let r = reading(s.value.0, m, &config);
                    r.is_anomalous().then_some(s.timestamp)
                },
            )
            .inner
            .probe_with(&probe);
            (input, trace)
        });
        let series: Vec<_> = (0..50)
            .map(|i| Arc::new(SeriesInfo::new("ns", "svc", &format!("m{i}"))))
            .collect();
        let mut sizes = Vec::new();
        let t0: Time = 1_795_564_800_000;
        for step in 0..400u64 {
            for (i, s) in series.iter().enumerate() {
                let ts = t0 + step * 1000 + i as u64;
                input.update_at(Sample::new(ts, s.clone(), (step % 7) as f64), ts, 1);
            }
            let now = t0 + (step + 1) * 1000;
            input.advance_to(now);
            input.flush();
            worker.step_while(|| probe.less_than(&now));
            if step == 99 || step == 399 {
                let mut updates = 0;
                trace.map_spans(|span| updates += span.inner.as_ref().map_or(0, |b| b.updates));
                sizes.push(updates);
            }
        }
        sizes
    });
    let (early, late) = (sizes[0], sizes[1]);
    eprintln!("arrangement updates after 100 s and 400 s: {sizes:?}");
    // 50 series with 10 samples in a window: a few thousand updates at most, whatever the length.
    assert!(late < 4 * 50 * 12, "{sizes:?}");
    assert!(
        late <= early * 2,
        "the arrangement grew with the stream: {sizes:?}"
    );
}
