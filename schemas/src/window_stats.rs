//! The window statistics record: what `apo.window_stats` and the `window_stats` table carry.

use crate::attributes::{series_text, Attributes};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Statistics of one series (service, metric) over one tumbling event-time window.
///
/// A window is emitted once when the watermark passes its end (revision 1) and again, with the
/// revision incremented, each time late records within the allowed horizon change it. The record
/// carries no processing time, so a replay after a crash reproduces it byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowStats {
    /// The service.
    pub service: String,
    /// The metric.
    pub metric: String,
    /// The series attributes (`--series-attributes`): with the service and the metric they
    /// make the series. `{"otel.metric.overflow": "true"}` for the series that takes the
    /// attribute sets of a metric past its limit. Empty for a metric without them.
    #[serde(default)]
    pub attributes: Attributes,
    /// Its unit (as sent; may be empty).
    pub unit: String,
    /// Window length in seconds.
    pub window_seconds: u32,
    /// Inclusive start, milliseconds since the Unix epoch.
    pub window_start: i64,
    /// Exclusive end, milliseconds since the Unix epoch.
    pub window_end: i64,
    /// Points in the window.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// Their mean.
    pub mean: f64,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The 99.9th percentile.
    pub p999: f64,
    /// The relative-error bound of every percentile above: the sketch's (DDSketch alpha) for
    /// exact values; for a window fed by explicit-bucket histograms, the bound its buckets allow
    /// as well, `(1 + b)(1 + alpha) − 1` with `b` the widest bucket's relative half-width, and
    /// `1.7976931348623157e308` (`f64::MAX`) when a bucket spans zero: no relative bound.
    pub relative_accuracy: f64,
    /// 1 for the first emission, n + 1 for each revision caused by late data.
    pub revision: u32,
}

impl WindowStats {
    /// The Kafka key: series (its attributes as [`series_text`] writes them) plus window.
    /// Revisions share it, so a compacted topic keeps the latest.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}s|{}",
            self.service,
            series_text(&self.metric, &self.attributes),
            self.window_seconds,
            self.window_start
        )
    }

    /// The series in text: `metric{key="value",…}` ([`series_text`]).
    pub fn series_text(&self) -> String {
        series_text(&self.metric, &self.attributes)
    }
}
