//! The window statistics record: what `apo.window_stats` and the `window_stats` table carry.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Statistics of one series (service, metric) over one tumbling event-time window.
///
/// A window is emitted once when the watermark passes its end (revision 1) and again, with the
/// revision incremented, each time late records within the allowed horizon change it. The record
/// carries no processing time, so a replay after a crash reproduces it byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowStats {
    pub service: String,
    pub metric: String,
    pub unit: String,
    /// Window length in seconds.
    pub window_seconds: u32,
    /// Inclusive start, milliseconds since the Unix epoch.
    pub window_start: i64,
    /// Exclusive end, milliseconds since the Unix epoch.
    pub window_end: i64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    /// The relative-error bound of every percentile above (DDSketch alpha).
    pub relative_accuracy: f64,
    /// 1 for the first emission, n + 1 for each revision caused by late data.
    pub revision: u32,
}

impl WindowStats {
    /// The Kafka key: series plus window. Revisions share it, so a compacted topic keeps the latest.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}s|{}",
            self.service, self.metric, self.window_seconds, self.window_start
        )
    }
}
