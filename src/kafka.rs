//! The Kafka client settings every consumer and producer of the job shares: the brokers, the
//! client id and the brokers' security settings (`[kafka]` security_protocol, SASL, TLS), as one
//! value handed to each client, and how records name their Kafka position.

use std::time::Duration;

use rdkafka::config::ClientConfig;

use crate::error::JobError;

/// How long metadata and watermark requests may take before the job gives up with an error.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// The brokers and the settings every client of the job uses.
#[derive(Clone, Debug, Default)]
pub struct KafkaClient {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// librdkafka settings for TLS and SASL (plaintext when empty).
    security: Vec<(&'static str, String)>,
}

impl KafkaClient {
    /// Clients of `brokers` with these security settings.
    pub fn new(brokers: &str, security: Vec<(&'static str, String)>) -> Self {
        KafkaClient {
            brokers: brokers.to_owned(),
            security,
        }
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
