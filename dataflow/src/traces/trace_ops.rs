//! Trace assembly as a timely operator: spans exchanged by trace id, assembled by a
//! [`TraceAssembler`] per worker as the watermark (the frontier) advances.
//!
//! Batches are applied in time order once complete, each sorted by (trace, span id, times,
//! service, name), and traces whose idle time the watermark passed are emitted after each
//! batch; between batches the watermark is just before the frontier (a time is not passed
//! until its batch is in): what is emitted depends only on which spans were read at which
//! watermark, not on how batches were cut across workers or when the operator ran.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use apo_schemas::Span;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::engine::budget::MemoryBudget;
use crate::engine::checkpoint::OperatorCheckpoint;
use crate::ops::held::Held;
use crate::traces::assembly::{AssembledTrace, AssemblyConfig, TraceAssembler};

fn route(s: &Span) -> u64 {
    let t = s.trace_id.0;
    (t as u64) ^ ((t >> 64) as u64)
}

/// Assembles the spans into traces; emitted traces carry the time of the watermark that
/// emitted them. `held_spans` reports the spans held on this worker; while `budget` is over,
/// each evaluation that finds it so makes the assembler emit a tenth of what it holds early.
/// With `checkpoint`, the assembler is restored from the job's checkpoint and deposited at
/// each checkpoint's time `T` as it stands with every batch before `T` added and the watermark
/// advanced to just before `T` (as after any complete time).
pub fn assemble_traces<'scope>(
    spans: StreamVec<'scope, u64, Span>,
    cfg: AssemblyConfig,
    held_spans: Rc<Held>,
    budget: Arc<MemoryBudget>,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'scope, u64, AssembledTrace> {
    let peers = spans.scope().peers();
    let scope = spans.scope();
    spans.unary_frontier(Exchange::new(route), "AssembleTraces", move |cap, info| {
        if let Some(c) = &checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        let mut held: Option<Capability<u64>> = Some(cap);
        let mut asm = match checkpoint.as_ref().and_then(|c| c.restored()) {
            None => TraceAssembler::new(cfg),
            Some(bytes) => TraceAssembler::restored(cfg, bytes).unwrap_or_else(|e| {
                tracing::error!(error = %e, "trace assembly in the checkpoint unreadable; starting empty");
                TraceAssembler::new(cfg)
            }),
        };
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
            // A checkpoint due before time `next`: every batch before it added, the watermark
            // advanced to just before it; what that emits goes out at once.
            let mut deposit_before = |next: u64,
                                      asm: &mut TraceAssembler,
                                      out: &mut Vec<AssembledTrace>| {
                if let Some(c) = checkpoint.as_mut() {
                    c.deposit_due(next, |time| {
                        asm.advance(time as i64 - 1, out);
                        asm.snapshot()
                    });
                }
            };
            while let Some((&t, _)) = stash.first_key_value() {
                if f.less_equal(&t) {
                    break;
                }
                deposit_before(t, &mut asm, &mut out);
                if let (Some(h), false) = (held.as_ref(), out.is_empty()) {
                    output.session(h).give_iterator(out.drain(..));
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
                    deposit_before(ft, &mut asm, &mut out);
                    // Every time before the frontier is complete: the watermark is just
                    // before it (spans at the frontier's time, when they come, are added
                    // before it passes, as at any other time).
                    asm.advance(ft as i64 - 1, &mut out);
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
