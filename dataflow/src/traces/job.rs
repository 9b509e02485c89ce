//! The trace pipeline as a [`Job`]: spans from `apo.spans` (APO JSON, Zipkin v2 JSON, OTLP) into
//! RED and SLO states per service window, assembled traces with their critical paths,
//! critical-path shares and service-map edges per window, and the current service map, each to
//! its own sinks.
//!
//! ```text
//! job buffer (per tick) ─┬─ RED partials ─ exchange by service ─ windows ─┬─ red sinks
//!                        │                                               └─ anomaly scores ─ sinks
//!                        ├─ SLO counts ─ exchange by service ─ windows ─ burn rates ─ slo sinks
//!                        └─ spans ─ exchange by trace ─ assembly ─ trace outputs (per batch):
//!                             ├─ critical paths ─ path sinks
//!                             ├─ share partials ─ windows ─ share sinks
//!                             └─ edge partials ─ windows ─┬─ map sinks
//!                                                         └─ current map (differential,
//!                                                            sliding horizon) ─ current sinks
//! ```
//!
//! A span's event time is its end. Critical-path shares and service-map edges are windowed by
//! the end of their trace's last span (assembly emits a trace the idle time after that), and
//! their windows close that much later than RED's.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use apo_ingest::decode::{decode_span_message, FieldLimits, TimeBounds};
use apo_schemas::critical_path::{CriticalPathRecord, CriticalPathShare};
use apo_schemas::decision::{Decision, SigningKey};
use apo_schemas::model_output::AnomalyRecord;
use apo_schemas::red::RedStats;
use apo_schemas::service_map::{ServiceMapCurrent, ServiceMapEdge};
use apo_schemas::slo::SloState;
use apo_schemas::{SchemaError, Span};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::map::Map;
use timely::dataflow::operators::vec::partition::Partition;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::decisions::circuit::operator::circuit_operator;
use crate::decisions::config::PlannerConfig;
use crate::engine::context::BuildContext;
use crate::engine::job::{Decoded, Job};
use crate::engine::sink::{tracked_sink as sink, SinkState};
use crate::models::anomaly::{anomaly_stage, StateInputs};
use crate::models::config::ModelConfig;
use crate::ops::aggregate::window_start;
use crate::ops::window::checkpointed_window_operator;
use crate::traces::assembly::{AssembledTrace, AssemblyConfig};
use crate::traces::links::{link_operator, trace_links, LinkHalf};
use crate::traces::map_view::current_map;
use crate::traces::path_share::{path_record, SharePartial, ShareWindow};
use crate::traces::red::{RedPartial, RedWindow};
use crate::traces::service_map::{
    attribute_critical, default_peer_attributes, trace_edges_with, EdgePartial, EdgeWindow,
    MapWindow,
};
use crate::traces::slo::{default_objectives, BurnConfig, Objective};
use crate::traces::slo_ops::{burn_operator, SloPartial, SloTrackers};
use crate::traces::trace_ops::assemble_traces;
use apo_core::RowSink;

/// Where each trace output goes.
#[derive(Default)]
pub struct SpanSinks {
    /// Where RED rows go.
    pub red: Vec<Box<dyn RowSink<RedStats>>>,
    /// Where per-trace critical paths go.
    pub critical_path: Vec<Box<dyn RowSink<CriticalPathRecord>>>,
    /// Where critical-path shares go.
    pub critical_path_share: Vec<Box<dyn RowSink<CriticalPathShare>>>,
    /// Where service-map edges go.
    pub service_map: Vec<Box<dyn RowSink<ServiceMapEdge>>>,
    /// Where SLO states go.
    pub slo: Vec<Box<dyn RowSink<SloState>>>,
    /// Where the current map's changes go.
    pub service_map_current: Vec<Box<dyn RowSink<ServiceMapCurrent>>>,
}

/// Settings of the trace pipeline. From a file, every setting but the objectives and burn-rate
/// windows, which have a file format of their own with its checks (the SLO file, read by
/// `apo-pipeline`); they default here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanConfig {
    /// Window of RED, shares and edges, seconds.
    pub window_seconds: u32,
    /// Relative accuracy of the duration sketches.
    pub relative_accuracy: f64,
    /// Operations per service with RED rows of their own.
    pub max_operations: usize,
    /// Contributors per window with share rows of their own.
    pub max_share_rows: usize,
    /// Bounds of trace assembly.
    pub assembly: AssemblyConfig,
    /// How old or how far in the future a span's start and end may be.
    pub time_bounds: TimeBounds,
    /// How long a span's service and name and how many and how long its attributes may be.
    pub field_limits: FieldLimits,
    /// SLOs evaluated per service and window (none: no SLO output).
    #[serde(skip, default = "default_objectives")]
    pub objectives: Vec<Objective>,
    #[serde(skip)]
    /// The burn-rate alert windows.
    pub burn: BurnConfig,
    /// How long an edge window stays in the current service map after it closes, ms.
    pub map_horizon_ms: i64,
    /// The attributes that name an uninstrumented peer of a client span, first found first.
    #[serde(default = "default_peer_attributes")]
    pub peer_attributes: Vec<String>,
}

impl Default for SpanConfig {
    fn default() -> Self {
        SpanConfig {
            window_seconds: 60,
            relative_accuracy: 0.01,
            max_operations: 100,
            max_share_rows: 50,
            assembly: AssemblyConfig::default(),
            time_bounds: TimeBounds::default(),
            field_limits: FieldLimits::default(),
            objectives: default_objectives(),
            burn: BurnConfig::default(),
            map_horizon_ms: 15 * 60_000,
            peer_attributes: default_peer_attributes(),
        }
    }
}

/// Anomaly scores of every RED row's windows (the metrics pipeline's forest and alert stage).
pub struct RedAnomalies {
    /// Which models run, and the alert stage's settings.
    pub config: ModelConfig,
    /// Where the anomaly scores go.
    pub sinks: Vec<Box<dyn RowSink<AnomalyRecord>>>,
    /// Actions carried out, and past windows for a warm start of the anomaly state.
    pub inputs: StateInputs<RedStats>,
}

/// The circuit rule on the closed edge windows (the planner's `[[circuit]]` entries).
pub struct CircuitStage {
    /// The planner's settings (its `circuit` edges).
    pub config: PlannerConfig,
    /// The key that signs the decisions.
    pub key: SigningKey,
    /// Where the decisions go (the `apo.decisions` topic).
    pub sinks: Vec<Box<dyn RowSink<Decision>>>,
}

/// The trace pipeline.
pub struct SpanJob {
    cfg: SpanConfig,
    sinks: SpanSinks,
    anomalies: Option<RedAnomalies>,
    circuits: Option<CircuitStage>,
    objectives: Rc<Vec<Objective>>,
    /// This tick's spans, and their RED and SLO partials per service window.
    spans: Vec<Span>,
    red: BTreeMap<RedWindow, RedPartial>,
    slo: BTreeMap<RedWindow, SloPartial>,
}

impl SpanJob {
    /// The trace job of `cfg`, writing to `sinks`.
    pub fn new(cfg: SpanConfig, sinks: SpanSinks) -> Self {
        SpanJob {
            objectives: Rc::new(cfg.objectives.clone()),
            cfg,
            sinks,
            anomalies: None,
            circuits: None,
            spans: Vec::new(),
            red: BTreeMap::new(),
            slo: BTreeMap::new(),
        }
    }

    /// Adds anomaly scores of every closed RED window.
    pub fn with_anomalies(mut self, stage: RedAnomalies) -> Self {
        self.anomalies = Some(stage);
        self
    }

    /// Adds the circuit rule: decisions from closed edge windows.
    pub fn with_circuits(mut self, stage: CircuitStage) -> Self {
        self.circuits = Some(stage);
        self
    }

    /// How long after a trace's last span its outputs can reach the windows: the idle time,
    /// plus the watermark tick that emits the trace.
    fn trace_delay_ms(&self) -> i64 {
        self.cfg.assembly.idle_ms + crate::engine::config::TICK_MS
    }
}

/// What enters the trace dataflow: spans, and the RED and SLO partials the job's buffer folded
/// from them per tick (so the spans are not copied for each consumer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SpanInput {
    Span(Span),
    Red(RedPartial),
    Slo(SloPartial),
}

impl SpanInput {
    fn into_span(self) -> Option<Span> {
        match self {
            SpanInput::Span(s) => Some(s),
            _ => None,
        }
    }
    fn into_red(self) -> Option<RedPartial> {
        match self {
            SpanInput::Red(p) => Some(p),
            _ => None,
        }
    }
    fn into_slo(self) -> Option<SloPartial> {
        match self {
            SpanInput::Slo(p) => Some(p),
            _ => None,
        }
    }
}

/// What analysing a batch of traces gives: each trace's critical path, and the share and edge
/// partials of the batch per window.
enum TraceOut {
    Path(CriticalPathRecord),
    Share(SharePartial),
    Edge(EdgePartial),
    Link(LinkHalf),
}

impl TraceOut {
    fn into_path(self) -> Option<CriticalPathRecord> {
        match self {
            TraceOut::Path(r) => Some(r),
            _ => None,
        }
    }
    fn into_share(self) -> Option<SharePartial> {
        match self {
            TraceOut::Share(p) => Some(p),
            _ => None,
        }
    }
    fn into_edge(self) -> Option<EdgePartial> {
        match self {
            TraceOut::Edge(p) => Some(p),
            _ => None,
        }
    }
    fn into_link(self) -> Option<LinkHalf> {
        match self {
            TraceOut::Link(h) => Some(h),
            _ => None,
        }
    }
}

/// Critical paths of assembled traces, with their share and service-map edge partials folded
/// per batch. Trace outputs are windowed by the end of the trace's last span: assembly emits
/// the trace the idle time after it, which the windows' delay allows for.
fn trace_outputs<'s>(
    traces: StreamVec<'s, u64, AssembledTrace>,
    size: u32,
    alpha: f64,
    max_share_rows: usize,
    peers: Vec<String>,
) -> StreamVec<'s, u64, TraceOut> {
    traces.unary(Pipeline, "TraceOutputs", move |_, _| {
        move |input, output| {
            input.for_each(|cap, data| {
                let Some(cap) = cap.retain_least(0) else {
                    return;
                };
                let mut shares: BTreeMap<ShareWindow, SharePartial> = BTreeMap::new();
                let mut edges: BTreeMap<MapWindow, EdgePartial> = BTreeMap::new();
                let mut paths = Vec::with_capacity(data.len());
                let mut links = Vec::new();
                for t in data.drain(..) {
                    let last_end = t.spans.iter().map(|s| s.event_time_ms()).max().unwrap_or(0);
                    let record = path_record(&t);
                    let w = ShareWindow::containing(last_end, size);
                    shares
                        .entry(w.clone())
                        .or_insert_with(|| SharePartial::new(w, max_share_rows))
                        .add(&record);
                    links.extend(trace_links(&t.spans, last_end));
                    let mut calls = trace_edges_with(&t.spans, &peers);
                    attribute_critical(&t.spans, &record.segments, &mut calls);
                    for mut c in calls {
                        c.end_ms = last_end;
                        let w = c.window(size);
                        edges
                            .entry(w.clone())
                            .or_insert_with(|| EdgePartial::new(w, alpha))
                            .add(&c);
                    }
                    paths.push(TraceOut::Path(record));
                }
                let mut session = output.session(&cap);
                session.give_iterator(paths.into_iter());
                session.give_iterator(shares.into_values().map(TraceOut::Share));
                session.give_iterator(edges.into_values().map(TraceOut::Edge));
                session.give_iterator(links.into_iter().map(TraceOut::Link));
            });
        }
    })
}

impl Job for SpanJob {
    type Item = Span;
    type Input = SpanInput;

    fn decode(&self, payload: Option<&[u8]>, clock_ms: i64) -> Result<Decoded<Span>, SchemaError> {
        decode_span_message(
            payload,
            &self.cfg.time_bounds,
            &self.cfg.field_limits,
            clock_ms,
        )
    }

    fn event_time(&self, s: &Span) -> i64 {
        s.event_time_ms()
    }

    fn closes_at(&self, s: &Span) -> i64 {
        let ms = self.cfg.window_seconds as i64 * 1000;
        // The trace outputs' windows close last: after the idle time.
        window_start(s.event_time_ms(), ms) + ms + self.trace_delay_ms()
    }

    fn close_delay_ms(&self) -> i64 {
        self.cfg.window_seconds as i64 * 1000 + self.trace_delay_ms()
    }

    fn closes_between(&self, from: u64, to: u64) -> bool {
        // RED and SLO windows close at their end, the trace outputs' windows the trace
        // delay after it (a trace's own critical path goes out after the read batch).
        let size = u64::from(self.cfg.window_seconds) * 1000;
        crate::engine::job::crosses(from, to, size, 0)
            || crate::engine::job::crosses(from, to, size, self.trace_delay_ms().max(0) as u64)
    }

    fn buffer(&mut self, s: Span) {
        let w = RedPartial::window_of(&s, self.cfg.window_seconds);
        let (alpha, max_ops) = (self.cfg.relative_accuracy, self.cfg.max_operations);
        if !self.objectives.is_empty() {
            self.slo
                .entry(w.clone())
                .or_insert_with(|| SloPartial::new(w.clone()))
                .add(&s, &self.objectives);
        }
        self.red
            .entry(w.clone())
            .or_insert_with(|| RedPartial::new(w, alpha, max_ops))
            .add(&s);
        self.spans.push(s);
    }

    fn buffered(&self) -> usize {
        self.spans.len()
    }

    fn drain(&mut self, out: &mut Vec<SpanInput>) {
        out.extend(
            std::mem::take(&mut self.red)
                .into_values()
                .map(SpanInput::Red),
        );
        out.extend(
            std::mem::take(&mut self.slo)
                .into_values()
                .map(SpanInput::Slo),
        );
        out.extend(self.spans.drain(..).map(SpanInput::Span));
    }

    fn build<'scope>(
        &mut self,
        input: StreamVec<'scope, u64, SpanInput>,
        ctx: &BuildContext,
    ) -> (StreamVec<'scope, u64, ()>, Vec<Rc<SinkState>>) {
        let cfg = self.cfg.clone();
        let delay = self.trace_delay_ms();
        let sinks = std::mem::take(&mut self.sinks);
        let mut states = Vec::new();
        let (size, alpha) = (cfg.window_seconds, cfg.relative_accuracy);

        // What the job's buffer folded per tick, split off without copying the spans.
        let mut parts = input.partition(3, |x| {
            let part = match &x {
                SpanInput::Red(_) => 0,
                SpanInput::Slo(_) => 1,
                SpanInput::Span(_) => 2,
            };
            (part, x)
        });
        let spans = parts
            .pop()
            .map(|p| p.flat_map(SpanInput::into_span))
            .expect("three parts");
        let slo = parts
            .pop()
            .map(|p| p.flat_map(SpanInput::into_slo))
            .expect("three parts");
        let red = parts
            .pop()
            .map(|p| p.flat_map(SpanInput::into_red))
            .expect("three parts");

        let red =
            checkpointed_window_operator(red, ctx.horizon_ms, 0, ctx.held(), ctx.checkpoint("Red"));
        let mut red_done = sink(red.clone(), sinks.red, 0, ctx, &mut states);
        if let Some(stage) = self.anomalies.take() {
            if let Some(scores) = anomaly_stage(
                red,
                &stage.config,
                stage.inputs,
                ctx.checkpoint("RedAnomalies"),
            ) {
                red_done = red_done.concat(sink(scores, stage.sinks, 0, ctx, &mut states));
            }
        }

        let slo =
            checkpointed_window_operator(slo, ctx.horizon_ms, 0, ctx.held(), ctx.checkpoint("Slo"));
        let slo = burn_operator(
            slo,
            SloTrackers::new(self.objectives.clone(), size, cfg.burn),
            ctx.checkpoint("SloBurn"),
        );
        let slo_done = sink(slo, sinks.slo, 0, ctx, &mut states);

        let traces = assemble_traces(
            spans,
            cfg.assembly,
            ctx.held(),
            ctx.progress.budget.clone(),
            ctx.checkpoint("AssembleTraces"),
        );
        let peers = cfg.peer_attributes.clone();
        let mut outs =
            trace_outputs(traces, size, alpha, cfg.max_share_rows, peers).partition(4, |x| {
                let part = match &x {
                    TraceOut::Path(_) => 0,
                    TraceOut::Share(_) => 1,
                    TraceOut::Edge(_) => 2,
                    TraceOut::Link(_) => 3,
                };
                (part, x)
            });
        let links = outs
            .pop()
            .map(|p| p.flat_map(TraceOut::into_link))
            .expect("four parts");
        let edges = outs
            .pop()
            .map(|p| p.flat_map(TraceOut::into_edge))
            .expect("four parts");
        let shares = outs
            .pop()
            .map(|p| p.flat_map(TraceOut::into_share))
            .expect("four parts");
        let paths = outs
            .pop()
            .map(|p| p.flat_map(TraceOut::into_path))
            .expect("four parts");
        let path_done = sink(paths, sinks.critical_path, delay, ctx, &mut states);
        let shares = checkpointed_window_operator(
            shares,
            ctx.horizon_ms,
            delay,
            ctx.held(),
            ctx.checkpoint("Shares"),
        );
        let share_done = sink(shares, sinks.critical_path_share, delay, ctx, &mut states);
        // Producer → consumer pairs across traces, each in time for its window.
        let edges = edges.concat(link_operator(
            links,
            size,
            alpha,
            delay,
            ctx.checkpoint("SpanLinks"),
        ));
        let edges = checkpointed_window_operator(
            edges,
            ctx.horizon_ms,
            delay,
            ctx.held(),
            ctx.checkpoint("Edges"),
        );
        let current = current_map(
            edges.clone(),
            cfg.map_horizon_ms,
            alpha,
            ctx.checkpoint("MapWindows"),
            ctx.checkpoint("MapChanges"),
        );
        let edges = edges.map(EdgeWindow::into_edge);
        let mut map_done = sink(edges.clone(), sinks.service_map, delay, ctx, &mut states);
        if let Some(stage) = self.circuits.take() {
            let decisions = circuit_operator(
                edges,
                Arc::new(stage.config),
                stage.key,
                ctx.checkpoint("Circuits"),
            );
            map_done = map_done.concat(sink(decisions, stage.sinks, delay, ctx, &mut states));
        }
        let current_done = sink(current, sinks.service_map_current, delay, ctx, &mut states);

        let done = red_done
            .concat(slo_done)
            .concat(path_done)
            .concat(share_done)
            .concat(map_done)
            .concat(current_done);
        (done, states)
    }
}
