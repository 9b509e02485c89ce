//! The HPA controller's state around the calculator (`horizontal.go`): the stabilisation
//! windows over recent recommendations, the scaling policies over recent scale events, the
//! min/max bounds, and the legacy rule for an HPA without `behavior`. Time is the planner's
//! event time (ms), not the wall clock, so a replay decides as the first run did.
//!
//! - **Stabilisation** (`stabilizeRecommendationWithBehaviors`): the recommendation is the
//!   current count brought within [lowest recommendation of the scale-up window, highest of
//!   the scale-down window] (each window includes the new recommendation); the new,
//!   unstabilised recommendation is then recorded.
//! - **Policies** (`calculateScaleUpLimitWithScalingRules`, `…ScaleDownLimitWithBehaviors`):
//!   per policy, the count at the start of its period (current less what was added in the
//!   period, plus what was removed) plus `Pods`, or times `1 + Percent/100` rounded up
//!   (scale-up), minus `Pods` or times `1 − Percent/100` truncated (scale-down); `selectPolicy`
//!   `Max` takes the largest change, `Min` the smallest, `Disabled` none.
//! - Defaults (the API server's): scale-up no stabilisation, max(+4 pods, +100 %) per 15 s;
//!   scale-down 300 s stabilisation, 100 % per 15 s.
//! - **Legacy** (no `behavior`): the highest recommendation of the last 300 s, then at most
//!   max(2 × current, 4) (`calculateScaleUpLimit`).

use serde::Deserialize;

/// A scaling policy's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PolicyKind {
    /// A number of pods.
    Pods,
    /// A percentage of the count at the start of the period.
    Percent,
}

/// One scaling policy: at most `value` pods or percent per `period_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingPolicy {
    /// Pods or Percent.
    #[serde(rename = "type")]
    pub kind: PolicyKind,
    /// How many (pods or percent).
    pub value: u32,
    /// Over how long, seconds.
    pub period_seconds: u32,
}

/// Which policy applies when several do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SelectPolicy {
    /// The one that allows the largest change (the default).
    #[default]
    Max,
    /// The one that allows the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// The rules of one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalingRules {
    /// How far back recommendations count, seconds.
    pub stabilization_window_seconds: u32,
    /// Which policy applies.
    pub select_policy: SelectPolicy,
    /// The policies.
    pub policies: Vec<ScalingPolicy>,
}

/// One direction's rules as written: what is left out takes the API server's default for
/// that direction, field by field, as `SetDefaults_HorizontalPodAutoscalerBehavior` does.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesAsWritten {
    stabilization_window_seconds: Option<u32>,
    select_policy: Option<SelectPolicy>,
    policies: Option<Vec<ScalingPolicy>>,
}

/// `behavior` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BehaviorAsWritten {
    scale_up: Option<RulesAsWritten>,
    scale_down: Option<RulesAsWritten>,
}

impl RulesAsWritten {
    fn or(self, default: ScalingRules) -> ScalingRules {
        ScalingRules {
            stabilization_window_seconds: self
                .stabilization_window_seconds
                .unwrap_or(default.stabilization_window_seconds),
            select_policy: self.select_policy.unwrap_or(default.select_policy),
            policies: self.policies.unwrap_or(default.policies),
        }
    }
}

impl From<BehaviorAsWritten> for Behavior {
    fn from(b: BehaviorAsWritten) -> Self {
        let d = Behavior::default();
        Behavior {
            scale_up: b.scale_up.map_or(d.scale_up.clone(), |r| r.or(d.scale_up)),
            scale_down: b
                .scale_down
                .map_or(d.scale_down.clone(), |r| r.or(d.scale_down)),
        }
    }
}

/// An HPA's `behavior`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "BehaviorAsWritten")]
pub struct Behavior {
    /// Scale-up rules.
    pub scale_up: ScalingRules,
    /// Scale-down rules.
    pub scale_down: ScalingRules,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            scale_up: ScalingRules {
                stabilization_window_seconds: 0,
                select_policy: SelectPolicy::Max,
                policies: vec![
                    ScalingPolicy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_seconds: 15,
                    },
                    ScalingPolicy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_seconds: 15,
                    },
                ],
            },
            scale_down: ScalingRules {
                stabilization_window_seconds: 300,
                select_policy: SelectPolicy::Max,
                policies: vec![ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_seconds: 15,
                }],
            },
        }
    }
}

/// The legacy path's scale-down stabilisation window, ms (the controller's
/// `--horizontal-pod-autoscaler-downscale-stabilization`, 5 minutes).
pub const LEGACY_DOWNSCALE_WINDOW_MS: i64 = 300_000;

/// Why the count came out as it did (the HPA's condition reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The recommendation, unchanged by any bound.
    DesiredWithinRange,
    /// Held by a higher recommendation of the scale-down window.
    ScaleDownStabilized,
    /// Held by a lower recommendation of the scale-up window.
    ScaleUpStabilized,
    /// Cut by a scale-up policy (or the legacy ×2 rule).
    ScaleUpLimit,
    /// Cut by a scale-down policy.
    ScaleDownLimit,
    /// Cut to the maximum.
    TooManyReplicas,
    /// Raised to the minimum.
    TooFewReplicas,
}

impl Limit {
    /// The controller's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::DesiredWithinRange => "DesiredWithinRange",
            Limit::ScaleDownStabilized => "ScaleDownStabilized",
            Limit::ScaleUpStabilized => "ScaleUpStabilized",
            Limit::ScaleUpLimit => "ScaleUpLimit",
            Limit::ScaleDownLimit => "ScaleDownLimit",
            Limit::TooManyReplicas => "TooManyReplicas",
            Limit::TooFewReplicas => "TooFewReplicas",
        }
    }
}

/// One target's autoscaler state: recent recommendations and scale events, event time.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Autoscaler {
    /// `None`: the legacy rule. Configuration, not state: a checkpoint leaves it out and the
    /// restore takes it from the rules ([`Autoscaler::behaving`]).
    #[serde(skip)]
    behavior: Option<Behavior>,
    /// (time, unstabilised recommendation).
    recommendations: Vec<(i64, u32)>,
    /// (time, pods added).
    up_events: Vec<(i64, u32)>,
    /// (time, pods removed).
    down_events: Vec<(i64, u32)>,
}

/// Pods changed in the period of `period_ms` before `now` (events strictly after its start).
fn changed_in(events: &[(i64, u32)], now: i64, period_ms: i64) -> i64 {
    let cutoff = now - period_ms;
    events
        .iter()
        .filter(|(t, _)| *t > cutoff)
        .map(|&(_, n)| i64::from(n))
        .sum()
}

impl Autoscaler {
    /// An autoscaler with `behavior` (`None`: the legacy rule).
    pub fn new(behavior: Option<Behavior>) -> Self {
        Autoscaler {
            behavior,
            ..Default::default()
        }
    }

    /// This autoscaler's state under `behavior` (`None`: the legacy rule): how a restored one
    /// takes the rules of the run it is restored into.
    pub fn behaving(mut self, behavior: Option<Behavior>) -> Self {
        self.behavior = behavior;
        self
    }

    /// The count to scale to at event time `now`, from the current count, the calculator's
    /// recommendation and the bounds; records the recommendation and, when the count
    /// changes, the scale event.
    pub fn normalize(
        &mut self,
        now: i64,
        current: u32,
        recommended: u32,
        min: u32,
        max: u32,
    ) -> (u32, Limit) {
        let (desired, limit) = if current > max {
            (max, Limit::TooManyReplicas)
        } else if current < min {
            (min, Limit::TooFewReplicas)
        } else {
            match self.behavior.clone() {
                Some(b) => self.with_behavior(&b, now, current, recommended, min, max),
                None => self.legacy(now, current, recommended, min, max),
            }
        };
        if desired != current {
            let events = if desired > current {
                &mut self.up_events
            } else {
                &mut self.down_events
            };
            events.push((now, desired.abs_diff(current)));
        }
        self.forget(now);
        (desired, limit)
    }

    fn with_behavior(
        &mut self,
        b: &Behavior,
        now: i64,
        current: u32,
        recommended: u32,
        min: u32,
        max: u32,
    ) -> (u32, Limit) {
        // Stabilise.
        let up_cutoff = now - i64::from(b.scale_up.stabilization_window_seconds) * 1000;
        let down_cutoff = now - i64::from(b.scale_down.stabilization_window_seconds) * 1000;
        let mut up = recommended;
        let mut down = recommended;
        for &(t, r) in &self.recommendations {
            if t > up_cutoff {
                up = up.min(r);
            }
            if t > down_cutoff {
                down = down.max(r);
            }
        }
        let stabilised = current.max(up).min(down);
        self.recommendations.push((now, recommended));
        let mut limit = if stabilised == recommended {
            Limit::DesiredWithinRange
        } else if recommended >= current {
            Limit::ScaleUpStabilized
        } else {
            Limit::ScaleDownStabilized
        };
        // Rate and bounds.
        let cur = i64::from(current);
        let desired = i64::from(stabilised);
        let out = if desired > cur {
            let rate = self.up_limit(&b.scale_up, now, cur).max(cur);
            let (ceiling, why) = if i64::from(max) > rate {
                (rate, Limit::ScaleUpLimit)
            } else {
                (i64::from(max), Limit::TooManyReplicas)
            };
            if desired > ceiling {
                limit = why;
                ceiling
            } else {
                desired
            }
        } else if desired < cur {
            let rate = self.down_limit(&b.scale_down, now, cur).min(cur);
            let (floor, why) = if i64::from(min) < rate {
                (rate, Limit::ScaleDownLimit)
            } else {
                (i64::from(min), Limit::TooFewReplicas)
            };
            if desired < floor {
                limit = why;
                floor
            } else {
                desired
            }
        } else {
            desired
        };
        (out.clamp(0, i64::from(u32::MAX)) as u32, limit)
    }

    /// The most pods the scale-up policies allow now.
    fn up_limit(&self, rules: &ScalingRules, now: i64, current: i64) -> i64 {
        self.policy_limit(rules, now, current, true)
    }

    /// The fewest pods the scale-down policies allow now.
    fn down_limit(&self, rules: &ScalingRules, now: i64, current: i64) -> i64 {
        self.policy_limit(rules, now, current, false)
    }

    /// The count the policies of one direction allow now: per policy, the count at the start
    /// of its period moved by the policy's amount (up: Percent rounded up; down: truncated),
    /// then the largest change (`Max`) or the smallest (`Min`) of them.
    fn policy_limit(&self, rules: &ScalingRules, now: i64, current: i64, up: bool) -> i64 {
        let largest_change = match rules.select_policy {
            SelectPolicy::Disabled => return current,
            SelectPolicy::Max => true,
            SelectPolicy::Min => false,
        };
        // Up, the largest change is the highest count; down, the lowest.
        let pick: fn(i64, i64) -> i64 = if up == largest_change {
            i64::max
        } else {
            i64::min
        };
        let mut result: Option<i64> = None;
        for p in &rules.policies {
            let period = i64::from(p.period_seconds) * 1000;
            let start = current - changed_in(&self.up_events, now, period)
                + changed_in(&self.down_events, now, period);
            let value = i64::from(p.value);
            let proposed = match (p.kind, up) {
                (PolicyKind::Pods, true) => start + value,
                (PolicyKind::Pods, false) => start - value,
                (PolicyKind::Percent, true) => {
                    (start as f64 * (1.0 + value as f64 / 100.0)).ceil() as i64
                }
                (PolicyKind::Percent, false) => {
                    (start as f64 * (1.0 - value as f64 / 100.0)) as i64
                }
            };
            result = Some(result.map_or(proposed, |r| pick(r, proposed)));
        }
        result.unwrap_or(current)
    }

    fn legacy(
        &mut self,
        now: i64,
        current: u32,
        recommended: u32,
        min: u32,
        max: u32,
    ) -> (u32, Limit) {
        // The highest recommendation of the last five minutes, this one included.
        let cutoff = now - LEGACY_DOWNSCALE_WINDOW_MS;
        let stabilised = self
            .recommendations
            .iter()
            .filter(|(t, _)| *t > cutoff)
            .map(|&(_, r)| r)
            .fold(recommended, u32::max);
        self.recommendations.push((now, recommended));
        let scale_up_limit = (2 * u64::from(current)).max(4).min(u64::from(u32::MAX)) as u32;
        let (ceiling, why) = if max > scale_up_limit {
            (scale_up_limit, Limit::ScaleUpLimit)
        } else {
            (max, Limit::TooManyReplicas)
        };
        if stabilised < min {
            (min, Limit::TooFewReplicas)
        } else if stabilised > ceiling {
            (ceiling, why)
        } else if stabilised != recommended {
            (stabilised, Limit::ScaleDownStabilized)
        } else {
            (stabilised, Limit::DesiredWithinRange)
        }
    }

    /// Drops what no window or period can reach any more.
    fn forget(&mut self, now: i64) {
        let (rec_ms, period_ms) = match &self.behavior {
            None => (LEGACY_DOWNSCALE_WINDOW_MS, 0),
            Some(b) => {
                let rec = b
                    .scale_up
                    .stabilization_window_seconds
                    .max(b.scale_down.stabilization_window_seconds);
                let period = b
                    .scale_up
                    .policies
                    .iter()
                    .chain(&b.scale_down.policies)
                    .map(|p| p.period_seconds)
                    .max()
                    .unwrap_or(0);
                (i64::from(rec) * 1000, i64::from(period) * 1000)
            }
        };
        self.recommendations.retain(|(t, _)| *t > now - rec_ms);
        self.up_events.retain(|(t, _)| *t > now - period_ms);
        self.down_events.retain(|(t, _)| *t > now - period_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn rules(stab: u32, select: SelectPolicy, policies: &[(PolicyKind, u32, u32)]) -> ScalingRules {
        ScalingRules {
            stabilization_window_seconds: stab,
            select_policy: select,
            policies: policies
                .iter()
                .map(|&(kind, value, period_seconds)| ScalingPolicy {
                    kind,
                    value,
                    period_seconds,
                })
                .collect(),
        }
    }

    #[test]
    fn scale_down_4_pods_or_10_percent_a_minute_under_max() {
        // The Kubernetes docs' example: from 80 replicas, 72, then 64, and 4 a minute once
        // 10 % is fewer than 4 pods (below 40).
        let b = Behavior {
            scale_down: rules(
                0,
                SelectPolicy::Max,
                &[(PolicyKind::Pods, 4, 60), (PolicyKind::Percent, 10, 60)],
            ),
            ..Behavior::default()
        };
        let mut a = Autoscaler::new(Some(b));
        let mut current = 80;
        let mut per_minute = Vec::new();
        // evaluated every 15 s, as the controller's sync period, asking for 1 replica
        for step in 0..(4 * 20) {
            let now = step * 15_000;
            let (next, _) = a.normalize(now, current, 1, 1, 100);
            if now % MIN == 0 {
                per_minute.push(next);
            } else {
                assert_eq!(next, current, "one change per minute, at {now} ms");
            }
            current = next;
        }
        assert_eq!(&per_minute[..3], &[72, 64, 57]);
        assert_eq!(
            per_minute,
            [72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 1, 1, 1, 1, 1],
            "10 % a minute down to 40, then 4 pods a minute (Pods 4 > 10 %), the minimum last"
        );
    }

    #[test]
    fn default_scale_up_is_4_pods_or_double_per_15_s() {
        let mut a = Autoscaler::new(Some(Behavior::default()));
        // from 1: max(1 + 4, 2) = 5
        assert_eq!(a.normalize(0, 1, 100, 1, 1000), (5, Limit::ScaleUpLimit));
        // 15 s later the period has passed: from 5, max(9, 10) = 10
        assert_eq!(a.normalize(15_000, 5, 100, 1, 1000).0, 10);
        // within the same 15 s nothing more: the period started at 5
        assert_eq!(a.normalize(20_000, 10, 100, 1, 1000).0, 10);
        // from 10 after it: 20
        assert_eq!(a.normalize(30_000, 10, 100, 1, 1000).0, 20);
        // the maximum wins when lower
        assert_eq!(
            a.normalize(45_000, 20, 100, 1, 30),
            (30, Limit::TooManyReplicas)
        );
    }

    #[test]
    fn scale_down_stabilisation_keeps_the_highest_of_300_s() {
        let mut a = Autoscaler::new(Some(Behavior::default()));
        assert_eq!(a.normalize(0, 10, 10, 1, 100).0, 10);
        // lower recommendations within 300 s of the 10: held at 10
        assert_eq!(
            a.normalize(60_000, 10, 4, 1, 100),
            (10, Limit::ScaleDownStabilized)
        );
        assert_eq!(a.normalize(299_000, 10, 4, 1, 100).0, 10);
        // 300 s after the 10 it is out of the window (strictly after the cutoff counts)
        assert_eq!(a.normalize(300_000, 10, 4, 1, 100).0, 4);
    }

    #[test]
    fn select_min_and_disabled() {
        let mut b = Behavior {
            scale_up: rules(
                0,
                SelectPolicy::Min,
                &[(PolicyKind::Pods, 4, 60), (PolicyKind::Percent, 100, 60)],
            ),
            ..Behavior::default()
        };
        let mut a = Autoscaler::new(Some(b.clone()));
        // from 10: min(14, 20) = 14
        assert_eq!(a.normalize(0, 10, 50, 1, 100).0, 14);
        b.scale_up.select_policy = SelectPolicy::Disabled;
        let mut a = Autoscaler::new(Some(b));
        assert_eq!(a.normalize(0, 10, 50, 1, 100).0, 10);
    }

    #[test]
    fn legacy_caps_at_twice_or_four_and_stabilises_down() {
        let mut a = Autoscaler::new(None);
        assert_eq!(a.normalize(0, 1, 100, 1, 1000), (4, Limit::ScaleUpLimit));
        assert_eq!(a.normalize(15_000, 4, 100, 1, 1000).0, 8);
        assert_eq!(a.normalize(30_000, 8, 100, 1, 1000).0, 16);
        let mut a = Autoscaler::new(None);
        assert_eq!(a.normalize(0, 10, 10, 1, 100).0, 10);
        assert_eq!(a.normalize(100_000, 10, 3, 1, 100).0, 10);
        assert_eq!(a.normalize(301_000, 10, 3, 1, 100).0, 3);
    }

    #[test]
    fn bounds_come_first() {
        let mut a = Autoscaler::new(Some(Behavior::default()));
        assert_eq!(a.normalize(0, 50, 60, 1, 20), (20, Limit::TooManyReplicas));
        assert_eq!(a.normalize(0, 1, 1, 3, 20), (3, Limit::TooFewReplicas));
        // a recommendation below the minimum stops at it
        let mut a = Autoscaler::new(Some(Behavior {
            scale_down: rules(0, SelectPolicy::Max, &[(PolicyKind::Percent, 100, 15)]),
            ..Behavior::default()
        }));
        assert_eq!(a.normalize(0, 10, 1, 3, 20), (3, Limit::TooFewReplicas));
    }
}
