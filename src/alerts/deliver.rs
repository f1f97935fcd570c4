//! One alert output's thread: takes incident versions off its queue, asks the policy what to
//! send, and sends it over HTTP with a timeout, retrying a 5xx, a 408, a 429 or a connection
//! failure with a doubling backoff (up to 30 s between tries) for at most `retries` more
//! attempts. A 4xx other than those is the receiver refusing the request: not retried, counted
//! as rejected, logged with its answer. Nothing here can stop or slow the job.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::ops::clock::now_ms;

use incidentflow_dataflows::incident::Incident;

use super::policy::{Decision, Policy, Request};
use crate::config::{AlertKind, AlertOutput};
use crate::ops::metrics::Metrics;

/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How much of a refusing receiver's answer is read (and at most 300 characters of it logged).
const ANSWER_BYTES: usize = 1200;

/// The path and query of `url` (`/hooks/T000/B000/XXXX`), or "" when it has none.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.find('/').map_or("", |at| &rest[at..])
}

/// `text` cut to at most `max` characters (never inside one), marked when cut.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]).into(),
        None => text.into(),
    }
}

/// PagerDuty's Events API v2 endpoint, when `url` is not set.
pub const PAGERDUTY_EVENTS: &str = "https://events.pagerduty.com/v2/enqueue";

/// One output's sender.
pub struct Delivery {
    name: String,
    url: String,
    retries: u32,
    backoff: Duration,
    resend: Option<Duration>,
    policy: Policy,
    agent: ureq::Agent,
    give_up_at: Arc<OnceLock<Instant>>,
    metrics: Arc<Metrics>,
    /// The output's secrets (its URL, which may be a webhook's secret, and a routing key): kept
    /// out of every message, a receiver's answer included (one may echo the request).
    secrets: Vec<(String, &'static str)>,
}

/// How one request ended.
enum Sent {
    Delivered,
    Rejected(String),
    Failed(String),
}

impl Delivery {
    /// A sender for the output `name`.
    pub fn new(
        name: &str,
        output: &AlertOutput,
        give_up_at: Arc<OnceLock<Instant>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let kind = output.kind.unwrap_or(AlertKind::Webhook);
        let url = match kind {
            AlertKind::Alertmanager => {
                format!("{}/api/v2/alerts", output.url.trim_end_matches('/'))
            }
            AlertKind::Pagerduty if output.url.is_empty() => PAGERDUTY_EVENTS.to_string(),
            AlertKind::Pagerduty => output.url.clone(),
            AlertKind::Webhook | AlertKind::Slack => output.webhook_url.expose().to_string(),
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(output.timeout.0)))
            .http_status_as_error(false)
            .user_agent(concat!("incidentflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Delivery {
            name: name.to_owned(),
            url: url.clone(),
            retries: output.retries,
            backoff: Duration::from_millis(output.backoff.0.max(1)),
            resend: (kind == AlertKind::Alertmanager)
                .then(|| Duration::from_millis(output.resend_interval.0)),
            policy: Policy::new(kind, output.routing_key.expose(), output.resend_interval.0),
            agent,
            give_up_at,
            metrics,
            secrets: [
                (url.clone(), "<the output's url>"),
                // What a receiver sees of the URL (an echo of the request line).
                (url_path(&url).to_string(), "<the output's url path>"),
                (output.routing_key.expose().to_string(), "<the routing key>"),
            ]
            .into_iter()
            .filter(|(secret, _)| secret.len() > 1)
            .collect(),
        }
    }

    /// `text` with the output's secrets replaced by what they are.
    fn scrubbed(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (secret, name) in &self.secrets {
            text = text.replace(secret.as_str(), name);
        }
        text
    }

    /// Delivers versions until the queue is closed, or the job ends and the queue is empty. A
    /// panic (a bug: nothing a receiver answers should cause one) does not end the output: it is
    /// logged and counted, the version in hand is counted as failed, and delivery goes on with
    /// the next one.
    pub fn run(mut self, versions: Receiver<Arc<Incident>>) {
        loop {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.deliver(&versions);
            }));
            let Err(panic) = run else { return };
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            self.metrics.alert_thread_restart(&self.name);
            self.metrics.alert_delivery(&self.name, "failed");
            tracing::error!(output = %self.name, "alert delivery panicked ({}); restarted, the version in hand counted as failed", clip(&what, 200));
        }
    }

    /// The delivery loop of [`Delivery::run`].
    fn deliver(&mut self, versions: &Receiver<Arc<Incident>>) {
        let mut last_resend = Instant::now();
        loop {
            let closing = self.give_up_at.get().is_some();
            let mut wait = match self.resend {
                Some(every) => every.saturating_sub(last_resend.elapsed()),
                None => Duration::from_secs(3600),
            };
            if closing {
                wait = wait.min(Duration::from_millis(100));
            }
            match versions.recv_timeout(wait) {
                Ok(incident) => match self.policy.on_version(&incident, now_ms()) {
                    Decision::Send(requests) => {
                        for request in requests {
                            self.send(&request);
                        }
                    }
                    Decision::Suppressed => self.metrics.alert_delivery(&self.name, "suppressed"),
                    Decision::Unchanged => {}
                },
                Err(RecvTimeoutError::Timeout) if closing => return,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(request) = self.policy.resend(now_ms()) {
                        self.send(&request);
                    }
                    last_resend = Instant::now();
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Sends one request, retrying as the module says; counts and logs how it ended.
    fn send(&self, request: &Request) {
        let mut wait = self.backoff;
        let mut attempt = 0;
        let outcome = loop {
            match self.post(&request.body) {
                Sent::Failed(why) if attempt < self.retries && !self.past_deadline(wait) => {
                    tracing::warn!(output = %self.name, what = request.what, incident_id = request.incident_id.as_deref().unwrap_or(""), attempt = attempt + 1, "alert delivery failed ({why}); retrying in {wait:?}");
                    self.metrics.alert_retry(&self.name);
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                sent => break sent,
            }
        };
        let incident_id = request.incident_id.as_deref().unwrap_or("");
        match outcome {
            Sent::Delivered => {
                self.metrics.alert_delivery(&self.name, "delivered");
                tracing::debug!(output = %self.name, what = request.what, incident_id, "alert delivered");
            }
            Sent::Rejected(why) => {
                self.metrics.alert_delivery(&self.name, "rejected");
                tracing::error!(output = %self.name, what = request.what, incident_id, "alert rejected by the receiver: {why}");
            }
            Sent::Failed(why) => {
                self.metrics.alert_delivery(&self.name, "failed");
                tracing::error!(output = %self.name, what = request.what, incident_id, attempts = attempt + 1, "alert not delivered, giving up: {why}");
            }
        }
    }

    /// Whether waiting `wait` more would pass the end of the job's grace period.
    fn past_deadline(&self, wait: Duration) -> bool {
        self.give_up_at
            .get()
            .is_some_and(|at| Instant::now() + wait > *at)
    }

    fn post(&self, body: &str) -> Sent {
        let response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(body);
        match response {
            // A webhook's URL is a secret: keep it out of the logs.
            Err(e) => Sent::Failed(self.scrubbed(&e.to_string())),
            Ok(mut response) => {
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    return Sent::Delivered;
                }
                // The first bytes of the answer only: a receiver's body may be of any size.
                let mut answer = Vec::new();
                let _ = std::io::Read::read_to_end(
                    &mut std::io::Read::take(response.body_mut().as_reader(), ANSWER_BYTES as u64),
                    &mut answer,
                );
                let answer = self.scrubbed(&String::from_utf8_lossy(&answer));
                let why = format!("HTTP {status}: {}", clip(answer.trim(), 300));
                if status >= 500 || status == 408 || status == 429 {
                    Sent::Failed(why)
                } else {
                    Sent::Rejected(why)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn a_url_path_is_what_follows_the_host() {
        assert_eq!(
            super::url_path("https://hooks.slack.com/services/T0/B0/X"),
            "/services/T0/B0/X"
        );
        assert_eq!(super::url_path("http://am:9093"), "");
    }

    #[test]
    fn clipping_never_cuts_inside_a_character() {
        let text = format!("{}€ rest", "x".repeat(299));
        let cut = clip(&text, 300);
        assert_eq!(cut, format!("{}€…", "x".repeat(299)));
        assert_eq!(clip("short", 300), "short");
        assert_eq!(clip("ééé", 2), "éé…");
        assert_eq!(clip("", 0), "");
    }
}
