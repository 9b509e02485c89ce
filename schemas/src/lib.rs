//! `apo-schemas`: every record type that crosses a Kafka topic or a file.
//!
//! - [`metric`]: the metric point producers send to `apo.metrics` (APO JSON).
//! - [`otlp`]: decoding of OTLP protobuf `ExportMetricsServiceRequest` into metric points.
//! - [`window_stats`]: the per key and window statistics written to `apo.window_stats` and Parquet.
//! - [`arrow`]: Arrow schemas of the Parquet tables.
//! - [`json_schema`]: JSON Schema documents for producers (committed under `schemas/json/`).

pub mod arrow;
pub mod json_schema;
pub mod metric;
pub mod otlp;
pub mod window_stats;

pub use metric::{Histogram, MetricPoint, SchemaError};
pub use window_stats::WindowStats;
