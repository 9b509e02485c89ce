//! The service-map edge record: calls, failures and latency of one client → server edge per
//! window (`apo.service_map`, table `service_map`), named like the OpenTelemetry
//! `servicegraph` connector's dimensions (`client`, `server`, `connection_type`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceMapEdge {
    pub client: String,
    pub server: String,
    /// `""` between instrumented services, `messaging`, `database` or `virtual_node`.
    pub connection_type: String,
    pub window_seconds: u32,
    pub window_start: i64,
    pub window_end: i64,
    pub calls: u64,
    pub failed: u64,
    /// Latency of the calls in milliseconds (the client span's duration where there is one);
    /// percentiles within `relative_accuracy`.
    pub latency_mean_ms: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub relative_accuracy: f64,
    pub revision: u32,
}

impl ServiceMapEdge {
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}s|{}",
            self.client, self.server, self.connection_type, self.window_seconds, self.window_start
        )
    }
}
