//! The fleet's telemetry, as a monitoring agent and the services' OpenTelemetry SDKs would
//! send it: each scrape interval's [`Scrape`](crate::run::Scrape) as APO metric points
//! (`points.rs`, OpenTelemetry semantic-convention names, the requests' durations as one
//! histogram point), published to Kafka in event time (`kafka.rs`, one JSON array per service
//! and scrape, keyed by the service).
//!
//! Not yet: spans (so the trace job's RED and SLOs), failed requests (refused or timed out) as errors, and the
//! database, cache and GC metrics of the web shop's topology.

pub mod kafka;
pub mod points;
