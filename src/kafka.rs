//! The Kafka client settings every consumer and producer of the job shares: the brokers, the
//! client id and the brokers' security settings (`[kafka]` security_protocol, SASL, TLS), as one
//! value handed to each client, and how records name their Kafka position.

use std::time::Duration;

use rdkafka::config::ClientConfig;

use crate::error::JobError;
use crate::ops::shutdown::Shutdown;

/// How long metadata and watermark requests may take before the job gives up with an error.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one request for metadata waits while the brokers may be down.
const WAIT_ATTEMPT: Duration = Duration::from_secs(5);

/// How often a wait for the brokers is said again in the log.
const WAIT_SAID_EVERY: Duration = Duration::from_secs(10);

/// The brokers and the settings every client of the job uses.
#[derive(Clone, Default)]
pub struct KafkaClient {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// librdkafka settings for TLS and SASL (plaintext when empty).
    security: Vec<(&'static str, String)>,
    /// The job's stop: a client waiting for the brokers gives up when it is asked for.
    stop: Option<Shutdown>,
}

/// The settings' names only: their values may be secrets.
impl std::fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.security.iter().map(|(k, _)| *k).collect();
        f.debug_struct("KafkaClient")
            .field("brokers", &self.brokers)
            .field("security", &keys)
            .finish()
    }
}

impl KafkaClient {
    /// Clients of `brokers` with these security settings.
    pub fn new(brokers: &str, security: Vec<(&'static str, String)>) -> Self {
        KafkaClient {
            brokers: brokers.to_owned(),
            security,
            stop: None,
        }
    }

    /// The same client, giving up its waits for the brokers once `shutdown` is asked for.
    pub fn stopping_on(mut self, shutdown: Shutdown) -> Self {
        self.stop = Some(shutdown);
        self
    }

    /// Whether the job was asked to stop.
    pub fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(Shutdown::requested)
    }

    /// A client's settings: the brokers, our client id, the security settings.
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "incidentflow")
            .set("log_level", "3"); // errors only: the job reports what matters itself
        for (key, value) in &self.security {
            c.set(*key, value);
        }
        c
    }

    /// The metadata of `topic` through `handle` (a consumer's or a producer's client). Brokers
    /// down when the job starts are waited for, and the wait is said in the log now and then
    /// (`/ready` answers 503 meanwhile: the inputs are not connected); a stop asked for ends it
    /// with the error.
    pub fn metadata_waiting<C: rdkafka::client::ClientContext>(
        &self,
        handle: &rdkafka::client::Client<C>,
        topic: &str,
    ) -> Result<rdkafka::metadata::Metadata, JobError> {
        let started = std::time::Instant::now();
        let mut said: Option<std::time::Instant> = None;
        loop {
            match handle.fetch_metadata(Some(topic), WAIT_ATTEMPT) {
                Ok(metadata) => {
                    if said.is_some() {
                        tracing::info!(brokers = %self.brokers, "kafka: the brokers answer; reading the metadata of {topic} took {}s", started.elapsed().as_secs());
                    }
                    return Ok(metadata);
                }
                Err(e) if self.stop_requested() => {
                    return Err(self.error(
                        &format!("asked to stop while waiting for the brokers to read {topic}"),
                        e,
                    ))
                }
                Err(e) => {
                    if said.is_none_or(|at| at.elapsed() >= WAIT_SAID_EVERY) {
                        tracing::warn!(
                            brokers = %self.brokers,
                            "kafka: cannot read the metadata of {topic} ({e}); waiting for the brokers ({}s so far)",
                            started.elapsed().as_secs()
                        );
                        said = Some(std::time::Instant::now());
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// An error of a request to the brokers.
    pub fn error(&self, what: &str, e: impl std::fmt::Display) -> JobError {
        JobError::Kafka(format!("{what} ({}): {e}", self.brokers))
    }
}

/// How dead letters name a Kafka partition as their source: `kafka:TOPIC[PARTITION]`.
pub fn source_name(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}[{partition}]")
}

/// The topic and partition of a [`source_name`], if it is one.
pub fn parse_source_name(source: &str) -> Option<(&str, &str)> {
    source
        .strip_prefix("kafka:")
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.rsplit_once('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_librdkafka_speaks_tls_and_every_sasl_mechanism_the_settings_allow() {
        for (protocol, mechanism) in [
            ("ssl", ""),
            ("sasl_plaintext", "PLAIN"),
            ("sasl_ssl", "PLAIN"),
            ("sasl_ssl", "SCRAM-SHA-256"),
            ("sasl_ssl", "SCRAM-SHA-512"),
        ] {
            let mut config = KafkaClient::new("127.0.0.1:1", Vec::new()).config();
            config.set("security.protocol", protocol);
            if !mechanism.is_empty() {
                config
                    .set("sasl.mechanisms", mechanism)
                    .set("sasl.username", "job")
                    .set("sasl.password", "secret");
            }
            let created: Result<rdkafka::consumer::BaseConsumer, _> = config.create();
            assert!(
                created.is_ok(),
                "{protocol} {mechanism}: {:?}",
                created.err()
            );
        }
    }
}
