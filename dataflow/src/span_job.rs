//! The trace pipeline as a [`Job`]: spans from `apo.spans` (APO JSON, Zipkin v2 JSON, OTLP) into
//! RED per service window, assembled traces with their critical paths, critical-path shares and
//! service-map edges per window, each to its own sinks.
//!
//! ```text
//! spans ─┬─ RED partials per batch ─ exchange by service ─ windows ─ red sinks
//!        ├─ SLO counts per batch ─ exchange by service ─ windows ─ burn rates ─ slo sinks
//!        └─ exchange by trace ─ assembly ─ critical path ─┬─ path sinks
//!                                                        ├─ share partials ─ windows ─ share sinks
//!                                                        └─ edge partials ─ windows ─ map sinks
//! ```
//!
//! A span's event time is its end. Critical-path shares and service-map edges are windowed by
//! the end of their trace's last span (assembly emits a trace the idle time after that), and
//! their windows close that much later than RED's.

use std::collections::BTreeMap;
use std::rc::Rc;

use apo_ingest::decode::TimeBounds;
use apo_schemas::critical_path::{CriticalPathRecord, CriticalPathShare};
use apo_schemas::red::RedStats;
use apo_schemas::service_map::ServiceMapEdge;
use apo_schemas::slo::SloState;
use apo_schemas::span_decode::{decode_spans_json, decode_spans_otlp};
use apo_schemas::{OutputRow, SchemaError, Span};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::map::Map;
use timely::dataflow::operators::Concat;
use timely::dataflow::StreamVec;

use crate::aggregate::window_start;
use crate::assembly::{AssembledTrace, AssemblyConfig};
use crate::job::{BuildContext, Decoded, Job};
use crate::path_share::{path_record, SharePartial, ShareWindow};
use crate::red::RedPartial;
use crate::service_map::{trace_edges, EdgePartial};
use crate::sink::{sink_operator, RowsCallback, SinkState, StatsSink};
use crate::slo::{default_objectives, BurnConfig, Objective};
use crate::slo_ops::{burn_operator, SloPartial, SloTrackers};
use crate::trace_ops::assemble_traces;
use crate::window::{delayed_window_operator, window_operator, Windowed};

/// Where each trace output goes.
#[derive(Default)]
pub struct SpanSinks {
    pub red: Vec<Box<dyn StatsSink<RedStats>>>,
    pub critical_path: Vec<Box<dyn StatsSink<CriticalPathRecord>>>,
    pub critical_path_share: Vec<Box<dyn StatsSink<CriticalPathShare>>>,
    pub service_map: Vec<Box<dyn StatsSink<ServiceMapEdge>>>,
    pub slo: Vec<Box<dyn StatsSink<SloState>>>,
}

/// Settings of the trace pipeline.
#[derive(Debug, Clone)]
pub struct SpanConfig {
    /// Window of RED, shares and edges, seconds.
    pub window_seconds: u32,
    pub relative_accuracy: f64,
    /// Operations per service with RED rows of their own.
    pub max_operations: usize,
    /// Contributors per window with share rows of their own.
    pub max_share_rows: usize,
    pub assembly: AssemblyConfig,
    pub time_bounds: TimeBounds,
    /// SLOs evaluated per service and window (none: no SLO output).
    pub objectives: Vec<Objective>,
    pub burn: BurnConfig,
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
            objectives: default_objectives(),
            burn: BurnConfig::default(),
        }
    }
}

pub struct SpanJob {
    cfg: SpanConfig,
    sinks: SpanSinks,
    buffer: Vec<Span>,
}

impl SpanJob {
    pub fn new(cfg: SpanConfig, sinks: SpanSinks) -> Self {
        SpanJob {
            cfg,
            sinks,
            buffer: Vec::new(),
        }
    }

    /// How long after a trace's last span its outputs can reach the windows: the idle time,
    /// plus the watermark tick that emits the trace.
    fn trace_delay_ms(&self) -> i64 {
        self.cfg.assembly.idle_ms + crate::pipeline::TICK_MS
    }
}

/// Folds each batch of a stream into partials per window (`key_of`), on this worker, before
/// they are exchanged.
fn per_batch<'s, T, P, K>(
    stream: StreamVec<'s, u64, T>,
    name: &str,
    key_of: impl Fn(&T) -> Vec<K> + 'static,
    new: impl Fn(&K) -> P + 'static,
    add: impl Fn(&mut P, &T) + 'static,
) -> StreamVec<'s, u64, P>
where
    T: Clone + 'static,
    P: Windowed,
    K: Ord + Clone + 'static,
{
    stream.unary(Pipeline, name, move |_, _| {
        move |input, output| {
            input.for_each(|cap, data| {
                let Some(cap) = cap.retain_least(0) else {
                    return;
                };
                let mut parts: BTreeMap<K, P> = BTreeMap::new();
                for x in data.iter() {
                    for k in key_of(x) {
                        let p = parts.entry(k.clone()).or_insert_with(|| new(&k));
                        add(p, x);
                    }
                }
                output.session(&cap).give_iterator(parts.into_values());
            });
        }
    })
}

/// Sink operator with progress counting for any windowed row; rows close `delay_ms` after
/// their window's end (close-to-output latency counts from then).
fn sink<'s, R: OutputRow + Clone + 'static>(
    rows: StreamVec<'s, u64, R>,
    sinks: Vec<Box<dyn StatsSink<R>>>,
    delay_ms: i64,
    ctx: &BuildContext,
    states: &mut Vec<Rc<SinkState>>,
) -> StreamVec<'s, u64, ()> {
    let state = Rc::new(SinkState::default());
    states.push(state.clone());
    let progress = ctx.progress.clone();
    let on_rows: RowsCallback<R> = Rc::new(move |rows: &[R]| {
        progress.record_output(
            rows.iter()
                .map(|r| (r.window_end().saturating_add(delay_ms), r.revision())),
        );
    });
    sink_operator(rows, sinks, state, on_rows)
}

impl Job for SpanJob {
    type Item = Span;
    type Input = Span;

    fn decode(&self, payload: Option<&[u8]>, clock_ms: i64) -> Result<Decoded<Span>, SchemaError> {
        let bytes = payload.unwrap_or_default();
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let d = match first {
            None => return Err(SchemaError::Empty),
            Some(b'{') | Some(b'[') => decode_spans_json(bytes)?,
            Some(_) => decode_spans_otlp(bytes)?,
        };
        if d.spans.is_empty() && d.errors.is_empty() {
            return Err(SchemaError::Invalid {
                field: "spans",
                reason: "the message holds no spans".into(),
            });
        }
        let b = &self.cfg.time_bounds;
        let mut errors = d.errors;
        let mut items = Vec::with_capacity(d.spans.len());
        // Valid spans fill the positions between the errors.
        let mut taken: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
        taken.sort_unstable();
        let mut next_taken = taken.into_iter().peekable();
        let mut idx = 0usize;
        for s in d.spans {
            while next_taken.peek() == Some(&idx) {
                next_taken.next();
                idx += 1;
            }
            let t = s.event_time_ms();
            if t <= 0 || t < clock_ms - b.max_age_ms || t > clock_ms + b.max_future_ms {
                errors.push((
                    idx,
                    SchemaError::Invalid {
                        field: "end_ns",
                        reason: format!(
                            "{t} ms is outside [now - {} s, now + {} s]",
                            b.max_age_ms / 1000,
                            b.max_future_ms / 1000
                        ),
                    },
                ));
            } else {
                items.push(s);
            }
            idx += 1;
        }
        errors.sort_by_key(|(i, _)| *i);
        Ok(Decoded { items, errors })
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

    fn buffer(&mut self, s: Span) {
        self.buffer.push(s);
    }

    fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn drain(&mut self, out: &mut Vec<Span>) {
        out.append(&mut self.buffer);
    }

    fn build<'scope>(
        &mut self,
        spans: StreamVec<'scope, u64, Span>,
        ctx: &BuildContext,
    ) -> (StreamVec<'scope, u64, ()>, Vec<Rc<SinkState>>) {
        let cfg = self.cfg.clone();
        let delay = self.trace_delay_ms();
        let sinks = std::mem::take(&mut self.sinks);
        let mut states = Vec::new();
        let (size, alpha, max_ops) = (
            cfg.window_seconds,
            cfg.relative_accuracy,
            cfg.max_operations,
        );

        let red = per_batch(
            spans.clone(),
            "RedPartials",
            move |s: &Span| vec![RedPartial::window_of(s, size)],
            move |k| RedPartial::new(k.clone(), alpha, max_ops),
            |p: &mut RedPartial, s: &Span| p.add(s),
        );
        let red = window_operator(red, ctx.horizon_ms, ctx.held.clone());
        let red_done = sink(red, sinks.red, 0, ctx, &mut states);

        let objectives = Rc::new(cfg.objectives.clone());
        let slo = {
            let objectives = objectives.clone();
            per_batch(
                spans.clone(),
                "SloPartials",
                move |s: &Span| vec![RedPartial::window_of(s, size)],
                |k| SloPartial::new(k.clone()),
                move |p: &mut SloPartial, s: &Span| p.add(s, &objectives),
            )
        };
        let slo = window_operator(slo, ctx.horizon_ms, ctx.held.clone());
        let slo = burn_operator(slo, SloTrackers::new(objectives, size, cfg.burn));
        let slo_done = sink(slo, sinks.slo, 0, ctx, &mut states);

        let traces = assemble_traces(spans, cfg.assembly, ctx.held.clone());
        // Trace outputs are windowed by the end of the trace's last span: assembly emits the
        // trace the idle time after it, which the windows' delay allows for.
        let paths = traces.map(|t: AssembledTrace| {
            let last_end = t.spans.iter().map(|s| s.event_time_ms()).max().unwrap_or(0);
            let mut calls = trace_edges(&t.spans);
            for c in calls.iter_mut() {
                c.end_ms = last_end;
            }
            (path_record(&t), calls, last_end)
        });
        let records = paths.clone().map(|(r, _, end)| (r, end));
        let path_done = sink(
            records.clone().map(|(r, _)| r),
            sinks.critical_path,
            delay,
            ctx,
            &mut states,
        );
        let max_rows = cfg.max_share_rows;
        let shares = per_batch(
            records,
            "SharePartials",
            move |(_, end): &(CriticalPathRecord, i64)| vec![ShareWindow::containing(*end, size)],
            move |k| SharePartial::new(k.clone(), max_rows),
            |p: &mut SharePartial, (r, _): &(CriticalPathRecord, i64)| p.add(r),
        );
        let shares = delayed_window_operator(shares, ctx.horizon_ms, delay, ctx.held.clone());
        let share_done = sink(shares, sinks.critical_path_share, delay, ctx, &mut states);
        let edges = per_batch(
            paths.flat_map(|(_, calls, _)| calls),
            "EdgePartials",
            move |c: &crate::service_map::EdgeCall| vec![c.window(size)],
            move |k| EdgePartial::new(k.clone(), alpha),
            |p: &mut EdgePartial, c| p.add(c),
        );
        let edges = delayed_window_operator(edges, ctx.horizon_ms, delay, ctx.held.clone());
        let map_done = sink(edges, sinks.service_map, delay, ctx, &mut states);

        let done = red_done
            .concat(slo_done)
            .concat(path_done)
            .concat(share_done)
            .concat(map_done);
        (done, states)
    }
}
