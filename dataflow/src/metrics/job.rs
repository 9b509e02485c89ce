//! The metrics pipeline as a [`Job`]: points, pre-aggregated per (series, window) into
//! [`Partial`]s (cumulative points first made deltas per stream), windows, window statistics
//! to the sinks, and (optionally) anomaly scores and forecasts of every closed window.

use std::rc::Rc;
use std::sync::Arc;

use apo_ingest::decode::{decode_metric_message, Encoding, FieldLimits, TimeBounds};
use apo_models::watch::Watched;
use apo_models::Forecaster;
use apo_schemas::attributes::SeriesAttributeKeys;
use apo_schemas::model_output::{AnomalyRecord, ForecastRecord};
use apo_schemas::{MetricPoint, SchemaError, WindowStats};
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::generic::operator::empty;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::decisions::planner::{planner_operator, PlannerStage};
use crate::engine::context::BuildContext;
use crate::engine::job::{crosses, Decoded, Job};
use apo_core::RowSink;

use crate::engine::error::PipelineError;
use crate::engine::sink::{tracked_sink, SinkState};
use crate::metrics::config::MetricsConfig;
use crate::metrics::cumulative::{cumulative_operator, CumulativeConfig, RunningPoint};
use crate::metrics::preaggregate::PreAggregator;
use crate::metrics::series_limit::{series_limit_operator, SeriesLimits};
use crate::models::anomaly::{anomaly_stage, StateInputs};
use crate::models::config::ModelConfig;
use crate::models::forecast::forecast_operator;
use crate::models::warm::PastWindows;
use crate::ops::aggregate::{window_start, Partial};
use crate::ops::window::checkpointed_window_operator;

/// The models' stage of the metrics pipeline and where its records go.
pub struct ModelStage {
    /// Which models run, and the alert stage's settings.
    pub config: ModelConfig,
    /// Where anomaly scores go.
    pub anomaly_sinks: Vec<Box<dyn RowSink<AnomalyRecord>>>,
    /// Where forecasts go.
    pub forecast_sinks: Vec<Box<dyn RowSink<ForecastRecord>>>,
    /// Actions carried out, and past windows for a warm start of the anomaly state.
    pub anomaly_inputs: StateInputs<WindowStats>,
    /// Past windows for a warm start of the forecaster's input.
    pub forecast_past: Option<Arc<PastWindows<WindowStats>>>,
}

/// What enters the metrics dataflow: the partials of the points a worker read, and the
/// cumulative points it read (made deltas in the dataflow, on the worker owning their stream).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum MetricInput {
    /// Points pre-aggregated per (series, window).
    Partial(Partial),
    /// A cumulative point, its stream's totals.
    Running(RunningPoint),
}

/// The metrics pipeline.
pub struct MetricsJob {
    encoding: Encoding,
    bounds: TimeBounds,
    limits: FieldLimits,
    series_limits: SeriesLimits,
    largest_ms: i64,
    /// The window sizes, ms.
    window_ms: Vec<u64>,
    pre: PreAggregator,
    /// Cumulative points read since the last drain.
    running: Vec<RunningPoint>,
    cumulative: CumulativeConfig,
    /// The attribute keys that split series.
    keys: SeriesAttributeKeys,
    relative_accuracy: f64,
    window_seconds: Vec<u32>,
    sinks: Vec<Box<dyn RowSink>>,
    models: Option<ModelStage>,
    planner: Option<PlannerStage>,
}

impl MetricsJob {
    /// The metrics job of `cfg` (its windows, accuracy, encoding and validity bounds),
    /// writing window statistics to `sinks`; an error when `cfg` does not validate.
    pub fn from_config(
        cfg: &MetricsConfig,
        sinks: Vec<Box<dyn RowSink>>,
    ) -> Result<Self, PipelineError> {
        cfg.validate()?;
        Ok(Self::new(
            &cfg.window_seconds,
            cfg.relative_accuracy,
            cfg.encoding,
            cfg.time_bounds,
            sinks,
        )
        .with_field_limits(cfg.field_limits)
        .with_series_limits(cfg.series_limits)
        .with_cumulative(cfg.cumulative)
        .with_series_attributes(cfg.series_attributes()))
    }

    /// The metrics job with windows of `window_seconds`, sketches of `relative_accuracy`,
    /// messages decoded as `encoding` and points outside `bounds` sent to the dead letters.
    pub fn new(
        window_seconds: &[u32],
        relative_accuracy: f64,
        encoding: Encoding,
        bounds: TimeBounds,
        sinks: Vec<Box<dyn RowSink>>,
    ) -> Self {
        MetricsJob {
            encoding,
            bounds,
            limits: FieldLimits::default(),
            series_limits: SeriesLimits::default(),
            largest_ms: window_seconds.iter().copied().max().unwrap_or(1) as i64 * 1000,
            window_ms: window_seconds
                .iter()
                .map(|&s| u64::from(s) * 1000)
                .collect(),
            pre: PreAggregator::new(
                window_seconds,
                relative_accuracy,
                SeriesAttributeKeys::default(),
            ),
            running: Vec::new(),
            cumulative: CumulativeConfig::default(),
            keys: SeriesAttributeKeys::default(),
            relative_accuracy,
            window_seconds: window_seconds.to_vec(),
            sinks,
            models: None,
            planner: None,
        }
    }

    /// Points whose names or tags break `limits` go to the dead letters (the defaults
    /// otherwise).
    pub fn with_field_limits(mut self, limits: FieldLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How many series may be live at once (the defaults otherwise).
    pub fn with_series_limits(mut self, limits: SeriesLimits) -> Self {
        self.series_limits = limits;
        self
    }

    /// The attribute keys that split a metric's series (the semantic conventions' defaults,
    /// [`apo_schemas::attributes::DEFAULT_SERIES_ATTRIBUTES`], otherwise).
    pub fn with_series_attributes(mut self, keys: SeriesAttributeKeys) -> Self {
        self.pre = PreAggregator::new(&self.window_seconds, self.relative_accuracy, keys.clone());
        self.keys = keys;
        self
    }

    /// How cumulative points' streams are kept (the defaults otherwise).
    pub fn with_cumulative(mut self, cumulative: CumulativeConfig) -> Self {
        self.cumulative = cumulative;
        self
    }

    /// Adds the planner: decisions from closed windows. The attributes its rules tell series
    /// apart by (a canary's `service.version`) become series attributes if they are not.
    pub fn with_planner(mut self, stage: PlannerStage) -> Self {
        let needed = stage.config.series_attributes();
        if needed.iter().any(|k| !self.keys.contains(k)) {
            let keys = SeriesAttributeKeys::new(self.keys.keys().iter().cloned().chain(needed));
            self = self.with_series_attributes(keys);
        }
        self.planner = Some(stage);
        self
    }

    /// Adds anomaly scores and forecasts of every closed window.
    pub fn with_models(mut self, stage: ModelStage) -> Self {
        self.models = Some(stage);
        self
    }
}

impl Job for MetricsJob {
    type Item = MetricPoint;
    type Input = MetricInput;

    fn decode(
        &self,
        payload: Option<&[u8]>,
        clock_ms: i64,
    ) -> Result<Decoded<MetricPoint>, SchemaError> {
        decode_metric_message(payload, self.encoding, &self.bounds, &self.limits, clock_ms)
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
        let mut p = p;
        // The series attributes a point lacks come from its resource (which no stage after
        // this one sees).
        if let Some(resource) = p.resource.take() {
            self.keys.adopt(&mut p.tags, &resource);
        }
        match p.cumulative.take() {
            Some(c) => self.running.push(RunningPoint::new(p, *c)),
            None => self.pre.add(&p),
        }
    }

    fn buffered(&self) -> usize {
        self.pre.points() + self.running.len()
    }

    fn drain(&mut self, out: &mut Vec<MetricInput>) {
        let mut partials = Vec::new();
        self.pre.drain(&mut partials);
        out.extend(partials.into_iter().map(MetricInput::Partial));
        out.extend(self.running.drain(..).map(MetricInput::Running));
    }

    fn build<'scope>(
        &mut self,
        input: StreamVec<'scope, u64, MetricInput>,
        ctx: &BuildContext,
    ) -> (StreamVec<'scope, u64, ()>, Vec<Rc<SinkState>>) {
        let smallest = self.window_ms.iter().copied().min().unwrap_or(1000) / 1000;
        // Each input is moved into one of the two at once: a large `Err` costs nothing here.
        #[allow(clippy::result_large_err)]
        let (partials, running): (
            StreamVec<'scope, u64, Partial>,
            StreamVec<'scope, u64, _>,
        ) = input.ok_err(|i| match i {
            MetricInput::Partial(p) => Ok(p),
            MetricInput::Running(r) => Err(r),
        });
        let deltas = cumulative_operator(
            running,
            self.cumulative,
            &self.window_seconds,
            self.relative_accuracy,
            self.keys.clone(),
            ctx.progress.clone(),
            ctx.checkpoint("Cumulative"),
        );
        let limited = series_limit_operator(
            partials.concat(deltas),
            self.series_limits,
            smallest as u32,
            ctx.horizon_ms,
            ctx.progress.clone(),
            ctx.held(),
            ctx.checkpoint("SeriesLimit"),
        );
        let stats = checkpointed_window_operator(
            limited,
            ctx.horizon_ms,
            0,
            ctx.held(),
            ctx.checkpoint("Windows"),
        );
        let mut states = Vec::new();
        let sinks = std::mem::take(&mut self.sinks);
        let mut done = tracked_sink(stats.clone(), sinks, 0, ctx, &mut states);
        // The forecasts, when the models make them: their sink, and the predictive rule's input.
        let mut forecasts = None;
        if let Some(stage) = self.models.take() {
            let cfg = &stage.config;
            if let Some(scores) = anomaly_stage(
                stats.clone(),
                cfg,
                stage.anomaly_inputs,
                ctx.checkpoint("Anomalies"),
            ) {
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
                        let stream = forecast_operator(
                            stats.clone(),
                            model,
                            meta_model,
                            cfg.forecast_signal,
                            cfg.forecast_horizons.clone(),
                            stage.forecast_past,
                            ctx.checkpoint("Forecasts"),
                        );
                        done = done.concat(tracked_sink(
                            stream.clone(),
                            stage.forecast_sinks,
                            0,
                            ctx,
                            &mut states,
                        ));
                        forecasts = Some(stream);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "forecast model did not load on this worker: nothing forecast")
                    }
                }
            }
        }
        if let Some(stage) = self.planner.take() {
            let forecasts = forecasts.unwrap_or_else(|| empty(stats.scope()));
            let decisions = planner_operator(
                stats,
                forecasts,
                Arc::new(stage.config),
                stage.key,
                ctx.checkpoint("Planner"),
            );
            done = done.concat(tracked_sink(decisions, stage.sinks, 0, ctx, &mut states));
        }
        (done, states)
    }
}
