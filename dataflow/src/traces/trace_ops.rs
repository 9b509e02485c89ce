//! Trace assembly as a timely operator: spans exchanged by trace id, assembled by a
//! [`TraceAssembler`] per worker as the watermark (the frontier) advances.
//!
//! Batches are applied in time order once complete, each sorted by (trace, span id, times,
//! service, name), and traces whose idle time the watermark passed are emitted after each
//! batch: what is emitted depends only on which spans were read at which watermark, not on
//! how batches were cut across workers.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use apo_schemas::Span;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::engine::budget::MemoryBudget;
use crate::ops::held::Held;
use crate::traces::assembly::{AssembledTrace, AssemblyConfig, TraceAssembler};

fn route(s: &Span) -> u64 {
    let t = s.trace_id.0;
    (t as u64) ^ ((t >> 64) as u64)
}

/// Assembles the spans into traces; emitted traces carry the time of the watermark that
/// emitted them. `held_spans` reports the spans held on this worker; while `budget` is over,
/// each evaluation that finds it so makes the assembler emit a tenth of what it holds early.
pub fn assemble_traces<'scope>(
    spans: StreamVec<'scope, u64, Span>,
    cfg: AssemblyConfig,
    held_spans: Rc<Held>,
    budget: Arc<MemoryBudget>,
) -> StreamVec<'scope, u64, AssembledTrace> {
    let peers = spans.scope().peers();
    spans.unary_frontier(Exchange::new(route), "AssembleTraces", move |cap, _info| {
        let mut held: Option<Capability<u64>> = Some(cap);
        let mut asm = TraceAssembler::new(cfg);
        let mut stash: BTreeMap<u64, Vec<Span>> = BTreeMap::new();
        let mut out: Vec<AssembledTrace> = Vec::new();
        let mut shed_at = budget.over_count();
        let peers = peers.max(1) as u64;
        move |(input, frontier), output| {
            input.for_each_stamp(|cap, data| {
                let Some(&t) = cap.least() else {
                    return;
                };
                let e = stash.entry(t).or_default();
                for batch in data {
                    e.append(batch);
                }
            });
            let f = frontier.frontier();
            while let Some((&t, _)) = stash.first_key_value() {
                if f.less_equal(&t) {
                    break;
                }
                let Some((_, mut batch)) = stash.pop_first() else {
                    break;
                };
                batch.sort_by(|a, b| {
                    (a.trace_id, a.span_id, a.start_ns, a.end_ns)
                        .cmp(&(b.trace_id, b.span_id, b.start_ns, b.end_ns))
                        .then_with(|| a.service.cmp(&b.service))
                        .then_with(|| a.name.cmp(&b.name))
                });
                for s in batch {
                    asm.add(s, &mut out);
                }
                asm.advance(t as i64, &mut out);
                if let Some(h) = held.as_ref() {
                    if !out.is_empty() {
                        output
                            .session(&h.delayed(&t.max(*h.time())))
                            .give_iterator(out.drain(..));
                    }
                }
            }
            match f.first() {
                Some(&ft) => {
                    asm.advance(ft as i64, &mut out);
                    // Only while assembly holds a fair part of the state (a tenth of this
                    // worker's share): the windows may be what is over, not the traces.
                    let share = budget.usage().used / peers;
                    if budget.over()
                        && budget.over_count() != shed_at
                        && asm.held_bytes() as u64 * 10 >= share
                    {
                        shed_at = budget.over_count();
                        asm.shed(ft as i64, &mut out);
                    }
                    if let Some(h) = held.as_mut() {
                        if !out.is_empty() {
                            output.session(h).give_iterator(out.drain(..));
                        }
                        h.downgrade(&ft.max(*h.time()));
                    }
                }
                None => {
                    asm.finish(&mut out);
                    if let Some(h) = held.take() {
                        if !out.is_empty() {
                            output.session(&h).give_iterator(out.drain(..));
                        }
                    }
                }
            }
            held_spans.set(asm.held_spans(), asm.held_bytes());
        }
    })
}
