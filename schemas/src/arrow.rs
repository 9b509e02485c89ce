//! Arrow schemas of the Parquet tables written by the sinks and read by `apo sql`.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Name of the window statistics table (a directory under the data directory).
pub const WINDOW_STATS_TABLE: &str = "window_stats";

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Schema of `window_stats`; one row per [`crate::WindowStats`]. The `date` partition column
/// (`date=YYYY-MM-DD` directories, the UTC day of `window_start`) is added by the reader.
pub fn window_stats_schema() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("service", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("unit", DataType::Utf8, false),
        Field::new("window_seconds", DataType::Int64, false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("count", DataType::Int64, false),
        f("sum"),
        f("min"),
        f("max"),
        f("mean"),
        f("p50"),
        f("p90"),
        f("p95"),
        f("p99"),
        f("p999"),
        f("relative_accuracy"),
        Field::new("revision", DataType::Int32, false),
    ]))
}

/// Name of the RED table.
pub const RED_TABLE: &str = "red";

/// Schema of `red`; one row per [`crate::red::RedStats`] (dotted spanmetrics names become
/// underscores: `service_name`, `span_name`, `span_kind`, `status_code`).
pub fn red_schema() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    let i = |n: &str| Field::new(n, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        s("service_name"),
        s("span_name"),
        s("span_kind"),
        s("status_code"),
        i("window_seconds"),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        i("calls"),
        f("rate"),
        i("operation_errors"),
        i("operation_calls"),
        f("error_ratio"),
        f("duration_sum_ms"),
        f("duration_min_ms"),
        f("duration_max_ms"),
        f("duration_mean_ms"),
        f("duration_p50_ms"),
        f("duration_p90_ms"),
        f("duration_p95_ms"),
        f("duration_p99_ms"),
        f("duration_p999_ms"),
        f("relative_accuracy"),
        Field::new("overflow", DataType::Boolean, false),
        i("overflow_operations"),
        Field::new("revision", DataType::Int32, false),
    ]))
}

/// Names of the trace tables.
pub const CRITICAL_PATH_TABLE: &str = "critical_path";
pub const CRITICAL_PATH_SHARE_TABLE: &str = "critical_path_share";
pub const SERVICE_MAP_TABLE: &str = "service_map";
pub const SLO_TABLE: &str = "slo";
pub const SERVICE_MAP_CURRENT_TABLE: &str = "service_map_current";

fn ts_ns() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// Schema of `critical_path`; one row per [`crate::critical_path::CriticalPathRecord`], its
/// segments as a JSON array (`[{"span_id", "service", "operation", "start_ns", "end_ns"}, …]`).
pub fn critical_path_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("trace_id"),
        Field::new("fragment", DataType::Int64, false),
        Field::new("complete", DataType::Boolean, false),
        s("emitted"),
        s("root_service"),
        s("root_operation"),
        Field::new("spans", DataType::Int64, false),
        Field::new("start", ts_ns(), false),
        Field::new("end", ts_ns(), false),
        Field::new("duration_ms", DataType::Float64, false),
        s("segments"),
    ]))
}

/// Schema of `critical_path_share`; one row per [`crate::critical_path::CriticalPathShare`].
pub fn critical_path_share_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("window_seconds", DataType::Int64, false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("service", DataType::Utf8, false),
        Field::new("operation", DataType::Utf8, false),
        Field::new("rank", DataType::Int32, false),
        Field::new("critical_ms", DataType::Float64, false),
        Field::new("share", DataType::Float64, false),
        Field::new("traces", DataType::Int64, false),
        Field::new("window_traces", DataType::Int64, false),
        Field::new("revision", DataType::Int32, false),
    ]))
}

/// Schema of `service_map`; one row per [`crate::service_map::ServiceMapEdge`].
pub fn service_map_schema() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("client", DataType::Utf8, false),
        Field::new("server", DataType::Utf8, false),
        Field::new("connection_type", DataType::Utf8, false),
        Field::new("window_seconds", DataType::Int64, false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("calls", DataType::Int64, false),
        Field::new("failed", DataType::Int64, false),
        f("latency_mean_ms"),
        f("latency_p50_ms"),
        f("latency_p95_ms"),
        f("latency_p99_ms"),
        f("latency_max_ms"),
        f("critical_path_ms"),
        f("relative_accuracy"),
        Field::new("revision", DataType::Int32, false),
    ]))
}

/// Schema of `slo`; one row per [`crate::slo::SloState`].
pub fn slo_schema() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("objective"),
        s("service"),
        s("description"),
        f("target"),
        Field::new("window_seconds", DataType::Int64, false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("events", DataType::Int64, false),
        Field::new("bad_events", DataType::Int64, false),
        f("sli"),
        Field::new("compliant", DataType::Boolean, false),
        f("burn_fast_long"),
        f("burn_fast_short"),
        f("burn_slow_long"),
        f("burn_slow_short"),
        s("alert"),
        Field::new("revision", DataType::Int32, false),
    ]))
}

/// Schema of `service_map_current`; one row per [`crate::service_map::ServiceMapCurrent`].
pub fn service_map_current_schema() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    let i = |n: &str| Field::new(n, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        s("client"),
        s("server"),
        s("connection_type"),
        s("change"),
        i("horizon_seconds"),
        Field::new("as_of", ts(), false),
        i("windows"),
        i("calls"),
        i("failed"),
        f("error_ratio"),
        f("latency_mean_ms"),
        f("latency_max_ms"),
        f("worst_window_p95_ms"),
        f("latency_p50_ms"),
        f("latency_p95_ms"),
        f("latency_p99_ms"),
        f("relative_accuracy"),
        Field::new("revision", DataType::Int32, false),
    ]))
}

pub const ANOMALIES_TABLE: &str = "anomalies";
pub const FORECASTS_TABLE: &str = "forecasts";

/// Schema of `anomalies`; one row per [`crate::model_output::AnomalyRecord`]. `drivers` is
/// `feature=value` pairs joined by commas, largest first.
pub fn anomalies_schema() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    let b = |n: &str| Field::new(n, DataType::Boolean, false);
    Arc::new(Schema::new(vec![
        s("service"),
        s("metric"),
        Field::new("window_seconds", DataType::Int64, false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        f("score"),
        f("threshold"),
        f("likelihood"),
        Field::new("context_score", DataType::Float64, true),
        b("is_anomaly"),
        b("raised"),
        b("suppressed"),
        s("drivers"),
        s("model_version"),
        Field::new("revision", DataType::Int32, false),
    ]))
}

/// Schema of `forecasts`; one row per [`crate::model_output::ForecastRecord`].
pub fn forecasts_schema() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("service"),
        s("metric"),
        s("signal"),
        Field::new("window_seconds", DataType::Int64, false),
        Field::new("window_start", ts(), false),
        Field::new("window_end", ts(), false),
        Field::new("horizon_seconds", DataType::Int64, false),
        Field::new("target_time", ts(), false),
        f("value"),
        f("lower"),
        f("upper"),
        s("model_version"),
        Field::new("revision", DataType::Int32, false),
    ]))
}
