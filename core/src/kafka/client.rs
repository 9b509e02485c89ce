//! librdkafka client settings: the brokers, then every property passed through as `kcat -X`
//! does (SASL, TLS, timeouts), the parser of one such `key=value`, and the producer's message
//! limit they set.

use rdkafka::ClientConfig;

use crate::IngestError;

/// librdkafka's default `message.max.bytes`.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// The largest message a producer made from `config` sends: its `message.max.bytes`, else
/// librdkafka's default.
pub fn max_message_bytes(config: &ClientConfig) -> Result<usize, IngestError> {
    match config.get("message.max.bytes") {
        None => Ok(DEFAULT_MESSAGE_MAX_BYTES),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| IngestError::Config(format!("message.max.bytes `{v}` is not a number"))),
    }
}

/// Base client configuration: brokers, then every `key=value` override in order.
pub fn client_config(brokers: &str, overrides: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    // Small produce requests (window results, dead letters) must not wait for Nagle's
    // algorithm; an override below can turn it back on.
    c.set("socket.nagle.disable", "true");
    for (k, v) in overrides {
        c.set(k, v);
    }
    c
}

/// Parses one `-X key=value` argument.
pub fn parse_override(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "expected key=value (a librdkafka property), got `{s}`"
        )),
    }
}
