//! Critical-path fixtures: the nine situations of Jaeger's own test cases (jaeger-ui,
//! `TracePage/CriticalPath/testCases`), redrawn as our fixtures with the expected path written
//! out, then the cases where we go beyond Jaeger.

use apo_dataflow::{critical_path, Segment};
use apo_schemas::span::{Span, SpanId, SpanKind, SpanStatus, TraceId};

/// A span named by a letter: its id is the letter's code.
fn span(name: char, parent: Option<char>, start: i64, end: i64) -> Span {
    Span {
        links: Vec::new(),
        trace_id: TraceId(1),
        span_id: SpanId(name as u64),
        parent_span_id: parent.map(|p| SpanId(p as u64)),
        service: "svc".into(),
        name: name.to_string(),
        kind: SpanKind::Internal,
        start_ns: start,
        end_ns: end,
        status: SpanStatus::Unset,
        attributes: Default::default(),
        follows_from: false,
        adjusted_count: 1,
    }
}

fn kind(mut s: Span, k: SpanKind) -> Span {
    s.kind = k;
    s
}

/// The path as (span name or '-' for no span, start, end).
fn path(spans: &[Span]) -> Vec<(char, i64, i64)> {
    critical_path(spans)
        .iter()
        .map(|s: &Segment| {
            let name = s
                .span
                .map_or('-', |i| spans[i].name.chars().next().unwrap());
            (name, s.start_ns, s.end_ns)
        })
        .collect()
}

/// The path is contiguous and covers the top span (or all roots) exactly.
fn assert_contiguous(spans: &[Span]) {
    let p = critical_path(spans);
    for w in p.windows(2) {
        assert_eq!(w[0].end_ns, w[1].start_ns, "gap or overlap in {p:?}");
    }
}

// 1. Sequential children with gaps: the parent owns the gaps.
#[test]
fn jaeger_1_sequential_children_with_gaps() {
    let t = [
        span('A', None, 0, 100),
        span('B', Some('A'), 10, 40),
        span('C', Some('A'), 50, 90),
    ];
    assert_eq!(
        path(&t),
        [
            ('A', 0, 10),
            ('B', 10, 40),
            ('A', 40, 50),
            ('C', 50, 90),
            ('A', 90, 100)
        ]
    );
    assert_contiguous(&t);
}

// 2. Overlapping children: the one finishing last is on the path; the other ends after it
// started, so it did not block it.
#[test]
fn jaeger_2_overlapping_children() {
    let t = [
        span('A', None, 0, 100),
        span('B', Some('A'), 10, 50),
        span('C', Some('A'), 30, 80),
    ];
    assert_eq!(path(&t), [('A', 0, 30), ('C', 30, 80), ('A', 80, 100)]);
}

// 3. A child wholly after its parent is dropped.
#[test]
fn jaeger_3_child_wholly_after_parent() {
    let t = [span('A', None, 0, 50), span('B', Some('A'), 60, 80)];
    assert_eq!(path(&t), [('A', 0, 50)]);
}

// 4. A child wholly before its parent is dropped.
#[test]
fn jaeger_4_child_wholly_before_parent() {
    let t = [span('A', None, 50, 100), span('B', Some('A'), 10, 40)];
    assert_eq!(path(&t), [('A', 50, 100)]);
}

// 5. The descendants of a dropped child go with it, even where they overlap the parent.
#[test]
fn jaeger_5_descendants_of_a_dropped_child() {
    let t = [
        span('A', None, 0, 50),
        span('B', Some('A'), 60, 90),
        span('C', Some('B'), 20, 45),
    ];
    assert_eq!(path(&t), [('A', 0, 50)]);
}

// 6. Producer → consumer: the consumer does not block the producer's trace.
#[test]
fn jaeger_6_producer_consumer() {
    let t = [
        span('A', None, 0, 100),
        kind(span('B', Some('A'), 10, 30), SpanKind::Producer),
        kind(span('C', Some('B'), 40, 95), SpanKind::Consumer),
        span('D', Some('C'), 50, 90),
    ];
    assert_eq!(path(&t), [('A', 0, 10), ('B', 10, 30), ('A', 30, 100)]);
    // The same with an explicit FOLLOWS_FROM reference instead of kinds.
    let mut t2 = t.clone();
    t2[1].kind = SpanKind::Internal;
    t2[2].kind = SpanKind::Internal;
    t2[2].follows_from = true;
    assert_eq!(path(&t2), [('A', 0, 10), ('B', 10, 30), ('A', 30, 100)]);
}

// 7. A child running past its parent's end is cut at the parent's end.
#[test]
fn jaeger_7_child_past_parent_end() {
    let t = [span('A', None, 0, 50), span('B', Some('A'), 20, 70)];
    assert_eq!(path(&t), [('A', 0, 20), ('B', 20, 50)]);
}

// 8. A grandchild starting before its parent is cut at its parent's start.
#[test]
fn jaeger_8_grandchild_before_its_parent() {
    let t = [
        span('A', None, 0, 100),
        span('B', Some('A'), 20, 80),
        span('C', Some('B'), 10, 50),
    ];
    assert_eq!(
        path(&t),
        [('A', 0, 20), ('C', 20, 50), ('B', 50, 80), ('A', 80, 100)]
    );
}

// 9. A child covering its parent is cut to the parent: it owns all of it.
#[test]
fn jaeger_9_child_covering_parent() {
    let t = [span('A', None, 20, 80), span('B', Some('A'), 0, 100)];
    assert_eq!(path(&t), [('B', 20, 80)]);
}

// Beyond Jaeger.

#[test]
fn back_to_back_children_are_both_on_the_path() {
    // Jaeger's strict "ended before" would give A 10..40.
    let t = [
        span('A', None, 0, 100),
        span('B', Some('A'), 10, 40),
        span('C', Some('A'), 40, 90),
    ];
    assert_eq!(
        path(&t),
        [('A', 0, 10), ('B', 10, 40), ('C', 40, 90), ('A', 90, 100)]
    );
}

#[test]
fn multi_root_trace_shows_the_time_no_span_ran() {
    // R's parent was never reported (an uninstrumented caller): two roots.
    let t = [
        span('P', None, 0, 40),
        span('Q', Some('Z'), 60, 100),
        span('R', Some('Q'), 70, 90),
    ];
    assert_eq!(
        path(&t),
        [
            ('P', 0, 40),
            ('-', 40, 60),
            ('Q', 60, 70),
            ('R', 70, 90),
            ('Q', 90, 100)
        ]
    );
    assert_contiguous(&t);
}

#[test]
fn zero_duration_spans_neither_loop_nor_count() {
    let t = [
        span('A', None, 0, 100),
        span('Z', Some('A'), 50, 50),
        span('B', Some('A'), 50, 80),
        span('Y', Some('B'), 80, 80),
    ];
    assert_eq!(path(&t), [('A', 0, 50), ('B', 50, 80), ('A', 80, 100)]);
    assert!(path(&[span('A', None, 10, 10)]).is_empty());
    assert!(path(&[]).is_empty());
}

#[test]
fn ties_are_broken_the_same_way_whatever_the_input_order() {
    let a = span('A', None, 0, 100);
    let b = span('B', Some('A'), 10, 50);
    let c = span('C', Some('A'), 20, 50);
    let d = span('D', Some('A'), 20, 50);
    let want = [('A', 0, 10), ('B', 10, 50), ('A', 50, 100)];
    for t in [
        vec![a.clone(), b.clone(), c.clone(), d.clone()],
        vec![d.clone(), c.clone(), b.clone(), a.clone()],
        vec![c.clone(), a.clone(), d.clone(), b.clone()],
    ] {
        assert_eq!(path(&t), want);
    }
    // Same start and end: the lower span id wins.
    let t = [a.clone(), d.clone(), c.clone()];
    assert_eq!(path(&t), [('A', 0, 20), ('C', 20, 50), ('A', 50, 100)]);
}

#[test]
fn a_deep_trace_needs_no_recursion() {
    // A chain of 200 000 nested spans, each 1 ns shorter at both ends... capped at the depth
    // where they still nest; then each owns 1 ns at each end.
    let n = 200_000i64;
    let spans: Vec<Span> = (0..n)
        .map(|i| Span {
            span_id: SpanId(i as u64 + 1),
            parent_span_id: (i > 0).then_some(SpanId(i as u64)),
            ..span('S', None, i, 2 * n - i)
        })
        .collect();
    let p = critical_path(&spans);
    assert_eq!(p.len() as i64, 2 * n - 1);
    assert_eq!(p.iter().map(|s| s.duration_ns()).sum::<i64>(), 2 * n);
    assert_contiguous(&spans);
}

#[test]
fn parent_cycles_and_duplicate_ids_are_ignored() {
    let t = [
        span('A', None, 0, 100),
        span('B', Some('C'), 10, 20),
        span('C', Some('B'), 30, 40),
        span('A', None, 0, 500), // duplicate id: the first wins
    ];
    assert_eq!(path(&t), [('A', 0, 100)]);
}
