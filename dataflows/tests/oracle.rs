//! The oracle test: on seeded random input (many series, counters among them, gaps, records out
//! of order, windows that expire), the dataflow's rates, baselines and anomalies equal a naive
//! recomputation, at 1 and at 3 workers.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use differential_dataflow::difference::Semigroup;
use differential_dataflow::input::InputSession;
use incidentflow_dataflows::baseline::with_baseline;
use incidentflow_dataflows::baseline::BaselineConfig;
use incidentflow_dataflows::detectors::zscore::reading;
use incidentflow_dataflows::forget::Forgetting;
use incidentflow_dataflows::moments::Moments;
use incidentflow_dataflows::pipeline::{baselines, partition_by_series};
use incidentflow_dataflows::rates::{counter_rates, CounterRate};
use incidentflow_dataflows::records::{Sample, SeriesId, SeriesInfo};
use incidentflow_dataflows::rng::Rng;
use incidentflow_dataflows::time::Time;

const T0: Time = 1_795_564_800_000;

/// Samples in arrival order: (arrival tick, sample). A sample arrives up to 3 ticks after its time.
fn random_input(seed: u64) -> Vec<(Time, Sample)> {
    let mut rng = Rng::new(seed, 0);
    let series: Vec<Arc<SeriesInfo>> = (0..40)
        .map(|i| {
            // Every fifth series is a counter.
            let name = if i % 5 == 0 {
                format!("m{i}_total")
            } else {
                format!("m{i}")
            };
            Arc::new(SeriesInfo::new("ns", &format!("svc-{}", i % 13), &name))
        })
        .collect();
    let mut out = Vec::new();
    let mut totals = vec![0.0; series.len()];
    for step in 0..400u64 {
        for (s, total) in series.iter().zip(totals.iter_mut()) {
            if rng.below(4) == 0 {
                continue; // gaps
            }
            let ts = T0 + step * 1000 + rng.below(1000);
            let mut value = if rng.below(50) == 0 {
                50.0 + rng.below(50) as f64
            } else {
                10.0 + rng.below(1000) as f64 / 100.0
            };
            if s.metric_name.ends_with("_total") {
                // A counter climbs by the value, and now and then its process restarts.
                *total = if rng.below(100) == 0 {
                    value
                } else {
                    *total + value
                };
                value = *total;
            }
            let arrival = ts / 1000 * 1000 + 1000 * rng.below(4);
            out.push((arrival, Sample::new(ts, s.clone(), value)));
        }
    }
    out.sort_by_key(|(arrival, s)| (*arrival, s.timestamp));
    out
}

/// The baseline of every sample by brute force: the samples of its series in [t - W, t), a
/// counter's turned into rates first (its first sample has none).
fn naive(input: &[(Time, Sample)], window: u64) -> Vec<(Sample, Moments)> {
    let mut by_series: BTreeMap<_, Vec<Sample>> = BTreeMap::new();
    for (_, s) in input {
        by_series.entry(s.series.id).or_default().push(s.clone());
    }
    for samples in by_series.values_mut() {
        samples.sort_by_key(|s| s.timestamp);
        if samples[0].series.metric_name.ends_with("_total") {
            let mut counter = CounterRate::default();
            *samples = samples.iter().filter_map(|s| counter.rate_of(s)).collect();
        }
    }
    let mut out = Vec::new();
    for samples in by_series.values() {
        for s in samples {
            let mut m = Moments::default();
            for other in samples {
                if other.timestamp < s.timestamp && other.timestamp + window >= s.timestamp {
                    m.plus_equals(&Moments::of(other.fixed));
                }
            }
            out.push((s.clone(), m));
        }
    }
    out.sort();
    out
}

fn dataflow(
    input: Arc<Vec<(Time, Sample)>>,
    workers: usize,
    config: BaselineConfig,
) -> Vec<(Sample, Moments)> {
    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink = collected.clone();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let sink = sink.clone();
        let config = config.clone();
        let mut session = worker.dataflow::<Time, _, _>(|scope| {
            let mut session = InputSession::<Time, Sample, isize>::new();
            let samples = counter_rates(
                partition_by_series(session.to_collection(scope)),
                Forgetting::new(0),
            );
            let arranged = baselines(samples.clone(), &config);
            with_baseline(samples, arranged, "Oracle", |s: &Sample, m: &Moments| {
                Some((s.clone(), *m))
            })
            .inspect(move |((s, m), _t, r)| {
                assert_eq!(*r, 1);
                sink.lock().unwrap().push((s.clone(), *m));
            });
            session
        });
        // Each worker feeds its share, holding its input time 3 ticks behind arrival.
        for (i, (arrival, sample)) in input.iter().enumerate() {
            let floor = arrival.saturating_sub(3000);
            if floor > *session.time() {
                session.advance_to(floor);
                session.flush();
                worker.step();
            }
            if i % peers == index {
                session.update_at(sample.clone(), sample.timestamp, 1);
            }
        }
    })
    .unwrap();
    let mut out = Arc::try_unwrap(collected).unwrap().into_inner().unwrap();
    out.sort();
    out
}

#[test]
fn baselines_equal_a_naive_recomputation_at_one_and_three_workers() {
    let config = BaselineConfig {
        window_ms: 20_000,
        min_points: 5,
        threshold: 3.0,
        score_from: 0,
    };
    for seed in [1, 2] {
        let input = Arc::new(random_input(seed));
        let expected = naive(&input, config.window_ms);
        assert!(expected.iter().any(|(_, m)| m.n >= 15), "windows fill up");
        let rates = expected
            .iter()
            .filter(|(s, _)| s.series.metric_name.ends_with("_total"))
            .count();
        assert!(rates > 500, "counters are in the input: {rates}");
        for workers in [1, 3] {
            let got = dataflow(input.clone(), workers, config.clone());
            assert_eq!(got.len(), expected.len());
            assert!(
                got == expected,
                "seed {seed}, {workers} workers: baselines differ"
            );
        }
    }
}

#[test]
fn z_score_readings_equal_those_on_naive_baselines() {
    let config = BaselineConfig {
        window_ms: 20_000,
        min_points: 5,
        threshold: 3.0,
        score_from: 0,
    };
    let input = Arc::new(random_input(3));
    let expected: Vec<_> = naive(&input, config.window_ms)
        .iter()
        .filter_map(|(s, m)| anomalous(s, m, &config))
        .collect();
    assert!(expected.len() > 50, "{}", expected.len());
    let got: Vec<_> = dataflow(input, 2, config.clone())
        .iter()
        .filter_map(|(s, m)| anomalous(s, m, &config))
        .collect();
    assert_eq!(got, expected);
}

/// The z-score's reading of a sample, as the detector bank takes it, when past its threshold:
/// (series, time, strength's bits).
fn anomalous(s: &Sample, m: &Moments, config: &BaselineConfig) -> Option<(SeriesId, Time, u64)> {
    let r = reading(s.value.0, m, config);
    r.is_anomalous()
        .then_some((s.series.id, s.timestamp, r.strength.to_bits()))
}
