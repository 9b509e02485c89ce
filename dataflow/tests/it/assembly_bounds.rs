//! Trace assembly: completion by idle time, fragments at the size bound, stragglers, and memory
//! that stays bounded under traces that never complete.

use apo_dataflow::{AssembledTrace, AssemblyConfig, Emitted, TraceAssembler};
use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};

fn span(trace: u128, id: u64, end_ms: i64) -> Span {
    Span {
        links: Vec::new(),
        trace_id: TraceId(trace),
        span_id: SpanId(id),
        parent_span_id: None,
        service: "s".into(),
        name: "op".into(),
        kind: SpanKind::Internal,
        start_ns: (end_ms - 1) * 1_000_000,
        end_ns: end_ms * 1_000_000,
        status: SpanStatus::Unset,
        attributes: Default::default(),
        follows_from: false,
        adjusted_count: 1,
    }
}

fn cfg(per_trace: usize, held: usize) -> AssemblyConfig {
    AssemblyConfig {
        idle_ms: 1_000,
        max_spans_per_trace: per_trace,
        max_spans_held: held,
        horizon_ms: 60_000,
    }
}

fn summary(out: &[AssembledTrace]) -> Vec<(u128, usize, bool, Emitted, u32)> {
    out.iter()
        .map(|t| {
            (
                t.trace_id.0,
                t.spans.len(),
                t.complete,
                t.emitted,
                t.fragment,
            )
        })
        .collect()
}

#[test]
fn traces_complete_when_the_watermark_passes_their_idle_time() {
    let mut a = TraceAssembler::new(cfg(100, 1000));
    let mut out = Vec::new();
    a.add(span(1, 1, 100), &mut out);
    a.add(span(2, 2, 200), &mut out);
    a.add(span(1, 3, 300), &mut out); // trace 1's deadline moves to 1 300
    a.advance(1_200, &mut out);
    assert_eq!(summary(&out), [(2, 1, true, Emitted::Idle, 0)]);
    out.clear();
    a.advance(1_300, &mut out);
    assert_eq!(summary(&out), [(1, 2, true, Emitted::Idle, 0)]);
    assert_eq!(a.held_spans(), 0);
    // A span of trace 1 after it was emitted: a straggler fragment, not part of a new trace.
    out.clear();
    a.add(span(1, 4, 1_400), &mut out);
    a.advance(2_400, &mut out);
    assert_eq!(summary(&out), [(1, 1, false, Emitted::Straggler, 1)]);
}

#[test]
fn a_trace_past_the_size_bound_is_emitted_in_fragments() {
    let mut a = TraceAssembler::new(cfg(5, 1000));
    let mut out = Vec::new();
    for i in 0..12 {
        a.add(span(7, i + 1, 100 + i as i64), &mut out);
    }
    a.finish(&mut out);
    assert_eq!(
        summary(&out),
        [
            (7, 5, false, Emitted::SizeBound, 0),
            (7, 5, false, Emitted::SizeBound, 1),
            (7, 2, false, Emitted::EndOfInput, 2),
        ]
    );
}

#[test]
fn memory_stays_bounded_under_traces_that_never_complete() {
    let held = 1_000;
    let mut a = TraceAssembler::new(cfg(10_000, held));
    let mut out = Vec::new();
    let mut max_held = 0;
    let mut emitted_spans = 0;
    let n = 200_000u64;
    // Each trace gets a span now and then, forever; the watermark never moves.
    for i in 0..n {
        a.add(
            span((i % 5_000) as u128 + 1, i + 1, 1_000 + i as i64),
            &mut out,
        );
        max_held = max_held.max(a.held_spans());
        emitted_spans += out.iter().map(|t| t.spans.len()).sum::<usize>();
        assert!(out
            .iter()
            .all(|t| !t.complete && t.emitted == Emitted::MemoryBound));
        out.clear();
    }
    assert!(max_held <= held, "held {max_held} spans");
    assert!(a.open_traces() <= held);
    // Nothing lost: every span was emitted or is still held.
    assert_eq!(emitted_spans + a.held_spans(), n as usize);
}

#[test]
fn the_same_calls_assemble_the_same_traces() {
    let run = || {
        let mut a = TraceAssembler::new(cfg(4, 50));
        let mut out = Vec::new();
        for i in 0..500u64 {
            a.add(
                span((i * 7 % 31) as u128 + 1, i + 1, (i * 13 % 97) as i64),
                &mut out,
            );
            if i % 50 == 0 {
                a.advance(i as i64, &mut out);
            }
        }
        a.finish(&mut out);
        out
    };
    assert_eq!(run(), run());
}

#[test]
fn shedding_emits_the_traces_nearest_their_deadline_until_a_tenth_is_gone() {
    let mut a = TraceAssembler::new(cfg(100, 1000));
    let mut out = Vec::new();
    // 20 traces of 5 spans; trace t's spans end at t ms, so its deadline is t + 1 000.
    for t in 1..=20u128 {
        for i in 0..5 {
            a.add(span(t, (t * 10 + i) as u64, t as i64), &mut out);
        }
    }
    assert!(out.is_empty());
    let before = a.held_bytes();
    assert!(
        before >= 100 * std::mem::size_of::<Span>(),
        "every span is counted: {before}"
    );
    a.shed(50, &mut out);
    // 100 spans held: a tenth is 10, two traces of 5.
    assert_eq!(
        summary(&out),
        [
            (1, 5, false, Emitted::MemoryBound, 0),
            (2, 5, false, Emitted::MemoryBound, 0)
        ]
    );
    assert_eq!(a.held_spans(), 90);
    assert!(a.held_bytes() < before);
    // Shedding always frees something, however little is held.
    out.clear();
    let mut small = TraceAssembler::new(cfg(100, 1000));
    small.add(span(7, 1, 10), &mut out);
    small.shed(20, &mut out);
    assert_eq!(summary(&out), [(7, 1, false, Emitted::MemoryBound, 0)]);
    assert_eq!((small.held_spans(), small.held_bytes()), (0, 0));
}

/// A checkpoint of the assembler (issue 30): restored from its snapshot at any point, it goes
/// on exactly as the one that was never stopped — open traces, fragment numbers, stragglers of
/// traces already emitted.
#[test]
fn an_assembler_restored_from_its_snapshot_goes_on_as_the_original() {
    // Trace 1 in fragments of 2, trace 2 complete then a straggler, trace 3 open.
    let first: Vec<Span> = vec![
        span(1, 1, 100),
        span(1, 2, 150),
        span(1, 3, 180),
        span(2, 4, 200),
        span(3, 5, 900),
    ];
    let rest: Vec<(Option<Span>, i64)> = vec![
        (None, 1_500),              // trace 2 completes, trace 1's last fragment goes
        (Some(span(2, 6, 250)), 0), // a straggler of trace 2
        (Some(span(3, 7, 950)), 0),
        (None, 2_000),
        (Some(span(2, 8, 260)), 0), // after the straggler went
        (None, 70_000),
        (Some(span(2, 9, 270)), 0),
        (None, 80_000),
    ];
    let play = |a: &mut TraceAssembler| {
        let mut out = Vec::new();
        for (s, wm) in rest.clone() {
            match s {
                Some(s) => a.add(s, &mut out),
                None => a.advance(wm, &mut out),
            }
        }
        out
    };
    let mut original = TraceAssembler::new(cfg(2, 1000));
    let mut out = Vec::new();
    for s in first {
        original.add(s, &mut out);
    }
    assert_eq!(summary(&out), [(1, 2, false, Emitted::SizeBound, 0)]);
    let bytes = original.snapshot().unwrap();
    let mut restored = TraceAssembler::restored(cfg(2, 1000), &bytes).unwrap();
    assert_eq!(restored.held_spans(), original.held_spans());
    assert_eq!(restored.open_traces(), 3);
    let want = play(&mut original);
    assert_eq!(
        summary(&want),
        [
            (1, 1, false, Emitted::Idle, 1),
            (2, 1, true, Emitted::Idle, 0),
            (3, 2, false, Emitted::SizeBound, 0),
            (2, 1, false, Emitted::Straggler, 1),
            (2, 1, false, Emitted::Straggler, 2),
            // still remembered: the straggler at 70 000 is kept for the 60 s horizon
            (2, 1, false, Emitted::Straggler, 3),
        ]
    );
    assert_eq!(play(&mut restored), want);
    assert_eq!(restored.snapshot().unwrap(), original.snapshot().unwrap());
}
