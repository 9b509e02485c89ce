//! Trace assembly in a timely dataflow: every span ends up in exactly one trace, traces are
//! whole, and one and two workers assemble the same traces.

use std::sync::{Arc, Mutex};

use apo_dataflow::assemble_traces;
use apo_dataflow::{AssembledTrace, AssemblyConfig, Emitted};
use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

const T0: i64 = 1_764_115_200_000;

/// 2 000 traces of 1 to 8 spans each, all spans of a trace ending within 500 ms; in end order.
fn spans() -> Vec<Span> {
    let mut seed = 9u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut out = Vec::new();
    let mut id = 0u64;
    for t in 0..2_000i64 {
        let n = next() % 8 + 1;
        for k in 0..n {
            id += 1;
            let end = T0 + t * 20 + (next() % 500) as i64;
            out.push(Span {
                links: Vec::new(),
                trace_id: TraceId(t as u128 + 1),
                span_id: SpanId(id),
                parent_span_id: (k > 0).then_some(SpanId(id - k)),
                service: "s".into(),
                name: "op".into(),
                kind: SpanKind::Internal,
                start_ns: (end - 10) * 1_000_000,
                end_ns: end * 1_000_000,
                status: SpanStatus::Unset,
                attributes: Default::default(),
                follows_from: false,
                adjusted_count: 1,
            });
        }
    }
    out.sort_by_key(|s| (s.end_ns, s.span_id));
    out
}

fn run(workers: usize, spans: Vec<Span>) -> Vec<AssembledTrace> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let spans = Arc::new(spans);
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut input: InputHandleVec<u64, Span> = InputHandleVec::new();
        let probe = ProbeHandle::new();
        let sink = sink.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            let cfg = AssemblyConfig {
                idle_ms: 1_000,
                ..Default::default()
            };
            let held = std::rc::Rc::new(apo_dataflow::Held::default());
            let budget = apo_dataflow::MemoryBudget::unlimited();
            assemble_traces(input.to_stream(scope), cfg, held, budget, None)
                .inspect(move |t: &AssembledTrace| sink.lock().unwrap().push(t.clone()))
                .probe_with(&probe);
        });
        let (i, n) = (worker.index(), worker.peers());
        let mine: Vec<Span> = spans.iter().skip(i).step_by(n).cloned().collect();
        for chunk in mine.chunks(97) {
            for s in chunk {
                input.send(s.clone());
            }
            // The watermark: 1 s behind the latest end read.
            let wm = chunk.last().map_or(0, |s| s.event_time_ms()) - 1_000;
            if wm > *input.time() as i64 {
                input.advance_to(wm as u64);
            }
            worker.step_while(|| probe.less_than(input.time()));
        }
    })
    .unwrap();
    let mut traces = out.lock().unwrap().clone();
    for t in traces.iter_mut() {
        t.spans.sort_by_key(|s| s.span_id);
    }
    traces.sort_by_key(|t| (t.trace_id, t.fragment));
    traces
}

#[test]
fn every_span_in_exactly_one_whole_trace_on_one_and_two_workers() {
    let s = spans();
    let one = run(1, s.clone());
    assert_eq!(one.len(), 2_000, "one trace per trace id");
    assert!(one.iter().all(|t| t.complete && t.fragment == 0));
    assert!(one
        .iter()
        .all(|t| matches!(t.emitted, Emitted::Idle | Emitted::EndOfInput)));
    let mut ids: Vec<u64> = one
        .iter()
        .flat_map(|t| t.spans.iter().map(|s| s.span_id.0))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=s.len() as u64).collect::<Vec<_>>());
    assert!(one
        .iter()
        .all(|t| t.spans.iter().all(|s| s.trace_id == t.trace_id)));
    let two = run(2, s);
    assert_eq!(one, two);
}
