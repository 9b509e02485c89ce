//! Decisions for tests: this crate's, the sim's and the integration tests'.

use apo_schemas::decision::{Decision, DecisionAction, TuneChange};

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

/// An unsigned scale decision like [`scale`], on the minute before now and valid for an hour.
pub fn scale_now(id: &str, target: &str, from: u32, to: u32) -> Decision {
    let now = apo_core::clock::now_ms();
    let mut d = scale(id, target, from, to);
    d.window_start = now - 60_000;
    d.window_end = now;
    d.issued_at = now;
    d.expires_at = now + 3_600_000;
    d
}

/// An unsigned tune decision `id` of `target`'s pool size (`db.client.connection.max`) from
/// `from` to `to`, on the window of [`scale`].
pub fn tune(id: &str, target: &str, from: f64, to: f64) -> Decision {
    let mut d = scale(id, target, 1, 1);
    d.action = DecisionAction::Tune;
    (d.replicas_from, d.replicas_to) = (None, None);
    d.tune = Some(TuneChange {
        setting: "db.client.connection.max".into(),
        from: Some(from),
        to,
    });
    d
}
