//! Alert outputs: incident versions pushed to Alertmanager (API v2), PagerDuty (Events API v2),
//! a generic JSON webhook or a Slack incoming webhook, each configured by name in `[alerts.NAME]`.
//!
//! The dataflow never waits on a receiver. The incidents writer offers each version it writes to
//! a bounded queue per output (`try_send`: a full queue drops the version and counts it); one
//! thread per output decides what its receiver is sent ([`policy`]), sends it with a timeout and
//! retries with a doubling backoff up to a bound ([`deliver`]). Every outcome is counted per
//! output, on `/metrics` and in the run's summary. Suppressed versions are not sent; replays send
//! nothing (main does not start the outputs for them).

mod deliver;
pub mod payload;
pub mod policy;

use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use incidentflow_dataflows::incident::Incident;

use crate::config::AlertOutput;
use crate::ops::metrics::Metrics;

/// Versions an output may have waiting before new ones are dropped (and counted).
const QUEUE: usize = 10_000;

/// The running alert outputs.
pub struct Alerts {
    sender: AlertSender,
    threads: Vec<(String, JoinHandle<()>)>,
    /// Set when the job ends: the time after which deliveries stop retrying.
    give_up_at: Arc<OnceLock<Instant>>,
}

/// Hands incident versions to the alert outputs' queues; cheap to clone into the dataflow.
#[derive(Clone)]
pub struct AlertSender {
    queues: Arc<Vec<(String, SyncSender<Arc<Incident>>)>>,
    metrics: Arc<Metrics>,
}

impl AlertSender {
    /// Queues a written incident version for every output, never waiting: a full queue drops it
    /// (counted as `dropped`).
    pub fn offer(&self, incident: &Incident) {
        let incident = Arc::new(incident.clone());
        for (name, queue) in self.queues.iter() {
            match queue.try_send(incident.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.metrics.alert_delivery(name, "dropped");
                    tracing::warn!(output = %name, incident_id = %incident.incident_id, "alert queue full ({QUEUE} versions waiting): version dropped");
                }
                Err(TrySendError::Disconnected(_)) => self.metrics.alert_delivery(name, "dropped"),
            }
        }
    }
}

impl Alerts {
    /// Starts a delivery thread per configured output.
    pub fn start(
        outputs: &BTreeMap<String, AlertOutput>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Alerts> {
        let give_up_at = Arc::new(OnceLock::new());
        let mut queues = Vec::new();
        let mut threads = Vec::new();
        for (name, output) in outputs {
            let (queue, versions) = sync_channel(QUEUE);
            let delivery =
                deliver::Delivery::new(name, output, give_up_at.clone(), metrics.clone());
            let thread = std::thread::Builder::new()
                .name(format!("alerts-{name}"))
                .spawn(move || delivery.run(versions))?;
            queues.push((name.clone(), queue));
            threads.push((name.clone(), thread));
        }
        Ok(Alerts {
            sender: AlertSender {
                queues: Arc::new(queues),
                metrics,
            },
            threads,
            give_up_at,
        })
    }

    /// What the incidents writer offers versions to.
    pub fn sender(&self) -> AlertSender {
        self.sender.clone()
    }

    /// Sends what is queued, giving up retries after `grace`, and stops the threads.
    pub fn finish(self, grace: Duration) {
        let _ = self.give_up_at.set(Instant::now() + grace);
        drop(self.sender);
        for (name, thread) in self.threads {
            if thread.join().is_err() {
                tracing::error!(output = %name, "alert delivery thread panicked");
            }
        }
    }
}
