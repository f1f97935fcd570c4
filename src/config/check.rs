//! The job file's checks: every value in range and every name valid before the job starts, each
//! refusal naming its key and why.

use super::layers;
use super::operations::AlertKind;
use super::JobConfig;

impl JobConfig {
    /// Checks value ranges; the message names the key.
    pub fn check(&self) -> Result<(), String> {
        if self
            .detectors
            .challengers
            .contains(&self.detectors.champion)
        {
            return Err(format!(
                "detectors.challengers names the champion {}: a detector is one or the other",
                self.detectors.champion.name()
            ));
        }
        if self.baseline.window.0 == 0 {
            return Err("baseline.window must be longer than 0s".into());
        }
        if self.baseline.min_points < 2 {
            return Err(format!(
                "baseline.min_points is {}; it must be at least 2 (a stddev needs two points)",
                self.baseline.min_points
            ));
        }
        if !(self.zscore.threshold.is_finite() && self.zscore.threshold > 0.0) {
            return Err(format!(
                "zscore.threshold is {}; it must be a number above 0",
                self.zscore.threshold
            ));
        }
        if self.correlation.max_duration.0 == 0 {
            return Err("correlation.max_duration must be longer than 0s".into());
        }
        if self.time.max_ahead.0 < 60_000 {
            return Err(
                "time.max_ahead must be at least 1m (clocks and batches run a little ahead)".into(),
            );
        }
        if self.time.tick.0 == 0 {
            return Err("time.tick must be at least 1ms".into());
        }
        if self.input.max_line_bytes < 256 {
            return Err(format!(
                "input.max_line_bytes is {}; it must be at least 256",
                self.input.max_line_bytes
            ));
        }
        if self.input.partition_bytes < 4096 {
            return Err(format!(
                "input.partition_bytes is {}; it must be at least 4096",
                self.input.partition_bytes
            ));
        }
        for (key, score) in [
            ("strong_score", self.correlation.strong_score),
            ("keep_alive_score", self.correlation.keep_alive_score),
        ] {
            if !(0.0..=1.0).contains(&score) {
                return Err(format!(
                    "correlation.{key} is {score}; it must be between 0 and 1"
                ));
            }
        }
        self.check_kafka()?;
        self.check_operations()
    }

    fn check_kafka(&self) -> Result<(), String> {
        let k = &self.kafka;
        if k.brokers.split(',').any(|b| {
            let b = b.trim();
            b.rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        }) {
            return Err(format!(
                "kafka.brokers is {:?}; it must be host:port[,host:port...]",
                k.brokers
            ));
        }
        for (key, topic) in [
            ("samples_topic", &k.samples_topic),
            ("topology_topic", &k.topology_topic),
            ("spans_topic", &k.spans_topic),
            ("deploys_topic", &k.deploys_topic),
            ("anomalies_topic", &k.anomalies_topic),
            ("incidents_topic", &k.incidents_topic),
            ("feedback_topic", &k.feedback_topic),
            ("challengers_topic", &k.challengers_topic),
            ("silences_topic", &k.silences_topic),
        ] {
            let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if topic.is_empty()
                || topic.len() > 249
                || !topic.chars().all(legal)
                || topic == "."
                || topic == ".."
            {
                return Err(format!(
                    "kafka.{key} is {topic:?}; a topic name is 1 to 249 of a-z A-Z 0-9 . _ -"
                ));
            }
        }
        let sasl = match k.security_protocol.as_str() {
            "plaintext" | "ssl" => false,
            "sasl_plaintext" | "sasl_ssl" => true,
            other => {
                return Err(format!(
                    "kafka.security_protocol is {other:?}; say plaintext, ssl, sasl_plaintext or sasl_ssl"
                ))
            }
        };
        if sasl {
            if !matches!(
                k.sasl_mechanism.as_str(),
                "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"
            ) {
                return Err(format!(
                    "kafka.sasl_mechanism is {:?}; with {} say PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                    k.sasl_mechanism, k.security_protocol
                ));
            }
            if k.sasl_username.is_empty() {
                return Err(format!(
                    "kafka.sasl_username is missing: {} needs it",
                    k.security_protocol
                ));
            }
            if !k.sasl_password.is_set() {
                return Err("kafka.sasl_password is missing: set INCIDENTFLOW__KAFKA__SASL_PASSWORD or kafka.sasl_password_file".into());
            }
        } else if !k.sasl_mechanism.is_empty() || !k.sasl_username.is_empty() {
            return Err(format!(
                "kafka.sasl_mechanism and sasl_username need security_protocol sasl_plaintext or sasl_ssl (it is {})",
                k.security_protocol
            ));
        }
        Ok(())
    }

    /// The librdkafka settings for the brokers' security (none for plaintext).
    pub fn kafka_security(&self) -> Vec<(&'static str, String)> {
        let k = &self.kafka;
        let mut out = vec![("security.protocol", k.security_protocol.clone())];
        if k.security_protocol.starts_with("sasl") {
            out.push(("sasl.mechanisms", k.sasl_mechanism.clone()));
            out.push(("sasl.username", k.sasl_username.clone()));
            out.push(("sasl.password", k.sasl_password.expose().to_string()));
        }
        if k.security_protocol.ends_with("ssl") && !k.ssl_ca_location.is_empty() {
            out.push(("ssl.ca.location", k.ssl_ca_location.clone()));
        }
        out
    }

    fn check_operations(&self) -> Result<(), String> {
        if !self.metrics.addr.is_empty()
            && self.metrics.addr.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(format!(
                "metrics.addr is {:?}; it must be host:port with an IP address, e.g. 0.0.0.0:9100",
                self.metrics.addr
            ));
        }
        for (name, alert) in &self.alerts {
            let key = |k: &str| format!("alerts.{name}.{k}");
            let Some(kind) = alert.kind else {
                return Err(format!(
                    "{} is missing: say alertmanager, pagerduty, webhook or slack",
                    key("kind")
                ));
            };
            match kind {
                AlertKind::Alertmanager => check_url(&key("url"), &alert.url, false)?,
                AlertKind::Pagerduty => {
                    if !alert.url.is_empty() {
                        check_url(&key("url"), &alert.url, false)?;
                    }
                    if !alert.routing_key.is_set() {
                        return Err(format!(
                            "{} is missing: set {} or {}",
                            key("routing_key"),
                            layers::env_name(&key("routing_key")),
                            key("routing_key_file")
                        ));
                    }
                }
                AlertKind::Webhook | AlertKind::Slack => {
                    if !alert.webhook_url.is_set() {
                        return Err(format!(
                            "{} is missing: set {} or {}",
                            key("webhook_url"),
                            layers::env_name(&key("webhook_url")),
                            key("webhook_url_file")
                        ));
                    }
                    check_url(&key("webhook_url"), alert.webhook_url.expose(), true)?;
                }
            }
            if alert.timeout.0 == 0 {
                return Err(format!("{} must be longer than 0s", key("timeout")));
            }
            if alert.retries > 20 {
                return Err(format!(
                    "{} is {}; at most 20 (with backoff doubling to 30 s, that is ten minutes)",
                    key("retries"),
                    alert.retries
                ));
            }
            if kind == AlertKind::Alertmanager && alert.resend_interval.0 < 1000 {
                return Err(format!("{} must be at least 1s", key("resend_interval")));
            }
        }
        for (i, r) in self.runbooks.iter().enumerate() {
            let at = format!("runbooks[{i}]");
            if r.url.is_empty() && r.action.is_empty() {
                return Err(format!("{at} has neither url nor action"));
            }
            if !r.url.is_empty() {
                check_url(&format!("{at}.url"), &r.url, false)?;
            }
            if !matches!(r.direction.as_str(), "" | "up" | "down") {
                return Err(format!(
                    "{at}.direction is {:?}; it must be up, down or left out",
                    r.direction
                ));
            }
        }
        for (i, s) in self.silences.iter().enumerate() {
            s.rule(&format!("silences[{i}]"))?;
        }
        Ok(())
    }
}

/// Checks that `value` is an http(s) URL with a host; a `secret` one is not shown.
fn check_url(key: &str, value: &str, secret: bool) -> Result<(), String> {
    let shown = if secret {
        "(hidden)".to_string()
    } else {
        format!("{value:?}")
    };
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest {
        None if value.is_empty() => Err(format!("{key} is missing")),
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!(
            "{key} is {shown}; it must be an http:// or https:// URL with a host"
        )),
    }
}
