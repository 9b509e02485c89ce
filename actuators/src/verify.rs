//! Whether a decision may be acted on at all: signed by a key this actuator holds, unaltered,
//! not expired by the actuator's clock. (Replays are the claims' to catch; the policy decides
//! what may be done.)

use std::path::Path;

use apo_schemas::decision::{Decision, SigningKey, VerifyError};

use crate::ActuateError;

/// Why a decision was refused; its text is the audit record's detail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// The message is not a decision.
    #[error("rejected: unreadable: {0}")]
    Unreadable(String),
    /// Its signature does not hold.
    #[error("rejected: {0}")]
    Signature(#[from] VerifyError),
    /// Too late to act on.
    #[error("rejected: expired at {expires_at} ms, {late_ms} ms before it was read")]
    Expired {
        /// When it expired.
        expires_at: i64,
        /// How long before now.
        late_ms: i64,
    },
    /// The same decision was received before (another message with the same id).
    #[error(
        "rejected: replayed (decision already received at partition {partition} offset {offset})"
    )]
    Replayed {
        /// Where it was first received.
        partition: i32,
        /// Its offset there.
        offset: i64,
    },
    /// A manual override stops it (or the overrides could not be read).
    #[error("rejected: {0}")]
    Overridden(String),
    /// The policy does not allow it.
    #[error("rejected: out of policy: {0}")]
    Policy(String),
}

/// The keys of `--decision-key-file` (`PATH` or `ID=PATH` each), else the one in
/// APO_DECISION_KEY.
pub fn keys_from(specs: &[String]) -> Result<Vec<SigningKey>, ActuateError> {
    let bad = |e: apo_schemas::decision::KeyError| ActuateError::Config(e.to_string());
    if specs.is_empty() {
        return Ok(vec![SigningKey::load(None, None).map_err(bad)?]);
    }
    specs
        .iter()
        .map(|s| {
            let (id, path) = match s.split_once('=') {
                Some((id, path)) => (Some(id), path),
                None => (None, s.as_str()),
            };
            SigningKey::load(Some(Path::new(path)), id).map_err(bad)
        })
        .collect()
}

/// Checks the signature against `keys`, then the expiry against `now_ms`.
pub fn check(d: &Decision, keys: &[SigningKey], now_ms: i64) -> Result<(), Rejection> {
    d.verify(keys)?;
    if now_ms > d.expires_at {
        return Err(Rejection::Expired {
            expires_at: d.expires_at,
            late_ms: now_ms - d.expires_at,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &SigningKey, expires_at: i64) -> Decision {
        let mut d = crate::testing::scale("d1", "checkout", 2, 4);
        d.expires_at = expires_at;
        d.sign(key);
        d
    }

    #[test]
    fn signature_then_expiry() {
        let key = SigningKey::new(Some("a"), b"0123456789abcdef0123456789abcdef").unwrap();
        let keys = std::slice::from_ref(&key);
        assert_eq!(check(&signed(&key, 1_000), keys, 1_000), Ok(()));
        assert_eq!(
            check(&signed(&key, 1_000), keys, 1_500),
            Err(Rejection::Expired {
                expires_at: 1_000,
                late_ms: 500
            })
        );
        let mut forged = signed(&key, 1_000);
        forged.replicas_to = Some(400);
        assert!(matches!(
            check(&forged, keys, 0),
            Err(Rejection::Signature(VerifyError::BadSignature(_)))
        ));
        let mut unsigned = signed(&key, 1_000);
        unsigned.signature.clear();
        assert_eq!(
            check(&unsigned, keys, 0).unwrap_err().to_string(),
            "rejected: unsigned"
        );
    }

    #[test]
    fn keys_from_files_with_and_without_ids() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.key");
        std::fs::write(&a, "0123456789abcdef0123456789abcdef\n").unwrap();
        let keys = keys_from(&[format!("old={}", a.display()), a.display().to_string()]).unwrap();
        assert_eq!(keys[0].id, "old");
        assert!(keys[1].id.starts_with("k-"));
        let e = keys_from(&["/nonexistent/key".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/key"), "{e}");
    }
}
