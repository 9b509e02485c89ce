//! The decision record of `apo.decisions` (table `decisions`): what the planner asks an
//! actuator to do to a target, why (the rule and the numbers it came from), until when, and
//! signed so that an actuator acts only on decisions its keys vouch for.
//!
//! - **Id**: deterministic, from the rule, the target, the window it was decided on, the
//!   action and its parameters ([`Decision::derive_id`]): a replay issues the same ids, so an
//!   actuator that already executed one recognises it.
//! - **Signature**: HMAC-SHA256, hex, over the record's canonical bytes: its JSON with
//!   `signature` empty, fields in declaration order (serde_json writes them so, and writes
//!   every f64 in its shortest round-trip form, so a decoded record re-encodes to the same
//!   bytes). `key_id` names the key, so keys can rotate: an actuator holds several.

use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::SchemaError;

/// What a decision asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionAction {
    /// Change the number of replicas (`replicas_from` → `replicas_to`).
    Scale,
    /// Change a setting (pool size, cache, GC).
    Tune,
    /// Open, half-open or close a circuit on an edge.
    Circuit,
    /// Roll a canary back.
    Rollback,
}

impl DecisionAction {
    /// Its name in records (`scale`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionAction::Scale => "scale",
            DecisionAction::Tune => "tune",
            DecisionAction::Circuit => "circuit",
            DecisionAction::Rollback => "rollback",
        }
    }
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls are let through.
    Closed,
    /// Calls fail fast, not sent.
    Open,
    /// A trial share of calls is let through.
    HalfOpen,
}

impl CircuitState {
    /// Its name in records.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// What a circuit decision changes: the breaker on the target's (the client's) calls to
/// `peer` (the server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitChange {
    /// The server the calls go to.
    pub peer: String,
    /// The state the breaker is to take.
    pub state: CircuitState,
    /// Open: how long before it is half-opened, ms (the planner decides that too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_for_ms: Option<i64>,
}

/// What a tune decision changes: one setting of the target, named as the OpenTelemetry
/// metric that reports it where there is one (`db.client.connection.max`: a connection
/// pool's size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TuneChange {
    /// The setting.
    pub setting: String,
    /// Its value as the rule saw it (absent when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<f64>,
    /// The value asked for.
    pub to: f64,
}

/// One number a decision came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The series: metric name (of the decision's target service).
    pub metric: String,
    /// Which statistic of the window (`mean`, `p95`, …).
    pub statistic: String,
    /// The window's size, seconds.
    pub window_seconds: u32,
    /// The window's inclusive start, ms since the Unix epoch.
    pub window_start: i64,
    /// The value observed.
    pub value: f64,
    /// What the rule aims for, when it has a target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
}

/// A decision; key = target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Deterministic id (32 hex digits): same input, same id, across replays.
    pub id: String,
    /// The service acted on (the `service` of its metrics and spans).
    pub target: String,
    /// What to do.
    pub action: DecisionAction,
    /// The rule that fired (`hpa`, …).
    pub rule: String,
    /// Scale: the replicas the rule saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_from: Option<u32>,
    /// Scale: the replicas asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_to: Option<u32>,
    /// Circuit: the breaker of the target's calls to `peer` and the state it is to take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit: Option<CircuitChange>,
    /// Tune: the setting and the values from and to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<TuneChange>,
    /// Why, in the rule's words (for the HPA rule: its condition reason, then a sentence).
    pub reason: String,
    /// The numbers it came from, each from a closed window.
    pub evidence: Vec<Evidence>,
    /// The size of the window it was decided on, seconds.
    pub window_seconds: u32,
    /// That window's inclusive start, ms since the Unix epoch.
    pub window_start: i64,
    /// That window's exclusive end, ms since the Unix epoch.
    pub window_end: i64,
    /// When it was issued, event time (the window's end), ms since the Unix epoch.
    pub issued_at: i64,
    /// After this (ms since the Unix epoch, by the actuator's clock) it must not be executed.
    pub expires_at: i64,
    /// 1 (decisions are made on closed windows once; kept for the table's shape).
    pub revision: u32,
    /// The id of the key that signed it.
    pub key_id: String,
    /// HMAC-SHA256 of the canonical bytes, hex.
    pub signature: String,
}

/// A key that signs and verifies decisions.
#[derive(Clone)]
pub struct SigningKey {
    /// Its id, written into every decision it signs.
    pub id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("id", &self.id).finish()
    }
}

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    /// Too short to be a secret.
    #[error(
        "a decision key must be at least {min} bytes (got {got}); e.g. `openssl rand -hex 32`"
    )]
    TooShort {
        /// The minimum.
        min: usize,
        /// What it had.
        got: usize,
    },
    /// The key file could not be read.
    #[error("reading the decision key {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// Neither a file nor the environment variable gives a key.
    #[error("no decision key: give a key file or set {0}")]
    Missing(&'static str),
    /// The id is empty or has characters other than letters, digits, `-`, `_`, `.`.
    #[error("a decision key id must be letters, digits, `-`, `_` or `.` (got `{0}`)")]
    BadId(String),
}

/// Why a decision is not trusted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    /// No signature.
    #[error("unsigned")]
    Unsigned,
    /// Signed by a key this side does not hold.
    #[error("signed with key `{0}`, which this actuator does not hold")]
    UnknownKey(String),
    /// The signature does not match the record: forged or altered.
    #[error("bad signature (forged or altered) for key `{0}`")]
    BadSignature(String),
}

/// The environment variable that holds a decision key's secret when no file is given.
pub const KEY_ENV: &str = "APO_DECISION_KEY";

/// The shortest secret accepted, bytes.
pub const MIN_SECRET_BYTES: usize = 16;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl SigningKey {
    /// A key with `secret` (surrounding whitespace trimmed, as a key file's newline); `id`
    /// defaults to `k-` and the first 8 hex digits of the secret's SHA-256.
    pub fn new(id: Option<&str>, secret: &[u8]) -> Result<Self, KeyError> {
        let secret = secret.trim_ascii().to_vec();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort {
                min: MIN_SECRET_BYTES,
                got: secret.len(),
            });
        }
        let id = match id {
            Some(id) => {
                let ok = !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(KeyError::BadId(id.to_string()));
                }
                id.to_string()
            }
            None => format!("k-{}", &hex(&Sha256::digest(&secret))[..8]),
        };
        Ok(SigningKey { id, secret })
    }

    /// The key in `file`, else the secret in the environment variable [`KEY_ENV`].
    pub fn load(file: Option<&std::path::Path>, id: Option<&str>) -> Result<Self, KeyError> {
        match file {
            Some(path) => {
                let secret = std::fs::read(path).map_err(|e| KeyError::Read {
                    path: path.display().to_string(),
                    error: e.to_string(),
                })?;
                SigningKey::new(id, &secret)
            }
            None => match std::env::var(KEY_ENV) {
                Ok(secret) if !secret.trim().is_empty() => SigningKey::new(id, secret.as_bytes()),
                _ => Err(KeyError::Missing(KEY_ENV)),
            },
        }
    }

    /// HMAC-SHA256 of `bytes` with this key, hex (what a webhook's signature header carries).
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        hex(&self.mac(bytes).finalize().into_bytes())
    }

    fn mac(&self, bytes: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(bytes);
        mac
    }
}

impl Decision {
    /// The deterministic id of a decision of `rule` on `target`, decided on the window of
    /// `window_seconds` starting at `window_start`, asking for `action` with `params`.
    pub fn derive_id(
        rule: &str,
        target: &str,
        window_seconds: u32,
        window_start: i64,
        action: DecisionAction,
        params: &str,
    ) -> String {
        let mut h = Sha256::new();
        for part in [
            rule,
            target,
            &window_seconds.to_string(),
            &window_start.to_string(),
            action.as_str(),
            params,
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        hex(&h.finalize())[..32].to_string()
    }

    /// The Kafka key: the target, so one target's decisions stay in order on one partition.
    pub fn key(&self) -> String {
        self.target.clone()
    }

    /// The bytes the signature covers: the record's JSON with `signature` empty.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let unsigned = Decision {
            signature: String::new(),
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).unwrap_or_default()
    }

    /// Signs it with `key` (sets `key_id` and `signature`).
    pub fn sign(&mut self, key: &SigningKey) {
        self.key_id = key.id.clone();
        self.signature = String::new();
        let tag = key.mac(&self.canonical_bytes()).finalize().into_bytes();
        self.signature = hex(&tag);
    }

    /// Checks the signature against the key of its `key_id` among `keys` (in constant time).
    pub fn verify(&self, keys: &[SigningKey]) -> Result<(), VerifyError> {
        if self.signature.is_empty() {
            return Err(VerifyError::Unsigned);
        }
        let key = keys
            .iter()
            .find(|k| k.id == self.key_id)
            .ok_or_else(|| VerifyError::UnknownKey(self.key_id.clone()))?;
        let tag = decode_hex(&self.signature)
            .ok_or_else(|| VerifyError::BadSignature(self.key_id.clone()))?;
        key.mac(&self.canonical_bytes())
            .verify_slice(&tag)
            .map_err(|_| VerifyError::BadSignature(self.key_id.clone()))
    }

    /// Decodes one `apo.decisions` message (not verified: see [`Decision::verify`]).
    pub fn decode(payload: Option<&[u8]>) -> Result<Self, SchemaError> {
        let bytes = match payload {
            Some(b) if !b.is_empty() => b,
            _ => return Err(SchemaError::Empty),
        };
        let d: Decision =
            serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(e.to_string()))?;
        if d.id.trim().is_empty() {
            return Err(SchemaError::Invalid {
                field: "id",
                reason: "empty".into(),
            });
        }
        if d.target.trim().is_empty() {
            return Err(SchemaError::Invalid {
                field: "target",
                reason: "empty".into(),
            });
        }
        Ok(d)
    }

    /// The evidence as JSON text (the Parquet column).
    pub fn evidence_text(&self) -> String {
        serde_json::to_string(&self.evidence).unwrap_or_default()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision() -> Decision {
        Decision {
            id: Decision::derive_id(
                "hpa",
                "checkout",
                60,
                1_800_000_000_000,
                DecisionAction::Scale,
                "50->60",
            ),
            target: "checkout".into(),
            action: DecisionAction::Scale,
            rule: "hpa".into(),
            replicas_from: Some(50),
            replicas_to: Some(60),
            circuit: None,
            tune: None,
            reason: "DesiredWithinRange: 90 % against 75 %".into(),
            evidence: vec![Evidence {
                metric: "cpu.utilization".into(),
                statistic: "mean".into(),
                window_seconds: 60,
                window_start: 1_800_000_000_000,
                value: 0.9,
                target: Some(0.75),
            }],
            window_seconds: 60,
            window_start: 1_800_000_000_000,
            window_end: 1_800_000_060_000,
            issued_at: 1_800_000_060_000,
            expires_at: 1_800_000_360_000,
            revision: 1,
            key_id: String::new(),
            signature: String::new(),
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?" (the key is
        // shorter than we accept: built directly)
        let key = SigningKey {
            id: "t".into(),
            secret: b"Jefe".to_vec(),
        };
        let tag = key
            .mac(b"what do ya want for nothing?")
            .finalize()
            .into_bytes();
        assert_eq!(
            hex(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            key.sign_bytes(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signed_decisions_verify_and_survive_a_round_trip() {
        let key = SigningKey::new(Some("2026-12"), b"0123456789abcdef0123456789abcdef").unwrap();
        let mut d = decision();
        d.sign(&key);
        assert_eq!(d.key_id, "2026-12");
        assert_eq!(d.signature.len(), 64);
        assert_eq!(d.verify(std::slice::from_ref(&key)), Ok(()));
        let bytes = serde_json::to_vec(&d).unwrap();
        let back = Decision::decode(Some(&bytes)).unwrap();
        assert_eq!(back.verify(std::slice::from_ref(&key)), Ok(()));
        // rotation: the old key among others still verifies
        let other = SigningKey::new(None, b"another secret, 32 bytes long!!!").unwrap();
        assert_eq!(d.verify(&[other.clone(), key.clone()]), Ok(()));
        assert!(
            other.id.starts_with("k-") && other.id.len() == 10,
            "{}",
            other.id
        );
    }

    #[test]
    fn every_float_survives_the_round_trip_its_signature_covers() {
        // The signature covers the record as serialised again on the actuator's side: each
        // evidence value must parse back to the very same f64 (serde_json's float_roundtrip;
        // without it about one value in a few thousand came back one ulp off and its decision
        // was rejected as forged).
        let key = SigningKey::new(None, b"0123456789abcdef0123456789abcdef").unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut bad = 0;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut d = decision();
            // means of windows: sums of a few hundred values over their count
            d.evidence[0].value = (x % 1_000_000_007) as f64 / 3.0 / ((x >> 40) as f64 + 1.0);
            d.evidence[0].target = Some(f64::from_bits(x >> 2));
            d.sign(&key);
            let back = Decision::decode(Some(&serde_json::to_vec(&d).unwrap())).unwrap();
            if back.verify(std::slice::from_ref(&key)).is_err() {
                bad += 1;
            }
        }
        assert_eq!(bad, 0, "decisions whose signature broke in the round trip");
    }

    #[test]
    fn forged_altered_unsigned_and_unknown_keys_fail() {
        let key = SigningKey::new(Some("a"), b"0123456789abcdef0123456789abcdef").unwrap();
        let mut d = decision();
        assert_eq!(
            d.verify(std::slice::from_ref(&key)),
            Err(VerifyError::Unsigned)
        );
        d.sign(&key);
        let mut altered = d.clone();
        altered.replicas_to = Some(600);
        assert_eq!(
            altered.verify(std::slice::from_ref(&key)),
            Err(VerifyError::BadSignature("a".into()))
        );
        let forger = SigningKey::new(Some("a"), b"not the real secret at all......").unwrap();
        let mut forged = decision();
        forged.sign(&forger);
        assert_eq!(
            forged.verify(std::slice::from_ref(&key)),
            Err(VerifyError::BadSignature("a".into()))
        );
        let stranger = SigningKey::new(Some("b"), b"0123456789abcdef0123456789abcdef").unwrap();
        let mut unknown = decision();
        unknown.sign(&stranger);
        assert_eq!(
            unknown.verify(std::slice::from_ref(&key)),
            Err(VerifyError::UnknownKey("b".into()))
        );
        let mut garbage = d.clone();
        garbage.signature = "zz".into();
        assert!(garbage.verify(std::slice::from_ref(&key)).is_err());
    }

    #[test]
    fn ids_are_deterministic_and_keys_are_checked() {
        let a = Decision::derive_id("hpa", "x", 60, 0, DecisionAction::Scale, "1->2");
        assert_eq!(
            a,
            Decision::derive_id("hpa", "x", 60, 0, DecisionAction::Scale, "1->2")
        );
        assert_ne!(
            a,
            Decision::derive_id("hpa", "x", 60, 60_000, DecisionAction::Scale, "1->2")
        );
        assert_ne!(
            a,
            Decision::derive_id("hpa", "x", 60, 0, DecisionAction::Scale, "1->3")
        );
        assert_eq!(a.len(), 32);
        assert!(matches!(
            SigningKey::new(None, b"short"),
            Err(KeyError::TooShort { .. })
        ));
        assert!(matches!(
            SigningKey::new(Some("has space"), b"0123456789abcdef"),
            Err(KeyError::BadId(_))
        ));
    }
}
