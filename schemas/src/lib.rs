//! `apo-schemas`: every record type that crosses a Kafka topic or a file.
//!
//! - [`action`]: the audit record of `apo.actions` (what an actuator did, and how it went).
//! - [`attributes`]: the attribute keys that split a metric's series, and a series in text.
//! - [`decision`]: the signed decision record of `apo.decisions`, its deterministic id and
//!   its HMAC-SHA256 signature.
//! - [`critical_path`]: per-trace critical paths and per-window critical-path shares.
//! - [`cumulative`]: a cumulative OTLP point's running totals and its stream, before the
//!   pipeline turns them into deltas.
//! - [`exponential`]: OTLP exponential histograms, and what a window counts of them.
//! - [`metric`]: the metric point producers send to `apo.metrics` (APO JSON).
//! - [`otlp`]: decoding of OTLP protobuf `ExportMetricsServiceRequest` into metric points.
//! - [`red`]: the RED record (`apo.red`, table `red`), spanmetrics-compatible names.
//! - [`row`]: [`row::OutputRow`], what windowed output records share.
//! - [`service_map`]: service-map edges per window (`apo.service_map`).
//! - [`slo`]: SLO compliance and burn-rate state (`apo.slo`).
//! - [`span`]: the span record producers send to `apo.spans` (APO JSON), with trace and span ids.
//! - [`span_decode`]: spans from APO JSON, Zipkin v2 JSON and OTLP `ExportTraceServiceRequest`.
//! - [`span_proto`]: Zipkin v2 protobuf spans, and Jaeger's recognised.
//! - [`span_encode`]: spans to OTLP and Zipkin v2 JSON (load generation, format tests).
//! - [`window_stats`]: the per key and window statistics written to `apo.window_stats` and Parquet.
//! - [`table`]: every Parquet table's columns, declared once (Arrow schema, writer and read-back
//!   derive from it; `golden_schemas.txt` is what they are).
//! - [`json_schema`]: JSON Schema documents for producers (committed under `schemas/json/`).

pub mod action;
pub mod attributes;
pub mod critical_path;
pub mod cumulative;
pub mod decision;
pub mod decoded;
pub mod exponential;
pub mod json_schema;
pub mod metric;
pub mod model_output;
pub mod otlp;
pub mod overrides;
pub mod red;
pub mod row;
pub mod service_map;
pub mod slo;
pub mod span;
pub mod span_decode;
pub mod span_encode;
pub mod span_proto;
pub mod table;
pub mod window_stats;

pub use decoded::Decoded;
pub use metric::{bucket_bound, Histogram, MetricPoint, SchemaError};
pub use row::OutputRow;
pub use span::{Span, SpanId, SpanKind, SpanLink, SpanStatus, TraceId};
pub use window_stats::WindowStats;
