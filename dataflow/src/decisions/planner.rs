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
//!
//! A scale target with a predictive rule also reads the forecasts of its load metric (the
//! models' forecasts of the planner's window size, routed as its windows): a second input,
//! kept per target as a forecast curve (`predictive/curve.rs`). Forecasts carry the time of
//! the window they were issued at, as its statistics do, so by the time a window is passed
//! the forecasts issued at it are in; the rule reads only those issued by the window it
//! decides on.
//!
//! The planner's state is in the metrics job's checkpoints: it is saved before the first
//! time at or after a checkpoint's (times are taken in order, a time's forecasts before its
//! windows), and restored under the rules of the run it is restored into (an autoscaler's
//! behaviour is configuration, not state).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apo_schemas::decision::{
    CircuitChange, Decision, DecisionAction, Evidence, SigningKey, TuneChange,
};
use apo_schemas::model_output::ForecastRecord;
use apo_schemas::WindowStats;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::StreamVec;
use timely::progress::Antichain;

use crate::decisions::cache::climb::{Climber, Increase};
use crate::decisions::cache::CacheTarget;
use crate::decisions::canary::judge::Verdict;
use crate::decisions::canary::rule::{CanaryState, Judgement, RollbackTarget};
use crate::decisions::config::{MetricTarget, PlannerConfig, ScaleTarget, TargetSignal};
use crate::decisions::gc::heap::{change as gc_change, live_set, Change, Seen};
use crate::decisions::gc::{GcTarget, G1_OCCUPANCY, G1_PAUSE_GOAL_MS};
use crate::decisions::hpa::behavior::Autoscaler;
use crate::decisions::hpa::calculator::{
    desired_from_average, desired_from_total, largest_proposal,
};
use crate::decisions::index::SeriesIndex;
use crate::decisions::pool::littles_law::{busy, seconds_per, size_for};
use crate::decisions::pool::PoolTarget;
use crate::decisions::predictive::capacity::{needed, Need, Plan};
use crate::decisions::predictive::curve::ForecastCurve;
use crate::decisions::predictive::Predictive;
use crate::engine::checkpoint::OperatorCheckpoint;
use crate::models::config::Signal;
use crate::ops::exact_sum::ExactSum;
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

/// How many windows after its own scale decision the HPA rule takes the count it asked for as
/// the current one when the desired-replicas metric does not show it yet: one window for the
/// actuator to carry it out and one for the telemetry to report it.
const PENDING_WINDOWS: i64 = 2;

/// The predictive rule's name in decisions (a scale the forecast asked for beyond the HPA
/// rule's recommendation).
pub const PREDICTIVE_RULE: &str = "predictive";

/// The cache rule's name in decisions.
pub const CACHE_RULE: &str = "cache";

/// The pool rule's name in decisions.
pub const POOL_RULE: &str = "pool";

/// The GC rule's name in decisions.
pub const GC_RULE: &str = "gc";

/// The rollback rule's name in decisions.
pub const CANARY_RULE: &str = "canary";

/// The planner's state on one worker.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct PlannerState {
    /// Per scale target.
    scale: BTreeMap<String, TargetState>,
    /// Per pool target.
    pool: BTreeMap<String, PoolState>,
    /// Per cache target.
    cache: BTreeMap<String, Climber>,
    /// Per GC target.
    gc: BTreeMap<String, GcState>,
    /// Per rollback target.
    canary: BTreeMap<String, CanaryState>,
}

/// One pool's state on its worker.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct PoolState {
    /// Connections busy in the last windows, the newest last.
    recent: std::collections::VecDeque<(i64, f64)>,
    /// The pool's size last seen.
    size: Option<u32>,
    /// Its last shrink asked for (from, to), until the size shows what became of it.
    shrunk: Option<(u32, u32)>,
    /// Until this window start, no shrink: a shrink was set back (the effect check reverted
    /// it, or someone undid it) and asking again at once would only repeat it.
    hold_shrinks_until: i64,
}

/// One JVM service's state on its worker.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct GcState {
    /// Its last heap asked for, until the limit shows it or this window start passes.
    pending: Option<(f64, i64)>,
    /// It asked for the pause goal.
    goal_set: bool,
}

/// Windows the pool rule asks for no shrink after one of its shrinks was set back.
const SHRINK_HOLD_WINDOWS: i64 = 30;

/// One scale target's state on its worker.
#[derive(serde::Serialize, serde::Deserialize)]
struct TargetState {
    scaler: Autoscaler,
    /// The ready replicas last seen.
    replicas: Option<u32>,
    /// The replicas asked for last seen (the desired-replicas metric).
    asked: Option<u32>,
    /// Its last decision, until the desired-replicas metric shows it or its window is
    /// [`PENDING_WINDOWS`] windows old: the count it asked for, and its window's end.
    pending: Option<(u32, i64)>,
    /// The forecasts of its load (with a predictive rule).
    curve: ForecastCurve,
}

/// The autoscaling behaviour of scale target `t` (`None`: the legacy rule).
fn behavior_of(t: &ScaleTarget) -> Option<crate::decisions::hpa::behavior::Behavior> {
    if t.legacy {
        None
    } else {
        Some(t.behavior.clone().unwrap_or_default())
    }
}

impl PlannerState {
    /// The state a checkpoint saved, under the rules of this run: each scale target's
    /// autoscaler takes its behaviour from `config` (a target the rules no longer name keeps
    /// its state, unused).
    fn restored(bytes: &[u8], config: &PlannerConfig) -> Result<Self, bincode::Error> {
        let mut s: PlannerState = bincode::deserialize(bytes)?;
        for t in &config.scale {
            if let Some(state) = s.scale.get_mut(&t.target) {
                state.scaler = std::mem::take(&mut state.scaler).behaving(behavior_of(t));
            }
        }
        Ok(s)
    }

    /// The state of scale target `t`, made on first use.
    fn target(&mut self, t: &ScaleTarget) -> &mut TargetState {
        self.scale
            .entry(t.target.clone())
            .or_insert_with(|| TargetState {
                scaler: Autoscaler::new(behavior_of(t)),
                replicas: None,
                asked: None,
                pending: None,
                curve: ForecastCurve::default(),
            })
    }

    /// Keeps the forecasts of the predictive rules' load metrics.
    fn forecasts(
        &mut self,
        config: &PlannerConfig,
        index: &SeriesIndex,
        rows: Vec<ForecastRecord>,
    ) {
        // The attribute series of the load metric (one per route, say) are one load: their
        // planned values of one window are summed for additive signals (a sum, a rate), else
        // the largest is taken.
        type Slot<'a> = (&'a str, &'a str, i64, i64, &'a str);
        let mut combined: BTreeMap<Slot<'_>, f64> = BTreeMap::new();
        for f in &rows {
            let Some(t) = index.scale_target(config, &f.service) else {
                continue;
            };
            let Some(p) = &t.predictive else { continue };
            let planned = p.planned(f);
            let additive = f.signal.parse::<Signal>().is_ok_and(Signal::additive);
            combined
                .entry((
                    &f.service,
                    &f.metric,
                    f.window_end,
                    f.target_time,
                    &f.signal,
                ))
                .and_modify(|v| {
                    *v = if additive {
                        *v + planned
                    } else {
                        v.max(planned)
                    }
                })
                .or_insert(planned);
        }
        for ((service, _, issued, target_time, signal), planned) in combined {
            if let Some(t) = index.scale_target(config, service) {
                self.target(t)
                    .curve
                    .insert(issued, target_time, planned, signal);
            }
        }
    }
}

/// The decisions of the rules in `config` on the window statistics `stats` (and, for the
/// predictive rule, the `forecasts`), signed with `key`.
pub fn planner_operator<'s>(
    stats: StreamVec<'s, u64, WindowStats>,
    forecasts: StreamVec<'s, u64, ForecastRecord>,
    config: Arc<PlannerConfig>,
    key: SigningKey,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'s, u64, Decision> {
    let scope = stats.scope();
    let index = Arc::new(SeriesIndex::new(&config));
    let wanted = {
        let (cfg, ix) = (config.clone(), index.clone());
        stats.filter(move |w| {
            w.revision == 1
                && w.window_seconds == cfg.window_seconds
                && ix.reads(&w.service, &w.metric)
        })
    };
    let predicted = {
        let (cfg, ix) = (config.clone(), index.clone());
        forecasts
            .filter(move |f| ix.predicts(&cfg, &f.service, &f.metric, f.window_seconds, &f.signal))
    };
    let routing = index.clone();
    let pact = Exchange::new(move |w: &WindowStats| route_strs(&[routing.route_key(&w.service)]));
    let routing = index.clone();
    let forecast_pact =
        Exchange::new(move |f: &ForecastRecord| route_strs(&[routing.route_key(&f.service)]));
    wanted.binary_frontier(predicted, pact, forecast_pact, "Planner", move |_, info| {
        if let Some(c) = &checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        let mut states = match checkpoint.as_ref().and_then(|c| c.restored()) {
            None => PlannerState::default(),
            Some(bytes) => PlannerState::restored(bytes, &config).unwrap_or_else(|e| {
                tracing::error!(error = %e, "planner state in the checkpoint unreadable; starting empty");
                PlannerState::default()
            }),
        };
        let mut stash: Stash<WindowStats> = Default::default();
        let mut forecast_stash: Stash<ForecastRecord> = Default::default();
        move |(input, frontier), (forecast_input, forecast_frontier), output| {
            stash_input(input, &mut stash);
            stash_input(forecast_input, &mut forecast_stash);
            let mut passed = Antichain::new();
            for t in frontier
                .frontier()
                .iter()
                .chain(forecast_frontier.frontier().iter())
            {
                passed.insert(*t);
            }
            // Time by time, the forecasts of a time before its windows (a window's decision
            // reads those issued by it), and a checkpoint due before the first time at or
            // after it: the state then holds exactly what came before its time.
            loop {
                let next = stash
                    .keys()
                    .next()
                    .into_iter()
                    .chain(forecast_stash.keys().next())
                    .copied()
                    .min();
                let upto = next
                    .into_iter()
                    .chain(passed.iter().copied())
                    .min()
                    .unwrap_or(u64::MAX);
                if let Some(c) = checkpoint.as_mut() {
                    c.deposit_due(upto, |_| bincode::serialize(&states));
                }
                let Some(t) = next.filter(|t| !passed.less_equal(t)) else {
                    break;
                };
                if forecast_stash.keys().next() == Some(&t) {
                    if let Some((_, rows)) = next_passed(&mut forecast_stash, passed.borrow()) {
                        states.forecasts(&config, &index, rows);
                    }
                } else if let Some((cap, rows)) = next_passed(&mut stash, passed.borrow()) {
                    let decisions = plan(&config, &key, &mut states, rows);
                    if !decisions.is_empty() {
                        output.session(&cap).give_iterator(decisions.into_iter());
                    }
                }
            }
        }
    })
}

/// The rows of `rows` with one row per (service, metric, window): the attribute series of a
/// metric (its routes, say) are one signal to a rule, as Kubernetes' HPA reads a metric over
/// all its pods. Counts and sums add, min and max are the extremes and the mean is the
/// combined sum over the combined count, all exact; a percentile is the largest of the
/// series' (a mixture's quantile is at most its components' largest: an upper bound, exact
/// for one series). A metric with one series is passed as it is.
pub(crate) fn rollup(rows: Vec<WindowStats>) -> Vec<WindowStats> {
    rollup_keeping(rows, None)
}

/// [`rollup`], keeping apart the series of a metric that differ in attribute `keep` (a
/// canary's `service.version`): a merged row has that attribute only.
pub(crate) fn rollup_keeping(rows: Vec<WindowStats>, keep: Option<&str>) -> Vec<WindowStats> {
    if rows.iter().all(|w| w.attributes.is_empty()) {
        return rows;
    }
    // Each (service, metric, window, kept value)'s row, in first-seen order, whether another
    // series was folded into it, and its sum kept exactly (the same in any order of the rows).
    let mut out: Vec<(WindowStats, bool, ExactSum)> = Vec::new();
    let mut at: HashMap<(String, String, u32, i64, Option<String>), usize> = HashMap::new();
    for w in rows {
        let kept = keep.and_then(|a| w.attributes.get(a).cloned());
        let k = (
            w.service.clone(),
            w.metric.clone(),
            w.window_seconds,
            w.window_start,
            kept,
        );
        let Some(&i) = at.get(&k) else {
            at.insert(k, out.len());
            let sum = ExactSum::from(w.sum);
            out.push((w, false, sum));
            continue;
        };
        let (acc, merged, sum) = &mut out[i];
        *merged = true;
        acc.count += w.count;
        sum.add(w.sum);
        acc.min = acc.min.min(w.min);
        acc.max = acc.max.max(w.max);
        for (a, b) in [
            (&mut acc.p50, w.p50),
            (&mut acc.p90, w.p90),
            (&mut acc.p95, w.p95),
            (&mut acc.p99, w.p99),
            (&mut acc.p999, w.p999),
        ] {
            *a = a.max(b);
        }
        acc.relative_accuracy = acc.relative_accuracy.max(w.relative_accuracy);
        acc.revision = acc.revision.max(w.revision);
        if acc.unit.is_empty() {
            acc.unit = w.unit;
        }
    }
    out.into_iter()
        .map(|(mut w, merged, sum)| {
            if merged {
                w.sum = sum.value();
                w.attributes
                    .retain(|k, _| keep.is_some_and(|a| a == k.as_str()));
                w.mean = if w.count > 0 {
                    w.sum / w.count as f64
                } else {
                    f64::NAN
                };
            }
            w
        })
        .collect()
}

/// The decisions of one batch of closed windows.
fn plan(
    config: &PlannerConfig,
    key: &SigningKey,
    states: &mut PlannerState,
    rows: Vec<WindowStats>,
) -> Vec<Decision> {
    // A canary told from its baseline by an attribute reads the rows before the roll-up:
    // each such rule's sides, taken out first.
    let sides: Vec<Vec<WindowStats>> = config
        .rollback
        .iter()
        .map(|r| {
            r.attribute()
                .map_or_else(Vec::new, |a| canary_sides(r, a, &rows))
        })
        .collect();
    let rows = rollup(rows);
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
        let state = states.target(t);
        out.extend(
            windows
                .values()
                .filter_map(|ws| scale(config, key, t, state, ws)),
        );
    }
    for p in &config.pool {
        if let Some(windows) = by_target.get(p.target.as_str()) {
            let state = states.pool.entry(p.target.clone()).or_default();
            out.extend(
                windows
                    .values()
                    .filter_map(|ws| pool(config, key, p, state, ws)),
            );
        }
    }
    for g in &config.gc {
        if let Some(windows) = by_target.get(g.target.as_str()) {
            let state = states.gc.entry(g.target.clone()).or_default();
            out.extend(
                windows
                    .values()
                    .filter_map(|ws| gc(config, key, g, state, ws)),
            );
        }
    }
    for c in &config.cache {
        if let Some(windows) = by_target.get(c.target.as_str()) {
            let climber = states.cache.entry(c.target.clone()).or_default();
            out.extend(
                windows
                    .values()
                    .filter_map(|ws| cache(config, key, c, climber, ws)),
            );
        }
    }
    for (r, side_rows) in config.rollback.iter().zip(&sides) {
        // window start → the canary's and the baseline's rows
        let mut windows: BTreeMap<i64, Vec<&WindowStats>> = BTreeMap::new();
        if r.attribute().is_some() {
            for w in side_rows {
                windows.entry(w.window_start).or_default().push(w);
            }
        } else {
            for service in [&r.canary, &r.baseline] {
                for (start, ws) in by_target.get(service.as_str()).into_iter().flatten() {
                    windows
                        .entry(*start)
                        .or_default()
                        .extend(ws.iter().copied());
                }
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

/// The rows of a canary and its baseline that run as one service, told apart by `attribute`:
/// each side's attribute series of a metric rolled up into one row per window, named by the
/// side (its `service` is the side's value of the attribute, as the judge looks sides up).
fn canary_sides(r: &RollbackTarget, attribute: &str, rows: &[WindowStats]) -> Vec<WindowStats> {
    let Some(service) = r.service.as_deref() else {
        return Vec::new();
    };
    let mine: Vec<WindowStats> = rows
        .iter()
        .filter(|w| {
            w.service == service
                && w.attributes
                    .get(attribute)
                    .is_some_and(|v| *v == r.canary || *v == r.baseline)
        })
        .cloned()
        .collect();
    rollup_keeping(mine, Some(attribute))
        .into_iter()
        .filter_map(|mut w| {
            w.service = w.attributes.get(attribute)?.clone();
            Some(w)
        })
        .collect()
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
            tune: None,
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
    pub(crate) tune: Option<TuneChange>,
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
        tune: draft.tune,
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

/// The window the rows of one target are of: its start and end.
fn window_of(ws: &[&WindowStats]) -> Option<(i64, i64)> {
    ws.first().map(|w| (w.window_start, w.window_end))
}

/// The row of `metric` among one window's rows of one target.
fn row<'a>(ws: &[&'a WindowStats], metric: &str) -> Option<&'a WindowStats> {
    ws.iter().find(|w| w.metric == metric).copied()
}

/// Seconds per unit of the durations of `w` (`s`, `ms`, `us` or `ns`; none is seconds), which
/// the rule `rule` of `target` reads; another unit is warned of (the window is skipped).
fn seconds_of(w: &WindowStats, rule: &str, target: &str) -> Option<f64> {
    let unit = seconds_per(&w.unit);
    if unit.is_none() {
        tracing::warn!(
            target,
            metric = %w.metric,
            unit = %w.unit,
            "the {rule} rule reads durations in s, ms, us or ns: this window is skipped"
        );
    }
    unit
}

/// A count a window reports as its mean (ready replicas, a pool's size), rounded; `None`
/// when it reports none (or not a count).
fn count_of(row: Option<&WindowStats>) -> Option<u32> {
    row.filter(|r| r.mean.is_finite() && r.mean >= 0.0)
        .map(|r| r.mean.round().min(f64::from(u32::MAX)) as u32)
}

/// What an HPA metric reads of its window: the mean, or the points per second.
fn signal_of(w: &WindowStats, signal: TargetSignal) -> f64 {
    match signal {
        TargetSignal::Mean => w.mean,
        TargetSignal::Rate => w.count as f64 / f64::from(w.window_seconds.max(1)),
    }
}

/// The evidence of a window's mean, against `target` when there is one.
fn mean_evidence(w: &WindowStats, target: Option<f64>) -> Evidence {
    Evidence {
        metric: w.metric.clone(),
        statistic: "mean".into(),
        window_seconds: w.window_seconds,
        window_start: w.window_start,
        value: w.mean,
        target,
    }
}

/// The HPA rule on one window of one target.
fn scale(
    config: &PlannerConfig,
    key: &SigningKey,
    t: &ScaleTarget,
    state: &mut TargetState,
    ws: &[&WindowStats],
) -> Option<Decision> {
    let (window_start, window_end) = window_of(ws)?;
    state.curve.forget_through(window_end);
    let find = |name: &str| row(ws, name);
    let replicas_row = find(&t.replicas_metric);
    state.replicas = count_of(replicas_row).or(state.replicas);
    let asked_row = find(&t.desired_replicas_metric);
    state.asked = count_of(asked_row).or(state.asked);
    // Its own last decision is the count asked for until the telemetry shows it (carried out
    // within the window) or it is too old to be waited for (refused, expired, overridden):
    // deciding again from a count that has not caught up yet is a stale decision.
    if let Some((to, at)) = state.pending {
        let shown = asked_row.is_some_and(|r| r.min <= f64::from(to) && f64::from(to) <= r.max);
        let window_ms = i64::from(config.window_seconds) * 1000;
        if shown {
            // carried out in this window: the count asked for now (its mean is partly before)
            state.asked = Some(to);
            state.pending = None;
        } else if window_end - at > PENDING_WINDOWS * window_ms {
            state.pending = None;
        }
    }
    let used: Vec<(&WindowStats, &MetricTarget, f64)> = t
        .metrics
        .iter()
        .filter_map(|m| find(&m.name).map(|w| (w, m, signal_of(w, m.signal))))
        .filter(|(_, _, v)| v.is_finite())
        .collect();
    if used.is_empty() {
        return None;
    }
    let Some(ready) = state.replicas.filter(|&r| r > 0) else {
        tracing::debug!(
            target = %t.target,
            replicas_metric = %t.replicas_metric,
            "no ready replicas known yet: the HPA rule waits for the replicas metric"
        );
        return None;
    };
    // What it scales from: the count asked for (the Deployment's spec), the ready count when
    // the telemetry has no desired-replicas metric.
    let current = state
        .pending
        .map(|(to, _)| to)
        .or(state.asked)
        .filter(|&r| r > 0)
        .unwrap_or(ready);
    let ready = ready.min(current);
    let proposals: Vec<_> = used
        .iter()
        .map(|(_, m, v)| match m.signal {
            TargetSignal::Mean => {
                desired_from_average(current, ready, *v, m.average_value, t.tolerance)
            }
            TargetSignal::Rate => desired_from_total(current, *v, m.average_value, t.tolerance),
        })
        .collect();
    let reactive = largest_proposal(&proposals)?;
    // The forecast's recommendation counts where it asks for more.
    let predicted = t
        .predictive
        .as_ref()
        .and_then(|p| predict(config, p, &state.curve, window_end).map(|n| (p, n)))
        .filter(|(_, n)| n.replicas > reactive);
    let recommended = predicted.map_or(reactive, |(_, n)| n.replicas);
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
        .map(|(w, m, v)| match m.signal {
            TargetSignal::Mean => mean_evidence(w, Some(m.average_value)),
            // as the HPA's status reports an External per-pod metric: the total over the pods
            TargetSignal::Rate => Evidence {
                metric: w.metric.clone(),
                statistic: format!("rate a replica, over {current}"),
                window_seconds: w.window_seconds,
                window_start: w.window_start,
                value: v / f64::from(current),
                target: Some(m.average_value),
            },
        })
        .collect();
    evidence.extend(replicas_row.map(|r| mean_evidence(r, None)));
    evidence.extend(asked_row.map(|r| mean_evidence(r, None)));
    let usage: Vec<String> = used
        .iter()
        .map(|(w, m, v)| match m.signal {
            TargetSignal::Mean => format!("{} {:.4} against {}", w.metric, v, m.average_value),
            TargetSignal::Rate => format!(
                "{} rate {:.2}/s ({:.2} a replica of {current}) against {} a replica",
                w.metric,
                v,
                v / f64::from(current),
                m.average_value
            ),
        })
        .collect();
    let bounds = format!("bounds {}..={}", t.min_replicas, t.max_replicas);
    let (rule, reason) = match predicted {
        None => (
            HPA_RULE,
            format!(
                "{}: {} over {ready} ready replicas recommend {recommended}; \
                 {current} -> {desired} ({bounds})",
                limit.as_str(),
                usage.join(", "),
            ),
        ),
        Some((p, n)) => {
            let window_ms = i64::from(config.window_seconds) * 1000;
            let signal = state.curve.signal();
            evidence.push(Evidence {
                metric: p.metric.clone(),
                statistic: format!("forecast {}, {signal}", p.planned_statistic()),
                window_seconds: config.window_seconds,
                window_start: n.peak.end - window_ms,
                value: n.peak.planned,
                target: Some(f64::from(n.replicas) * p.capacity_per_replica * p.target_utilization),
            });
            let at = u64::try_from(n.peak.end).map_or_else(
                |_| n.peak.end.to_string(),
                |ms| {
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
                    )
                    .to_string()
                },
            );
            let burst = if n.burst {
                format!(
                    " (above {:.0} %, a burst of at most {} tolerated up to {:.0} %)",
                    p.target_utilization * 100.0,
                    humantime::format_duration(p.burst_for),
                    p.burst_utilization * 100.0
                )
            } else {
                format!(" at {:.0} % or less", p.target_utilization * 100.0)
            };
            (
                PREDICTIVE_RULE,
                format!(
                    "{}: {} {signal} forecast up to {:.2} ({}) in the window ending {at}, \
                     {} after this one's end with a scheduling buffer of {}; {} replicas of {} \
                     carry it{burst}, more than the {reactive} the HPA rule recommends \
                     ({}); {current} -> {desired} ({bounds})",
                    limit.as_str(),
                    p.metric,
                    n.peak.planned,
                    p.planned_name(),
                    humantime::format_duration(std::time::Duration::from_millis(
                        u64::try_from(n.peak.end - window_end).unwrap_or(0)
                    )),
                    humantime::format_duration(p.scheduling_buffer),
                    n.replicas,
                    p.capacity_per_replica,
                    usage.join(", "),
                ),
            )
        }
    };
    // waited for only where the telemetry can show it (without the desired-replicas metric,
    // the ready count is all there is to scale from)
    if state.asked.is_some() {
        state.pending = Some((desired, window_end));
    }
    Some(issue(
        config,
        key,
        Draft {
            rule,
            target: &t.target,
            action: DecisionAction::Scale,
            params: format!("{current}->{desired}"),
            replicas: (Some(current), Some(desired)),
            circuit: None,
            tune: None,
            reason,
            evidence,
            window: (window_start, window_end),
            window_seconds: config.window_seconds,
        },
    ))
}

/// The pool rule on one window of one target.
fn pool(
    config: &PlannerConfig,
    key: &SigningKey,
    p: &PoolTarget,
    state: &mut PoolState,
    ws: &[&WindowStats],
) -> Option<Decision> {
    let (window_start, window_end) = window_of(ws)?;
    let find = |name: &str| row(ws, name);
    let size_row = find(&p.size_metric);
    // A window in which the size changed (a tune carried out in it) tells neither the size
    // now (its mean is between the two) nor the load on either: no decision on it.
    let changed = size_row.is_some_and(|r| r.min != r.max);
    if !changed {
        state.size = count_of(size_row).or(state.size);
        if let (Some((from, to)), Some(now)) = (state.shrunk, count_of(size_row)) {
            if now == from {
                state.hold_shrinks_until =
                    window_start + SHRINK_HOLD_WINDOWS * i64::from(config.window_seconds) * 1000;
                tracing::info!(
                    target = %p.target,
                    from,
                    to,
                    "the pool's shrink was set back: no shrink for {SHRINK_HOLD_WINDOWS} windows"
                );
            }
            if now != to {
                state.shrunk = None;
            }
        }
    }
    let uses = find(&p.use_time_metric)?;
    let unit = seconds_of(uses, POOL_RULE, &p.target)?;
    // A window without uses held nothing: 0 in use.
    let hold = if uses.count == 0 {
        0.0
    } else {
        uses.mean * unit
    };
    if !hold.is_finite() {
        return None;
    }
    let in_use = busy(uses.count, uses.window_seconds, hold);
    state.recent.push_back((window_start, in_use));
    while state.recent.len() > p.lookback {
        state.recent.pop_front();
    }
    if changed {
        return None;
    }
    let current = state.size?;
    let recent: Vec<f64> = state.recent.iter().map(|(_, b)| *b).collect();
    let sizing = size_for(p, &recent, current)?;
    if sizing.size < current
        && (recent.len() < p.lookback || window_start < state.hold_shrinks_until)
    {
        // Not yet `lookback` windows seen: too few to shrink on (the first window of a
        // series that began mid-window counts only the uses of its part, and shrank a pool
        // into collapse in the closed loop); or a shrink was just set back.
        return None;
    }
    // a growth of its own is not a shrink set back
    state.shrunk = (sizing.size < current).then_some((current, sizing.size));
    let (peak_start, _) = state
        .recent
        .iter()
        .rev()
        .find(|(_, b)| *b == sizing.peak)
        .copied()?;
    let rate = uses.count as f64 / f64::from(uses.window_seconds.max(1));
    let mut evidence = vec![
        Evidence {
            metric: uses.metric.clone(),
            statistic: "rate".into(),
            window_seconds: uses.window_seconds,
            window_start,
            value: rate,
            target: None,
        },
        mean_evidence(uses, None),
        Evidence {
            metric: uses.metric.clone(),
            statistic: format!("in use (rate x mean), the peak of {} windows", recent.len()),
            window_seconds: uses.window_seconds,
            window_start: peak_start,
            value: sizing.peak,
            target: Some(f64::from(sizing.size) * p.max_utilization),
        },
    ];
    evidence.extend(size_row.map(|r| mean_evidence(r, None)));
    let bound = if u64::from(sizing.size) < sizing.unbounded {
        format!(
            ", capped at {} (max_size {:?}, db_cores x 2 + spindles {:?})",
            p.cap(),
            p.max_size,
            p.db_cores.map(|c| c * 2 + p.spindles)
        )
    } else if u64::from(sizing.size) > sizing.unbounded {
        format!(", min_size {}", p.min_size)
    } else {
        String::new()
    };
    Some(issue(
        config,
        key,
        Draft {
            rule: POOL_RULE,
            target: &p.target,
            action: DecisionAction::Tune,
            params: format!("{}:{current}->{}", p.size_metric, sizing.size),
            replicas: (None, None),
            circuit: None,
            tune: Some(TuneChange {
                setting: p.size_metric.clone(),
                from: Some(f64::from(current)),
                to: f64::from(sizing.size),
            }),
            reason: format!(
                "PoolSize: by Little's law {rate:.3} uses/s x {:.1} ms held = {in_use:.2} \
                 connections in use (the most of the last {} windows: {:.2}); {} connections \
                 keep it at {:.0} % or less{bound}; {current} -> {}",
                hold * 1000.0,
                recent.len(),
                sizing.peak,
                sizing.size,
                p.max_utilization * 100.0,
                sizing.size
            ),
            evidence,
            window: (window_start, window_end),
            window_seconds: config.window_seconds,
        },
    ))
}

/// The GC rule on one window of one target.
fn gc(
    config: &PlannerConfig,
    key: &SigningKey,
    g: &GcTarget,
    state: &mut GcState,
    ws: &[&WindowStats],
) -> Option<Decision> {
    let (window_start, window_end) = window_of(ws)?;
    let find = |name: &str| row(ws, name);
    let limit_row = find(&g.limit_metric)?;
    // a window in which the limit changed shows neither heap's pauses: no decision on it
    if limit_row.min != limit_row.max {
        return None;
    }
    let limit = limit_row.mean;
    if let Some((to, until)) = state.pending {
        if limit >= to || window_start >= until {
            state.pending = None;
        } else {
            // the heap asked for is not in place yet
            return None;
        }
    }
    let pauses = find(&g.pause_metric)?;
    let unit = seconds_of(pauses, GC_RULE, &g.target)?;
    let used_row = find(&g.used_metric)?;
    let seen = Seen {
        pause_s: pauses.p95 * unit,
        limit,
        used: used_row.mean,
    };
    let c = gc_change(g, &seen, state.goal_set)?;
    const MIB: f64 = 1024.0 * 1024.0;
    let max_ms = g.max_pause.as_secs_f64() * 1000.0;
    let evidence = vec![
        Evidence {
            metric: pauses.metric.clone(),
            statistic: "p95".into(),
            window_seconds: pauses.window_seconds,
            window_start,
            value: pauses.p95,
            target: Some(g.max_pause.as_secs_f64() / unit),
        },
        mean_evidence(limit_row, None),
        mean_evidence(used_row, None),
    ];
    let seen_line = format!(
        "GcPause: p95 pause {:.0} ms over {max_ms:.0} ms; live set about {:.0} MiB (2 x {:.0} \
         MiB used on average - the {:.0} MiB heap) = {:.0} % of the heap",
        seen.pause_s * 1000.0,
        live_set(seen.used, limit) / MIB,
        seen.used / MIB,
        limit / MIB,
        live_set(seen.used, limit) / limit * 100.0,
    );
    let (setting, from, to, reason) = match c {
        Change::Heap { to, .. } => {
            let window_ms = i64::from(config.window_seconds) * 1000;
            state.pending = Some((to, window_end + PENDING_WINDOWS * window_ms));
            let why = format!(
                "{seen_line}, over {:.0} % (G1's InitiatingHeapOccupancyPercent {:.0}); a heap of \
                 {:.0} MiB holds it at {:.0} % (at most {} x, max_heap {:.0} MiB)",
                g.occupancy * 100.0,
                G1_OCCUPANCY * 100.0,
                to / MIB,
                g.occupancy * 100.0,
                g.max_growth,
                g.max_heap / MIB
            );
            (g.limit_metric.clone(), limit, to, why)
        }
        Change::PauseGoal { to_ms, .. } => {
            state.goal_set = true;
            let why = format!(
                "{seen_line}: the heap has room (or is at max_heap); G1's pause goal from its \
                 default {G1_PAUSE_GOAL_MS:.0} ms to {to_ms:.0} ms"
            );
            (g.pause_goal_setting.clone(), G1_PAUSE_GOAL_MS, to_ms, why)
        }
    };
    Some(issue(
        config,
        key,
        Draft {
            rule: GC_RULE,
            target: &g.target,
            action: DecisionAction::Tune,
            params: format!("{setting}:{from}->{to}"),
            replicas: (None, None),
            circuit: None,
            tune: Some(TuneChange {
                setting,
                from: Some(from),
                to,
            }),
            reason,
            evidence,
            window: (window_start, window_end),
            window_seconds: config.window_seconds,
        },
    ))
}

/// The cache rule on one window of one target.
fn cache(
    config: &PlannerConfig,
    key: &SigningKey,
    c: &CacheTarget,
    climber: &mut Climber,
    ws: &[&WindowStats],
) -> Option<Decision> {
    let (window_start, window_end) = window_of(ws)?;
    let find = |name: &str| row(ws, name);
    let (hits, misses) = (find(&c.hits_metric), find(&c.misses_metric));
    if hits.is_none() && misses.is_none() {
        return None;
    }
    let size_row = find(&c.size_metric);
    let size = size_row
        .filter(|r| r.mean.is_finite() && r.mean >= 0.0)
        .map(|r| r.mean.round() as u64);
    let sum = |w: Option<&WindowStats>| w.map_or(0.0, |w| w.sum);
    let up: Increase = climber.step(c, size, sum(hits), sum(misses))?;
    let mut evidence = vec![Evidence {
        metric: c.hits_metric.clone(),
        statistic: format!("hit ratio over the last {} windows", c.windows),
        window_seconds: config.window_seconds,
        window_start,
        value: up.ratio,
        target: Some(c.target_hit_ratio),
    }];
    evidence.extend(size_row.map(|r| mean_evidence(r, None)));
    let previous = match up.previous {
        None => "the first increase".to_string(),
        Some((before, gain)) => format!(
            "the last increase (from {before}) won {:.1} points, at least {:.1} to go on",
            gain * 100.0,
            c.min_gain * 100.0
        ),
    };
    Some(issue(
        config,
        key,
        Draft {
            rule: CACHE_RULE,
            target: &c.target,
            action: DecisionAction::Tune,
            params: format!("{}:{}->{}", c.size_metric, up.from, up.to),
            replicas: (None, None),
            circuit: None,
            tune: Some(TuneChange {
                setting: c.size_metric.clone(),
                from: Some(up.from as f64),
                to: up.to as f64,
            }),
            reason: format!(
                "CacheHitRatio: {:.1} % hits ({} of {}) over the last {} windows at size {}, \
                 below {:.1} %; {previous}; {} -> {} (x{}, max_size {})",
                up.ratio * 100.0,
                up.hits,
                up.hits + up.misses,
                c.windows,
                up.from,
                c.target_hit_ratio * 100.0,
                up.from,
                up.to,
                c.step,
                c.max_size
            ),
            evidence,
            window: (window_start, window_end),
            window_seconds: config.window_seconds,
        },
    ))
}

/// The predictive rule's recommendation at `now` (a window's end): the replicas the forecast
/// load of the windows the new replicas would serve needs (those overlapping the window
/// starting `scheduling_buffer` after `now`), bursts tolerated as `p` says.
fn predict(
    config: &PlannerConfig,
    p: &Predictive,
    curve: &ForecastCurve,
    now: i64,
) -> Option<Need> {
    let step_ms = i64::from(config.window_seconds) * 1000;
    let ready = now.saturating_add(p.scheduling_buffer.as_millis() as i64);
    let focus = |end: i64| end > ready && end - step_ms < ready + step_ms;
    let plan = Plan {
        capacity_per_replica: p.capacity_per_replica,
        target: p.target_utilization,
        burst: p.burst_utilization,
        burst_for_ms: p.burst_for.as_millis() as i64,
        step_ms,
    };
    needed(&curve.ahead_of(now), focus, &plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two routes of one metric are one signal to a rule: exact count, sum, extremes and mean
    /// (hand computed), the larger percentile; a metric with one series passes as it is.
    #[test]
    fn attribute_series_of_a_metric_roll_up_into_one_row() {
        let series = |route: &str, count: u64, sum: f64, min: f64, max: f64, p95: f64| {
            let mut w = WindowStats {
                service: "checkout".into(),
                metric: "http.server.request.duration".into(),
                window_seconds: 60,
                window_start: 60_000,
                window_end: 120_000,
                count,
                sum,
                min,
                max,
                mean: sum / count as f64,
                p95,
                revision: 1,
                ..Default::default()
            };
            w.attributes.insert("http.route".into(), route.into());
            w
        };
        let mut alone = series("/x", 1, 1.0, 1.0, 1.0, 1.0);
        alone.metric = "queue.depth".into();
        let rows = vec![
            series("/pay", 10, 500.0, 20.0, 90.0, 80.0),
            alone.clone(),
            series("/cart", 30, 300.0, 5.0, 40.0, 30.0),
        ];
        let out = rollup(rows);
        assert_eq!(out.len(), 2);
        let w = &out[0];
        assert!(w.attributes.is_empty());
        assert_eq!((w.count, w.sum, w.min, w.max), (40, 800.0, 5.0, 90.0));
        assert_eq!(w.mean, 20.0);
        assert_eq!(w.p95, 80.0);
        assert_eq!(out[1], alone);
    }
    use crate::decisions::config::{
        MetricTarget, DEFAULT_DESIRED_REPLICAS_METRIC, DEFAULT_REPLICAS_METRIC,
    };

    fn row(metric: &str, start: i64, mean: f64) -> WindowStats {
        WindowStats {
            attributes: Default::default(),
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
                    signal: TargetSignal::Mean,
                }],
                replicas_metric: DEFAULT_REPLICAS_METRIC.into(),
                desired_replicas_metric: DEFAULT_DESIRED_REPLICAS_METRIC.into(),
                min_replicas: 1,
                max_replicas: 100,
                tolerance: 0.1,
                behavior: None,
                legacy: false,
                predictive: None,
            }],
            pool: vec![],
            gc: vec![],
            cache: vec![],
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

    /// A step that saturates the replicas: 2 serving 120 requests/s flat out. Their CPU stops at
    /// 100 %, so the utilisation can ask for ceil(2 × 1 / 0.6) = 4 at most, and the next window
    /// (2 of 4 ready, still flat out) for nothing more; the request rate, kept at 22.92 a
    /// replica (38.2 at 100 %, at 60 %), asks for ceil(120 / 22.92) = 6 at once. Either metric
    /// alone gives its own count; together the larger wins, and the decision says which.
    #[test]
    fn a_request_rate_target_sees_past_a_saturated_utilisation() {
        let key = SigningKey::new(None, b"0123456789abcdef0123456789abcdef").unwrap();
        let (t0, duration) = (1_800_000_000_000, "http.server.request.duration");
        let cpu = MetricTarget {
            name: "cpu.utilization".into(),
            average_value: 0.6,
            signal: TargetSignal::Mean,
        };
        let rate = MetricTarget {
            name: duration.into(),
            average_value: 22.92,
            signal: TargetSignal::Rate,
        };
        let with = |metrics: Vec<MetricTarget>| {
            let mut cfg = config();
            cfg.scale[0].metrics = metrics;
            cfg
        };
        let mut requests = row(duration, t0, 0.2);
        requests.count = 120 * 60;
        let mut rows = scale_rows(t0, 2.0, 2.0, 1.0);
        rows.push(requests);
        let to = |cfg: &PlannerConfig| {
            let out = plan(cfg, &key, &mut PlannerState::default(), rows.clone());
            assert_eq!(out.len(), 1);
            out[0].clone()
        };
        assert_eq!(to(&with(vec![cpu.clone()])).replicas_to, Some(4));
        let d = to(&with(vec![cpu.clone(), rate.clone()]));
        assert_eq!((d.replicas_from, d.replicas_to), (Some(2), Some(6)));
        assert!(
            d.reason
                .contains("rate 120.00/s (60.00 a replica of 2) against 22.92"),
            "{}",
            d.reason
        );
        let e = d.evidence.iter().find(|e| e.metric == duration).unwrap();
        assert_eq!((e.value, e.target), (60.0, Some(22.92)));
        assert_eq!(to(&with(vec![rate])).replicas_to, Some(6));
    }

    /// The replicas (ready, asked for) and the utilisation of the window starting at `start`.
    fn scale_rows(start: i64, ready: f64, asked: f64, cpu: f64) -> Vec<WindowStats> {
        vec![
            row("cpu.utilization", start, cpu),
            row(DEFAULT_REPLICAS_METRIC, start, ready),
            row(DEFAULT_DESIRED_REPLICAS_METRIC, start, asked),
        ]
    }

    #[test]
    fn a_scale_in_progress_is_not_decided_again_from_the_old_count() {
        let key = SigningKey::new(None, b"0123456789abcdef0123456789abcdef").unwrap();
        let (mut states, cfg, t0, w) =
            (PlannerState::default(), config(), 1_800_000_000_000, 60_000);
        let scales = |out: Vec<Decision>| -> Vec<(Option<u32>, Option<u32>)> {
            out.iter()
                .map(|d| (d.replicas_from, d.replicas_to))
                .collect()
        };
        // 2 at 150 % of the 75 % target: 4
        let out = plan(&cfg, &key, &mut states, scale_rows(t0, 2.0, 2.0, 1.5));
        assert_eq!(scales(out), [(Some(2), Some(4))]);
        // the next window's telemetry has not caught up (still 2 asked for): 4 are, the 2
        // starting count as idle, [1.5, 1.5, 0, 0] is the target: nothing (before: 2 -> 4 again,
        // a decision the kubernetes executor refuses as stale)
        let out = plan(&cfg, &key, &mut states, scale_rows(t0 + w, 2.0, 2.0, 1.5));
        assert_eq!(scales(out), []);
        // carried out within the window: asked for 2 then 4 (mean 2.2); 2 of them ready,
        // still 150 %: nothing either (its mean rounded, 2, is not what is asked for now)
        let mut rows = scale_rows(t0 + 2 * w, 2.0, 2.2, 1.5);
        rows[2].min = 2.0;
        rows[2].max = 4.0;
        let out = plan(&cfg, &key, &mut states, rows);
        assert_eq!(scales(out), []);
        // all 4 ready at 120 %: ceil(4 × 1.6) = 7, from the 4 asked for
        let out = plan(
            &cfg,
            &key,
            &mut states,
            scale_rows(t0 + 3 * w, 4.0, 4.0, 1.2),
        );
        assert_eq!(scales(out), [(Some(4), Some(7))]);
    }

    #[test]
    fn a_decision_the_telemetry_never_shows_is_not_waited_for_beyond_two_windows() {
        let key = SigningKey::new(None, b"0123456789abcdef0123456789abcdef").unwrap();
        let (mut states, cfg, t0, w) =
            (PlannerState::default(), config(), 1_800_000_000_000, 60_000);
        let out = plan(&cfg, &key, &mut states, scale_rows(t0, 2.0, 2.0, 1.5));
        assert_eq!(out.len(), 1);
        // refused (say): 2 stay asked for; two windows of waiting, then decided again from 2
        for k in 1..=2 {
            let out = plan(
                &cfg,
                &key,
                &mut states,
                scale_rows(t0 + k * w, 2.0, 2.0, 1.5),
            );
            assert!(out.is_empty(), "window {k}: {out:?}");
        }
        let out = plan(
            &cfg,
            &key,
            &mut states,
            scale_rows(t0 + 3 * w, 2.0, 2.0, 1.5),
        );
        assert_eq!(
            out.iter()
                .map(|d| (d.replicas_from, d.replicas_to))
                .collect::<Vec<_>>(),
            [(Some(2), Some(4))]
        );
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
        canary_config_of(
            r#"
            target = "checkout"
            canary = "checkout-canary"
            baseline = "checkout"
            "#,
        )
    }

    /// A rollback rule on latency and errors, its canary and baseline named by `sides`.
    fn canary_config_of(sides: &str) -> PlannerConfig {
        PlannerConfig::from_toml(&format!(
            r#"
            [[rollback]]
            {sides}
            group_weights = {{ latency = 50, errors = 50 }}
            [[rollback.metrics]]
            name = "http.server.request.duration"
            statistic = "p99"
            direction = "increase"
            group = "latency"
            [[rollback.metrics]]
            name = "http.server.errors"
            group = "errors"
            "#
        ))
        .unwrap()
    }

    /// `n` windows of a canary whose p99 latency is `slower` times the baseline's (with the
    /// same pseudo-random spread) and whose errors are the baseline's.
    fn canary_windows(n: i64, slower: f64) -> Vec<Vec<WindowStats>> {
        let t0 = 1_800_000_000_000;
        let mut noise = crate::decisions::uniform(7);
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

    /// The same canary, running as `checkout` itself and told apart by `service.version`
    /// (each version's windows split further by route, which the judge rolls up): the same
    /// decision as when it ran as a service of its own, and nothing for a healthy one.
    #[test]
    fn a_canary_told_apart_by_service_version_is_judged_as_one_of_its_own() {
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let cfg = canary_config_of(
            r#"
            service = "checkout"
            canary = "1.5.0"
            baseline = "1.4.2"
            "#,
        );
        assert_eq!(cfg.series_attributes(), vec!["service.version".to_string()]);
        assert!(cfg.reads("checkout", "http.server.errors"));
        let by_version = |rows: Vec<WindowStats>| -> Vec<WindowStats> {
            rows.into_iter()
                .flat_map(|w| {
                    let version = if w.service == "checkout-canary" {
                        "1.5.0"
                    } else {
                        "1.4.2"
                    };
                    ["/pay", "/cart"].map(|route| {
                        let mut r = w.clone();
                        r.service = "checkout".into();
                        r.attributes
                            .insert("service.version".into(), version.into());
                        r.attributes.insert("http.route".into(), route.into());
                        r
                    })
                })
                .collect()
        };
        let run = |slower: f64| {
            let mut states = PlannerState::default();
            canary_windows(14, slower)
                .into_iter()
                .flat_map(|rows| plan(&cfg, &key, &mut states, by_version(rows)))
                .collect::<Vec<_>>()
        };
        let out = run(1.6);
        assert_eq!(out.len(), 1, "{out:#?}");
        let d = &out[0];
        assert_eq!(d.target, "checkout");
        assert_eq!(d.action, DecisionAction::Rollback);
        assert_eq!(d.window_start, 1_800_000_000_000 + 4 * 60_000);
        assert!(
            d.reason
                .starts_with("CanaryFailed: 1.5.0 scored 50.00 against 1.4.2"),
            "{}",
            d.reason
        );
        assert!(run(1.0).is_empty(), "a canary like its baseline passes");
        let bad = PlannerConfig::from_toml(
            "[[rollback]]\nattribute = \"k8s.deployment.name\"\ncanary = \"a\"\nbaseline = \"b\"\n[[rollback.metrics]]\nname = \"m\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("name it with `service`"), "{bad}");
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

    /// A target on 8 replicas with a predictive rule: 100 per replica, the defaults (70 %,
    /// a burst to 90 % for 5 min, a scheduling buffer of 60 s).
    fn predictive_config() -> PlannerConfig {
        PlannerConfig::from_toml(crate::decisions::PREDICTIVE_EXAMPLE).unwrap()
    }

    const T0: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    /// A forecast issued at the end of window `issued_end` for the window ending at
    /// `target_end`, with upper bound `upper`.
    fn forecast(issued_end: i64, target_end: i64, upper: f64) -> ForecastRecord {
        ForecastRecord {
            attributes: Default::default(),
            service: "checkout".into(),
            metric: "http.server.request.duration".into(),
            signal: "rate".into(),
            window_seconds: 60,
            window_start: issued_end - MIN,
            window_end: issued_end,
            horizon_seconds: ((target_end - issued_end) / 1000) as u64,
            target_time: target_end,
            value: upper * 0.8,
            lower: upper * 0.6,
            upper,
            model_version: "test".into(),
            revision: 1,
        }
    }

    /// Windows 0..7 (ending at T0 + (k+1) min) at the target's CPU target on 8 replicas, and
    /// the forecasts issued 15 min ahead from 15 min before the first: 560 a minute (what 8
    /// replicas carry at 70 %) but 840 in the window ending 2 min after window 3's end (the
    /// one window 3's decision covers, with the 60 s buffer); and a fresher forecast of that
    /// window issued at window 4, which window 3's decision must not see. Per window: its
    /// end, its rows, the forecasts issued at it.
    fn predictive_windows() -> Vec<(i64, Vec<WindowStats>, Vec<ForecastRecord>)> {
        let spike = T0 + 4 * MIN + 2 * MIN;
        let upper = |end: i64| if end == spike { 840.0 } else { 560.0 };
        (-15..7)
            .map(|k| {
                let end = T0 + (k + 1) * MIN;
                let rows = if k >= 0 {
                    vec![
                        row("cpu.utilization", end - MIN, 0.75),
                        row(DEFAULT_REPLICAS_METRIC, end - MIN, 8.0),
                    ]
                } else {
                    vec![]
                };
                let mut forecasts = vec![forecast(end, end + 15 * MIN, upper(end + 15 * MIN))];
                if k == 4 {
                    forecasts.push(forecast(end, spike, 2_000.0));
                }
                (end, rows, forecasts)
            })
            .collect()
    }

    #[test]
    fn a_forecast_spike_scales_up_ahead_of_it_once() {
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let cfg = predictive_config();
        let mut states = PlannerState::default();
        let mut out = Vec::new();
        for (_, rows, forecasts) in predictive_windows() {
            states.forecasts(&cfg, &SeriesIndex::new(&cfg), forecasts);
            out.extend(plan(&cfg, &key, &mut states, rows));
        }
        assert_eq!(out.len(), 1, "{out:#?}");
        let d = &out[0];
        assert_eq!(d.rule, PREDICTIVE_RULE);
        assert_eq!(
            d.window_start,
            T0 + 3 * MIN,
            "decided at window 3, 2 min ahead"
        );
        // One window at 840, then 560 again: a one-minute burst, 10 replicas carry it at 84 %
        // (9 would at 93 %, over 90 %); the HPA rule alone keeps 8 (0.75 against 0.75).
        assert_eq!((d.replicas_from, d.replicas_to), (Some(8), Some(10)));
        let e = d.evidence.last().unwrap();
        assert_eq!(
            (
                e.metric.as_str(),
                e.statistic.as_str(),
                e.window_start,
                e.value
            ),
            (
                "http.server.request.duration",
                "forecast upper, rate",
                T0 + 5 * MIN,
                840.0
            )
        );
        assert_eq!(e.target, Some(10.0 * 100.0 * 0.7));
        assert!(
            d.reason.contains("forecast up to 840.00")
                && d.reason
                    .contains("a burst of at most 5m tolerated up to 90 %")
                && d.reason.contains("more than the 8 the HPA rule recommends"),
            "{}",
            d.reason
        );
        assert_eq!(d.verify(std::slice::from_ref(&key)), Ok(()));
    }

    #[test]
    fn planned_at_the_median_the_same_spike_is_a_burst_the_replicas_carry() {
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let toml = format!("{}quantile = 0.5\n", crate::decisions::PREDICTIVE_EXAMPLE);
        let cfg = PlannerConfig::from_toml(&toml).unwrap();
        let mut states = PlannerState::default();
        let mut out = Vec::new();
        for (_, rows, forecasts) in predictive_windows() {
            states.forecasts(&cfg, &SeriesIndex::new(&cfg), forecasts);
            out.extend(plan(&cfg, &key, &mut states, rows));
        }
        // The spike's median is 0.8 x 840 = 672: 84 % of 8 replicas, a one-minute burst
        // under 90 %: nothing to do (the upper bound asked for 10 replicas above).
        assert!(out.is_empty(), "{out:#?}");
        // A median that 8 replicas cannot carry even in a burst asks for more, and says what
        // it planned for.
        let mut states = PlannerState::default();
        let mut out = Vec::new();
        for (_, rows, mut forecasts) in predictive_windows() {
            for f in &mut forecasts {
                if f.upper == 2_000.0 || f.upper == 840.0 {
                    f.value = 1_000.0;
                }
            }
            states.forecasts(&cfg, &SeriesIndex::new(&cfg), forecasts);
            out.extend(plan(&cfg, &key, &mut states, rows));
        }
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(
            (out[0].replicas_from, out[0].replicas_to),
            (Some(8), Some(12))
        );
        let e = out[0].evidence.last().unwrap();
        assert_eq!(
            (e.statistic.as_str(), e.value),
            ("forecast median, rate", 1_000.0)
        );
        assert!(out[0].reason.contains("(median)"), "{}", out[0].reason);
    }

    #[test]
    fn the_forecast_never_scales_in_but_holds_a_scale_in_to_what_it_needs() {
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let cfg = predictive_config();
        let run = |cpu: f64, load: f64| {
            let mut states = PlannerState::default();
            let end = T0 + MIN;
            // forecasts of the window 2 min ahead, issued 15 min before it
            let ix = SeriesIndex::new(&cfg);
            states.forecasts(
                &cfg,
                &ix,
                vec![forecast(end - 13 * MIN, end + 2 * MIN, load)],
            );
            let rows = vec![
                row("cpu.utilization", T0, cpu),
                row(DEFAULT_REPLICAS_METRIC, T0, 10.0),
            ];
            plan(&cfg, &key, &mut states, rows)
        };
        // The HPA rule: 10 × 0.375 / 0.75 → 5. A forecast of 350 needs 5 (350 / 500 = 70 %):
        // the HPA's decision.
        let d = run(0.375, 350.0);
        assert_eq!((d[0].rule.as_str(), d[0].replicas_to), (HPA_RULE, Some(5)));
        // A forecast of 560 needs 8: the scale-in stops there.
        let d = run(0.375, 560.0);
        assert_eq!(
            (d[0].rule.as_str(), d[0].replicas_to),
            (PREDICTIVE_RULE, Some(8))
        );
        // At the CPU target, a forecast under what 10 carry does not scale in.
        assert!(run(0.75, 100.0).is_empty());
    }

    /// Runs the planner operator on `workers` workers, each sending its share of every
    /// window's rows and forecasts; `batched`: all at one time (a replay's batch), else each
    /// window at its own end.
    /// The decisions of `windows` (each window's rows and the forecasts issued at it) planned
    /// in one go, and planned with the state saved after window `cut` and restored from
    /// those bytes (a checkpoint's part) for the rest: the same, at every cut.
    fn same_after_a_restore_at_every_cut(
        cfg: &PlannerConfig,
        windows: &[(Vec<WindowStats>, Vec<ForecastRecord>)],
    ) -> Vec<Decision> {
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let index = SeriesIndex::new(cfg);
        let run = |states: &mut PlannerState, part: &[(Vec<WindowStats>, Vec<ForecastRecord>)]| {
            let mut out = Vec::new();
            for (rows, forecasts) in part {
                states.forecasts(cfg, &index, forecasts.clone());
                out.extend(plan(cfg, &key, states, rows.clone()));
            }
            out
        };
        let whole = run(&mut PlannerState::default(), windows);
        for cut in 0..=windows.len() {
            let mut states = PlannerState::default();
            let mut out = run(&mut states, &windows[..cut]);
            let bytes = bincode::serialize(&states).unwrap();
            let mut restored = PlannerState::restored(&bytes, cfg).unwrap();
            out.extend(run(&mut restored, &windows[cut..]));
            assert_eq!(out, whole, "restored after window {cut}");
        }
        whole
    }

    /// A checkpoint of the planner's state holds everything its decisions depend on: the
    /// autoscaler's recommendations and scale events (under the rules' behaviour, which the
    /// checkpoint leaves out and the restore takes from the rules), the replicas seen and
    /// asked for, and the forecast curve.
    #[test]
    fn a_restored_planner_decides_as_the_one_never_stopped() {
        // Up fast, then down at most one pod a minute after a 3-minute stabilisation: without
        // its behaviour a restored autoscaler would scale down at once.
        let cfg = PlannerConfig::from_toml(
            r#"
            [[scale]]
            target = "checkout"
            max_replicas = 20
            metrics = [{ name = "cpu.utilization", average_value = 0.75 }]
            [scale.behavior.scale_down]
            stabilization_window_seconds = 180
            policies = [{ type = "Pods", value = 1, period_seconds = 60 }]
            "#,
        )
        .unwrap();
        let (t0, w) = (1_800_000_000_000_i64, 60_000);
        let mut replicas = 2.0;
        let mut windows = Vec::new();
        let mut decided = Vec::new();
        // The replicas follow the last decision a window later.
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let mut states = PlannerState::default();
        for k in 0..16 {
            let cpu = if k < 4 { 1.5 } else { 0.2 };
            let rows = scale_rows(t0 + k * w, replicas, replicas, cpu);
            for d in plan(&cfg, &key, &mut states, rows.clone()) {
                replicas = f64::from(d.replicas_to.unwrap_or(0));
                decided.push(d);
            }
            windows.push((rows, Vec::new()));
        }
        let downs = decided
            .iter()
            .filter(|d| d.replicas_to < d.replicas_from)
            .count();
        assert!(downs >= 2, "one pod at a time: {decided:#?}");
        let out = same_after_a_restore_at_every_cut(&cfg, &windows);
        assert_eq!(out, decided);

        let windows: Vec<_> = predictive_windows()
            .into_iter()
            .map(|(_, rows, forecasts)| (rows, forecasts))
            .collect();
        let out = same_after_a_restore_at_every_cut(&predictive_config(), &windows);
        assert_eq!(out.len(), 1, "the spike's scale-up: {out:#?}");
    }

    fn through_the_operator(workers: usize, batched: bool) -> Vec<Decision> {
        use std::sync::Mutex;
        use timely::dataflow::operators::{Inspect, Probe};
        use timely::dataflow::{InputHandleVec, ProbeHandle};
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        timely::execute(timely::Config::process(workers), move |worker| {
            let mut stats: InputHandleVec<u64, WindowStats> = InputHandleVec::new();
            let mut forecasts: InputHandleVec<u64, ForecastRecord> = InputHandleVec::new();
            let probe = ProbeHandle::new();
            let sink = sink.clone();
            worker.dataflow::<u64, _, _>(|scope| {
                let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
                planner_operator(
                    stats.to_stream(scope),
                    forecasts.to_stream(scope),
                    Arc::new(predictive_config()),
                    key,
                    None,
                )
                .inspect(move |d: &Decision| sink.lock().unwrap().push(d.clone()))
                .probe_with(&probe);
            });
            let (me, n) = (worker.index(), worker.peers());
            let windows = predictive_windows();
            let last = windows.last().map_or(0, |w| w.0) as u64;
            for (i, (end, rows, fs)) in windows.into_iter().enumerate() {
                if i % n != me {
                    continue;
                }
                let at = if batched { last } else { end as u64 };
                for h in [stats.time(), forecasts.time()] {
                    assert!(*h <= at);
                }
                stats.advance_to(at);
                forecasts.advance_to(at);
                // rows before or after forecasts: it makes no difference
                if i % 2 == 0 {
                    fs.into_iter().for_each(|f| forecasts.send(f));
                    rows.into_iter().for_each(|r| stats.send(r));
                } else {
                    rows.into_iter().for_each(|r| stats.send(r));
                    fs.into_iter().for_each(|f| forecasts.send(f));
                }
            }
            stats.advance_to(last + 1);
            forecasts.advance_to(last + 1);
            worker.step_while(|| probe.less_than(stats.time()));
        })
        .unwrap();
        let mut d = out.lock().unwrap().clone();
        d.sort_by(|a, b| a.id.cmp(&b.id));
        d
    }

    #[test]
    fn the_operator_decides_the_same_on_one_or_two_workers_batched_or_not() {
        let one = through_the_operator(1, false);
        assert_eq!(one.len(), 1, "{one:#?}");
        assert_eq!(
            (one[0].rule.as_str(), one[0].replicas_to),
            (PREDICTIVE_RULE, Some(10))
        );
        assert_eq!(through_the_operator(1, true), one, "one batch");
        assert_eq!(through_the_operator(2, false), one, "two workers");
        assert_eq!(through_the_operator(2, true), one, "two workers, one batch");
    }

    /// A JVM's windows: the p95 pause `pause_ms` (the histogram in ms; none: no pause in
    /// it), the heap's limit (`limit_mib`, and its max when it changed in the window) and its
    /// mean use `used_mib`.
    fn gc_window(
        start: i64,
        pause_ms: Option<f64>,
        limit_mib: (f64, f64),
        used_mib: f64,
    ) -> Vec<WindowStats> {
        const MIB: f64 = 1024.0 * 1024.0;
        let mut limit = row("jvm.memory.limit", start, limit_mib.0 * MIB);
        limit.max = limit_mib.1 * MIB;
        let mut rows = vec![limit, row("jvm.memory.used", start, used_mib * MIB)];
        rows.extend(pause_ms.map(|p| {
            let mut r = row("jvm.gc.duration", start, p);
            r.unit = "ms".into();
            r
        }));
        rows
    }

    #[test]
    fn long_pauses_on_a_full_heap_grow_it_once_and_on_a_roomy_one_shorten_the_goal_once() {
        const MIB: f64 = 1024.0 * 1024.0;
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let cfg =
            PlannerConfig::from_toml("[[gc]]\ntarget = \"checkout\"\nmax_heap = 4294967296\n")
                .unwrap();
        assert!(
            cfg.reads("checkout", "jvm.gc.duration") && cfg.reads("checkout", "jvm.memory.used")
        );
        let mut states = PlannerState::default();
        let mut step = |k: i64, pause: Option<f64>, limit: (f64, f64), used: f64| {
            plan(
                &cfg,
                &key,
                &mut states,
                gc_window(T0 + k * MIN, pause, limit, used),
            )
        };
        // pauses of 120 ms on a 480 MiB heap used 440 on average: live 400 (83 %), over G1's
        // 45 %: 400 / 0.45 = 888.9, so 889 MiB
        let d = step(0, Some(120.0), (480.0, 480.0), 440.0);
        assert_eq!(d.len(), 1, "{d:#?}");
        let d = &d[0];
        assert_eq!((d.rule.as_str(), d.action), (GC_RULE, DecisionAction::Tune));
        assert_eq!(
            d.tune,
            Some(TuneChange {
                setting: "jvm.memory.limit".into(),
                from: Some(480.0 * MIB),
                to: 889.0 * MIB
            })
        );
        assert!(
            d.reason.starts_with(
                "GcPause: p95 pause 120 ms over 100 ms; live set about 400 MiB (2 x 440 MiB used \
                 on average - the 480 MiB heap) = 83 % of the heap, over 45 %"
            ),
            "{}",
            d.reason
        );
        assert_eq!(
            d.evidence[0].target,
            Some(100.0),
            "the limit in the pauses' unit"
        );
        assert_eq!(d.verify(std::slice::from_ref(&key)), Ok(()));
        // the next window still shows 480 MiB: asked already, not again
        assert!(step(1, Some(120.0), (480.0, 480.0), 440.0).is_empty());
        // the window it changed in tells nothing; then the larger heap pauses 36 ms: nothing
        assert!(step(2, Some(80.0), (480.0, 889.0), 600.0).is_empty());
        assert!(step(3, Some(36.0), (889.0, 889.0), 644.0).is_empty());
        // a window without pauses: nothing either
        assert!(step(4, None, (889.0, 889.0), 644.0).is_empty());
        // long pauses on a roomy heap (live 200 of 889 MiB): the pause goal, 200 -> 100 ms, once
        let d = step(5, Some(150.0), (889.0, 889.0), 544.5);
        assert_eq!(
            d[0].tune,
            Some(TuneChange {
                setting: "MaxGCPauseMillis".into(),
                from: Some(200.0),
                to: 100.0
            }),
            "{d:#?}"
        );
        assert!(step(6, Some(150.0), (889.0, 889.0), 544.5).is_empty());
        // bad settings are refused
        for bad in [
            "[[gc]]\ntarget = \"x\"\nmax_heap = 0\n",
            "[[gc]]\ntarget = \"x\"\nmax_heap = 1e9\noccupancy = 1.0\n",
            "[[gc]]\ntarget = \"x\"\nmax_heap = 1e9\nmax_growth = 1.0\n",
            "[[gc]]\ntarget = \"x\"\nmax_heap = 1e9\n[[gc]]\ntarget = \"x\"\nmax_heap = 1e9\n",
        ] {
            assert!(PlannerConfig::from_toml(bad).is_err(), "{bad}");
        }
    }

    /// The pool's windows: `uses` connection uses in the window held `hold_ms` on average
    /// (the histogram in ms), the pool's size `size` (none: not reported this window).
    fn pool_window(start: i64, uses: u64, hold_ms: f64, size: Option<f64>) -> Vec<WindowStats> {
        let mut u = row("db.client.connection.use_time", start, hold_ms);
        u.unit = "ms".into();
        u.count = uses;
        let mut rows = vec![u];
        rows.extend(size.map(|s| row("db.client.connection.max", start, s)));
        rows
    }

    #[test]
    fn a_busy_pool_grows_by_littles_law_and_shrinks_only_when_every_recent_window_allows() {
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let cfg = PlannerConfig::from_toml(
            "[[pool]]\ntarget = \"checkout\"\nmax_size = 50\nlookback = 3\n",
        )
        .unwrap();
        assert!(cfg.reads("checkout", "db.client.connection.use_time"));
        let mut states = PlannerState::default();
        let mut step = |k: i64, uses: u64, hold_ms: f64, size: Option<f64>| {
            plan(
                &cfg,
                &key,
                &mut states,
                pool_window(T0 + k * MIN, uses, hold_ms, size),
            )
        };
        // no size seen yet: the rule waits
        assert!(step(0, 1_200, 400.0, None).is_empty());
        // 1 200 uses a minute held 400 ms: 20/s x 0.4 s = 8 in use; 8 / 0.8 → 10 (from 5)
        let d = step(1, 1_200, 400.0, Some(5.0));
        assert_eq!(d.len(), 1, "{d:#?}");
        let d = &d[0];
        assert_eq!(
            (d.rule.as_str(), d.action),
            (POOL_RULE, DecisionAction::Tune)
        );
        assert_eq!(
            d.tune,
            Some(TuneChange {
                setting: "db.client.connection.max".into(),
                from: Some(5.0),
                to: 10.0
            })
        );
        assert_eq!(
            d.evidence
                .iter()
                .map(|e| (e.statistic.as_str(), e.value))
                .collect::<Vec<_>>(),
            [
                ("rate", 20.0),
                ("mean", 400.0),
                ("in use (rate x mean), the peak of 2 windows", 8.0),
                ("mean", 5.0)
            ]
        );
        assert!(
            d.reason.starts_with(
                "PoolSize: by Little's law 20.000 uses/s x 400.0 ms held = 8.00 connections in use"
            ),
            "{}",
            d.reason
        );
        assert_eq!(d.verify(std::slice::from_ref(&key)), Ok(()));
        // the pool now has 10; quiet minutes: 2 in use, but the busy one is within 3 windows
        assert!(
            step(2, 1_200, 400.0, Some(10.0)).is_empty(),
            "8 of 10: on the aim"
        );
        assert!(step(3, 300, 400.0, Some(10.0)).is_empty());
        assert!(step(4, 300, 400.0, Some(10.0)).is_empty());
        // three quiet windows: 2 in use → 3
        let d = step(5, 300, 400.0, Some(10.0));
        assert_eq!(d[0].tune.as_ref().map(|t| t.to), Some(3.0), "{d:#?}");
        // a unit the rule does not know: skipped, not guessed
        let mut odd = pool_window(T0 + 6 * MIN, 9_000, 400.0, Some(3.0));
        odd[0].unit = "By".into();
        assert!(plan(&cfg, &key, &mut states, odd).is_empty());

        // a pool first seen quiet (a series' first window may hold part of a window's
        // uses): not shrunk before `lookback` windows allow it; grown at once
        let mut states = PlannerState::default();
        let mut step = |k: i64, uses: u64| {
            plan(
                &cfg,
                &key,
                &mut states,
                pool_window(T0 + k * MIN, uses, 50.0, Some(4.0)),
            )
        };
        // 600 uses a minute held 50 ms: 0.5 in use → 1, but only 1 then 2 windows seen
        assert!(step(0, 600).is_empty());
        assert!(step(1, 600).is_empty());
        let d = step(2, 600);
        assert_eq!(d[0].tune.as_ref().map(|t| t.to), Some(1.0), "{d:#?}");
        let mut states = PlannerState::default();
        let d = plan(
            &cfg,
            &key,
            &mut states,
            pool_window(T0, 6_000, 50.0, Some(4.0)),
        );
        assert_eq!(
            d[0].tune.as_ref().map(|t| t.to),
            Some(7.0),
            "5 in use: grown at once"
        );
        // the window the pool grew in (4, then 7: its mean 5.5 is neither) decides nothing;
        // the next, at 7 and as busy, nothing either (5 of 7 in use: on the aim)
        let mut grew = pool_window(T0 + MIN, 6_000, 50.0, Some(5.5));
        grew[1].min = 4.0;
        grew[1].max = 7.0;
        assert!(plan(&cfg, &key, &mut states, grew).is_empty());
        let steady = pool_window(T0 + 2 * MIN, 6_000, 50.0, Some(7.0));
        assert!(plan(&cfg, &key, &mut states, steady).is_empty());

        // a shrink set back (by the effect check) is not asked again for 30 windows
        let mut states = PlannerState::default();
        let mut step = |k: i64, size: f64| {
            plan(
                &cfg,
                &key,
                &mut states,
                pool_window(T0 + k * MIN, 600, 50.0, Some(size)),
            )
        };
        assert!(step(0, 4.0).is_empty());
        assert!(step(1, 4.0).is_empty());
        assert_eq!(step(2, 4.0)[0].tune.as_ref().map(|t| t.to), Some(1.0));
        assert!(step(3, 1.0).is_empty(), "shrunk: on the aim");
        // reverted: 4 again, as quiet; no shrink until window 4 + 30
        for k in 4..34 {
            assert!(step(k, 4.0).is_empty(), "window {k}");
        }
        assert_eq!(step(34, 4.0)[0].tune.as_ref().map(|t| t.to), Some(1.0));
    }

    #[test]
    fn a_cache_below_its_hit_ratio_grows_by_the_planner() {
        let key = SigningKey::new(Some("k1"), b"0123456789abcdef0123456789abcdef").unwrap();
        let cfg = PlannerConfig::from_toml(
            "[[cache]]\ntarget = \"checkout\"\nhits_metric = \"cache.hits\"\n\
             misses_metric = \"cache.misses\"\nsize_metric = \"cache.max_size\"\n\
             max_size = 10000\n",
        )
        .unwrap();
        assert!(cfg.reads("checkout", "cache.misses"));
        let mut states = PlannerState::default();
        let mut out = Vec::new();
        for k in 0..3 {
            let start = T0 + k * MIN;
            let mut hits = row("cache.hits", start, 1.0);
            hits.sum = 800.0;
            let mut misses = row("cache.misses", start, 1.0);
            misses.sum = 200.0;
            let size = row("cache.max_size", start, 1_000.0);
            out.extend(plan(&cfg, &key, &mut states, vec![hits, misses, size]));
        }
        assert_eq!(out.len(), 1, "{out:#?}");
        let d = &out[0];
        assert_eq!(
            (d.rule.as_str(), d.window_start),
            (CACHE_RULE, T0 + 2 * MIN)
        );
        assert_eq!(
            d.tune,
            Some(TuneChange {
                setting: "cache.max_size".into(),
                from: Some(1_000.0),
                to: 1_500.0
            })
        );
        assert!(
            d.reason.starts_with(
                "CacheHitRatio: 80.0 % hits (2400 of 3000) over the last 3 windows at size 1000, \
                 below 95.0 %; the first increase; 1000 -> 1500"
            ),
            "{}",
            d.reason
        );
        assert_eq!(d.verify(std::slice::from_ref(&key)), Ok(()));
    }
}
