//! Forecasts of closed windows in the stream: the LSTM on a thread of its own per worker, fed
//! each series' last values (warmed from past windows after a restart).

use std::collections::VecDeque;
use std::sync::Arc;

use apo_models::forecaster::Forecast;
use apo_models::watch::Watched;
use apo_models::{Forecaster, ModelError};
use apo_schemas::model_output::ForecastRecord;
use apo_schemas::WindowStats;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::engine::checkpoint::OperatorCheckpoint;
use crate::models::batch::{next_closed, Pending};
use crate::models::config::Signal;
use crate::models::series::{window_ms, SeriesKey};
use crate::models::state::SeriesStates;
use crate::models::warm::PastWindows;
use crate::ops::offload::{next_result, spawn_model_thread};
use crate::ops::stash::{applied_before, stash_input, Stash};

/// Appends `x`, keeping the last `len` values.
fn push_bounded(hist: &mut VecDeque<f64>, x: f64, len: usize) {
    if hist.len() == len {
        hist.pop_front();
    }
    hist.push_back(x);
}

/// Each series' last values (a checkpoint's part of this operator); made at the first batch,
/// when the model says how many it needs.
type LastValues = SeriesStates<SeriesKey, VecDeque<f64>>;

/// Forecasts back from the forecasting thread: per window (index into its batch), its
/// forecasts (one per horizon) or why there are none; the model's version.
type Forecasts = (Vec<(usize, Result<Vec<Forecast>, ModelError>)>, String);

/// The steps ahead a window of `window_seconds` is forecast at: those of `horizons` (seconds)
/// that are whole steps the model gives, in order, or the model's own horizon when `horizons`
/// is empty; empty when none is.
fn steps_of(m: &Forecaster, window_seconds: u32, horizons: &[u64]) -> Vec<usize> {
    let res = f64::from(window_seconds);
    if horizons.is_empty() {
        return m.steps_for(res).into_iter().collect();
    }
    let mut steps: Vec<usize> = horizons
        .iter()
        .filter_map(|&h| m.steps_ahead(res, h).ok())
        .collect();
    steps.sort_unstable();
    steps.dedup();
    steps
}

/// Forecasts every series whose window size gives a horizon in 1..=15 steps (the model's
/// own, or each of `horizons`, seconds: one record per horizon, from one run of the model), on
/// a thread of its own (as the forest). `meta_model` answers the input length and steps on
/// the worker; the thread's own handle forecasts.
///
/// With a `checkpoint`, the series' last values start from the restored ones and are
/// deposited before the first batch at or after an epoch's time (they change as a batch is
/// handed to the thread, not when its forecasts return).
#[allow(clippy::too_many_arguments)]
pub fn forecast_operator<'s>(
    stats: StreamVec<'s, u64, WindowStats>,
    model: Watched<Forecaster>,
    mut meta_model: Watched<Forecaster>,
    signal: Signal,
    horizons: Vec<u64>,
    past: Option<Arc<PastWindows<WindowStats>>>,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'s, u64, ForecastRecord> {
    let scope = stats.scope();
    let worker = scope.worker();
    stats.unary_frontier(Pipeline, "Forecasts", move |_, info| {
        if let Some(c) = &checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        let mut keys: Option<LastValues> = match checkpoint.as_ref().and_then(|c| c.restored()) {
            None => None,
            Some(bytes) => bincode::deserialize(bytes).unwrap_or_else(|e| {
                tracing::error!(error = %e, "forecast state in the checkpoint unreadable; starting empty");
                None
            }),
        };
        let mut model = model;
        let (jobs, results) = spawn_model_thread(
            "apo-forecaster",
            worker.sync_activator_for(info.address.to_vec()),
            move |inputs: Vec<(usize, Vec<f64>, Vec<usize>)>| -> Forecasts {
                let m = model.get();
                let out = inputs
                    .into_iter()
                    .map(|(i, x, steps)| (i, m.forecast_steps(&x, &steps)))
                    .collect();
                (out, m.version().to_string())
            },
        );
        let mut stash: Stash<WindowStats> = Default::default();
        let mut pending: VecDeque<Pending<WindowStats, Vec<usize>>> = VecDeque::new();
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            loop {
                let upto = applied_before(&stash, frontier.frontier());
                if let Some(c) = checkpoint.as_mut() {
                    c.deposit_due(upto, |_| bincode::serialize(&keys));
                }
                let Some((cap, batch)) = next_closed(&mut stash, frontier.frontier()) else {
                    break;
                };
                let m = meta_model.get();
                let l = m.seq_len();
                let keys = keys.get_or_insert_with(|| SeriesStates::new(l));
                if let Some((_, last)) = batch.last() {
                    keys.evict(last.window_end, window_ms);
                }
                let mut inputs: Vec<(usize, Vec<f64>, Vec<usize>)> = Vec::new();
                // the steps of each window size, worked out once a batch
                let mut steps_by_size: Vec<(u32, Vec<usize>)> = Vec::new();
                for (i, (k, w)) in batch.iter().enumerate() {
                    let at = match steps_by_size.iter().position(|(s, _)| *s == w.window_seconds) {
                        Some(at) => at,
                        None => {
                            steps_by_size.push((w.window_seconds, steps_of(m, w.window_seconds, &horizons)));
                            steps_by_size.len() - 1
                        }
                    };
                    let steps = &steps_by_size[at].1;
                    if steps.is_empty() {
                        continue;
                    }
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
                        inputs.push((i, hist.iter().copied().collect(), steps.clone()));
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
                        Ok(fs) => for f in fs {
                            let steps = f.steps;
                            session.give(ForecastRecord {
                                service: w.service.clone(),
                                metric: w.metric.clone(),
                                attributes: w.attributes.clone(),
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
                        },
                        Err(e) => tracing::error!(error = %e, service = %w.service, metric = %w.metric, "forecast failed"),
                    }
                }
            }
        }
    })
}
