//! The service-map edge record: calls, failures and latency of one client → server edge per
//! window (`apo.service_map`, table `service_map`), named like the OpenTelemetry
//! `servicegraph` connector's dimensions (`client`, `server`, `connection_type`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
/// Calls from one service (or `user`) to another, a database or a queue in one window, with the servicegraph connector's meanings.
pub struct ServiceMapEdge {
    /// The caller.
    pub client: String,
    /// The callee.
    pub server: String,
    /// `""` between instrumented services, `messaging_system` (producer → consumer, as the
    /// `servicegraph` connector names it), `database` or `virtual_node`.
    pub connection_type: String,
    /// The window's size, seconds.
    pub window_seconds: u32,
    /// Its start, ms since the epoch.
    pub window_start: i64,
    /// Its end (exclusive), ms since the epoch.
    pub window_end: i64,
    /// Calls in the window.
    pub calls: u64,
    /// Calls that failed.
    pub failed: u64,
    /// Latency of the calls in milliseconds (the client span's duration where there is one);
    /// percentiles within `relative_accuracy`.
    pub latency_mean_ms: f64,
    /// Median latency, ms.
    pub latency_p50_ms: f64,
    /// 95th percentile of the latency, ms.
    pub latency_p95_ms: f64,
    /// 99th percentile of the latency, ms.
    pub latency_p99_ms: f64,
    /// Longest latency, ms.
    pub latency_max_ms: f64,
    /// Latency of the calls' server side in milliseconds (the callee span's duration; for a
    /// database or a virtual node, the client span's, as the `servicegraph` connector has it).
    #[serde(default)]
    pub server_latency_mean_ms: f64,
    /// Median server-side latency, ms.
    #[serde(default)]
    pub server_latency_p50_ms: f64,
    /// 95th percentile of the server-side latency, ms.
    #[serde(default)]
    pub server_latency_p95_ms: f64,
    /// 99th percentile of the server-side latency, ms.
    #[serde(default)]
    pub server_latency_p99_ms: f64,
    /// Longest server-side latency, ms.
    #[serde(default)]
    pub server_latency_max_ms: f64,
    /// Dependency view: critical-path time (ms, summed over the window's traces) spent on the
    /// server side of this edge — how much of the client's latency the server accounts for.
    pub critical_path_ms: f64,
    /// Relative accuracy of the percentiles.
    pub relative_accuracy: f64,
    /// 1 for the first emission, more for revisions by late data.
    pub revision: u32,
}

impl ServiceMapEdge {
    /// The Kafka key: edge and window.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}s|{}",
            self.client, self.server, self.connection_type, self.window_seconds, self.window_start
        )
    }
}

/// One change of the current service map (`apo.service_map_current`, table
/// `service_map_current`): an edge's totals over the trailing horizon of windows, as of a
/// time. `upsert` gives the edge's new totals; `retract` says the edge has had no calls within
/// the horizon and is gone from the map. Keyed by edge, so a compacted topic holds the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceMapCurrent {
    /// The caller.
    pub client: String,
    /// The callee.
    pub server: String,
    /// `""` between instrumented services, `messaging_system` (producer → consumer, as the
    /// `servicegraph` connector names it), `database` or `virtual_node`.
    pub connection_type: String,
    /// `upsert` or `retract`.
    pub change: String,
    /// The horizon the edge is summed over, seconds.
    pub horizon_seconds: u32,
    /// The totals cover windows ending in (`as_of` − horizon, `as_of`], ms.
    pub as_of: i64,
    /// Windows with calls within the horizon.
    pub windows: u32,
    /// Calls over the horizon.
    pub calls: u64,
    /// Failed calls over the horizon.
    pub failed: u64,
    /// Failed over calls.
    pub error_ratio: f64,
    /// Mean latency over the horizon, ms.
    pub latency_mean_ms: f64,
    /// Longest latency over the horizon, ms.
    pub latency_max_ms: f64,
    /// The highest per-window p95 within the horizon.
    pub worst_window_p95_ms: f64,
    /// Latency percentiles over every call within the horizon (the windows' sketches merged),
    /// within `relative_accuracy`.
    pub latency_p50_ms: f64,
    /// 95th percentile of the latency over the horizon, ms.
    pub latency_p95_ms: f64,
    /// 99th percentile of the latency over the horizon, ms.
    pub latency_p99_ms: f64,
    /// Relative accuracy of the percentiles.
    pub relative_accuracy: f64,
    /// Revision of the edge's state.
    pub revision: u32,
}

impl ServiceMapCurrent {
    /// The Kafka key: the edge (compaction keeps its latest state).
    pub fn key(&self) -> String {
        format!("{}|{}|{}", self.client, self.server, self.connection_type)
    }

    /// The start of the edge's newest window, ms since the epoch.
    pub fn window_start(&self) -> i64 {
        self.as_of - self.horizon_seconds as i64 * 1000
    }
}
