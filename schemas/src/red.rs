//! The RED record: rate, errors and duration of one operation of one service per window, what
//! `apo.red` and the `red` table carry.
//!
//! Dimensions and names follow the OpenTelemetry `spanmetrics` connector — `service.name`,
//! `span.name`, `span.kind` (`SPAN_KIND_SERVER`, …), `status.code` (`STATUS_CODE_ERROR`, …),
//! `calls`, `duration` — so a dashboard built for it can read ours: one row per
//! (service, operation, kind, status), with the operation's error count and ratio (over all its
//! statuses) repeated on each of its rows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `span.name` of the row that folds the operations past the cardinality limit (the same
/// idea as spanmetrics' `otel.metric.overflow` series).
pub const OVERFLOW_OPERATION: &str = "otel.metric.overflow";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
/// RED of one service operation (span name, kind and status) in one window, with the OpenTelemetry spanmetrics connector's names.
pub struct RedStats {
    #[serde(rename = "service.name")]
    /// `service.name`.
    pub service_name: String,
    #[serde(rename = "span.name")]
    /// `span.name`: the operation.
    pub span_name: String,
    #[serde(rename = "span.kind")]
    /// `span.kind`: `SPAN_KIND_SERVER`, ….
    pub span_kind: String,
    #[serde(rename = "status.code")]
    /// `status.code`: `STATUS_CODE_ERROR`, ….
    pub status_code: String,
    /// Window length in seconds.
    pub window_seconds: u32,
    /// Inclusive start, milliseconds since the Unix epoch.
    pub window_start: i64,
    /// Exclusive end, milliseconds since the Unix epoch.
    pub window_end: i64,
    /// Spans of this (service, operation, kind, status) that ended in the window.
    pub calls: u64,
    /// `calls` per second of window.
    pub rate: f64,
    /// Error spans of the operation (all its rows of this window), and their share of its calls.
    pub operation_errors: u64,
    /// Calls of the operation over every kind and status in the window.
    pub operation_calls: u64,
    /// Errors over calls of the operation.
    pub error_ratio: f64,
    /// Span duration in milliseconds: exact sum, min, max and mean; percentiles within
    /// `relative_accuracy`.
    pub duration_sum_ms: f64,
    /// Shortest duration, ms.
    pub duration_min_ms: f64,
    /// Longest duration, ms.
    pub duration_max_ms: f64,
    /// Mean duration, ms.
    pub duration_mean_ms: f64,
    /// Median duration, ms.
    pub duration_p50_ms: f64,
    /// 90th percentile of the duration, ms.
    pub duration_p90_ms: f64,
    /// 95th percentile of the duration, ms.
    pub duration_p95_ms: f64,
    /// 99th percentile of the duration, ms.
    pub duration_p99_ms: f64,
    /// 99.9th percentile of the duration, ms.
    pub duration_p999_ms: f64,
    /// Relative accuracy of the percentiles.
    pub relative_accuracy: f64,
    /// This row folds the operations past the per-service limit (`span.name` is
    /// [`OVERFLOW_OPERATION`]); how many distinct operations it folds.
    pub overflow: bool,
    /// Operations folded into this overflow row (0 for others).
    pub overflow_operations: u64,
    /// 1 for the first emission, n + 1 for each revision caused by late spans.
    pub revision: u32,
}

impl RedStats {
    /// The Kafka key: the row's dimensions plus window; revisions share it.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}s|{}",
            self.service_name,
            self.span_name,
            self.span_kind,
            self.status_code,
            self.window_seconds,
            self.window_start
        )
    }
}
