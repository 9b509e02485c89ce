//! The decision side's Parquet tables answer SQL: the planner's `decisions` (through the
//! Parquet sink every table uses) and the actuator's `actions` (one file per audit record,
//! named after it, so writing it again after a crash keeps one row).

use std::time::Duration;

use apo_core::RowSink;
use apo_schemas::action::{ActionOutcome, ActionRecord};
use apo_schemas::decision::{
    CircuitChange, CircuitState, Decision, DecisionAction, Evidence, SigningKey,
};
use apo_sinks::parquet::{write_one, ParquetStatsSink};
use apo_sinks::sql::{query, render, OutputFormat};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn decision(id: &str, start: i64, action: DecisionAction) -> Decision {
    let mut d = Decision {
        id: id.into(),
        target: "checkout".into(),
        action,
        rule: "hpa".into(),
        replicas_from: None,
        replicas_to: None,
        circuit: None,
        tune: None,
        reason: "why".into(),
        evidence: vec![Evidence {
            metric: "cpu".into(),
            statistic: "mean".into(),
            window_seconds: 60,
            window_start: start,
            value: 0.5,
            target: Some(0.25),
        }],
        window_seconds: 60,
        window_start: start,
        window_end: start + 60_000,
        issued_at: start + 60_000,
        expires_at: start + 360_000,
        revision: 1,
        key_id: String::new(),
        signature: String::new(),
    };
    d.sign(&SigningKey::new(Some("k1"), b"0123456789abcdef0123").unwrap());
    d
}

/// `q` over `dir`'s tables, as CSV.
async fn sql(dir: &std::path::Path, q: &str) -> String {
    render(&query(dir, q).await.unwrap(), OutputFormat::Csv).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn decisions_and_actions_answer_sql_with_nulls_where_a_field_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let start = now_ms() / 60_000 * 60_000 - 600_000;
    let mut scale = decision("d1", start, DecisionAction::Scale);
    scale.replicas_from = Some(4);
    scale.replicas_to = Some(8);
    scale.sign(&SigningKey::new(Some("k1"), b"0123456789abcdef0123").unwrap());
    let mut circuit = decision("d2", start + 60_000, DecisionAction::Circuit);
    circuit.rule = "circuit".into();
    circuit.circuit = Some(CircuitChange {
        peer: "payments".into(),
        state: CircuitState::Open,
        open_for_ms: Some(30_000),
    });
    let mut sink =
        ParquetStatsSink::<Decision>::new(dir.path(), "p0-w0", Duration::from_secs(60)).unwrap();
    sink.write(&[scale.clone(), circuit]).unwrap();
    assert_eq!(sink.poll_durable(true).unwrap(), 1);

    let got = sql(
        dir.path(),
        "SELECT id, action, rule, replicas_from, replicas_to, circuit_peer, circuit_state, \
         circuit_open_for_ms, key_id, evidence FROM decisions ORDER BY id",
    )
    .await;
    let evidence = format!(
        "\"[{{\"\"metric\"\":\"\"cpu\"\",\"\"statistic\"\":\"\"mean\"\",\"\"window_seconds\"\":60,\
         \"\"window_start\"\":{start},\"\"value\"\":0.5,\"\"target\"\":0.25}}]\""
    );
    let want = format!(
        "id,action,rule,replicas_from,replicas_to,circuit_peer,circuit_state,circuit_open_for_ms,key_id,evidence\n\
         d1,scale,hpa,4,8,,,,k1,{evidence}\n\
         d2,circuit,circuit,,,payments,open,30000,k1,{}\n",
        evidence.replace(&start.to_string(), &(start + 60_000).to_string())
    );
    assert_eq!(got, want);
    // Nulls are nulls, not empty texts or zeros.
    let q = "SELECT count(*) AS n FROM decisions WHERE replicas_to IS NULL \
             AND circuit_peer IS NOT NULL";
    let nulls = sql(dir.path(), q).await;
    assert_eq!(nulls, "n\n1\n");
    // The signature is kept: the row verifies as the record did.
    let sig = sql(
        dir.path(),
        "SELECT signature FROM decisions WHERE id = 'd1'",
    )
    .await;
    assert_eq!(sig, format!("signature\n{}\n", scale.signature));

    let executed = now_ms();
    let done = ActionRecord {
        decision_id: "d1".into(),
        target: "checkout".into(),
        action: "scale".into(),
        executed_at: executed,
        actor: "log".into(),
        outcome: ActionOutcome::Succeeded,
        detail: Some("scaled 4 -> 8".into()),
    };
    let verified = ActionRecord {
        action: "verify".into(),
        outcome: ActionOutcome::Verified,
        detail: None,
        executed_at: executed + 1,
        ..done.clone()
    };
    let path = write_one(dir.path(), "d1-first", &done).unwrap();
    assert!(
        path.starts_with(dir.path().join("actions")),
        "{}",
        path.display()
    );
    // A crash after the write and before the claim: the restart writes it again.
    write_one(dir.path(), "d1-first", &done).unwrap();
    write_one(dir.path(), "d1-verify", &verified).unwrap();
    let got = sql(
        dir.path(),
        "SELECT decision_id, action, actor, outcome, detail, \
         CAST(executed_at AS BIGINT) AS at FROM actions ORDER BY at",
    )
    .await;
    assert_eq!(
        got,
        format!(
            "decision_id,action,actor,outcome,detail,at\n\
             d1,scale,log,succeeded,scaled 4 -> 8,{executed}\n\
             d1,verify,log,verified,,{}\n",
            executed + 1
        )
    );
    let nulls = sql(
        dir.path(),
        "SELECT count(*) AS n FROM actions WHERE detail IS NULL",
    )
    .await;
    assert_eq!(nulls, "n\n1\n");
}
