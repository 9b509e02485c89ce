//! Critical-path records and per-window shares against values worked out by hand.

use apo_dataflow::{path_record, SharePartial};
use apo_dataflow::{AssembledTrace, Emitted};
use apo_schemas::critical_path::{OTHER, UNTRACED};
use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};

const T0_NS: i64 = 1_764_115_200_000 * 1_000_000;
const MS: i64 = 1_000_000;

fn span(trace: u128, id: u64, parent: Option<u64>, svc: &str, op: &str, s: i64, e: i64) -> Span {
    Span {
        links: Vec::new(),
        trace_id: TraceId(trace),
        span_id: SpanId(id),
        parent_span_id: parent.map(SpanId),
        service: svc.into(),
        name: op.into(),
        kind: SpanKind::Internal,
        start_ns: T0_NS + s * MS,
        end_ns: T0_NS + e * MS,
        status: SpanStatus::Unset,
        attributes: Default::default(),
        follows_from: false,
        adjusted_count: 1,
    }
}

fn trace(id: u128, spans: Vec<Span>) -> AssembledTrace {
    AssembledTrace {
        trace_id: TraceId(id),
        spans,
        complete: true,
        emitted: Emitted::Idle,
        fragment: 0,
    }
}

#[test]
fn record_and_shares() {
    // Trace 1: frontend 0..100 calls cart 10..40 then db 50..90.
    let t1 = trace(
        1,
        vec![
            span(1, 1, None, "frontend", "GET /", 0, 100),
            span(1, 2, Some(1), "cart", "get", 10, 40),
            span(1, 3, Some(1), "db", "SELECT", 50, 90),
        ],
    );
    let r1 = path_record(&t1);
    assert_eq!(
        (r1.root_service.as_str(), r1.root_operation.as_str()),
        ("frontend", "GET /")
    );
    assert_eq!(r1.duration_ms, 100.0);
    assert_eq!(r1.segments.len(), 5);
    assert_eq!(r1.trace_id, "00000000000000000000000000000001");
    // Trace 2: two roots (the caller is not traced): db 0..30, gap, cart 50..60.
    let t2 = trace(
        2,
        vec![
            span(2, 1, Some(77), "db", "SELECT", 0, 30),
            span(2, 2, None, "cart", "get", 50, 60),
        ],
    );
    let r2 = path_record(&t2);
    assert_eq!(r2.segments[1].service, UNTRACED);
    assert_eq!(r2.duration_ms, 60.0);

    let w = SharePartial::window_of(&r1, 10);
    assert_eq!(w, SharePartial::window_of(&r2, 10));
    let mut a = SharePartial::new(w.clone(), 3);
    let mut b = SharePartial::new(w, 3);
    a.add(&r1);
    b.add(&r2);
    a.merge(&b);
    let rows = a.finish(1);
    let got: Vec<(String, String, u32, f64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r.service.clone(),
                r.operation.clone(),
                r.rank,
                r.critical_ms,
                r.traces,
            )
        })
        .collect();
    // db 40 + 30 = 70, frontend 10 + 10 + 10 = 30, cart 30 + 10 = 40, untraced 20; total 160.
    assert_eq!(
        got,
        vec![
            ("db".into(), "SELECT".into(), 1, 70.0, 2),
            ("cart".into(), "get".into(), 2, 40.0, 2),
            ("frontend".into(), "GET /".into(), 3, 30.0, 1),
            (OTHER.into(), OTHER.into(), 4, 20.0, 1),
        ]
    );
    assert_eq!(rows[0].share, 70.0 / 160.0);
    assert!(rows.iter().all(|r| r.window_traces == 2));
    assert!((rows.iter().map(|r| r.share).sum::<f64>() - 1.0).abs() < 1e-12);
}
