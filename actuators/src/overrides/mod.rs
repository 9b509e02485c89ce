//! Manual overrides (`apo.overrides`, a compacted topic): what people have said the actuators
//! must not do. [`Overrides`] is the state the topic folds into, [`reader`] keeps an actuator's
//! copy current, [`command`] is `apo override`.
//!
//! Fail safe: a message under a key that cannot be read pauses that key (every target for `*`
//! or a message without a key) until a readable one replaces it; an actuator that cannot read
//! the topic up to its end before acting refuses the decision.

pub mod command;
pub mod reader;

use std::collections::BTreeMap;

use apo_schemas::decision::{Decision, DecisionAction};
use apo_schemas::overrides::{Override, OverrideMode, ALL_TARGETS};

/// The overrides in force, by key (target or `*`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    by_key: BTreeMap<String, Override>,
}

/// A time in ms since the epoch as RFC 3339 (seconds).
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Overrides {
    /// Takes one message of the topic: `key`'s override, or its end (`None`, a tombstone).
    pub fn apply(&mut self, key: &str, o: Option<Override>) {
        match o {
            Some(o) => {
                self.by_key.insert(key.to_string(), o);
            }
            None => {
                self.by_key.remove(key);
            }
        }
    }

    /// Takes a message under `key` that could not be read: the key is paused (fail safe).
    pub fn apply_unreadable(&mut self, key: Option<&str>, error: &str, at: i64) {
        let key = key.filter(|k| !k.trim().is_empty()).unwrap_or(ALL_TARGETS);
        self.by_key.insert(
            key.to_string(),
            Override {
                target: key.to_string(),
                mode: OverrideMode::Pause,
                replicas: None,
                reason: format!(
                    "an unreadable override ({error}): paused until a readable one replaces it"
                ),
                by: "apo-actuate".into(),
                at,
                until: None,
            },
        );
    }

    /// The overrides in force at `now_ms`, by key.
    pub fn active(&self, now_ms: i64) -> impl Iterator<Item = &Override> {
        self.by_key.values().filter(move |o| o.active(now_ms))
    }

    /// Why an override stops `d` at `now_ms`, if one does.
    pub fn stops(&self, d: &Decision, now_ms: i64) -> Option<String> {
        let said = |o: &Override| {
            let until = o
                .until
                .map(|u| format!(", until {}", rfc3339(u)))
                .unwrap_or_default();
            format!("by {} at {}{until}: {}", o.by, rfc3339(o.at), o.reason)
        };
        if let Some(o) = self.by_key.get(ALL_TARGETS).filter(|o| o.active(now_ms)) {
            return Some(format!("overridden: every target paused {}", said(o)));
        }
        let o = self.by_key.get(&d.target).filter(|o| o.active(now_ms))?;
        match o.mode {
            OverrideMode::Pause => Some(format!("overridden: `{}` paused {}", d.target, said(o))),
            OverrideMode::Pin if d.action == DecisionAction::Scale => Some(format!(
                "overridden: `{}` pinned at {} replicas {}",
                d.target,
                o.replicas.unwrap_or_default(),
                said(o)
            )),
            OverrideMode::Pin => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(target: &str, mode: OverrideMode, until: Option<i64>) -> Override {
        Override {
            target: target.into(),
            mode,
            replicas: (mode == OverrideMode::Pin).then_some(5),
            reason: "incident 42".into(),
            by: "ana".into(),
            at: 0,
            until,
        }
    }

    #[test]
    fn pause_pin_resume_expire_and_unreadable() {
        let mut d = crate::testing::scale("d", "checkout", 2, 4);
        let mut v = Overrides::default();
        assert_eq!(v.stops(&d, 1), None);
        v.apply(
            "checkout",
            Some(o("checkout", OverrideMode::Pause, Some(1_000))),
        );
        assert_eq!(
            v.stops(&d, 1).unwrap(),
            "overridden: `checkout` paused by ana at 1970-01-01T00:00:00Z, until \
             1970-01-01T00:00:01Z: incident 42"
        );
        assert_eq!(v.stops(&d, 1_000), None, "expired");
        v.apply("checkout", Some(o("checkout", OverrideMode::Pin, None)));
        assert!(v.stops(&d, 1).unwrap().contains("pinned at 5 replicas"));
        d.action = DecisionAction::Rollback;
        assert_eq!(v.stops(&d, 1), None, "a pin holds replicas only");
        v.apply("checkout", None);
        assert_eq!(v.active(1).count(), 0, "resumed");
        v.apply(ALL_TARGETS, Some(o(ALL_TARGETS, OverrideMode::Pause, None)));
        assert!(v
            .stops(&d, 1)
            .unwrap()
            .starts_with("overridden: every target paused"));
        v.apply(ALL_TARGETS, None);
        v.apply_unreadable(Some("checkout"), "expected value", 0);
        assert!(v.stops(&d, 1).unwrap().contains("an unreadable override"));
        v.apply_unreadable(None, "no key", 0);
        let mut other = crate::testing::scale("e", "cart", 1, 2);
        other.action = DecisionAction::Scale;
        assert!(v
            .stops(&other, 1)
            .unwrap()
            .starts_with("overridden: every target"));
    }
}
