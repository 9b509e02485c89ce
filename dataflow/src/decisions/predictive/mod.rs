//! The predictive scaling rule: replicas for the load the forecasts say is coming, decided
//! early enough for new replicas to be ready when it comes (after AWS's predictive scaling,
//! with its scheduling buffer).
//!
//! - `capacity.rs`: the replicas a forecast needs at a target utilisation, with a burst
//!   above it tolerated for a while (a pure function);
//! - `curve.rs`: a target's forecast curve, the load planned for (a quantile of the forecasts
//!   of its load metric) by the window they are for, as the forecaster issues them.
//!
//! The planner's HPA rule takes the larger of its own recommendation and this one
//! (`planner.rs`): the forecast never scales in on its own and never below what the reactive
//! rule asks for; it can keep the reactive rule from scaling in ahead of load it forecasts.

pub(crate) mod capacity;
pub(crate) mod curve;

use std::time::Duration;

use apo_schemas::model_output::ForecastRecord;
use serde::Deserialize;

use crate::decisions::canary::mann_whitney::normal_quantile;

/// The quantile of the forecaster's upper bound (the top of its 90 % interval).
pub const UPPER_QUANTILE: f64 = 0.95;

/// A forecast quantile in words: `upper bound`, `median`, `quantile 0.8`; `short`: as a
/// statistic, `upper`, `median`, `q0.8`.
pub fn quantile_name(q: f64, short: bool) -> String {
    match (q == UPPER_QUANTILE, q == 0.5, short) {
        (true, _, true) => "upper".into(),
        (true, _, false) => "upper bound".into(),
        (_, true, _) => "median".into(),
        (_, _, true) => format!("q{q}"),
        (_, _, false) => format!("quantile {q}"),
    }
}

/// The predictive rule of one scale target (`[scale.predictive]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predictive {
    /// The load metric (of the target's service) whose forecasts it reads: the whole
    /// service's load, e.g. the request rate of `http.server.request.duration` with
    /// `--forecast-signal rate`.
    pub metric: String,
    /// Only forecasts of this signal (`rate`, `mean`, …; default: whichever is forecast).
    #[serde(default)]
    pub signal: Option<String>,
    /// The load one replica carries at 100 % utilisation, in the forecast's units.
    pub capacity_per_replica: f64,
    /// The utilisation to plan for (default 0.7).
    #[serde(default = "default_target")]
    pub target_utilization: f64,
    /// The quantile of the forecast planned for (default 0.95, the upper bound of the
    /// forecaster's 90 % interval; 0.5 its median). Between the median and a bound of the
    /// interval, a quantile is placed as a normal distribution places it (see [`Self::planned`]).
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// A utilisation tolerated above the target for at most `burst_for` (default 0.9).
    #[serde(default = "default_burst")]
    pub burst_utilization: f64,
    /// How long a burst above the target may last (default 5 min).
    #[serde(default = "default_burst_for", with = "humantime_serde")]
    pub burst_for: Duration,
    /// How long a new replica takes to be ready: a decision covers the load from this long
    /// after its window's end (default 60 s).
    #[serde(default = "default_buffer", with = "humantime_serde")]
    pub scheduling_buffer: Duration,
}

fn default_target() -> f64 {
    0.7
}

fn default_quantile() -> f64 {
    UPPER_QUANTILE
}

/// The utilisation tolerated in a burst unless a rule says otherwise.
pub const DEFAULT_BURST_UTILIZATION: f64 = 0.9;

fn default_burst() -> f64 {
    DEFAULT_BURST_UTILIZATION
}

fn default_burst_for() -> Duration {
    Duration::from_secs(300)
}

fn default_buffer() -> Duration {
    Duration::from_secs(60)
}

impl Predictive {
    /// What is wrong with these settings, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.metric.trim().is_empty() {
            return Err("predictive: metric is empty".into());
        }
        if !(self.capacity_per_replica.is_finite() && self.capacity_per_replica > 0.0) {
            return Err(format!(
                "predictive: capacity_per_replica must be positive (got {})",
                self.capacity_per_replica
            ));
        }
        let (t, b) = (self.target_utilization, self.burst_utilization);
        if !(t > 0.0 && t <= b && b <= 1.0) {
            return Err(format!(
                "predictive: need 0 < target_utilization ({t}) <= burst_utilization ({b}) <= 1"
            ));
        }
        let q = self.quantile;
        if !(1.0 - UPPER_QUANTILE..=UPPER_QUANTILE).contains(&q) {
            return Err(format!(
                "predictive: quantile {q} is outside the forecast's interval [{:.2}, {UPPER_QUANTILE}]",
                1.0 - UPPER_QUANTILE
            ));
        }
        if self.scheduling_buffer > Duration::from_secs(3600) {
            return Err(format!(
                "predictive: scheduling_buffer {:?} is past any forecast's horizon",
                self.scheduling_buffer
            ));
        }
        Ok(())
    }

    /// The load to plan for from forecast `f`: its `quantile`, read off the median and the
    /// bound of the 90 % interval on the quantile's side as if the forecast were normal:
    /// median + (bound - median) × z(q) / z(0.95), z the standard normal quantile. The
    /// median and the bounds themselves are returned exactly.
    pub fn planned(&self, f: &ForecastRecord) -> f64 {
        let q = self.quantile;
        if q == UPPER_QUANTILE {
            return f.upper;
        }
        if q == 1.0 - UPPER_QUANTILE {
            return f.lower;
        }
        if q == 0.5 {
            return f.value;
        }
        let share = normal_quantile(q) / normal_quantile(UPPER_QUANTILE);
        if q > 0.5 {
            f.value + (f.upper - f.value) * share
        } else {
            f.value - (f.lower - f.value) * share
        }
    }

    /// What the load planned for is called in a decision's reason.
    pub fn planned_name(&self) -> String {
        quantile_name(self.quantile, false)
    }

    /// The same, as the statistic of a decision's evidence (`upper`, `median`, `q0.8`).
    pub fn planned_statistic(&self) -> String {
        quantile_name(self.quantile, true)
    }

    /// Whether a forecast of `signal` counts.
    pub fn takes(&self, signal: &str) -> bool {
        self.signal.as_deref().is_none_or(|s| s == signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(quantile: f64) -> Predictive {
        Predictive {
            metric: "m".into(),
            signal: None,
            capacity_per_replica: 1.0,
            target_utilization: 0.7,
            quantile,
            burst_utilization: 0.9,
            burst_for: default_burst_for(),
            scheduling_buffer: default_buffer(),
        }
    }

    fn forecast(value: f64, lower: f64, upper: f64) -> ForecastRecord {
        ForecastRecord {
            attributes: Default::default(),
            service: "s".into(),
            metric: "m".into(),
            signal: "rate".into(),
            window_seconds: 60,
            window_start: 0,
            window_end: 60_000,
            horizon_seconds: 900,
            target_time: 960_000,
            value,
            lower,
            upper,
            model_version: "t".into(),
            revision: 1,
        }
    }

    #[test]
    fn a_quantile_is_read_off_the_median_and_the_bound_on_its_side() {
        // An interval that is not symmetric: 100 - 20 / + 50.
        let f = forecast(100.0, 80.0, 150.0);
        assert_eq!(rule(0.95).planned(&f), 150.0);
        assert_eq!(rule(0.5).planned(&f), 100.0);
        assert_eq!(rule(0.05).planned(&f), 80.0);
        // SciPy: norm.ppf(0.8) = 0.8416212335729143, norm.ppf(0.95) = 1.6448536269514722,
        // norm.ppf(0.25) = -0.6744897501960817.
        let (z80, z95, z25) = (0.8416212335729143, 1.6448536269514722, -0.6744897501960817);
        assert!((rule(0.8).planned(&f) - (100.0 + 50.0 * z80 / z95)).abs() < 1e-9);
        assert!((rule(0.25).planned(&f) - (100.0 + 20.0 * z25 / z95)).abs() < 1e-9);
        // Monotone in the quantile.
        let qs = [0.05, 0.1, 0.25, 0.5, 0.6, 0.8, 0.9, 0.95];
        let loads: Vec<f64> = qs.iter().map(|&q| rule(q).planned(&f)).collect();
        assert!(loads.windows(2).all(|w| w[0] < w[1]), "{loads:?}");
        assert_eq!(rule(0.95).planned_statistic(), "upper");
        assert_eq!(rule(0.5).planned_name(), "median");
        assert_eq!(rule(0.8).planned_statistic(), "q0.8");
    }

    #[test]
    fn a_quantile_outside_the_interval_is_refused() {
        for q in [0.0, 0.04, 0.96, 1.0, f64::NAN] {
            let err = rule(q).check().unwrap_err();
            assert!(err.contains("quantile"), "{q}: {err}");
        }
        assert_eq!(rule(0.5).check(), Ok(()));
    }
}
