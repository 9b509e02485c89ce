//! `apo-dataflow`: the timely dataflow jobs.
//!
//! - [`sketch`]: DDSketch with weighted insertion and exact merge;
//! - [`aggregate`]: per-window partial aggregates and the output record they finish into;
//! - [`preaggregate`]: worker-local folding of points before the exchange;
//! - [`window`]: event-time tumbling windows, revisions for late data;
//! - [`sink`]: the durable sink operator and the [`sink::StatsSink`] trait sinks implement;
//! - [`critical_path`]: the critical path of one trace (Jaeger's algorithm, iterative and total);
//! - [`red`]: RED (rate, errors, duration) per service, operation, kind and status;
//! - [`assembly`]: spans grouped into traces, bounded in time and memory;
//! - [`path_share`]: critical-path records of traces and per-window critical-path shares;
//! - [`service_map`]: service-map edges of a trace (servicegraph-style, with virtual nodes);
//! - [`map_view`]: the current service map over a sliding horizon (differential dataflow);
//! - [`slo`]: objectives over spans and multi-window burn-rate alerts;
//! - [`slo_ops`]: SLO counts per service window and burn-rate state in the stream;
//! - [`trace_ops`]: trace assembly as a timely operator;
//! - [`commit`]: offsets that are safe to commit;
//! - [`job`]: what a pipeline decodes, buffers and builds ([`job::MetricsJob`] for metrics);
//! - [`span_job`]: the trace pipeline as a job (RED, traces, critical paths, shares, service map);
//! - [`lane`]: one input of a worker: source, watermark, late data, feed, commits;
//! - [`pipeline`]: the worker loop over a worker's lanes, and its settings;
//! - [`progress`]: live counters;
//! - [`model_ops`]: anomaly scores and forecasts of closed windows in the stream;
//! - [`model_history`]: past windows for a warm start of the models' per-series state;
//! - [`series_state`]: per-series model state, dropped when a series falls silent.

pub mod aggregate;
pub mod assembly;
pub mod commit;
pub mod critical_path;
pub mod job;
pub mod lane;
pub mod map_view;
pub mod model_history;
pub mod model_ops;
pub mod path_share;
pub mod pipeline;
pub mod preaggregate;
pub mod progress;
pub mod red;
pub mod series_state;
pub mod service_map;
pub mod sink;
pub mod sketch;
pub mod slo;
pub mod slo_ops;
pub mod span_job;
pub mod trace_ops;
pub mod window;
