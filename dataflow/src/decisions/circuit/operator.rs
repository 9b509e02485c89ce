//! The circuit operator: the trace pipeline's closed edge windows in, circuit decisions out.
//!
//! Every edge window (first revisions) goes to one worker: the breakers of the configured
//! edges are stepped by their own windows, in window order, and every batch's time moves all
//! breakers on (an open breaker's edge has no windows of its own: it half-opens as the mesh's
//! other edges carry event time past its opening). Edges are few per window (one row per
//! caller–callee pair), so one worker holds them all. The same windows give the same
//! decisions, with the same ids.

use std::collections::BTreeMap;
use std::sync::Arc;

use apo_schemas::decision::{CircuitChange, Decision, DecisionAction, Evidence, SigningKey};
use apo_schemas::service_map::ServiceMapEdge;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::StreamVec;

use super::breaker::{Breaker, Change, CircuitEdge};
use crate::decisions::config::PlannerConfig;
use crate::decisions::planner::{issue, Draft};
use crate::engine::checkpoint::OperatorCheckpoint;
use crate::ops::stash::{applied_before, next_passed, stash_input, Stash};

/// The circuit rule's name in decisions.
pub const CIRCUIT_RULE: &str = "circuit";

/// The circuit decisions of `config`'s `[[circuit]]` edges on the closed edge windows `edges`.
///
/// With a `checkpoint`, the breakers start from the restored ones and are deposited before the
/// first batch at or after an epoch's time.
pub fn circuit_operator<'s>(
    edges: StreamVec<'s, u64, ServiceMapEdge>,
    config: Arc<PlannerConfig>,
    key: SigningKey,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'s, u64, Decision> {
    let scope = edges.scope();
    let first = edges.filter(|e| e.revision == 1);
    let pact = Exchange::new(|_: &ServiceMapEdge| 0u64);
    first.unary_frontier(pact, "Circuits", move |_, info| {
        if let Some(c) = &checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        let mut stash: Stash<ServiceMapEdge> = Default::default();
        let mut breakers: Breakers = match checkpoint.as_ref().and_then(|c| c.restored()) {
            None => BTreeMap::new(),
            Some(bytes) => bincode::deserialize(bytes).unwrap_or_else(|e| {
                tracing::error!(error = %e, "circuit breakers in the checkpoint unreadable; starting closed");
                BTreeMap::new()
            }),
        };
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            loop {
                let upto = applied_before(&stash, frontier.frontier());
                if let Some(c) = checkpoint.as_mut() {
                    c.deposit_due(upto, |_| bincode::serialize(&breakers));
                }
                let Some((cap, rows)) = next_passed(&mut stash, frontier.frontier()) else {
                    break;
                };
                let decisions = decide(&config, &key, &mut breakers, rows);
                if !decisions.is_empty() {
                    output.session(&cap).give_iterator(decisions.into_iter());
                }
            }
        }
    })
}

/// Each configured edge's breaker, by (client, server).
type Breakers = BTreeMap<(String, String), Breaker>;

/// The decisions of one batch of closed edge windows.
fn decide(
    config: &PlannerConfig,
    key: &SigningKey,
    breakers: &mut Breakers,
    mut rows: Vec<ServiceMapEdge>,
) -> Vec<Decision> {
    rows.sort_by_key(|e| e.window_start);
    let mut out = Vec::new();
    for c in &config.circuit {
        let b = breakers
            .entry((c.client.clone(), c.server.clone()))
            .or_default();
        for w in rows
            .iter()
            .filter(|e| e.client == c.client && e.server == c.server)
        {
            if let Some(ch) = b.step(c, w) {
                out.push(decision(config, key, c, ch, w, true));
            }
        }
    }
    // event time moves every breaker on (an open one has no windows of its own)
    if let Some(latest) = rows.iter().max_by_key(|e| e.window_end) {
        for c in &config.circuit {
            if let Some(b) = breakers.get_mut(&(c.client.clone(), c.server.clone())) {
                if let Some(ch) = b.tick(c, latest.window_end) {
                    out.push(decision(config, key, c, ch, latest, false));
                }
            }
        }
    }
    out
}

/// The signed decision of `ch` on `c`'s breaker, decided on window `w` (the edge's own when
/// `own`, else the latest window of the batch that moved time on).
fn decision(
    config: &PlannerConfig,
    key: &SigningKey,
    c: &CircuitEdge,
    ch: Change,
    w: &ServiceMapEdge,
    own: bool,
) -> Decision {
    let evidence = if own {
        vec![
            ("calls", w.calls as f64),
            ("failed", w.failed as f64),
            ("latency_p99_ms", w.latency_p99_ms),
        ]
        .into_iter()
        .map(|(statistic, value)| Evidence {
            metric: format!("edge {} -> {}", c.client, c.server),
            statistic: statistic.into(),
            window_seconds: w.window_seconds,
            window_start: w.window_start,
            value,
            target: None,
        })
        .collect()
    } else {
        Vec::new()
    };
    issue(
        config,
        key,
        Draft {
            rule: CIRCUIT_RULE,
            target: &c.client,
            action: DecisionAction::Circuit,
            params: format!("{}:{}", c.server, ch.state.as_str()),
            replicas: (None, None),
            circuit: Some(CircuitChange {
                peer: c.server.clone(),
                state: ch.state,
                open_for_ms: ch.open_for_ms,
            }),
            tune: None,
            reason: format!(
                "Circuit{}: {} -> {}: {}",
                match ch.state {
                    apo_schemas::decision::CircuitState::Open => "Open",
                    apo_schemas::decision::CircuitState::HalfOpen => "HalfOpen",
                    apo_schemas::decision::CircuitState::Closed => "Closed",
                },
                c.client,
                c.server,
                ch.reason
            ),
            evidence,
            window: (w.window_start, w.window_end),
            window_seconds: w.window_seconds,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use apo_schemas::decision::CircuitState;

    fn w(client: &str, server: &str, s: i64, calls: u64, failed: u64) -> ServiceMapEdge {
        ServiceMapEdge {
            client: client.into(),
            server: server.into(),
            connection_type: String::new(),
            window_seconds: 10,
            window_start: s * 1000,
            window_end: (s + 10) * 1000,
            calls,
            failed,
            latency_mean_ms: 1.0,
            latency_p50_ms: 1.0,
            latency_p95_ms: 1.0,
            latency_p99_ms: 1.0,
            latency_max_ms: 1.0,
            server_latency_mean_ms: 1.0,
            server_latency_p50_ms: 1.0,
            server_latency_p95_ms: 1.0,
            server_latency_p99_ms: 1.0,
            server_latency_max_ms: 1.0,
            critical_path_ms: 0.0,
            relative_accuracy: 0.01,
            revision: 1,
        }
    }

    #[test]
    fn an_edge_opens_half_opens_on_the_meshs_time_and_closes() {
        let config = PlannerConfig::from_toml(
            "[[circuit]]\nclient = \"frontend\"\nserver = \"checkout\"\nbase_open = \"30s\"\n",
        )
        .unwrap();
        let key = SigningKey::new(Some("k"), b"0123456789abcdef0123456789abcdef").unwrap();
        let mut b = BTreeMap::new();
        let mut run = |rows: Vec<ServiceMapEdge>| decide(&config, &key, &mut b, rows);
        let opened = run(vec![
            w("frontend", "checkout", 0, 120, 70),
            w("frontend", "cart", 0, 50, 0),
        ]);
        assert_eq!(opened.len(), 1);
        let d = &opened[0];
        assert_eq!(
            (d.target.as_str(), d.rule.as_str(), d.action),
            ("frontend", CIRCUIT_RULE, DecisionAction::Circuit)
        );
        let change = d.circuit.as_ref().unwrap();
        assert_eq!(
            (change.peer.as_str(), change.state, change.open_for_ms),
            ("checkout", CircuitState::Open, Some(30_000))
        );
        assert!(
            d.reason
                .starts_with("CircuitOpen: frontend -> checkout: 70 of 120 calls failed"),
            "{}",
            d.reason
        );
        assert_eq!(d.evidence.len(), 3);
        assert_eq!(d.verify(std::slice::from_ref(&key)), Ok(()));
        // the open edge has no windows; the other edge's carry time to 40 s: half-open
        assert!(run(vec![w("frontend", "cart", 20, 50, 0)]).is_empty());
        let half = run(vec![w("frontend", "cart", 30, 50, 0)]);
        assert_eq!(
            half[0].circuit.as_ref().unwrap().state,
            CircuitState::HalfOpen
        );
        assert_eq!(half[0].window_end, 40_000);
        let closed = run(vec![w("frontend", "checkout", 40, 10, 0)]);
        assert_eq!(
            closed[0].circuit.as_ref().unwrap().state,
            CircuitState::Closed
        );
        assert_ne!(closed[0].id, opened[0].id);
    }
}
