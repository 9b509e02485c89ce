//! The predictive scaling rule: replicas for the load the forecasts say is coming, decided
//! early enough for new replicas to be ready when it comes (after AWS's predictive scaling,
//! with its scheduling buffer).
//!
//! - `capacity.rs`: the replicas a forecast needs at a target utilisation, with a burst
//!   above it tolerated for a while (a pure function);
//! - `curve.rs`: a target's forecast curve, the upper bounds of the forecasts of its load
//!   metric by the window they are for, as the forecaster issues them.
//!
//! The planner's HPA rule takes the larger of its own recommendation and this one
//! (`planner.rs`): the forecast never scales in on its own and never below what the reactive
//! rule asks for; it can keep the reactive rule from scaling in ahead of load it forecasts.

pub(crate) mod capacity;
pub(crate) mod curve;

use std::time::Duration;

use serde::Deserialize;

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

fn default_burst() -> f64 {
    0.9
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
        if self.scheduling_buffer > Duration::from_secs(3600) {
            return Err(format!(
                "predictive: scheduling_buffer {:?} is past any forecast's horizon",
                self.scheduling_buffer
            ));
        }
        Ok(())
    }

    /// Whether a forecast of `signal` counts.
    pub fn takes(&self, signal: &str) -> bool {
        self.signal.as_deref().is_none_or(|s| s == signal)
    }
}
