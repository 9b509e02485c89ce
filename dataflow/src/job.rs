//! What the worker loop runs. A [`Job`] says how a message decodes into records, how records
//! are buffered per watermark tick before they enter the dataflow, and which dataflow (ending
//! in durable sinks) consumes them. The loop itself (`lane` and `pipeline::run_lanes`) owns the source,
//! watermarks, late data, dead letters, backpressure and offset commits, the same for every job.
//!
//! [`MetricsJob`] is the metrics pipeline: points, pre-aggregated per (series, window) into
//! [`Partial`]s, windows, window statistics to the sinks.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use apo_ingest::decode::{decode_message, Encoding, TimeBounds};
use apo_schemas::{MetricPoint, SchemaError, WindowStats};
use timely::dataflow::StreamVec;

use crate::aggregate::{window_start, Partial};
use crate::model_history::PastWindows;
use crate::model_ops::{anomaly_stage, forecast_operator, ModelConfig, StateInputs};
use crate::preaggregate::PreAggregator;
use crate::progress::Progress;
use crate::sink::{tracked_sink, SinkState, StatsSink};
use crate::window::window_operator;
use apo_models::watch::Watched;
use apo_models::Forecaster;
use apo_schemas::model_output::{AnomalyRecord, ForecastRecord};
use timely::dataflow::operators::Concat;

/// The records of one message, and the positions of those that could not be used.
#[derive(Debug)]
pub struct Decoded<T> {
    pub items: Vec<T>,
    pub errors: Vec<(usize, SchemaError)>,
}

/// What a job's dataflow gets from the loop.
pub struct BuildContext {
    pub horizon_ms: i64,
    pub progress: Arc<Progress>,
    /// Windows (or other state) held on this worker, for progress.
    pub held: Rc<Cell<usize>>,
}

/// A pipeline the worker loop can run.
pub trait Job: 'static {
    /// A decoded, validated record.
    type Item;
    /// What enters the dataflow.
    type Input: timely::ExchangeData + Clone;
    /// Decodes one message and validates its records (against the clock, `clock_ms`).
    fn decode(
        &self,
        payload: Option<&[u8]>,
        clock_ms: i64,
    ) -> Result<Decoded<Self::Item>, SchemaError>;
    /// Event time, ms.
    fn event_time(&self, item: &Self::Item) -> i64;
    /// The latest time (ms) an output this record contributes to closes (the end of its
    /// largest window): a commit cut is clean once everything read before it closed.
    fn closes_at(&self, item: &Self::Item) -> i64;
    /// Adds a record to what goes into the dataflow at the current tick.
    fn buffer(&mut self, item: Self::Item);
    /// How long after its window's end an output may close (the largest window for
    /// tumbling windows; more for outputs delayed behind assembly): latency bookkeeping
    /// forgets close times older than the durability frontier less this.
    fn close_delay_ms(&self) -> i64;
    /// Whether advancing the input time from `from` to `to` closes an output (the worker
    /// then hands it on before reading more). Default: any advance may.
    fn closes_between(&self, from: u64, to: u64) -> bool {
        let _ = (from, to);
        true
    }
    /// Records buffered since the last drain.
    fn buffered(&self) -> usize;
    fn drain(&mut self, out: &mut Vec<Self::Input>);
    /// Builds the dataflow on `input`; returns the stream whose frontier is the durability
    /// frontier, and the state of every sink operator in it.
    fn build<'scope>(
        &mut self,
        input: StreamVec<'scope, u64, Self::Input>,
        ctx: &BuildContext,
    ) -> (StreamVec<'scope, u64, ()>, Vec<Rc<SinkState>>);
}

/// Whether a time `offset` past a multiple of `size` lies in `(from, to]` (ms): a window of
/// `size` whose outputs close `offset` after its end closes when the time goes from `from`
/// to `to`.
pub fn crosses(from: u64, to: u64, size: u64, offset: u64) -> bool {
    if size == 0 {
        return true;
    }
    let at = |t: u64| (i128::from(t) - i128::from(offset)).div_euclid(i128::from(size));
    to > from && at(to) > at(from)
}

/// The models' stage of the metrics pipeline and where its records go.
pub struct ModelStage {
    pub config: ModelConfig,
    pub anomaly_sinks: Vec<Box<dyn StatsSink<AnomalyRecord>>>,
    pub forecast_sinks: Vec<Box<dyn StatsSink<ForecastRecord>>>,
    /// Actions carried out, and past windows for a warm start of the anomaly state.
    pub anomaly_inputs: StateInputs<WindowStats>,
    /// Past windows for a warm start of the forecaster's input.
    pub forecast_past: Option<Arc<PastWindows<WindowStats>>>,
}

/// The metrics pipeline.
pub struct MetricsJob {
    encoding: Encoding,
    bounds: TimeBounds,
    largest_ms: i64,
    /// The window sizes, ms.
    window_ms: Vec<u64>,
    pre: PreAggregator,
    sinks: Vec<Box<dyn StatsSink>>,
    models: Option<ModelStage>,
}

impl MetricsJob {
    pub fn new(
        window_seconds: &[u32],
        relative_accuracy: f64,
        encoding: Encoding,
        bounds: TimeBounds,
        sinks: Vec<Box<dyn StatsSink>>,
    ) -> Self {
        MetricsJob {
            encoding,
            bounds,
            largest_ms: window_seconds.iter().copied().max().unwrap_or(1) as i64 * 1000,
            window_ms: window_seconds
                .iter()
                .map(|&s| u64::from(s) * 1000)
                .collect(),
            pre: PreAggregator::new(window_seconds, relative_accuracy),
            sinks,
            models: None,
        }
    }

    /// Adds anomaly scores and forecasts of every closed window.
    pub fn with_models(mut self, stage: ModelStage) -> Self {
        self.models = Some(stage);
        self
    }
}

impl Job for MetricsJob {
    type Item = MetricPoint;
    type Input = Partial;

    fn decode(
        &self,
        payload: Option<&[u8]>,
        clock_ms: i64,
    ) -> Result<Decoded<MetricPoint>, SchemaError> {
        decode_message(payload, self.encoding, &self.bounds, clock_ms).map(|d| Decoded {
            items: d.points,
            errors: d.errors,
        })
    }

    fn event_time(&self, p: &MetricPoint) -> i64 {
        p.timestamp
    }

    fn closes_at(&self, p: &MetricPoint) -> i64 {
        window_start(p.timestamp, self.largest_ms) + self.largest_ms
    }

    fn close_delay_ms(&self) -> i64 {
        self.largest_ms
    }

    fn closes_between(&self, from: u64, to: u64) -> bool {
        // Tumbling windows end at multiples of their size.
        self.window_ms.iter().any(|&w| crosses(from, to, w, 0))
    }

    fn buffer(&mut self, p: MetricPoint) {
        self.pre.add(&p);
    }

    fn buffered(&self) -> usize {
        self.pre.points()
    }

    fn drain(&mut self, out: &mut Vec<Partial>) {
        self.pre.drain(out);
    }

    fn build<'scope>(
        &mut self,
        input: StreamVec<'scope, u64, Partial>,
        ctx: &BuildContext,
    ) -> (StreamVec<'scope, u64, ()>, Vec<Rc<SinkState>>) {
        let stats = window_operator(input, ctx.horizon_ms, ctx.held.clone());
        let mut states = Vec::new();
        let sinks = std::mem::take(&mut self.sinks);
        let mut done = tracked_sink(stats.clone(), sinks, 0, ctx, &mut states);
        if let Some(stage) = self.models.take() {
            let cfg = &stage.config;
            if let Some(scores) = anomaly_stage(stats.clone(), cfg, stage.anomaly_inputs) {
                done = done.concat(tracked_sink(
                    scores,
                    stage.anomaly_sinks,
                    0,
                    ctx,
                    &mut states,
                ));
            }
            if let Some(path) = &cfg.forecast_model {
                match Watched::<Forecaster>::load(path, cfg.reload_check) {
                    Ok(model) => {
                        let meta_model = model.clone();
                        let forecasts = forecast_operator(
                            stats,
                            model,
                            meta_model,
                            cfg.forecast_signal,
                            stage.forecast_past,
                        );
                        done = done.concat(tracked_sink(
                            forecasts,
                            stage.forecast_sinks,
                            0,
                            ctx,
                            &mut states,
                        ));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "forecast model did not load on this worker: nothing forecast")
                    }
                }
            }
        }
        (done, states)
    }
}

#[cfg(test)]
mod tests {
    use super::crosses;

    #[test]
    fn crosses_finds_window_ends_in_the_half_open_interval() {
        // Ends of 10 s windows: 0, 10 000, 20 000, …
        assert!(
            crosses(9_000, 10_000, 10_000, 0),
            "reaching an end closes it"
        );
        assert!(
            !crosses(10_000, 11_000, 10_000, 0),
            "leaving an end does not"
        );
        assert!(!crosses(11_000, 19_000, 10_000, 0));
        assert!(crosses(11_000, 35_000, 10_000, 0), "several ends at once");
        assert!(
            !crosses(5_000, 5_000, 10_000, 0),
            "no advance, nothing closes"
        );
        // Closing 3 s after each end: 3 000, 13 000, …
        assert!(crosses(12_000, 13_000, 10_000, 3_000));
        assert!(!crosses(9_000, 10_000, 10_000, 3_000));
        // An offset beyond the size wraps around.
        assert!(crosses(12_000, 13_000, 10_000, 23_000));
        // Exhaustive against a direct scan of every millisecond.
        for from in (0..2_000).step_by(7) {
            for to in (from..2_000).step_by(13) {
                let direct = (from + 1..=to).any(|t| (t + 1_000 - 300) % 1_000 == 0);
                assert_eq!(crosses(from, to, 1_000, 300), direct, "{from}..{to}");
            }
        }
    }
}
