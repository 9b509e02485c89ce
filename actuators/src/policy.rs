//! The policy file: what the actuator may do to each target.
//!
//! ```toml
//! [default]                  # targets not named below (this is the built-in default)
//! dry_run = true
//!
//! [targets.checkout]
//! executor = "log"           # log, webhook ([targets.checkout.webhook]) or kubernetes
//!                            # ([targets.checkout.kubernetes])
//! dry_run = false
//! actions = ["scale"]        # allowed actions (default: all)
//! min_replicas = 2
//! max_replicas = 20
//! max_step = 10              # largest change of replicas at once
//! out_of_bounds = "clamp"    # or "reject" (the default): a scale outside the bounds
//! cooldown = "5m"            # no action within 5 minutes of the last one on this target
//! max_actions = 6            # at most 6 actions ...
//! rate_period = "1h"         # ... in any hour (the default period)
//!
//! [targets.checkout.settings."db.client.connection.max"]   # bounds of a tuned setting
//! min = 2
//! max = 40
//! max_step = 10              # largest change at once (out_of_bounds applies as to scales)
//!
//! [targets.checkout.verify]  # watch the effect of its scales, undo them when worse
//! metric = "http.server.request.duration"
//! windows = 3                # see `effect` for every setting
//! ```
//!
//! Cool-down and rate limit count the actions carried out (succeeded or failed) and the dry
//! runs (what would have been carried out, so a dry run previews the pacing too), from the
//! actuator's claims: they hold across restarts.
//!
//! Fail safe: without a file, or for a target the file does not name and no `[default]`
//! makes otherwise, a decision is a dry run; an unknown key or executor is an error at start.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use apo_schemas::decision::{Decision, DecisionAction};
use serde::Deserialize;

use crate::effect::VerifyConfig;
use crate::executors::kubernetes::KubernetesConfig;
use crate::executors::webhook::WebhookConfig;
use crate::executors::KNOWN;
use crate::ActuateError;

/// What to do with a scale outside a target's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfBounds {
    /// Refuse the decision.
    #[default]
    Reject,
    /// Carry it out within the bounds.
    Clamp,
}

/// The bounds of one setting a tune decision may change.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingBounds {
    /// The smallest value a tune may set.
    #[serde(default)]
    pub min: Option<f64>,
    /// The largest.
    #[serde(default)]
    pub max: Option<f64>,
    /// The largest change at once (from the value the decision saw).
    #[serde(default)]
    pub max_step: Option<f64>,
}

/// One target's policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetPolicy {
    /// The executor that carries decisions out.
    #[serde(default = "log")]
    pub executor: String,
    /// Record what would be done, do nothing.
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// The actions allowed.
    #[serde(default = "all_actions")]
    pub actions: Vec<DecisionAction>,
    /// Fewest replicas a scale may leave.
    #[serde(default)]
    pub min_replicas: Option<u32>,
    /// Most replicas a scale may ask for.
    #[serde(default)]
    pub max_replicas: Option<u32>,
    /// Largest change of replicas at once.
    #[serde(default)]
    pub max_step: Option<u32>,
    /// Clamp or reject a scale (or a tune) outside the bounds.
    #[serde(default)]
    pub out_of_bounds: OutOfBounds,
    /// Bounds of the settings tune decisions change, by setting (`db.client.connection.max`).
    #[serde(default)]
    pub settings: BTreeMap<String, SettingBounds>,
    /// The `webhook` executor's receiver (`[targets.NAME.webhook]`).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// The `kubernetes` executor's workload (`[targets.NAME.kubernetes]`; defaults: a
    /// Deployment named as the target, the kubeconfig's cluster and namespace).
    #[serde(default)]
    pub kubernetes: Option<KubernetesConfig>,
    /// No action within this long after the last one.
    #[serde(default, with = "humantime_serde")]
    pub cooldown: Option<Duration>,
    /// At most this many actions per `rate_period`.
    #[serde(default)]
    pub max_actions: Option<u32>,
    /// The sliding period of `max_actions`.
    #[serde(default = "hour", with = "humantime_serde")]
    pub rate_period: Duration,
    /// Verify the effect of its scales (`[targets.NAME.verify]`; named targets only).
    #[serde(default)]
    pub verify: Option<VerifyConfig>,
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

fn log() -> String {
    "log".into()
}

fn yes() -> bool {
    true
}

fn all_actions() -> Vec<DecisionAction> {
    vec![
        DecisionAction::Scale,
        DecisionAction::Tune,
        DecisionAction::Circuit,
        DecisionAction::Rollback,
    ]
}

impl Default for TargetPolicy {
    fn default() -> Self {
        TargetPolicy {
            executor: log(),
            dry_run: true,
            actions: all_actions(),
            min_replicas: None,
            max_replicas: None,
            max_step: None,
            out_of_bounds: OutOfBounds::Reject,
            settings: BTreeMap::new(),
            webhook: None,
            kubernetes: None,
            cooldown: None,
            max_actions: None,
            rate_period: hour(),
            verify: None,
        }
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Targets not named.
    #[serde(default)]
    pub default: TargetPolicy,
    /// Per target (the decisions' `target`).
    #[serde(default)]
    pub targets: BTreeMap<String, TargetPolicy>,
}

/// What the policy allows of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Allowed {
    /// The replicas to scale to (after clamping), for a scale.
    pub replicas_to: Option<u32>,
    /// The value to set (after clamping), for a tune.
    pub tune_to: Option<f64>,
    /// Dry run: record, do nothing.
    pub dry_run: bool,
    /// The executor.
    pub executor: String,
    /// What the policy changed (a clamp), for the audit record.
    pub note: Option<String>,
}

impl Allowed {
    /// The change `d` makes as allowed, in words: `4 -> 8` (replicas), `payments open` (a
    /// circuit), `db.client.connection.max 5 -> 10` (a tune); `None` for a rollback.
    pub fn change(&self, d: &Decision) -> Option<String> {
        match (d.replicas_from, self.replicas_to, &d.circuit, &d.tune) {
            (Some(from), Some(to), _, _) => Some(format!("{from} -> {to}")),
            (_, _, Some(c), _) => Some(format!("{} {}", c.peer, c.state.as_str())),
            (_, _, _, Some(t)) => Some(format!(
                "{} {} -> {}",
                t.setting,
                t.from.map_or("?".into(), |f| f.to_string()),
                self.tune_to.unwrap_or(t.to)
            )),
            _ => None,
        }
    }
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Self, ActuateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ActuateError::Config(format!("--policy {}: {e}", path.display())))?;
        Self::from_toml(&text)
            .map_err(|e| ActuateError::Config(format!("--policy {}: {e}", path.display())))
    }

    /// Parses and checks a policy's text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let p: Policy = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, t) in std::iter::once(("[default]", &p.default))
            .chain(p.targets.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if !KNOWN.contains(&t.executor.as_str()) {
                return Err(format!(
                    "{name}: unknown executor `{}` (known: {})",
                    t.executor,
                    KNOWN.join(", ")
                ));
            }
            if t.executor == "webhook" && t.webhook.is_none() {
                return Err(format!(
                    "{name}: executor `webhook` needs a webhook table (url, secret_file)"
                ));
            }
            if t.rate_period.is_zero() {
                return Err(format!("{name}: rate_period must be more than 0 s"));
            }
            if let (Some(lo), Some(hi)) = (t.min_replicas, t.max_replicas) {
                if lo > hi {
                    return Err(format!("{name}: min_replicas {lo} > max_replicas {hi}"));
                }
            }
            for (setting, b) in &t.settings {
                let finite = [b.min, b.max, b.max_step]
                    .iter()
                    .flatten()
                    .all(|v| v.is_finite());
                let ordered = match (b.min, b.max) {
                    (Some(lo), Some(hi)) => lo <= hi,
                    _ => true,
                };
                if !finite || !ordered || b.max_step.is_some_and(|s| s < 0.0) {
                    return Err(format!(
                        "{name}: settings.\"{setting}\": need finite min <= max and max_step >= 0"
                    ));
                }
            }
            if let Some(v) = &t.verify {
                v.check().map_err(|e| format!("{name}: {e}"))?;
            }
        }
        if p.default.verify.is_some() {
            return Err(
                "[default]: verify is set per target ([targets.NAME.verify]): it names the \
                 target's latency series"
                    .into(),
            );
        }
        Ok(p)
    }

    /// The verification settings of every target that has them.
    pub fn verified(&self) -> BTreeMap<String, VerifyConfig> {
        self.targets
            .iter()
            .filter_map(|(k, t)| t.verify.clone().map(|v| (k.clone(), v)))
            .collect()
    }

    /// The policy of `target`.
    pub fn of(&self, target: &str) -> &TargetPolicy {
        self.targets.get(target).unwrap_or(&self.default)
    }

    /// Whether another action on `target` may be taken at `now_ms`, given when the earlier
    /// ones were (`history`, ms), or why not.
    pub fn pace(&self, target: &str, history: &[i64], now_ms: i64) -> Result<(), String> {
        let p = self.of(target);
        if let (Some(cooldown), Some(&last)) = (p.cooldown, history.iter().max()) {
            let since = now_ms.saturating_sub(last);
            if since < cooldown.as_millis() as i64 {
                return Err(format!(
                    "cooling down: the last action on `{target}` was {:.0?} ago (cooldown {})",
                    Duration::from_millis(since.max(0) as u64),
                    humantime::format_duration(cooldown)
                ));
            }
        }
        if let Some(max) = p.max_actions {
            let from = now_ms.saturating_sub(p.rate_period.as_millis() as i64);
            let recent = history.iter().filter(|&&t| t > from).count();
            if recent >= max as usize {
                return Err(format!(
                    "rate limit: {recent} actions on `{target}` in the last {} (max_actions {max})",
                    humantime::format_duration(p.rate_period)
                ));
            }
        }
        Ok(())
    }

    /// What may be done of `d`, or why nothing may.
    pub fn judge(&self, d: &Decision) -> Result<Allowed, String> {
        let p = self.of(&d.target);
        if !p.actions.contains(&d.action) {
            return Err(format!(
                "action `{}` is not allowed on `{}`",
                d.action.as_str(),
                d.target
            ));
        }
        let mut allowed = Allowed {
            replicas_to: d.replicas_to,
            tune_to: d.tune.as_ref().map(|t| t.to),
            dry_run: p.dry_run,
            executor: p.executor.clone(),
            note: None,
        };
        if d.action == DecisionAction::Tune {
            return tune(p, d, allowed);
        }
        if d.action != DecisionAction::Scale {
            return Ok(allowed);
        }
        let (Some(from), Some(to)) = (d.replicas_from, d.replicas_to) else {
            return Err("a scale decision without replicas_from and replicas_to".into());
        };
        let mut lo = p.min_replicas.unwrap_or(0);
        let mut hi = p.max_replicas.unwrap_or(u32::MAX);
        if let Some(step) = p.max_step {
            lo = lo.max(from.saturating_sub(step));
            hi = hi.min(from.saturating_add(step));
        }
        if (lo..=hi).contains(&to) {
            return Ok(allowed);
        }
        let bounds = format!(
            "{to} replicas is outside {lo}..={hi} (min_replicas {:?}, max_replicas {:?}, max_step {:?} from {from})",
            p.min_replicas, p.max_replicas, p.max_step
        );
        match p.out_of_bounds {
            OutOfBounds::Reject => Err(bounds),
            OutOfBounds::Clamp => {
                let clamped = to.clamp(lo, hi.max(lo));
                allowed.replicas_to = Some(clamped);
                allowed.note = Some(format!("clamped to {clamped}: {bounds}"));
                Ok(allowed)
            }
        }
    }
}

/// What may be done of the tune `d` under `p`'s bounds of its setting.
fn tune(p: &TargetPolicy, d: &Decision, mut allowed: Allowed) -> Result<Allowed, String> {
    let Some(t) = &d.tune else {
        return Err("a tune decision without its setting (tune)".into());
    };
    if !t.to.is_finite() {
        return Err(format!("a tune of `{}` to {}", t.setting, t.to));
    }
    let Some(b) = p.settings.get(&t.setting) else {
        return Ok(allowed);
    };
    let mut lo = b.min.unwrap_or(f64::NEG_INFINITY);
    let mut hi = b.max.unwrap_or(f64::INFINITY);
    if let (Some(step), Some(from)) = (b.max_step, t.from) {
        lo = lo.max(from - step);
        hi = hi.min(from + step);
    }
    if (lo..=hi).contains(&t.to) {
        return Ok(allowed);
    }
    let bounds = format!(
        "{} = {} is outside {lo}..={hi} (min {:?}, max {:?}, max_step {:?} from {:?})",
        t.setting, t.to, b.min, b.max, b.max_step, t.from
    );
    match p.out_of_bounds {
        OutOfBounds::Reject => Err(bounds),
        OutOfBounds::Clamp => {
            let clamped = t.to.clamp(lo, hi.max(lo));
            allowed.tune_to = Some(clamped);
            allowed.note = Some(format!("clamped to {clamped}: {bounds}"));
            Ok(allowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(target: &str, from: u32, to: u32) -> Decision {
        crate::testing::scale("d", target, from, to)
    }

    #[test]
    fn unnamed_targets_are_dry_runs_and_bounds_clamp_or_reject() {
        let p = Policy::from_toml(
            r#"
            [targets.checkout]
            dry_run = false
            min_replicas = 2
            max_replicas = 20
            max_step = 10
            out_of_bounds = "clamp"
            [targets.cart]
            dry_run = false
            max_replicas = 5
            actions = ["scale"]
            "#,
        )
        .unwrap();
        let a = p.judge(&scale("other", 1, 50)).unwrap();
        assert!(a.dry_run, "not named: dry run");
        let a = p.judge(&scale("checkout", 4, 8)).unwrap();
        assert_eq!(
            (a.dry_run, a.replicas_to, a.note.is_none()),
            (false, Some(8), true)
        );
        let a = p.judge(&scale("checkout", 4, 30)).unwrap();
        assert_eq!(a.replicas_to, Some(14), "max_step 10 from 4");
        assert!(a.note.unwrap().starts_with("clamped to 14"));
        assert_eq!(
            p.judge(&scale("checkout", 4, 1)).unwrap().replicas_to,
            Some(2)
        );
        let e = p.judge(&scale("cart", 4, 6)).unwrap_err();
        assert!(e.contains("outside 0..=5"), "{e}");
        let mut rollback = scale("cart", 1, 1);
        rollback.action = DecisionAction::Rollback;
        assert!(p.judge(&rollback).unwrap_err().contains("not allowed"));
        assert!(Policy::default().judge(&scale("x", 1, 2)).unwrap().dry_run);
    }

    #[test]
    fn a_tune_is_bounded_per_setting() {
        let p = Policy::from_toml(
            r#"
            [targets.checkout]
            dry_run = false
            out_of_bounds = "clamp"
            [targets.checkout.settings."db.client.connection.max"]
            min = 2
            max = 40
            max_step = 10
            [targets.cart]
            dry_run = false
            [targets.cart.settings."db.client.connection.max"]
            max = 20
            "#,
        )
        .unwrap();
        let tune = |target: &str, from: f64, to: f64| crate::testing::tune("d", target, from, to);
        let a = p.judge(&tune("checkout", 5.0, 10.0)).unwrap();
        assert_eq!((a.tune_to, a.note), (Some(10.0), None));
        let a = p.judge(&tune("checkout", 5.0, 30.0)).unwrap();
        assert_eq!(a.tune_to, Some(15.0), "max_step 10 from 5");
        assert!(a.note.unwrap().starts_with("clamped to 15"));
        assert_eq!(
            p.judge(&tune("checkout", 5.0, 1.0)).unwrap().tune_to,
            Some(2.0)
        );
        let e = p.judge(&tune("cart", 5.0, 30.0)).unwrap_err();
        assert!(
            e.contains("db.client.connection.max = 30 is outside -inf..=20"),
            "{e}"
        );
        // a setting without bounds: as decided
        let mut other = tune("cart", 5.0, 300.0);
        other.tune.as_mut().unwrap().setting = "cache.size".into();
        assert_eq!(p.judge(&other).unwrap().tune_to, Some(300.0));
        let mut bare = tune("cart", 5.0, 3.0);
        bare.tune = None;
        assert!(p.judge(&bare).unwrap_err().contains("without its setting"));
    }

    #[test]
    fn cooldown_and_rate_limit() {
        let p = Policy::from_toml(
            "[targets.a]\ncooldown = \"5m\"\nmax_actions = 3\nrate_period = \"1h\"\n",
        )
        .unwrap();
        let min = 60_000;
        assert_eq!(p.pace("a", &[], 0), Ok(()));
        let e = p.pace("a", &[100 * min], 104 * min).unwrap_err();
        assert_eq!(
            e,
            "cooling down: the last action on `a` was 240s ago (cooldown 5m)"
        );
        assert_eq!(p.pace("a", &[100 * min], 105 * min), Ok(()));
        let three = [10 * min, 30 * min, 50 * min];
        let e = p.pace("a", &three, 69 * min).unwrap_err();
        assert_eq!(
            e,
            "rate limit: 3 actions on `a` in the last 1h (max_actions 3)"
        );
        assert_eq!(
            p.pace("a", &three, 70 * min),
            Ok(()),
            "the first left the hour"
        );
        assert_eq!(
            p.pace("other", &three, 51 * min),
            Ok(()),
            "no pacing by default"
        );
    }

    #[test]
    fn bad_files_are_refused() {
        for (text, says) in [
            ("[targets.a]\nexecutor = \"ssh\"", "unknown executor"),
            (
                "[targets.a]\nmin_replicas = 5\nmax_replicas = 2",
                "min_replicas",
            ),
            ("[targets.a]\ndryrun = false", "unknown field"),
            ("[targets.a]\nrate_period = \"0s\"", "rate_period"),
            ("[targets.a.verify]\nwindows = 2", "a: verify needs"),
            ("[default.verify]\nslo = true", "verify is set per target"),
            (
                "[targets.a.settings.\"x\"]\nmin = 5\nmax = 2",
                "settings.\"x\": need finite min <= max",
            ),
        ] {
            let e = Policy::from_toml(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
