//! The Kafka plumbing every reader and writer of APO shares (`apo-ingest`'s source and dead
//! letters, `apo-sinks`' topics, the pipeline's broker): client settings, topic creation and
//! checks, delivery tracking and sending with backpressure, and a consumer context that does not log
//! the end of a partition as an error.

mod admin;
mod client;
mod produce;
mod quiet;

pub use admin::{ensure_topics, ensure_topics_with, partition_count};
pub use client::{client_config, max_message_bytes, parse_override, DEFAULT_MESSAGE_MAX_BYTES};
pub use produce::{
    flush_promptly, flush_within, refused_for_good, send_threaded_with_backpressure,
    send_with_backpressure, DeliveryTracker,
};
pub use quiet::{log_client_error, QuietConsumer, QuietEof};
