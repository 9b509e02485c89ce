//! What the models add to the stream: anomaly scores (`apo.anomalies`, table `anomalies`) and
//! forecasts (`apo.forecasts`, table `forecasts`), one record per closed window of a key.

use crate::attributes::{series_text, Attributes};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A feature and its value, among those that set a window's score apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Driver {
    /// Feature name, e.g. `level_p99` (the model metadata lists them).
    pub feature: String,
    /// Its value: robust z-score against the key's recent windows.
    pub value: f64,
}

/// The anomaly score of one closed window of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnomalyRecord {
    /// The service scored.
    pub service: String,
    /// The series: a metric name, or for a RED row of the trace pipeline its dimensions,
    /// `red{span.name="…",span.kind="…",status.code="…"}` (scored on duration p50/p95/p99,
    /// calls per second and the operation's error ratio).
    pub metric: String,
    /// The metric's series attributes, as on its window statistics (empty for a RED row).
    #[serde(default)]
    pub attributes: Attributes,
    /// The window's size, seconds.
    pub window_seconds: u32,
    /// Inclusive start, ms since the Unix epoch.
    pub window_start: i64,
    /// Exclusive end, ms since the Unix epoch.
    pub window_end: i64,
    /// Isolation-forest anomaly score in (0, 1): near 1 is isolated, about 0.5 ordinary.
    pub score: f64,
    /// The threshold the window was held to (the model's, or the key's adaptive one).
    pub threshold: f64,
    /// How unusual the key's recent scores are for it (0–1; the alert stage's likelihood,
    /// 0 before the key has enough scores).
    pub likelihood: f64,
    /// The contextual detector's score in [0, 1]: how surprising the window's p95 (a RED
    /// row's duration p95) is after the series' windows before it; `null` while the detector
    /// learns the series' range. At or above the alert stage's context threshold, the window
    /// counts towards an alert whatever `score` says.
    pub context_score: Option<f64>,
    /// The key is in alert after this window (minimum duration and hysteresis applied).
    pub is_anomaly: bool,
    /// This window raised the alert.
    pub raised: bool,
    /// The key would be in alert, but a recent decision explains it.
    pub suppressed: bool,
    /// The features furthest from ordinary, largest first (at most three).
    pub drivers: Vec<Driver>,
    /// The version of the model that scored it.
    pub model_version: String,
    /// Revision of the window stats scored (revisions are not rescored: always 1).
    pub revision: u32,
}

impl AnomalyRecord {
    /// The Kafka key: series (with its attributes) plus window.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}s|{}",
            self.service,
            series_text(&self.metric, &self.attributes),
            self.window_seconds,
            self.window_start
        )
    }
}

/// A forecast of one series, issued when a window closed, for the horizon after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ForecastRecord {
    /// The service forecast.
    pub service: String,
    /// The metric forecast.
    pub metric: String,
    /// Its series attributes, as on its window statistics.
    #[serde(default)]
    pub attributes: Attributes,
    /// The window statistic forecast (`mean`, `p95`, `rate`, …).
    pub signal: String,
    /// The size of the windows forecast, seconds.
    pub window_seconds: u32,
    /// The window the forecast was issued at (its last input).
    pub window_start: i64,
    /// End of the last window the forecast was made from, ms since the epoch.
    pub window_end: i64,
    /// How far past `window_end` the forecast looks.
    pub horizon_seconds: u64,
    /// The window forecast ends at `window_end + horizon_seconds`.
    pub target_time: i64,
    /// Median forecast.
    pub value: f64,
    /// 5 % quantile.
    pub lower: f64,
    /// 95 % quantile.
    pub upper: f64,
    /// The version of the model that forecast it.
    pub model_version: String,
    /// Revision of the window forecast from (always 1).
    pub revision: u32,
}

impl ForecastRecord {
    /// The Kafka key: series, signal and the window issued at.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}s|{}",
            self.service,
            series_text(&self.metric, &self.attributes),
            self.signal,
            self.window_seconds,
            self.window_start
        )
    }
}
