//! The models in the stream: every closed window of every metric series and of every RED row
//! (per service, operation, kind and status) is scored by the isolation forest and by the
//! series' contextual detector on its p95 ([`ContextDetector`], learnt online)
//! (→ [`AnomalyRecord`]; [`Scorable`] says what a window gives them) and, for metric series whose
//! window size allows a 15-minute horizon, forecast by the LSTM (→ [`ForecastRecord`]).
//!
//! Each key's windows reach one worker (the window operator exchanges by key), in window
//! order. Windows are batched per timestamp; the forest with the contextual detectors, and the
//! LSTM, each run on a thread of their own per worker (the batch's capability held until its
//! results return). The worker holds per key the feature history and alert state, or the last
//! values for the forecaster; the anomaly thread holds the keys' contextual detectors.
//! Revisions of a window (late data) are not rescored. The state is in the job's
//! checkpoints when it takes them (a restart restores it, then replays only what came after);
//! without a checkpoint, after a restart a key's state is rebuilt, the first time the key is
//! seen, from the windows it closed before ([`PastWindows`], read back from Parquet), so the
//! restarted run emits what an uninterrupted one would (the contextual detector's memory spans the key's life: for a
//! key older than the windows replayed, it is relearnt from them); without them a key needs
//! `MIN_HISTORY` windows (forest) or `seq_len` windows (forecaster) before it is scored
//! again. A key silent for as many of its windows as its state spans (`HISTORY`, or
//! `seq_len`) is dropped ([`SeriesStates`]), on the worker and the thread alike, and starts
//! afresh if it returns. Models are [`Watched`]: replaced files are taken without stopping.
//! An [`ActionLog`] (read from `apo.actions`) suppresses the alerts of a service for a while
//! after an action on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use apo_ingest::actions::ActionLog;
use apo_models::alerting::{AlertConfig, AlertOutcome, AlertState};
use apo_models::context::{ContextConfig, ContextDetector};
use apo_models::features::{self, KeyHistory, FEATURES, FEATURE_NAMES};
use apo_models::watch::Watched;
use apo_models::{IsolationForest, ModelError};
use apo_schemas::model_output::{AnomalyRecord, Driver};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::engine::checkpoint::OperatorCheckpoint;
use crate::models::batch::{next_closed, Pending};
use crate::models::config::ModelConfig;
use crate::models::series::{window_ms, Scorable, SeriesKey};
use crate::models::state::SeriesStates;
use crate::models::warm::PastWindows;
use crate::ops::offload::{next_result, spawn_model_thread};
use crate::ops::stash::{applied_before, stash_input, Stash};

/// The (at most three) features furthest from zero, largest first.
pub fn drivers(f: &[f64; FEATURES]) -> Vec<Driver> {
    let mut idx: Vec<usize> = (0..FEATURES).filter(|i| f[*i] != 0.0).collect();
    idx.sort_by(|a, b| f[*b].abs().total_cmp(&f[*a].abs()).then(a.cmp(b)));
    idx.into_iter()
        .take(3)
        .map(|i| Driver {
            feature: FEATURE_NAMES[i].to_string(),
            value: f[i],
        })
        .collect()
}

/// The anomaly stage on `windows`, or `None` (logged) when the model does not load on this
/// worker.
pub fn anomaly_stage<'s, T: Scorable>(
    windows: StreamVec<'s, u64, T>,
    config: &ModelConfig,
    inputs: StateInputs<T>,
    checkpoint: Option<OperatorCheckpoint>,
) -> Option<StreamVec<'s, u64, AnomalyRecord>> {
    let path = config.anomaly_model.as_ref()?;
    match Watched::<IsolationForest>::load(path, config.reload_check) {
        Ok(model) => Some(anomaly_operator(
            windows,
            model,
            config.alert,
            inputs,
            checkpoint,
        )),
        Err(e) => {
            tracing::error!(error = %e, "anomaly model did not load on this worker: windows not scored");
            None
        }
    }
}

/// What a model operator reads besides its windows.
pub struct StateInputs<T> {
    /// Actions carried out (`apo.actions`): alerts they explain are suppressed.
    pub actions: Option<ActionLog>,
    /// Windows closed before this process started, to warm a series' state the first time
    /// it is seen ([`PastWindows`]).
    pub past: Option<Arc<PastWindows<T>>>,
}

impl<T> Default for StateInputs<T> {
    fn default() -> Self {
        StateInputs {
            actions: None,
            past: None,
        }
    }
}

/// Windows a series' anomaly state needs replayed to be what it was: the feature history
/// of each of the last `adaptive_window` scores, and at least the contextual detector's
/// learning period (its memory spans the series' life: a series up to this many windows old
/// restarts exactly as it was).
pub fn anomaly_warm_windows(alert: &AlertConfig) -> usize {
    (features::HISTORY + alert.adaptive_window).max(alert.context.learn_windows)
}

/// A series' anomaly state on the worker: feature history and alert state (its contextual
/// detector lives on the anomaly thread, [`AnomalyJob`]).
type AnomalyState = (KeyHistory, AlertState);
type AnomalyStates = SeriesStates<SeriesKey, AnomalyState>;

/// The series' contextual detectors, held by the anomaly thread; the worker reads them for a
/// checkpoint when no batch is out on the thread.
type Detectors = Arc<Mutex<SeriesStates<SeriesKey, ContextDetector>>>;

/// Locks the detectors; a thread that panicked holding them leaves them as they were.
fn lock(d: &Detectors) -> MutexGuard<'_, SeriesStates<SeriesKey, ContextDetector>> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

/// The operator's state in a checkpoint: the worker's per-series states and the thread's
/// detectors, taken when no batch is out on the thread (both have applied the same windows).
fn snapshot(keys: &AnomalyStates, detectors: &Detectors) -> Result<Vec<u8>, bincode::Error> {
    bincode::serialize(&(keys, &*lock(detectors)))
}

/// The state a checkpoint saved ([`snapshot`]).
type Saved = (AnomalyStates, SeriesStates<SeriesKey, ContextDetector>);

/// The value the contextual detector follows: the window's p95.
fn context_value(s: &features::Signals) -> f64 {
    s[1]
}

/// A window for the anomaly thread's contextual detectors: its series, end (ms) and value.
struct ContextInput {
    series: SeriesKey,
    end: i64,
    value: f64,
}

/// What the anomaly thread does for one batch: evict the detectors of series silent at `now`
/// (the same sweep the worker makes of its own states, so both hold the same series), step
/// each window's series' contextual detector in order (warm replays included), and score the
/// forest's rows.
struct AnomalyJob {
    now: i64,
    windows: Vec<ContextInput>,
    rows: Vec<[f32; FEATURES]>,
}

/// Back from the anomaly thread: the forest's scores (or why there are none), the model's
/// threshold and version, and each job window's contextual score (`None` while learning).
struct AnomalyScores {
    forest: Result<Vec<f32>, ModelError>,
    threshold: f64,
    version: String,
    context: Vec<Option<f64>>,
}

/// Where a scored window comes from: the batch (its index; a record is emitted), or a warm
/// replay of a window closed before the start (its series and end; the alert state steps,
/// nothing is emitted).
enum Origin {
    Batch(usize),
    Replay(SeriesKey, i64),
}

/// A window the forest scores: its index among the job's windows (for its contextual score),
/// where it comes from, and its features. The `i`-th step is the job's `i`-th row.
struct Step {
    window: usize,
    origin: Origin,
    features: [f64; FEATURES],
}

/// Takes a window into its series' feature history and into `job`: its value for the
/// contextual detector always, its features for the forest (→ a [`Step`]) once the history
/// is long enough.
fn observe(
    keys: &mut AnomalyStates,
    job: &mut AnomalyJob,
    steps: &mut Vec<Step>,
    series: &SeriesKey,
    end: i64,
    signals: features::Signals,
    origin: Origin,
) {
    let (history, _) = keys.touch(series.clone(), end);
    job.windows.push(ContextInput {
        series: series.clone(),
        end,
        value: context_value(&signals),
    });
    if let Some(f) = history.push(signals) {
        job.rows.push(f.map(|x| x as f32));
        steps.push(Step {
            window: job.windows.len() - 1,
            origin,
            features: f,
        });
    }
}

/// The anomaly thread's work: per series contextual detectors (evicted as the worker evicts
/// its states) and the forest.
fn anomaly_worker(
    model: Watched<IsolationForest>,
    context: ContextConfig,
    detectors: Detectors,
) -> impl FnMut(AnomalyJob) -> AnomalyScores {
    let mut model = model;
    move |job: AnomalyJob| {
        let mut detectors = lock(&detectors);
        detectors.evict(job.now, window_ms);
        let context = job
            .windows
            .into_iter()
            .map(|w| detectors.touch(w.series, w.end).step(&context, w.value))
            .collect();
        let m = model.get();
        let forest = if job.rows.is_empty() {
            Ok(Vec::new())
        } else {
            m.score(&job.rows)
        };
        AnomalyScores {
            forest,
            threshold: m.meta().threshold,
            version: m.version().to_string(),
            context,
        }
    }
}

/// Steps a series' alert state by one window's scores, after noting the last action on its
/// service before the window's end (which suppresses what it explains).
#[allow(clippy::too_many_arguments)]
fn step_after_actions(
    state: &mut AlertState,
    alert: &AlertConfig,
    global: f64,
    actions: Option<&ActionLog>,
    service: &str,
    end: i64,
    score: f64,
    context: Option<f64>,
) -> AlertOutcome {
    if let Some(at) = actions.and_then(|a| a.latest_before(service, end)) {
        state.decision(alert, at);
    }
    state.step(alert, global, end, score, context)
}

/// Scores every closed window (revision 1) with the isolation forest and its series'
/// contextual detector, both on a thread of their own (the windows' capability held until
/// their scores return; the worker keeps the feature histories and alert states). An alert on
/// a series within `alert.suppress_seconds` after an action on its service (`inputs.actions`)
/// is suppressed; a series first seen since the start is warmed from `inputs.past` (its past
/// windows go through the thread before its first new one, and step only its state).
///
/// With a `checkpoint`, the state starts from the restored one, and an epoch is deposited
/// before the first batch at or after its time once the batches before it are back from the
/// thread (a window's alert state steps when its scores return): the per-series states and
/// the detectors then hold exactly the windows before it.
pub fn anomaly_operator<'s, T: Scorable>(
    windows: StreamVec<'s, u64, T>,
    model: Watched<IsolationForest>,
    alert: AlertConfig,
    inputs: StateInputs<T>,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'s, u64, AnomalyRecord> {
    let StateInputs { actions, past } = inputs;
    let scope = windows.scope();
    let worker = scope.worker();
    windows.unary_frontier(Pipeline, "AnomalyScores", move |_, info| {
        if let Some(c) = &checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        let (mut keys, detectors): (AnomalyStates, _) =
            match checkpoint.as_ref().and_then(|c| c.restored()) {
                None => (
                    SeriesStates::new(features::HISTORY),
                    SeriesStates::new(features::HISTORY),
                ),
                Some(bytes) => match bincode::deserialize::<Saved>(bytes) {
                    Ok(saved) => saved,
                    Err(e) => {
                        tracing::error!(error = %e, "anomaly state in the checkpoint unreadable; starting empty");
                        (
                            SeriesStates::new(features::HISTORY),
                            SeriesStates::new(features::HISTORY),
                        )
                    }
                },
            };
        let detectors: Detectors = Arc::new(Mutex::new(detectors));
        let (jobs, results) = spawn_model_thread(
            "apo-anomaly-scorer",
            worker.sync_activator_for(info.address.to_vec()),
            anomaly_worker(model, alert.context, detectors.clone()),
        );
        let mut stash: Stash<T> = Default::default();
        let mut pending: VecDeque<Pending<T, Vec<Step>>> = VecDeque::new();
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            // Scores back from the thread first: a checkpoint waits for the batches out there.
            while let Some((p, r)) = next_result(&mut pending, &results, "anomaly scoring") {
                let Pending { cap, batch, work: steps } = p;
                let scores = match r.forest {
                    Ok(s) => s,
                    Err(e) => {
                        // tract failing on a well-formed batch is a bug, not bad input: say so
                        // loudly and keep the pipeline going.
                        tracing::error!(error = %e, windows = steps.len(), "anomaly scoring failed; windows not scored");
                        continue;
                    }
                };
                let global = alert.threshold.unwrap_or(r.threshold);
                let mut session = output.session(&cap);
                for (step, s) in steps.iter().zip(scores) {
                    let score = f64::from(s);
                    let context = r.context.get(step.window).copied().flatten();
                    let (k, end, window) = match &step.origin {
                        Origin::Batch(i) => {
                            let (k, w) = &batch[*i];
                            (k, w.window_end(), Some(w))
                        }
                        Origin::Replay(k, end) => (k, *end, None),
                    };
                    // A series evicted while its scores were on the thread (event time jumped
                    // past its span) still gets its record, from a fresh alert state.
                    let mut fresh = AlertState::default();
                    let state = keys.get_mut(k).map_or(&mut fresh, |(_, s)| s);
                    let o = step_after_actions(state, &alert, global, actions.as_ref(), &k.0, end, score, context);
                    let Some(w) = window else { continue };
                    session.give(AnomalyRecord {
                        service: k.0.clone(),
                        metric: w.name(),
                        attributes: w.attributes(),
                        window_seconds: k.2,
                        window_start: w.window_start(),
                        window_end: end,
                        score,
                        threshold: o.threshold,
                        likelihood: o.likelihood,
                        context_score: context,
                        is_anomaly: o.is_anomaly,
                        raised: o.raised,
                        suppressed: o.suppressed,
                        drivers: drivers(&step.features),
                        model_version: r.version.clone(),
                        revision: 1,
                    });
                }
            }
            while let Some(next) = stash.keys().next().copied() {
                if frontier.frontier().less_equal(&next) {
                    break;
                }
                if let Some(c) = checkpoint.as_mut() {
                    if c.due(next).is_some() {
                        if !pending.is_empty() {
                            // woken when they are back
                            break;
                        }
                        c.deposit_due(next, |_| snapshot(&keys, &detectors));
                    }
                }
                let Some((cap, batch)) = next_closed(&mut stash, frontier.frontier()) else { break };
                let Some((_, last)) = batch.last() else { continue };
                let now = last.window_end();
                keys.evict(now, window_ms);
                let mut job = AnomalyJob { now, windows: Vec::with_capacity(batch.len()), rows: Vec::new() };
                let mut steps = Vec::new();
                for (i, (k, w)) in batch.iter().enumerate() {
                    if let Some(p) = past.as_ref().filter(|_| !keys.contains(k)) {
                        for e in p.take(k, w.window_end()) {
                            let end = e.window_end();
                            observe(&mut keys, &mut job, &mut steps, k, end, e.signals(), Origin::Replay(k.clone(), end));
                        }
                    }
                    observe(&mut keys, &mut job, &mut steps, k, w.window_end(), w.signals(), Origin::Batch(i));
                }
                if jobs.send(job).is_err() {
                    tracing::error!(windows = batch.len(), "the anomaly scoring thread is gone; windows not scored");
                    continue;
                }
                pending.push_back(Pending { cap, batch, work: steps });
            }
            if pending.is_empty() {
                if let Some(c) = checkpoint.as_mut() {
                    let upto = applied_before(&stash, frontier.frontier());
                    c.deposit_due(upto, |_| snapshot(&keys, &detectors));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_are_the_largest_features_by_magnitude() {
        let mut f = [0.0; FEATURES];
        f[2] = 3.0;
        f[7] = -9.0;
        f[0] = 1.0;
        f[4] = 0.5;
        let d = drivers(&f);
        let names: Vec<&str> = d.iter().map(|d| d.feature.as_str()).collect();
        assert_eq!(names, ["delta_p99", "level_p99", "level_p50"]);
    }
}
