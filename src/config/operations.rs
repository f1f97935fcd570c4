//! The operational sections of the job file: self-monitoring (`[metrics]`), alert outputs
//! (`[alerts.NAME]`), runbooks (`[[runbooks]]`) and silences (`[[silences]]`). They change what
//! the job tells people, never what it computes.

use std::path::PathBuf;

use incidentflow_dataflows::annotate::SilenceRule;
use incidentflow_dataflows::time::{parse_rfc3339, TimestampError};
use serde::{Deserialize, Serialize, Serializer};

use super::Millis;

/// A secret value: read from the environment or a `*_file`, shown as `***` everywhere.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is set.
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether it is not set (for serde's `skip_serializing_if`).
    pub fn is_unset(&self) -> bool {
        self.0.is_empty()
    }

    /// A secret holding `value` (tests and `*_file` resolution).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_set() { "***" } else { "(unset)" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.is_set() { "***" } else { "" })
    }
}

/// `[metrics]`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Where to serve `/metrics`, `/healthz` and `/ready` (`host:port`; `--metrics-addr`
    /// overrides); empty: not served.
    pub addr: String,
    /// `/ready` answers 503 while a Kafka input partition is more than this many messages behind
    /// its high watermark.
    pub ready_max_lag: u64,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            addr: String::new(),
            ready_max_lag: 100_000,
        }
    }
}

/// The kinds of alert output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// Alertmanager API v2 (`POST {url}/api/v2/alerts`).
    Alertmanager,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// A generic JSON webhook: every incident version as the incidents file has it.
    Webhook,
    /// A Slack incoming webhook: a readable message.
    Slack,
}

/// `[alerts.NAME]`: one alert output.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertOutput {
    /// alertmanager, pagerduty, webhook or slack.
    pub kind: Option<AlertKind>,
    /// Alertmanager's base URL (`http://alertmanager:9093`), or PagerDuty's events endpoint.
    pub url: String,
    /// Secret: the webhook or Slack incoming-webhook URL.
    pub webhook_url: Secret,
    /// A file holding `webhook_url`.
    pub webhook_url_file: Option<PathBuf>,
    /// Secret: PagerDuty's integration (routing) key.
    pub routing_key: Secret,
    /// A file holding `routing_key`.
    pub routing_key_file: Option<PathBuf>,
    /// How long one request may take.
    pub timeout: Millis,
    /// Attempts after the first before a delivery is given up (and counted as failed).
    pub retries: u32,
    /// The wait before the first retry; it doubles each time, up to 30 s.
    pub backoff: Millis,
    /// Alertmanager: how often an open incident's alert is sent again (Alertmanager forgets an
    /// alert that is not re-sent within its resolve timeout).
    pub resend_interval: Millis,
}

impl Default for AlertOutput {
    fn default() -> Self {
        AlertOutput {
            kind: None,
            url: String::new(),
            webhook_url: Secret::default(),
            webhook_url_file: None,
            routing_key: Secret::default(),
            routing_key_file: None,
            timeout: Millis(5_000),
            retries: 5,
            backoff: Millis(500),
            resend_interval: Millis(60_000),
        }
    }
}

/// `[[runbooks]]`: the dataflow crate's type (it matches them), read as the job file has it.
pub use incidentflow_dataflows::annotate::Runbook;

/// `[[silences]]`: maintenance windows and silences. A matching incident is still computed and
/// written, marked suppressed with the rule's name, and not sent to the alert outputs.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Silence {
    /// A name for it (shown in `suppressed_by`).
    pub name: String,
    /// Service names (a trailing `*` matches a prefix), matched against the likely cause's
    /// service; empty: any.
    pub services: Vec<String>,
    /// From (RFC 3339, event time of the incident version).
    pub start: String,
    /// Until (RFC 3339, exclusive).
    pub end: String,
}

impl Silence {
    /// The rule the dataflow matches: its times parsed and in order (`at` names it in errors:
    /// `silences[0]`, or a side input line's position).
    pub fn rule(&self, at: &str) -> Result<SilenceRule, String> {
        let time = |k: &str, v: &str| {
            parse_rfc3339(v).map_err(|e| {
                let (TimestampError::Absurd(why) | TimestampError::Unparseable(why)) = e;
                format!("{at}.{k} is {v:?}: {why} (use RFC 3339, e.g. 2026-11-23T01:00:00Z)")
            })
        };
        let (start, end) = (time("start", &self.start)?, time("end", &self.end)?);
        if start >= end {
            return Err(format!("{at}: end must be later than start"));
        }
        Ok(SilenceRule {
            name: self.name.clone(),
            services: self.services.clone(),
            start,
            end,
        })
    }
}
