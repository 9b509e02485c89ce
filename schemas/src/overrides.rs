//! The manual override of `apo.overrides` (a compacted topic, key = target, `*` for every
//! target): a person stops the actuators from acting on a target (`pause`) or holds its
//! replicas (`pin`), until they resume it (a tombstone: an empty message under the key) or the
//! override's `until` passes. Written by `apo override`, read by `apo actuate`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SchemaError;

/// The key of an override of every target.
pub const ALL_TARGETS: &str = "*";

/// What an override does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverrideMode {
    /// No decision on the target is carried out.
    Pause,
    /// The target's replicas stay at `replicas`: no scale decision is carried out.
    Pin,
}

impl OverrideMode {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideMode::Pause => "pause",
            OverrideMode::Pin => "pin",
        }
    }
}

/// One override; key = target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The target (a decision's `target`), or `*` for every target.
    pub target: String,
    /// What it does.
    pub mode: OverrideMode,
    /// Pin: the replicas held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Why (shown in every decision it stops).
    pub reason: String,
    /// Who set it.
    pub by: String,
    /// When, ms since the Unix epoch.
    pub at: i64,
    /// When it ends by itself, ms since the Unix epoch (absent: until resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

impl Override {
    /// Decodes and checks one message's payload (`None` for a tombstone: the key resumed).
    pub fn decode(payload: Option<&[u8]>) -> Result<Option<Self>, SchemaError> {
        let bytes = match payload {
            Some(b) if !b.is_empty() => b,
            _ => return Ok(None),
        };
        let o: Override =
            serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(e.to_string()))?;
        if o.target.trim().is_empty() {
            return Err(SchemaError::Invalid {
                field: "target",
                reason: "empty".into(),
            });
        }
        if o.mode == OverrideMode::Pin && o.replicas.is_none() {
            return Err(SchemaError::Invalid {
                field: "replicas",
                reason: "a pin needs the replicas it holds".into(),
            });
        }
        Ok(Some(o))
    }

    /// Whether it is in force at `now_ms`.
    pub fn active(&self, now_ms: i64) -> bool {
        self.until.is_none_or(|u| now_ms < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_tombstones_and_bad_pins() {
        assert_eq!(Override::decode(None).unwrap(), None);
        assert_eq!(Override::decode(Some(b"")).unwrap(), None);
        let pin = br#"{"target":"checkout","mode":"pin","replicas":5,"reason":"r","by":"ana","at":1,"until":10}"#;
        let o = Override::decode(Some(pin)).unwrap().unwrap();
        assert_eq!((o.mode, o.replicas), (OverrideMode::Pin, Some(5)));
        assert!(o.active(9) && !o.active(10));
        let bad = br#"{"target":"checkout","mode":"pin","reason":"r","by":"ana","at":1}"#;
        assert!(Override::decode(Some(bad))
            .unwrap_err()
            .to_string()
            .contains("replicas"));
        assert!(Override::decode(Some(b"{")).is_err());
    }
}
