//! Trace assembly: spans grouped by trace id into traces, bounded in time and memory.
//!
//! A trace is emitted when the watermark passes its last span's end plus the idle time (no span
//! can still be on its way, within the lateness the watermark allows), or earlier when it hits
//! a bound:
//! - `max_spans_per_trace`: the spans so far are emitted as an incomplete fragment, and later
//!   spans of the trace start the next fragment;
//! - `max_spans_held`: the traces idle the longest are emitted, incomplete, until the assembler
//!   holds no more than that many spans.
//!
//! A span that arrives for a trace already emitted (later than the idle time) starts a new
//! fragment, flagged incomplete, instead of being lost; fragment numbers are remembered for a
//! horizon after the emission.
//!
//! The assembler is deterministic for a given order of calls; the dataflow operator feeds it
//! each timely time's spans sorted, so replays assemble the same traces.

use std::collections::{BTreeMap, HashMap};

use apo_schemas::{Span, TraceId};

/// Why a trace was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Emitted {
    /// No span for the idle time after its last one: complete as far as can be known.
    Idle,
    /// The input ended (drain): every span there is was seen.
    EndOfInput,
    /// The trace reached the per-trace span bound: a fragment, more may follow.
    SizeBound,
    /// Evicted to keep the assembler within its memory bound.
    MemoryBound,
    /// A span that came after the trace was emitted.
    Straggler,
}

impl Emitted {
    /// The reason's name in output rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Emitted::Idle => "idle",
            Emitted::EndOfInput => "end_of_input",
            Emitted::SizeBound => "size_bound",
            Emitted::MemoryBound => "memory_bound",
            Emitted::Straggler => "straggler",
        }
    }
}

/// Bounds of trace assembly.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssemblyConfig {
    /// A trace is done this long (event time) after its last span ended.
    pub idle_ms: i64,
    /// Spans per trace; a larger trace is analysed in fragments of this size.
    pub max_spans_per_trace: usize,
    /// Spans held over all open traces of this assembler.
    pub max_spans_held: usize,
    /// How long after a trace is emitted its fragment count is remembered.
    pub horizon_ms: i64,
}

impl Default for AssemblyConfig {
    fn default() -> Self {
        AssemblyConfig {
            idle_ms: 10_000,
            max_spans_per_trace: 10_000,
            max_spans_held: 1_000_000,
            horizon_ms: 300_000,
        }
    }
}

/// A trace (or a fragment of one) ready for analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct AssembledTrace {
    /// The trace.
    pub trace_id: TraceId,
    /// Its spans held (all of them, or the fragment's).
    pub spans: Vec<Span>,
    /// Whether every span of the trace is believed to be here.
    pub complete: bool,
    /// Why it was emitted when it was.
    pub emitted: Emitted,
    /// 0 for the first (or only) part of a trace, n for the n-th part after it.
    pub fragment: u32,
}

struct Open {
    spans: Vec<Span>,
    /// Latest span end (ms) seen.
    last_ms: i64,
    fragment: u32,
    /// An earlier part of this trace was emitted as complete: these spans came too late.
    straggler: bool,
}

/// Groups spans into traces within bounds of time, trace size and memory, in event time.
pub struct TraceAssembler {
    cfg: AssemblyConfig,
    open: HashMap<TraceId, Open>,
    /// (deadline, trace) of every open trace.
    deadlines: BTreeMap<(i64, TraceId), ()>,
    /// Traces emitted recently: the next fragment number, whether the last part went out as
    /// complete, and until when this is remembered.
    emitted: HashMap<TraceId, (u32, bool, i64)>,
    expiry: BTreeMap<(i64, TraceId), ()>,
    held: usize,
    /// Estimated bytes of the spans held.
    bytes: usize,
}

/// What one held span takes: the span, its slot in its trace's vector, its names' and
/// attributes' heap blocks (a B-tree node's share per attribute).
pub fn span_bytes(s: &Span) -> usize {
    use crate::ops::held::block_bytes;
    let attributes: usize = s
        .attributes
        .iter()
        .map(|(k, v)| block_bytes(k.capacity()) + block_bytes(v.capacity()) + 64)
        .sum();
    std::mem::size_of::<Span>()
        + block_bytes(s.service.capacity())
        + block_bytes(s.name.capacity())
        + attributes
}

impl TraceAssembler {
    /// An assembler with the bounds of `cfg`.
    pub fn new(cfg: AssemblyConfig) -> Self {
        TraceAssembler {
            cfg,
            open: HashMap::new(),
            deadlines: BTreeMap::new(),
            emitted: HashMap::new(),
            expiry: BTreeMap::new(),
            held: 0,
            bytes: 0,
        }
    }

    /// The assembler's state as bytes, for a checkpoint: its open traces and the traces it
    /// emitted within the horizon, each in trace order.
    pub fn snapshot(&self) -> Result<Vec<u8>, bincode::Error> {
        let mut open: Vec<_> = self
            .open
            .iter()
            .map(|(id, o)| (*id, &o.spans, o.last_ms, o.fragment, o.straggler))
            .collect();
        open.sort_by_key(|o| o.0);
        let mut emitted: Vec<_> = self.emitted.iter().map(|(id, e)| (*id, *e)).collect();
        emitted.sort_by_key(|e| e.0);
        bincode::serialize(&(open, emitted))
    }

    /// An assembler with the bounds of `cfg` and the state a [`Self::snapshot`] took.
    pub fn restored(cfg: AssemblyConfig, bytes: &[u8]) -> Result<Self, bincode::Error> {
        type Kept = (
            Vec<(TraceId, Vec<Span>, i64, u32, bool)>,
            Vec<(TraceId, (u32, bool, i64))>,
        );
        let (open, emitted): Kept = bincode::deserialize(bytes)?;
        let mut a = TraceAssembler::new(cfg);
        for (id, spans, last_ms, fragment, straggler) in open {
            a.deadlines.insert((last_ms + cfg.idle_ms, id), ());
            a.held += spans.len();
            a.bytes += spans.iter().map(span_bytes).sum::<usize>();
            a.open.insert(
                id,
                Open {
                    spans,
                    last_ms,
                    fragment,
                    straggler,
                },
            );
        }
        for (id, e) in emitted {
            a.expiry.insert((e.2, id), ());
            a.emitted.insert(id, e);
        }
        Ok(a)
    }

    /// Estimated bytes of the spans held ([`span_bytes`]), and the open traces' entries.
    pub fn held_bytes(&self) -> usize {
        self.bytes + self.open.len() * (std::mem::size_of::<(TraceId, Open)>() + 64)
    }

    /// Emits (as [`Emitted::MemoryBound`]) the traces nearest their deadline until a tenth of
    /// the spans held are gone (at least one trace): what trace assembly gives up when the
    /// memory budget is over.
    pub fn shed(&mut self, now_ms: i64, out: &mut Vec<AssembledTrace>) {
        let target = self.held - self.held / 10;
        let mut first = true;
        while first || self.held > target {
            first = false;
            let Some((&(_, victim), _)) = self.deadlines.first_key_value() else {
                break;
            };
            if let Some(o) = self.close(victim) {
                out.push(self.emit(victim, o, Emitted::MemoryBound, now_ms));
            }
        }
    }

    /// Spans held in open traces.
    pub fn held_spans(&self) -> usize {
        self.held
    }

    /// Traces open now.
    pub fn open_traces(&self) -> usize {
        self.open.len()
    }

    /// Adds a validated span; traces that hit a bound are pushed to `out`.
    pub fn add(&mut self, span: Span, out: &mut Vec<AssembledTrace>) {
        let id = span.trace_id;
        let end_ms = span.event_time_ms();
        let idle = self.cfg.idle_ms;
        let open = match self.open.get_mut(&id) {
            Some(o) => {
                if end_ms > o.last_ms {
                    self.deadlines.remove(&(o.last_ms + idle, id));
                    o.last_ms = end_ms;
                    self.deadlines.insert((end_ms + idle, id), ());
                }
                o
            }
            None => {
                let (fragment, straggler) = match self.emitted.get(&id) {
                    Some(&(next, was_complete, _)) => (next, was_complete),
                    None => (0, false),
                };
                self.deadlines.insert((end_ms + idle, id), ());
                self.open.entry(id).or_insert(Open {
                    spans: Vec::new(),
                    last_ms: end_ms,
                    fragment,
                    straggler,
                })
            }
        };
        self.bytes += span_bytes(&span);
        open.spans.push(span);
        self.held += 1;
        if open.spans.len() >= self.cfg.max_spans_per_trace {
            let o = self.close(id);
            if let Some(o) = o {
                out.push(self.emit(id, o, Emitted::SizeBound, end_ms));
            }
        }
        while self.held > self.cfg.max_spans_held {
            let Some((&(_, victim), _)) = self.deadlines.first_key_value() else {
                break;
            };
            if let Some(o) = self.close(victim) {
                out.push(self.emit(victim, o, Emitted::MemoryBound, end_ms));
            }
        }
    }

    /// Emits, in (deadline, trace id) order, every trace whose idle time passed the watermark.
    pub fn advance(&mut self, watermark_ms: i64, out: &mut Vec<AssembledTrace>) {
        while let Some((&(deadline, id), _)) = self.deadlines.first_key_value() {
            if deadline > watermark_ms {
                break;
            }
            if let Some(o) = self.close(id) {
                out.push(self.emit(id, o, Emitted::Idle, watermark_ms));
            }
        }
        while let Some((&(at, id), _)) = self.expiry.first_key_value() {
            if at > watermark_ms {
                break;
            }
            self.expiry.remove(&(at, id));
            if self.emitted.get(&id).is_some_and(|&(_, _, t)| t == at) {
                self.emitted.remove(&id);
            }
        }
    }

    /// The input ended: emits every open trace.
    pub fn finish(&mut self, out: &mut Vec<AssembledTrace>) {
        while let Some((&(_, id), _)) = self.deadlines.first_key_value() {
            if let Some(o) = self.close(id) {
                out.push(self.emit(id, o, Emitted::EndOfInput, i64::MAX / 2));
            }
        }
    }

    fn close(&mut self, id: TraceId) -> Option<Open> {
        let o = self.open.remove(&id)?;
        self.deadlines.remove(&(o.last_ms + self.cfg.idle_ms, id));
        self.held -= o.spans.len();
        let freed: usize = o.spans.iter().map(span_bytes).sum();
        self.bytes = self.bytes.saturating_sub(freed);
        Some(o)
    }

    fn emit(&mut self, id: TraceId, o: Open, why: Emitted, now_ms: i64) -> AssembledTrace {
        let finished = matches!(why, Emitted::Idle | Emitted::EndOfInput);
        let emitted = if o.straggler && finished {
            Emitted::Straggler
        } else {
            why
        };
        // Only a whole trace is complete: not a fragment after a bound, not a straggler.
        let complete = finished && o.fragment == 0;
        let forget_at = now_ms.saturating_add(self.cfg.horizon_ms);
        if let Some((_, _, old)) = self
            .emitted
            .insert(id, (o.fragment + 1, complete || o.straggler, forget_at))
        {
            self.expiry.remove(&(old, id));
        }
        self.expiry.insert((forget_at, id), ());
        AssembledTrace {
            trace_id: id,
            spans: o.spans,
            complete,
            emitted,
            fragment: o.fragment,
        }
    }
}
