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
//! Revisions of a window (late data) are not rescored. The state is in memory; after a
//! restart a key's state is rebuilt, the first time the key is seen, from the windows it
//! closed before ([`PastWindows`], read back from Parquet), so the restarted run emits what
//! an uninterrupted one would (the contextual detector's memory spans the key's life: for a
//! key older than the windows replayed, it is relearnt from them); without them a key needs
//! `MIN_HISTORY` windows (forest) or `seq_len` windows (forecaster) before it is scored
//! again. A key silent for as many of its windows as its state spans (`HISTORY`, or
//! `seq_len`) is dropped ([`SeriesStates`]), on the worker and the thread alike, and starts
//! afresh if it returns. Models are [`Watched`]: replaced files are taken without stopping.
//! An [`ActionLog`] (read from `apo.actions`) suppresses the alerts of a service for a while
//! after an action on it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use apo_ingest::actions::ActionLog;
use apo_models::alerting::{AlertConfig, AlertOutcome, AlertState};
use apo_models::context::{ContextConfig, ContextDetector};
use apo_models::features::{self, KeyHistory, FEATURES, FEATURE_NAMES};
use apo_models::forecaster::Forecast;
use apo_models::watch::Watched;
use apo_models::{Forecaster, IsolationForest, ModelError};
use apo_schemas::model_output::{AnomalyRecord, Driver, ForecastRecord};
use apo_schemas::red::RedStats;
use apo_schemas::{OutputRow, WindowStats};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::progress::frontier::AntichainRef;
use timely::scheduling::SyncActivator;

use crate::model_history::PastWindows;
use crate::series_state::SeriesStates;
use crate::window::{stash_input, Stash};

/// The window statistic the forecaster follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Signal {
    #[default]
    Mean,
    P50,
    P95,
    P99,
    Max,
    Sum,
    /// Points per second (count / window seconds).
    Rate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Mean => "mean",
            Signal::P50 => "p50",
            Signal::P95 => "p95",
            Signal::P99 => "p99",
            Signal::Max => "max",
            Signal::Sum => "sum",
            Signal::Rate => "rate",
        }
    }

    fn of(self, w: &WindowStats) -> f64 {
        match self {
            Signal::Mean => w.mean,
            Signal::P50 => w.p50,
            Signal::P95 => w.p95,
            Signal::P99 => w.p99,
            Signal::Max => w.max,
            Signal::Sum => w.sum,
            Signal::Rate => w.count as f64 / f64::from(w.window_seconds.max(1)),
        }
    }
}

impl std::str::FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "mean" => Signal::Mean,
            "p50" => Signal::P50,
            "p95" => Signal::P95,
            "p99" => Signal::P99,
            "max" => Signal::Max,
            "sum" => Signal::Sum,
            "rate" => Signal::Rate,
            _ => {
                return Err(format!(
                    "`{s}`: expected mean, p50, p95, p99, max, sum or rate"
                ))
            }
        })
    }
}

/// Which models run in the metrics pipeline, and how.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The isolation forest; `None` scores nothing.
    pub anomaly_model: Option<PathBuf>,
    /// The LSTM forecaster; `None` forecasts nothing.
    pub forecast_model: Option<PathBuf>,
    pub alert: AlertConfig,
    pub forecast_signal: Signal,
    /// How often the model files are looked at for a replacement.
    pub reload_check: Duration,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            anomaly_model: None,
            forecast_model: None,
            alert: AlertConfig::default(),
            forecast_signal: Signal::Mean,
            reload_check: Duration::from_secs(5),
        }
    }
}

impl ModelConfig {
    /// Loads the configured models once (a startup check: the workers load their own).
    pub fn check(&self) -> Result<(), ModelError> {
        self.alert.validate().map_err(ModelError::Input)?;
        if let Some(p) = &self.anomaly_model {
            IsolationForest::load(p)?;
        }
        if let Some(p) = &self.forecast_model {
            Forecaster::load(p)?;
        }
        Ok(())
    }
}

/// (service, series name, window seconds).
pub type SeriesKey = (String, String, u32);

fn window_ms(k: &SeriesKey) -> i64 {
    i64::from(k.2) * 1000
}

/// A closed window of one series that the isolation forest scores.
pub trait Scorable: OutputRow + Clone + 'static {
    /// The series: (service, name, window seconds); names are unique within a service, and
    /// actions on the service suppress the series' alerts.
    fn series(&self) -> SeriesKey;
    /// p50, p95, p99, rate and error ratio of the window.
    fn signals(&self) -> features::Signals;
}

impl Scorable for WindowStats {
    fn series(&self) -> SeriesKey {
        (
            self.service.clone(),
            self.metric.clone(),
            self.window_seconds,
        )
    }
    /// Metrics carry no errors: error ratio 0.
    fn signals(&self) -> features::Signals {
        [
            self.p50,
            self.p95,
            self.p99,
            self.count as f64 / f64::from(self.window_seconds.max(1)),
            0.0,
        ]
    }
}

/// The series name of a RED row in `apo.anomalies`: its dimensions, Prometheus style.
pub fn red_series_name(r: &RedStats) -> String {
    format!(
        "red{{span.name=\"{}\",span.kind=\"{}\",status.code=\"{}\"}}",
        r.span_name, r.span_kind, r.status_code
    )
}

impl Scorable for RedStats {
    fn series(&self) -> SeriesKey {
        (
            self.service_name.clone(),
            red_series_name(self),
            self.window_seconds,
        )
    }
    /// Span durations (ms), calls per second, and the operation's error ratio.
    fn signals(&self) -> features::Signals {
        [
            self.duration_p50_ms,
            self.duration_p95_ms,
            self.duration_p99_ms,
            self.rate,
            self.error_ratio,
        ]
    }
}

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

/// Closed windows with their series, in window order.
type Closed<T> = Vec<(SeriesKey, T)>;

/// The next batch of windows whose timestamp the frontier has passed: first emissions only
/// (revisions are not rescored), in window order, each with its series.
fn next_closed<T: Scorable>(
    stash: &mut Stash<T>,
    frontier: AntichainRef<'_, u64>,
) -> Option<(Capability<u64>, Closed<T>)> {
    let entry = stash.first_entry()?;
    if frontier.less_equal(entry.key()) {
        return None;
    }
    let (cap, batch) = entry.remove();
    let mut batch: Vec<(SeriesKey, T)> = batch
        .into_iter()
        .filter(|w| w.revision() == 1)
        .map(|w| (w.series(), w))
        .collect();
    batch.sort_by(|(ka, a), (kb, b)| (a.window_end(), ka).cmp(&(b.window_end(), kb)));
    Some((cap, batch))
}

/// The anomaly stage on `windows`, or `None` (logged) when the model does not load on this
/// worker.
pub fn anomaly_stage<'s, T: Scorable>(
    windows: StreamVec<'s, u64, T>,
    config: &ModelConfig,
    inputs: StateInputs<T>,
) -> Option<StreamVec<'s, u64, AnomalyRecord>> {
    let path = config.anomaly_model.as_ref()?;
    match Watched::<IsolationForest>::load(path, config.reload_check) {
        Ok(model) => Some(anomaly_operator(windows, model, config.alert, inputs)),
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
) -> impl FnMut(AnomalyJob) -> AnomalyScores {
    let mut model = model;
    let mut detectors: SeriesStates<SeriesKey, ContextDetector> =
        SeriesStates::new(features::HISTORY);
    move |job: AnomalyJob| {
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

/// Batches handed to a model thread and not back yet, at most (after each activation).
const MAX_PENDING: usize = 16;

/// A batch handed to a model thread, waiting for its results; `work` says what in `batch`
/// went (scored windows with their features, or forecast windows).
struct Pending<T, W> {
    cap: Capability<u64>,
    batch: Closed<T>,
    work: W,
}

/// Runs `work` on a thread of its own: jobs in order, results back in order, `activator`
/// woken for each (the operator then emits). Ends when the operator, the only sender, is
/// dropped.
fn spawn_model_thread<J: Send + 'static, R: Send + 'static>(
    name: &str,
    activator: SyncActivator,
    mut work: impl FnMut(J) -> R + Send + 'static,
) -> (mpsc::Sender<J>, mpsc::Receiver<R>) {
    let (jobs_tx, jobs) = mpsc::channel::<J>();
    let (results_tx, results) = mpsc::channel::<R>();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for job in jobs {
                if results_tx.send(work(job)).is_err() {
                    return;
                }
                let _ = activator.activate();
            }
        });
    if let Err(e) = spawned {
        // Without the thread every batch is reported as not done: loud, not silent.
        tracing::error!(error = %e, thread = name, "starting a model thread failed");
    }
    (jobs_tx, results)
}

/// The oldest pending batch with its result: waits when `pending` batches are more than
/// [`MAX_PENDING`] (a backlog slows reading instead of growing), else only if one is ready.
/// `None`: nothing ready, or the thread is gone (logged; the pending batches are dropped).
fn next_result<R, P>(
    pending: &mut VecDeque<P>,
    results: &mpsc::Receiver<R>,
    what: &str,
) -> Option<(P, R)> {
    if pending.is_empty() {
        return None;
    }
    let next = if pending.len() > MAX_PENDING {
        results.recv().map_err(|_| mpsc::TryRecvError::Disconnected)
    } else {
        results.try_recv()
    };
    match next {
        Ok(r) => pending.pop_front().map(|p| (p, r)),
        Err(mpsc::TryRecvError::Empty) => None,
        Err(mpsc::TryRecvError::Disconnected) => {
            tracing::error!(
                batches = pending.len(),
                "the {what} thread is gone; windows not done"
            );
            pending.clear();
            None
        }
    }
}

/// Scores every closed window (revision 1) with the isolation forest and its series'
/// contextual detector, both on a thread of their own (the windows' capability held until
/// their scores return; the worker keeps the feature histories and alert states). An alert on
/// a series within `alert.suppress_seconds` after an action on its service (`inputs.actions`)
/// is suppressed; a series first seen since the start is warmed from `inputs.past` (its past
/// windows go through the thread before its first new one, and step only its state).
pub fn anomaly_operator<'s, T: Scorable>(
    windows: StreamVec<'s, u64, T>,
    model: Watched<IsolationForest>,
    alert: AlertConfig,
    inputs: StateInputs<T>,
) -> StreamVec<'s, u64, AnomalyRecord> {
    let StateInputs { actions, past } = inputs;
    let worker = windows.scope().worker();
    windows.unary_frontier(Pipeline, "AnomalyScores", move |_, info| {
        let (jobs, results) = spawn_model_thread(
            "apo-anomaly-scorer",
            worker.sync_activator_for(info.address.to_vec()),
            anomaly_worker(model, alert.context),
        );
        let mut stash: Stash<T> = Default::default();
        let mut keys: AnomalyStates = SeriesStates::new(features::HISTORY);
        let mut pending: VecDeque<Pending<T, Vec<Step>>> = VecDeque::new();
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            while let Some((cap, batch)) = next_closed(&mut stash, frontier.frontier()) {
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
                        metric: k.1.clone(),
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
        }
    })
}

/// Appends `x`, keeping the last `len` values.
fn push_bounded(hist: &mut VecDeque<f64>, x: f64, len: usize) {
    if hist.len() == len {
        hist.pop_front();
    }
    hist.push_back(x);
}

/// Forecasts back from the forecasting thread: per window (index into its batch), the
/// forecast or why there is none; the model's version.
type Forecasts = (Vec<(usize, Result<Forecast, ModelError>)>, String);

/// Forecasts every series whose window size gives the model's horizon in 1..=15 steps, on a
/// thread of its own (as the forest). `meta_model` answers the input length and steps on the
/// worker; the thread's own handle forecasts.
pub fn forecast_operator<'s>(
    stats: StreamVec<'s, u64, WindowStats>,
    model: Watched<Forecaster>,
    mut meta_model: Watched<Forecaster>,
    signal: Signal,
    past: Option<Arc<PastWindows<WindowStats>>>,
) -> StreamVec<'s, u64, ForecastRecord> {
    let worker = stats.scope().worker();
    stats.unary_frontier(Pipeline, "Forecasts", move |_, info| {
        let mut model = model;
        let (jobs, results) = spawn_model_thread(
            "apo-forecaster",
            worker.sync_activator_for(info.address.to_vec()),
            move |inputs: Vec<(usize, Vec<f64>, usize)>| -> Forecasts {
                let m = model.get();
                let out = inputs
                    .into_iter()
                    .map(|(i, x, steps)| (i, m.forecast(&x, steps)))
                    .collect();
                (out, m.version().to_string())
            },
        );
        let mut stash: Stash<WindowStats> = Default::default();
        let mut keys: Option<SeriesStates<SeriesKey, VecDeque<f64>>> = None;
        let mut pending: VecDeque<Pending<WindowStats, Vec<usize>>> = VecDeque::new();
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            while let Some((cap, batch)) = next_closed(&mut stash, frontier.frontier()) {
                let m = meta_model.get();
                let l = m.seq_len();
                let keys = keys.get_or_insert_with(|| SeriesStates::new(l));
                if let Some((_, last)) = batch.last() {
                    keys.evict(last.window_end, window_ms);
                }
                let mut inputs: Vec<(usize, Vec<f64>, usize)> = Vec::new();
                for (i, (k, w)) in batch.iter().enumerate() {
                    let Ok(steps) = m.steps_for(f64::from(w.window_seconds)) else { continue };
                    let v = signal.of(w);
                    if !v.is_finite() {
                        continue;
                    }
                    if let Some(p) = past.as_ref().filter(|_| !keys.contains(k)) {
                        for e in p.take(k, w.window_end) {
                            let x = signal.of(&e);
                            if x.is_finite() {
                                push_bounded(keys.touch(k.clone(), e.window_end), x, l);
                            }
                        }
                    }
                    let hist = keys.touch(k.clone(), w.window_end);
                    push_bounded(hist, v, l);
                    if hist.len() == l {
                        inputs.push((i, hist.iter().copied().collect(), steps));
                    }
                }
                if inputs.is_empty() {
                    continue;
                }
                let work: Vec<usize> = inputs.iter().map(|(i, _, _)| *i).collect();
                if jobs.send(inputs).is_err() {
                    tracing::error!(windows = work.len(), "the forecasting thread is gone; nothing forecast");
                    continue;
                }
                pending.push_back(Pending { cap, batch, work });
            }
            while let Some((p, (forecasts, version))) = next_result(&mut pending, &results, "forecasting") {
                let Pending { cap, batch, .. } = p;
                let mut session = output.session(&cap);
                for (i, f) in forecasts {
                    let (_, w) = &batch[i];
                    match f {
                        Ok(f) => {
                            let steps = f.steps;
                            session.give(ForecastRecord {
                                service: w.service.clone(),
                                metric: w.metric.clone(),
                                signal: signal.name().to_string(),
                                window_seconds: w.window_seconds,
                                window_start: w.window_start,
                                window_end: w.window_end,
                                horizon_seconds: steps as u64 * u64::from(w.window_seconds),
                                target_time: w.window_end + steps as i64 * i64::from(w.window_seconds) * 1000,
                                value: f.value,
                                lower: f.lower,
                                upper: f.upper,
                                model_version: version.clone(),
                                revision: 1,
                            })
                        }
                        Err(e) => tracing::error!(error = %e, service = %w.service, metric = %w.metric, "forecast failed"),
                    }
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

    #[test]
    fn signals_parse_by_name() {
        assert_eq!("rate".parse::<Signal>(), Ok(Signal::Rate));
        assert!("median".parse::<Signal>().is_err());
    }
}
