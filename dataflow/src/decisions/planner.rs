//! The planner operator: closed windows in, signed decisions out, in event time.
//!
//! Window statistics of the series a rule reads (first revisions of the planner's window size
//! only: a decision is made once, on a closed window) are exchanged by service, so one worker
//! holds each target's state, and stashed until the frontier passes their time; then each
//! target's windows are taken in window order. For the HPA rule a window gives the ready
//! replicas (the replicas metric's mean, rounded; the last one seen when this window has
//! none) and each scaling metric's mean as the pods' average; the calculator's proposals
//! (largest wins) go through the target's stabilisation and policies at the window's end; a
//! count different from the current one is a decision, with a deterministic id, the numbers
//! it came from, issued at the window's end and signed. The rollback rule takes a canary's
//! and its baseline's windows together (both are routed to the worker of the rollback's
//! target) and judges the last `lookback` of them at each closed window; a failed canary is a
//! rollback decision. The same windows give the same decisions, in a replay or on any number
//! of workers.

use std::collections::BTreeMap;
use std::sync::Arc;

use apo_schemas::decision::{CircuitChange, Decision, DecisionAction, Evidence, SigningKey};
use apo_schemas::WindowStats;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::StreamVec;

use crate::decisions::canary::judge::Verdict;
use crate::decisions::canary::rule::{CanaryState, Judgement, RollbackTarget};
use crate::decisions::config::{PlannerConfig, ScaleTarget};
use crate::decisions::hpa::behavior::Autoscaler;
use crate::decisions::hpa::calculator::{desired_from_average, largest_proposal};
use crate::ops::route::route_strs;
use crate::ops::stash::{next_passed, stash_input, Stash};

/// The planner of the metrics pipeline and where its decisions go.
pub struct PlannerStage {
    /// What it decides about.
    pub config: PlannerConfig,
    /// The key that signs its decisions.
    pub key: SigningKey,
    /// Where decisions go (the `apo.decisions` topic).
    pub sinks: Vec<Box<dyn apo_core::RowSink<Decision>>>,
}

/// The HPA rule's name in decisions.
pub const HPA_RULE: &str = "hpa";

/// The rollback rule's name in decisions.
pub const CANARY_RULE: &str = "canary";

/// The planner's state on one worker.
#[derive(Default)]
struct PlannerState {
    /// Per scale target.
    scale: BTreeMap<String, TargetState>,
    /// Per rollback target.
    canary: BTreeMap<String, CanaryState>,
}

/// One scale target's state on its worker.
struct TargetState {
    scaler: Autoscaler,
    /// The ready replicas last seen.
    replicas: Option<u32>,
}

/// The decisions of the rules in `config` on the window statistics `stats`, signed with `key`.
pub fn planner_operator<'s>(
    stats: StreamVec<'s, u64, WindowStats>,
    config: Arc<PlannerConfig>,
    key: SigningKey,
) -> StreamVec<'s, u64, Decision> {
    let wanted = {
        let cfg = config.clone();
        stats.filter(move |w| {
            w.revision == 1
                && w.window_seconds == cfg.window_seconds
                && cfg.reads(&w.service, &w.metric)
        })
    };
    let routing = config.clone();
    let pact = Exchange::new(move |w: &WindowStats| route_strs(&[routing.route_key(&w.service)]));
    wanted.unary_frontier(pact, "Planner", move |_, _| {
        let mut stash: Stash<WindowStats> = Default::default();
        let mut states = PlannerState::default();
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            while let Some((cap, rows)) = next_passed(&mut stash, frontier.frontier()) {
                let decisions = plan(&config, &key, &mut states, rows);
                if !decisions.is_empty() {
                    output.session(&cap).give_iterator(decisions.into_iter());
                }
            }
        }
    })
}

/// The decisions of one batch of closed windows.
fn plan(
    config: &PlannerConfig,
    key: &SigningKey,
    states: &mut PlannerState,
    rows: Vec<WindowStats>,
) -> Vec<Decision> {
    // target → window start → its rows
    let mut by_target: BTreeMap<&str, BTreeMap<i64, Vec<&WindowStats>>> = BTreeMap::new();
    for w in &rows {
        by_target
            .entry(w.service.as_str())
            .or_default()
            .entry(w.window_start)
            .or_default()
            .push(w);
    }
    let mut out = Vec::new();
    for t in &config.scale {
        let Some(windows) = by_target.get(t.target.as_str()) else {
            continue;
        };
        let state = states
            .scale
            .entry(t.target.clone())
            .or_insert_with(|| TargetState {
                scaler: Autoscaler::new(if t.legacy {
                    None
                } else {
                    Some(t.behavior.clone().unwrap_or_default())
                }),
                replicas: None,
            });
        for ws in windows.values() {
            if let Some(d) = scale(config, key, t, state, ws) {
                out.push(d);
            }
        }
    }
    for r in &config.rollback {
        // window start → the canary's and the baseline's rows
        let mut windows: BTreeMap<i64, Vec<&WindowStats>> = BTreeMap::new();
        for service in [&r.canary, &r.baseline] {
            for (start, ws) in by_target.get(service.as_str()).into_iter().flatten() {
                windows
                    .entry(*start)
                    .or_default()
                    .extend(ws.iter().copied());
            }
        }
        let state = states.canary.entry(r.target().to_string()).or_default();
        for (start, ws) in windows {
            let Some(j) = state.step(r, start, &ws) else {
                continue;
            };
            let end = ws.first().map_or(start, |w| w.window_end);
            tracing::debug!(
                target = r.target(),
                canary = %r.canary,
                score = j.score,
                verdict = ?j.verdict,
                "canary judged"
            );
            if j.verdict == Verdict::Fail {
                out.push(rollback(config, key, r, &j, start, end));
            }
        }
    }
    out
}

/// The rollback decision of a failed canary.
fn rollback(
    config: &PlannerConfig,
    key: &SigningKey,
    r: &RollbackTarget,
    j: &Judgement,
    window_start: i64,
    window_end: i64,
) -> Decision {
    let findings: Vec<String> = j
        .metrics
        .iter()
        .map(|m| {
            let shift = m
                .shift
                .map(|s| {
                    format!(
                        ", shift {:.4} in [{:.4}, {:.4}]",
                        s.estimate, s.lower, s.upper
                    )
                })
                .unwrap_or_default();
            let p = m
                .p_value
                .map(|p| format!(", p {p:.2e}"))
                .unwrap_or_default();
            format!(
                "{} {} {} (canary/baseline {:.3} over {} windows{shift}{p})",
                m.metric.name,
                m.metric.statistic,
                m.class.as_str(),
                m.ratio,
                m.samples
            )
        })
        .collect();
    let evidence = j
        .metrics
        .iter()
        .map(|m| Evidence {
            metric: m.metric.name.clone(),
            statistic: format!("{} canary mean, {}", m.metric.statistic, m.class.as_str()),
            window_seconds: config.window_seconds,
            window_start: j.first_window,
            value: m.means.0,
            target: Some(m.means.1).filter(|v| v.is_finite()),
        })
        .collect();
    issue(
        config,
        key,
        Draft {
            rule: CANARY_RULE,
            target: r.target(),
            action: DecisionAction::Rollback,
            params: format!("{}->{}", r.canary, r.baseline),
            replicas: (None, None),
            circuit: None,
            reason: format!(
                "CanaryFailed: {} scored {:.2} against {} (fail below {}){}: {}",
                r.canary,
                j.score,
                r.baseline,
                r.marginal_threshold,
                j.reason
                    .as_ref()
                    .map(|s| format!(", {s}"))
                    .unwrap_or_default(),
                findings.join("; ")
            ),
            evidence,
            window: (window_start, window_end),
            window_seconds: config.window_seconds,
        },
    )
}

/// What a rule decided, before its id, times and signature.
pub(crate) struct Draft<'a> {
    pub(crate) rule: &'static str,
    pub(crate) target: &'a str,
    pub(crate) action: DecisionAction,
    /// What the id covers besides rule, target, window and action.
    pub(crate) params: String,
    pub(crate) replicas: (Option<u32>, Option<u32>),
    pub(crate) circuit: Option<CircuitChange>,
    pub(crate) reason: String,
    pub(crate) evidence: Vec<Evidence>,
    /// The window decided on: start, end.
    pub(crate) window: (i64, i64),
    /// Its size, seconds.
    pub(crate) window_seconds: u32,
}

/// The decision of `draft`: its deterministic id, issued at its window's end, expiring
/// `decision_ttl` later, signed with `key`.
pub(crate) fn issue(config: &PlannerConfig, key: &SigningKey, draft: Draft<'_>) -> Decision {
    let (window_start, window_end) = draft.window;
    let mut d = Decision {
        id: Decision::derive_id(
            draft.rule,
            draft.target,
            draft.window_seconds,
            window_start,
            draft.action,
            &draft.params,
        ),
        target: draft.target.to_string(),
        action: draft.action,
        rule: draft.rule.into(),
        replicas_from: draft.replicas.0,
        replicas_to: draft.replicas.1,
        circuit: draft.circuit,
        reason: draft.reason,
        evidence: draft.evidence,
        window_seconds: draft.window_seconds,
        window_start,
        window_end,
        issued_at: window_end,
        expires_at: window_end.saturating_add(config.decision_ttl.as_millis() as i64),
        revision: 1,
        key_id: String::new(),
        signature: String::new(),
    };
    d.sign(key);
    d
}

/// The HPA rule on one window of one target.
fn scale(
    config: &PlannerConfig,
    key: &SigningKey,
    t: &ScaleTarget,
    state: &mut TargetState,
    ws: &[&WindowStats],
) -> Option<Decision> {
    let first = ws.first()?;
    let (window_start, window_end) = (first.window_start, first.window_end);
    let find = |name: &str| ws.iter().find(|w| w.metric == name).copied();
    let replicas_row = find(&t.replicas_metric);
    if let Some(r) = replicas_row.filter(|r| r.mean.is_finite() && r.mean >= 0.0) {
        state.replicas = Some(r.mean.round().min(u32::MAX as f64) as u32);
    }
    let used: Vec<(&WindowStats, f64)> = t
        .metrics
        .iter()
        .filter_map(|m| find(&m.name).map(|w| (w, m.average_value)))
        .filter(|(w, _)| w.mean.is_finite())
        .collect();
    if used.is_empty() {
        return None;
    }
    let Some(current) = state.replicas.filter(|&r| r > 0) else {
        tracing::debug!(
            target = %t.target,
            replicas_metric = %t.replicas_metric,
            "no ready replicas known yet: the HPA rule waits for the replicas metric"
        );
        return None;
    };
    let proposals: Vec<_> = used
        .iter()
        .map(|(w, target)| desired_from_average(current, current, w.mean, *target, t.tolerance))
        .collect();
    let recommended = largest_proposal(&proposals)?;
    let (desired, limit) = state.scaler.normalize(
        window_end,
        current,
        recommended,
        t.min_replicas,
        t.max_replicas,
    );
    if desired == current {
        return None;
    }
    let mut evidence: Vec<Evidence> = used
        .iter()
        .map(|(w, target)| Evidence {
            metric: w.metric.clone(),
            statistic: "mean".into(),
            window_seconds: w.window_seconds,
            window_start: w.window_start,
            value: w.mean,
            target: Some(*target),
        })
        .collect();
    if let Some(r) = replicas_row {
        evidence.push(Evidence {
            metric: r.metric.clone(),
            statistic: "mean".into(),
            window_seconds: r.window_seconds,
            window_start: r.window_start,
            value: r.mean,
            target: None,
        });
    }
    let usage: Vec<String> = used
        .iter()
        .map(|(w, target)| format!("{} {:.4} against {}", w.metric, w.mean, target))
        .collect();
    Some(issue(
        config,
        key,
        Draft {
            rule: HPA_RULE,
            target: &t.target,
            action: DecisionAction::Scale,
            params: format!("{current}->{desired}"),
            replicas: (Some(current), Some(desired)),
            circuit: None,
            reason: format!(
            "{}: {} over {current} ready replicas recommend {recommended}; {current} -> {desired} \
             (bounds {}..={})",
            limit.as_str(),
            usage.join(", "),
            t.min_replicas,
            t.max_replicas
        ),
            evidence,
            window: (window_start, window_end),
            window_seconds: config.window_seconds,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::config::{MetricTarget, DEFAULT_REPLICAS_METRIC};

    fn row(metric: &str, start: i64, mean: f64) -> WindowStats {
        WindowStats {
            service: "checkout".into(),
            metric: metric.into(),
            unit: String::new(),
            window_seconds: 60,
            window_start: start,
            window_end: start + 60_000,
            count: 1,
            sum: mean,
            min: mean,
            max: mean,
            mean,
            p50: mean,
            p90: mean,
            p95: mean,
            p99: mean,
            p999: mean,
            relative_accuracy: 0.01,
            revision: 1,
        }
    }

    fn config() -> PlannerConfig {
        PlannerConfig {
            window_seconds: 60,
            decision_ttl: std::time::Duration::from_secs(300),
            scale: vec![ScaleTarget {
                target: "checkout".into(),
                metrics: vec![MetricTarget {
                    name: "cpu.utilization".into(),
                    average_value: 0.75,
                }],
                replicas_metric: DEFAULT_REPLICAS_METRIC.into(),
                min_replicas: 1,
                max_replicas: 100,
                tolerance: 0.1,
                behavior: None,
                legacy: false,
            }],
            rollback: vec![],
            circuit: vec![],
        }
    }

    #[test]
    fn fifty_replicas_at_90_percent_against_75_scale_to_60_signed() {
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let mut states = PlannerState::default();
        let t0 = 1_800_000_000_000;
        let rows = vec![
            row("cpu.utilization", t0, 0.9),
            row(DEFAULT_REPLICAS_METRIC, t0, 50.0),
        ];
        let out = plan(&config(), &key, &mut states, rows.clone());
        assert_eq!(out.len(), 1);
        let d = &out[0];
        assert_eq!((d.replicas_from, d.replicas_to), (Some(50), Some(60)));
        assert_eq!((d.issued_at, d.expires_at), (t0 + 60_000, t0 + 360_000));
        assert_eq!(d.evidence.len(), 2);
        assert_eq!(d.verify(std::slice::from_ref(&key)), Ok(()));
        assert!(d.reason.starts_with("DesiredWithinRange"), "{}", d.reason);
        // the same windows on fresh state: the same decision, id and signature
        let again = plan(&config(), &key, &mut PlannerState::default(), rows);
        assert_eq!(again, out);
    }

    #[test]
    fn no_decision_without_replicas_or_within_tolerance() {
        let key = SigningKey::new(None, b"0123456789abcdef0123456789abcdef").unwrap();
        let mut states = PlannerState::default();
        let t0 = 1_800_000_000_000;
        assert!(plan(
            &config(),
            &key,
            &mut states,
            vec![row("cpu.utilization", t0, 0.9)]
        )
        .is_empty());
        let rows = vec![
            row("cpu.utilization", t0 + 60_000, 0.78),
            row(DEFAULT_REPLICAS_METRIC, t0 + 60_000, 10.0),
        ];
        assert!(plan(&config(), &key, &mut states, rows).is_empty());
        // the replicas seen last carry over to a window without them
        let out = plan(
            &config(),
            &key,
            &mut states,
            vec![row("cpu.utilization", t0 + 120_000, 1.5)],
        );
        assert_eq!(out[0].replicas_to, Some(20));
    }

    fn canary_config() -> PlannerConfig {
        PlannerConfig::from_toml(
            r#"
            [[rollback]]
            target = "checkout"
            canary = "checkout-canary"
            baseline = "checkout"
            group_weights = { latency = 50, errors = 50 }
            [[rollback.metrics]]
            name = "http.server.request.duration"
            statistic = "p99"
            direction = "increase"
            group = "latency"
            [[rollback.metrics]]
            name = "http.server.errors"
            group = "errors"
            "#,
        )
        .unwrap()
    }

    /// `n` windows of a canary whose p99 latency is `slower` times the baseline's (with the
    /// same pseudo-random spread) and whose errors are the baseline's.
    fn canary_windows(n: i64, slower: f64) -> Vec<Vec<WindowStats>> {
        let t0 = 1_800_000_000_000;
        let mut seed = 7u64;
        let mut noise = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|i| {
                let start = t0 + i * 60_000;
                let mut rows = Vec::new();
                for (service, factor) in [("checkout", 1.0), ("checkout-canary", slower)] {
                    let mut lat = row("http.server.request.duration", start, 0.0);
                    lat.service = service.into();
                    lat.p99 = factor * (100.0 + 20.0 * noise());
                    let mut err = row("http.server.errors", start, 2.0 + noise());
                    err.service = service.into();
                    rows.push(lat);
                    rows.push(err);
                }
                rows
            })
            .collect()
    }

    #[test]
    fn a_canary_slower_than_its_baseline_is_rolled_back_once_and_a_healthy_one_is_not() {
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let cfg = canary_config();
        let run = |slower: f64| {
            let mut states = PlannerState::default();
            canary_windows(14, slower)
                .into_iter()
                .flat_map(|rows| plan(&cfg, &key, &mut states, rows))
                .collect::<Vec<_>>()
        };
        let out = run(1.6);
        assert_eq!(out.len(), 1, "{out:#?}");
        let d = &out[0];
        assert_eq!(
            (d.target.as_str(), d.rule.as_str()),
            ("checkout", CANARY_RULE)
        );
        assert_eq!(d.action, DecisionAction::Rollback);
        // judged first at the fifth window (min_windows), failed there: latency high (score 50)
        assert_eq!(d.window_start, 1_800_000_000_000 + 4 * 60_000);
        assert!(
            d.reason
                .starts_with("CanaryFailed: checkout-canary scored 50.00 against checkout"),
            "{}",
            d.reason
        );
        assert!(
            d.reason.contains("http.server.request.duration p99 high"),
            "{}",
            d.reason
        );
        assert!(
            d.reason.contains("http.server.errors mean pass"),
            "{}",
            d.reason
        );
        assert_eq!(d.evidence.len(), 2);
        assert_eq!(d.verify(std::slice::from_ref(&key)), Ok(()));
        assert_eq!(run(1.6), out, "the same windows, the same decision");
        assert!(run(1.0).is_empty(), "a canary like its baseline passes");
        assert!(run(1.02).is_empty(), "2 % slower is within the tolerance");
    }

    #[test]
    fn a_canary_and_its_baseline_are_routed_together() {
        let cfg = canary_config();
        assert_eq!(cfg.route_key("checkout-canary"), "checkout");
        assert_eq!(cfg.route_key("checkout"), "checkout");
        assert_eq!(cfg.route_key("cart"), "cart");
        assert!(cfg.reads("checkout-canary", "http.server.errors"));
        assert!(!cfg.reads("checkout-canary", "cpu.utilization"));
    }
}
