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
    pub service: String,
    pub operation: String,
    pub start_ns: i64,
    pub end_ns: i64,
}

/// The critical path of one trace (or trace fragment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CriticalPathRecord {
    pub trace_id: String,
    /// 0 unless the trace was emitted in parts (size bound, stragglers).
    pub fragment: u32,
    /// Whether every span of the trace is believed present.
    pub complete: bool,
    /// Why the trace was emitted: `idle`, `end_of_input`, `size_bound`, `memory_bound`,
    /// `straggler`.
    pub emitted: String,
    pub root_service: String,
    pub root_operation: String,
    pub spans: u64,
    pub start_ns: i64,
    pub end_ns: i64,
    pub duration_ms: f64,
    /// Chronological, contiguous from the start to the end of the top span.
    pub segments: Vec<PathSegment>,
}

impl CriticalPathRecord {
    pub fn key(&self) -> String {
        format!("{}|{}", self.trace_id, self.fragment)
    }
}

/// Share of one (service, operation) in the critical-path time of the traces that ended in one
/// window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CriticalPathShare {
    pub window_seconds: u32,
    pub window_start: i64,
    pub window_end: i64,
    pub service: String,
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
    pub revision: u32,
}

impl CriticalPathShare {
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}s|{}",
            self.service, self.operation, self.window_seconds, self.window_start
        )
    }
}
