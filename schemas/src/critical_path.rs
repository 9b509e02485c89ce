//! Critical-path records: one per trace (`apo.critical_path`, table `critical_path`) and the
//! per-window share of critical-path time of each (service, operation)
//! (`critical_path_share`): the few operations that cost most of the end-to-end latency.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Service and operation given to critical-path time when no span ran (between the roots of
/// a trace whose caller was not traced).
pub const UNTRACED: &str = "(untraced)";

/// Service and operation of the row that folds contributors past the per-window limit.
pub const OTHER: &str = "(other)";

/// One piece of a trace's critical path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PathSegment {
    /// The span the trace waited on; absent for time when no span ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The service of the segment's span.
    pub service: String,
    /// Its operation (span name).
    pub operation: String,
    /// Start of the segment, ns since the epoch.
    pub start_ns: i64,
    /// End of the segment, ns since the epoch.
    pub end_ns: i64,
}

/// The critical path of one trace (or trace fragment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CriticalPathRecord {
    /// The trace (32 hex digits).
    pub trace_id: String,
    /// 0 unless the trace was emitted in parts (size bound, stragglers).
    pub fragment: u32,
    /// Whether every span of the trace is believed present.
    pub complete: bool,
    /// Why the trace was emitted: `idle`, `end_of_input`, `size_bound`, `memory_bound`,
    /// `straggler`.
    pub emitted: String,
    /// The root span's service.
    pub root_service: String,
    /// The root span's operation.
    pub root_operation: String,
    /// Spans in the trace (or the fragment).
    pub spans: u64,
    /// Start of the trace, ns since the epoch.
    pub start_ns: i64,
    /// End of the trace, ns since the epoch.
    pub end_ns: i64,
    /// The trace's duration, ms.
    pub duration_ms: f64,
    /// Chronological, contiguous from the start to the end of the top span.
    pub segments: Vec<PathSegment>,
}

impl CriticalPathRecord {
    /// The Kafka key: trace id and fragment.
    pub fn key(&self) -> String {
        format!("{}|{}", self.trace_id, self.fragment)
    }
}

/// Share of one (service, operation) in the critical-path time of the traces that ended in one
/// window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CriticalPathShare {
    /// The window's size, seconds.
    pub window_seconds: u32,
    /// Its start, ms since the epoch.
    pub window_start: i64,
    /// Its end (exclusive), ms since the epoch.
    pub window_end: i64,
    /// The contributing service.
    pub service: String,
    /// Its operation.
    pub operation: String,
    /// 1 for the largest contributor of the window.
    pub rank: u32,
    /// Critical-path time spent in this operation, summed over the window's traces, ms.
    pub critical_ms: f64,
    /// `critical_ms` over the critical-path time of all the window's traces.
    pub share: f64,
    /// Traces whose critical path passes through this operation.
    pub traces: u64,
    /// Traces in the window.
    pub window_traces: u64,
    /// 1 for the first emission, more for revisions by late data.
    pub revision: u32,
}

impl CriticalPathShare {
    /// The Kafka key: window and contributor.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}s|{}",
            self.service, self.operation, self.window_seconds, self.window_start
        )
    }
}
