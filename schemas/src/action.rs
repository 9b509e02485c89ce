//! The audit record of `apo.actions` (DESIGN.md §2): what an actuator did about a decision, by
//! whom, when, and how it went. The models read it back: an alert on a target shortly after a
//! decision was carried out there is explained by it (suppressed, not paged).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SchemaError;

/// How carrying out a decision went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionOutcome {
    /// Done: the target changed (scaled, tuned, circuit opened, rolled back).
    Succeeded,
    /// Tried and failed: the target may be unchanged or half changed.
    Failed,
    /// Refused by the safety policy; nothing was done.
    Rejected,
    /// Logged only (dry run); nothing was done.
    DryRun,
    /// A later record (action `verify`): the windows after the action were no worse than
    /// those before it, by the target's `verify` settings.
    Verified,
    /// A later record (action `verify`): the windows after the action were worse, and the
    /// action was undone by its inverse through the same executor.
    Reverted,
    /// A later record (action `verify`): the effect could not be judged (no windows before
    /// or after it in time), so nothing was undone.
    Unverified,
}

impl ActionOutcome {
    /// Whether the target was changed (what can explain an anomaly after it). A failed action
    /// may have changed part of it: it counts.
    pub fn changed_target(self) -> bool {
        matches!(
            self,
            ActionOutcome::Succeeded | ActionOutcome::Failed | ActionOutcome::Reverted
        )
    }

    /// Its name in records (`succeeded`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Succeeded => "succeeded",
            ActionOutcome::Failed => "failed",
            ActionOutcome::Rejected => "rejected",
            ActionOutcome::DryRun => "dry_run",
            ActionOutcome::Verified => "verified",
            ActionOutcome::Reverted => "reverted",
            ActionOutcome::Unverified => "unverified",
        }
    }
}

/// One action carried out (or not) on a target; key = target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRecord {
    /// The decision this carries out.
    pub decision_id: String,
    /// The service acted on (the `service` of its metrics and spans).
    pub target: String,
    /// What was done: `scale`, `tune`, `circuit`, `rollback`, or an executor's own name;
    /// `verify` for the later record of an action's verified effect (and its revert).
    pub action: String,
    /// When it took effect, ms since the Unix epoch.
    pub executed_at: i64,
    /// Who or what carried it out (an executor, or a person for manual actions).
    pub actor: String,
    /// What came of it.
    pub outcome: ActionOutcome,
    /// Free text: the executor's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ActionRecord {
    /// Decodes and validates one `apo.actions` message.
    pub fn decode(payload: Option<&[u8]>) -> Result<Self, SchemaError> {
        let bytes = match payload {
            Some(b) if !b.is_empty() => b,
            _ => return Err(SchemaError::Empty),
        };
        let r: ActionRecord =
            serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(e.to_string()))?;
        if r.target.trim().is_empty() {
            return Err(SchemaError::Invalid {
                field: "target",
                reason: "empty".into(),
            });
        }
        if r.executed_at <= 0 {
            return Err(SchemaError::Invalid {
                field: "executed_at",
                reason: format!("{} is not a time in ms since the epoch", r.executed_at),
            });
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_an_action_and_names_what_is_wrong() {
        let ok = br#"{"decision_id":"d1","target":"checkout","action":"rollback","executed_at":1700000000000,"actor":"k8s","outcome":"succeeded"}"#;
        let r = ActionRecord::decode(Some(ok)).unwrap();
        assert_eq!(r.target, "checkout");
        assert!(r.outcome.changed_target());
        assert!(!ActionOutcome::DryRun.changed_target());
        assert!(ActionOutcome::Reverted.changed_target());
        assert!(!ActionOutcome::Verified.changed_target());
        for o in [
            ActionOutcome::Verified,
            ActionOutcome::Reverted,
            ActionOutcome::Unverified,
        ] {
            let text = serde_json::to_string(&o).unwrap();
            assert_eq!(text, format!("\"{}\"", o.as_str()));
        }

        let e = ActionRecord::decode(Some(b"{")).unwrap_err();
        assert_eq!(e.reason(), "invalid_json");
        let e = ActionRecord::decode(None).unwrap_err();
        assert_eq!(e.reason(), "empty");
        let no_target = br#"{"decision_id":"d1","target":" ","action":"scale","executed_at":1,"actor":"a","outcome":"failed"}"#;
        let e = ActionRecord::decode(Some(no_target)).unwrap_err();
        assert!(e.to_string().contains("target"), "{e}");
        let bad_time = br#"{"decision_id":"d1","target":"x","action":"scale","executed_at":0,"actor":"a","outcome":"failed"}"#;
        let e = ActionRecord::decode(Some(bad_time)).unwrap_err();
        assert!(e.to_string().contains("executed_at"), "{e}");
        let bad_outcome = br#"{"decision_id":"d1","target":"x","action":"scale","executed_at":1,"actor":"a","outcome":"maybe"}"#;
        assert_eq!(
            ActionRecord::decode(Some(bad_outcome))
                .unwrap_err()
                .reason(),
            "invalid_json"
        );
    }
}
