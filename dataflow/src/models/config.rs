//! Which models run in a pipeline, and how.

use std::path::PathBuf;
use std::time::Duration;

use apo_models::alerting::AlertConfig;
use apo_models::{Forecaster, IsolationForest, ModelError};
use apo_schemas::WindowStats;

/// The window statistic the forecaster follows (in a file: `mean`, `p50`, `p95`, `p99`, `max`,
/// `sum`, `rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    #[default]
    /// The window's mean.
    Mean,
    /// Its median.
    P50,
    /// Its 95th percentile.
    P95,
    /// Its 99th percentile.
    P99,
    /// Its maximum.
    Max,
    /// Its sum.
    Sum,
    /// Points per second (count / window seconds).
    Rate,
}

impl Signal {
    /// The signal's name in output rows and flags.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Mean => "mean",
            Signal::P50 => "p50",
            Signal::P95 => "p95",
            Signal::P99 => "p99",
            Signal::Max => "max",
            Signal::Sum => "sum",
            Signal::Rate => "rate",
        }
    }

    /// Whether the signal of several series together is their sum (a sum, a rate), rather
    /// than at most their largest.
    pub fn additive(self) -> bool {
        matches!(self, Signal::Sum | Signal::Rate)
    }

    pub(crate) fn of(self, w: &WindowStats) -> f64 {
        match self {
            Signal::Mean => w.mean,
            Signal::P50 => w.p50,
            Signal::P95 => w.p95,
            Signal::P99 => w.p99,
            Signal::Max => w.max,
            Signal::Sum => w.sum,
            Signal::Rate => w.count as f64 / f64::from(w.window_seconds.max(1)),
        }
    }
}

impl std::str::FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "mean" => Signal::Mean,
            "p50" => Signal::P50,
            "p95" => Signal::P95,
            "p99" => Signal::P99,
            "max" => Signal::Max,
            "sum" => Signal::Sum,
            "rate" => Signal::Rate,
            _ => {
                return Err(format!(
                    "`{s}`: expected mean, p50, p95, p99, max, sum or rate"
                ))
            }
        })
    }
}

/// Which models run in the metrics pipeline, and how.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The isolation forest; `None` scores nothing.
    pub anomaly_model: Option<PathBuf>,
    /// The LSTM forecaster; `None` forecasts nothing.
    pub forecast_model: Option<PathBuf>,
    /// How scores become alerts.
    pub alert: AlertConfig,
    /// The window statistic forecast.
    pub forecast_signal: Signal,
    /// The horizons each window is forecast at, seconds (each a whole number of the series'
    /// windows, 1 to the model's steps; a window size that makes none of them whole is not
    /// forecast); empty: the model's own horizon (15 minutes for the shipped LSTM).
    pub forecast_horizons: Vec<u64>,
    /// How often the model files are looked at for a replacement.
    #[serde(with = "humantime_serde")]
    pub reload_check: Duration,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            anomaly_model: None,
            forecast_model: None,
            alert: AlertConfig::default(),
            forecast_signal: Signal::Mean,
            forecast_horizons: Vec::new(),
            reload_check: Duration::from_secs(5),
        }
    }
}

impl ModelConfig {
    /// Loads the configured models once (a startup check: the workers load their own).
    pub fn check(&self) -> Result<(), ModelError> {
        self.alert.validate().map_err(ModelError::Input)?;
        if let Some(p) = &self.anomaly_model {
            IsolationForest::load(p)?;
        }
        if let Some(p) = &self.forecast_model {
            let m = Forecaster::load(p)?;
            let most = m.horizon_steps() as u64;
            if let Some(bad) = self.forecast_horizons.iter().find(|&&h| h == 0) {
                return Err(ModelError::Input(format!(
                    "a forecast horizon must be at least a second (got {bad} s)"
                )));
            }
            // a horizon some window size can forecast: at most the model's steps of the
            // largest window there is (a day)
            if let Some(bad) = self.forecast_horizons.iter().find(|&&h| h > most * 86_400) {
                return Err(ModelError::Input(format!(
                    "a forecast horizon of {bad} s is more than {most} windows of a day"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name() {
        assert_eq!("rate".parse::<Signal>(), Ok(Signal::Rate));
        assert!("median".parse::<Signal>().is_err());
    }
}
