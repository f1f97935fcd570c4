//! incidentflow's dataflow crate: the record types and the dataflow stages, with no I/O.
//!
//! | module | what it holds |
//! |---|---|
//! | [`time`] | the time rules: event-time ticks, RFC 3339, windows, watermarks |
//! | [`records`] | the record contracts: samples, anomalies, refusal reasons, dead letters |
//! | [`wire`] | the anomaly and dead-letter lines as public records, written and read back |
//! | [`remote_write`] | Prometheus remote write's wire format: the protobuf and snappy |
//! | [`decode`] | JSON line -> validated sample, or the reason it is refused |
//! | [`moments`] | the exact difference type of the baselines |
//! | [`forget`] | per-series state forgotten once its series has gone silent (memory follows active series) |
//! | [`limits`] | cardinality caps: at most so many active series per namespace and in the job |
//! | [`held`] | updates held until a frontier passes their time (samples, tracker inputs, incident versions, records) |
//! | [`rates`] | counters (`..._total`) turned into per-second rates, before the baseline |
//! | [`window`] | the rolling window operator (insert at t+1, retract at t+1+W) |
//! | [`baseline`] | the shared baseline arrangement and the as-of-time lookup |
//! | [`detectors`] | the detector bank: the change detector (champion), z-score, robust, level shift, trend, seasonal; episodes and scores |
//! | [`pipeline`] | the stages wired together: samples -> anomalies -> annotated incidents |
//! | [`incident`] | episodes grouped over the topology into incidents, and the ranked root cause |
//! | [`annotate`] | runbooks and silences (an input collection) added to each incident version |
//! | [`rng`] | the workspace's seeded random numbers (load generator, benchmark, tests) |
//! | [`truth`] | the ground-truth record: one injected fault, written by the load generator, read by eval |

pub mod annotate;
pub mod baseline;
pub mod decode;
pub mod detectors;
pub mod forget;
pub mod held;
pub mod incident;
pub mod limits;
pub mod moments;
pub mod pipeline;
pub mod rates;
pub mod records;
pub mod remote_write;
pub mod rng;
pub mod time;
pub mod truth;
pub mod window;
pub mod wire;
