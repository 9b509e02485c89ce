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
