//! `apo-ingest`: getting telemetry in.
//!
//! - [`actions`]: the log of actions carried out (`apo.actions`), for alert suppression;
//! - [`source`]: the message-source abstraction the pipeline polls, and an in-memory source;
//! - [`kafka`]: librdkafka client configuration, topic creation, the Kafka source;
//! - [`decode`]: one decoding path for every input kind (metric points, spans): format sniffing,
//!   the kind's decoder, one time-bounds check, errors by position;
//! - [`watermark`]: event-time watermarks over partitions, with idle partitions;
//! - [`dlq`]: dead-letter routing to `apo.dlq` with reasons in headers;
//! - [`generator`]: the synthetic telemetry generator (metrics);
//! - [`trace_generator`]: synthetic traces of a web shop;
//! - [`trace_produce`]: generated traces to Kafka as APO JSON, OTLP or Zipkin, spans sent as they end;
//! - `embedded` (feature `embedded-broker`): an in-process Kafka-protocol broker (tansu).

pub mod actions;
pub mod decode;
pub mod dlq;
#[cfg(feature = "embedded-broker")]
pub mod embedded;
pub mod generator;
pub mod kafka;
pub mod source;
pub mod trace_generator;
pub mod trace_produce;
pub mod watermark;

pub use apo_core::IngestError;
