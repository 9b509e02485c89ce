//! A consumer context for readers that ask for end-of-partition events (`enable.partition.eof`):
//! librdkafka also reports each one as a global error, which the default context logs at
//! ERROR level. Here it is a debug line; every other error is still logged as an error.

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;

/// The context: end of partition is not an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietEof;

/// Logs a client error as [`QuietEof`] does: end of partition at debug; a broken connection
/// at warn (librdkafka reconnects by itself, and an outage that lasts is reported by the
/// pipeline's own watch; a request in flight when a broker stops, as at a shutdown, ends so);
/// the rest as errors (for contexts that do more than this, such as a source's statistics).
pub fn log_client_error(error: KafkaError, reason: &str) {
    match error {
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
            tracing::debug!(%error, reason, "end of partition")
        }
        KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure) => {
            tracing::warn!(%error, reason, "librdkafka: connection to a broker lost; reconnecting")
        }
        _ => tracing::error!(%error, reason, "librdkafka"),
    }
}

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(error, reason)
    }
}

impl ConsumerContext for QuietEof {}

/// A base consumer with [`QuietEof`].
pub type QuietConsumer = BaseConsumer<QuietEof>;
