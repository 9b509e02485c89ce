//! Effect verification: after a scale or a tune was carried out, the actuator watches the target's
//! latency (a series of `apo.window_stats`) and its SLOs (`apo.slo`) for a number of closed
//! windows, compares them with as many windows before the action, and undoes the action (its
//! inverse through the same executor) when they got worse by more than the policy allows.
//! Each verification ends in one more audit record of the decision, action `verify`:
//! `verified`, `reverted`, `unverified` (not judgeable in time) or `failed` (worse, but the
//! revert failed or an override stopped it).
//!
//! - [`judge`]: the comparison, a pure function of the windows;
//! - [`watch`]: the consumer that keeps the recent windows of the targets verified.
//!
//! ```toml
//! [targets.checkout.verify]
//! metric = "http.server.request.duration"  # latency series of the target (apo.window_stats)
//! statistic = "p99"          # mean, p50, p90, p95, p99, p999 or max (default p99)
//! slo = true                 # also the target's objectives in apo.slo (default false)
//! windows = 3                # closed windows after the action, compared with 3 before
//! worse_by = 0.2             # worse: 20 % above before (SLOs: and out of objective)
//! settle = "30s"             # windows starting within 30 s of the action are skipped
//! wait = "15m"               # no verdict by then: `unverified`, nothing undone
//! ```
//!
//! Scales and tunes (whose value before is known) are verified: a rollback returns to the
//! baseline, and a circuit's breaker already re-checks its edge in half-open. A tune's
//! inverse sets the setting back to the value the decision saw.

pub mod judge;
pub mod watch;

use std::time::Duration;

use apo_schemas::decision::{Decision, DecisionAction};
use serde::{Deserialize, Serialize};

/// The statistics of a window-stats record the latency check may read.
pub const STATISTICS: &[&str] = &["mean", "p50", "p90", "p95", "p99", "p999", "max"];

/// A target's `[targets.NAME.verify]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// The latency series (metric name of the target's `apo.window_stats`).
    #[serde(default)]
    pub metric: Option<String>,
    /// Its statistic.
    #[serde(default = "p99")]
    pub statistic: String,
    /// Also judge the target's objectives of `apo.slo`.
    #[serde(default)]
    pub slo: bool,
    /// Closed windows after the action (and as many before it) compared.
    #[serde(default = "three")]
    pub windows: u32,
    /// How much worse counts as worse: after > before × (1 + worse_by).
    #[serde(default = "fifth")]
    pub worse_by: f64,
    /// Windows starting within this long after the action are not judged (the rollout).
    #[serde(default, with = "humantime_serde")]
    pub settle: Option<Duration>,
    /// How long after the action a verdict may wait for its windows.
    #[serde(default = "quarter_hour", with = "humantime_serde")]
    pub wait: Duration,
}

fn p99() -> String {
    "p99".into()
}

fn three() -> u32 {
    3
}

fn fifth() -> f64 {
    0.2
}

fn quarter_hour() -> Duration {
    Duration::from_secs(15 * 60)
}

impl VerifyConfig {
    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.metric.is_none() && !self.slo {
            return Err("verify needs a latency `metric`, `slo = true`, or both".into());
        }
        if !STATISTICS.contains(&self.statistic.as_str()) {
            return Err(format!(
                "verify statistic `{}` is not one of {}",
                self.statistic,
                STATISTICS.join(", ")
            ));
        }
        if self.windows == 0 {
            return Err("verify windows must be at least 1".into());
        }
        if !(self.worse_by.is_finite() && self.worse_by >= 0.0) {
            return Err(format!(
                "verify worse_by {} must be a number ≥ 0",
                self.worse_by
            ));
        }
        Ok(())
    }

    /// Settle, ms.
    pub fn settle_ms(&self) -> i64 {
        self.settle.map_or(0, |d| d.as_millis() as i64)
    }

    /// Wait, ms.
    pub fn wait_ms(&self) -> i64 {
        self.wait.as_millis() as i64
    }
}

/// An action whose effect is being watched: durable in the claims (so a restart goes on
/// watching), with what its inverse needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watching {
    /// The decision carried out.
    pub decision: Decision,
    /// The replicas it was carried out with (after the policy's clamp).
    pub applied_replicas: Option<u32>,
    /// A tune: the value it was carried out with (after the policy's clamp).
    #[serde(default)]
    pub applied_value: Option<f64>,
    /// When it was carried out, ms since the Unix epoch (the actuator's clock).
    pub executed_at: i64,
}

/// Whether a decision's effect is verified at all: scales, and tunes whose value before is
/// known.
pub fn verifiable(d: &Decision) -> bool {
    match d.action {
        DecisionAction::Scale => d.replicas_from.is_some(),
        DecisionAction::Tune => d.tune.as_ref().is_some_and(|t| t.from.is_some()),
        DecisionAction::Circuit | DecisionAction::Rollback => false,
    }
}

/// The decision that undoes `w`'s: back from the replicas (or the setting's value) applied to
/// those it started from, with id `ID-revert` (an idempotent receiver tells it from the
/// original) and rule `verify`. Unsigned: it never travels on the decisions topic.
pub fn inverse(w: &Watching, why: &str) -> Option<Decision> {
    let d = &w.decision;
    if !verifiable(d) {
        return None;
    }
    let mut back = d.clone();
    back.id = format!("{}-revert", d.id);
    back.rule = "verify".into();
    if d.action == DecisionAction::Scale {
        back.replicas_from = w.applied_replicas.or(d.replicas_to);
        back.replicas_to = d.replicas_from;
    }
    if let Some(t) = back.tune.as_mut() {
        let before = t.from?;
        t.from = Some(w.applied_value.unwrap_or(t.to));
        t.to = before;
    }
    back.reason = format!("revert of {}: {why}", d.id);
    back.signature = String::new();
    Some(back)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inverse_goes_back_from_what_was_applied() {
        let d = crate::testing::scale("d1", "checkout", 4, 12);
        let w = Watching {
            decision: d.clone(),
            applied_replicas: Some(8),
            applied_value: None,
            executed_at: 1,
        };
        let back = inverse(&w, "p99 worse").unwrap();
        assert_eq!(back.id, "d1-revert");
        assert_eq!((back.replicas_from, back.replicas_to), (Some(8), Some(4)));
        assert_eq!(back.rule, "verify");
        assert!(back.reason.contains("p99 worse"));
        let mut circuit = d.clone();
        circuit.action = DecisionAction::Circuit;
        let w = Watching {
            decision: circuit,
            applied_replicas: None,
            applied_value: None,
            executed_at: 1,
        };
        assert!(inverse(&w, "").is_none());
        // a tune goes back from the value applied (clamped to 15) to the one it saw (5)
        let tune = crate::testing::tune("d1", "checkout", 5.0, 30.0);
        let mut w = Watching {
            decision: tune,
            applied_replicas: None,
            applied_value: Some(15.0),
            executed_at: 1,
        };
        let back = inverse(&w, "p99 worse").unwrap();
        let t = back.tune.unwrap();
        assert_eq!((t.from, t.to), (Some(15.0), 5.0));
        assert_eq!((back.replicas_from, back.replicas_to), (None, None));
        // a tune whose value before is unknown has no inverse and is not watched
        w.decision.tune.as_mut().unwrap().from = None;
        assert!(!verifiable(&w.decision));
        assert!(inverse(&w, "").is_none());
    }

    #[test]
    fn a_verify_table_needs_something_to_watch() {
        let c: VerifyConfig = toml::from_str("windows = 2").unwrap();
        assert!(c.check().unwrap_err().contains("metric"));
        let c: VerifyConfig = toml::from_str("metric = \"latency\"\nstatistic = \"p42\"").unwrap();
        assert!(c.check().unwrap_err().contains("p42"));
        let c: VerifyConfig = toml::from_str("slo = true\nwait = \"2m\"").unwrap();
        c.check().unwrap();
        assert_eq!((c.windows, c.worse_by, c.wait_ms()), (3, 0.2, 120_000));
        assert!(toml::from_str::<VerifyConfig>("slo = true\nwindow = 3").is_err());
    }
}
