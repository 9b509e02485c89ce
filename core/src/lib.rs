//! `apo-core`: the I/O contracts every stage is written against, so that the crates that
//! implement them (`apo-ingest`, `apo-sinks`) and the one that drives them (`apo-dataflow`)
//! depend on this small crate instead of on each other.
//!
//! - [`sink`]: [`RowSink`], where output rows go, and [`SinkError`];
//! - [`source`]: [`MessageSource`], what a lane reads;
//! - [`dead_letter`]: [`DeadLetterSink`], where unusable input goes;
//! - [`kafka`]: the Kafka client settings, topic and producer helpers every reader and writer
//!   shares;
//! - [`clock`]: the wall clock event times are judged against, and its `APO_NOW` override;
//! - [`IngestError`]: the error of sources and dead-letter sinks.

pub mod clock;
pub mod dead_letter;
pub mod kafka;
pub mod sink;
pub mod source;

pub use dead_letter::{DeadLetter, DeadLetterSink};
pub use sink::{MemorySink, RowSink, SinkError, OUTPUT_DELAY_BOUND};
pub use source::{MessageSource, RawMessage, SourceEvent};

/// Errors of the ingest layer.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("kafka: {0}")]
    /// The Kafka client failed.
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic `{topic}` not found on {brokers} (create it, or run with topic creation on)")]
    /// A topic that must exist does not.
    NoTopic {
        /// The topic.
        topic: String,
        /// The brokers asked.
        brokers: String,
    },
    #[error(
        "the broker at {brokers} did not acknowledge the offset commit of `{topic}` within \
         {waited:?}: {detail}"
    )]
    /// A commit waited for was not stored in time (or failed).
    CommitNotAcknowledged {
        /// The topic whose offsets were committed.
        topic: String,
        /// The broker addresses.
        brokers: String,
        /// How long it waited.
        waited: std::time::Duration,
        /// What the client said, or that it said nothing.
        detail: String,
    },
    #[error("{0}")]
    /// A setting or argument is unusable.
    Config(String),
    #[error("delivery to `{topic}` failed for {failed} record(s): {last_error}")]
    /// Some produced records were not delivered.
    Delivery {
        /// The topic produced to.
        topic: String,
        /// Records that failed since the last check.
        failed: u64,
        /// The last delivery error.
        last_error: String,
    },
    #[error("embedded broker: {0}")]
    /// The embedded broker could not start or stopped.
    Embedded(String),
}
