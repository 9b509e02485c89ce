//! Decisions for the crate's unit tests.

use apo_schemas::decision::{Decision, DecisionAction};

/// An unsigned scale decision `id` of `target` from `from` to `to`, on the window [0, 60 s),
/// expiring at 120 s.
pub fn scale(id: &str, target: &str, from: u32, to: u32) -> Decision {
    Decision {
        id: id.into(),
        target: target.into(),
        action: DecisionAction::Scale,
        rule: "hpa".into(),
        replicas_from: Some(from),
        replicas_to: Some(to),
        circuit: None,
        tune: None,
        reason: "r".into(),
        evidence: vec![],
        window_seconds: 60,
        window_start: 0,
        window_end: 60_000,
        issued_at: 60_000,
        expires_at: 120_000,
        revision: 1,
        key_id: String::new(),
        signature: String::new(),
    }
}
