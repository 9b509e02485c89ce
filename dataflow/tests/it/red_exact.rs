//! RED against exact values computed here from the same spans.

use std::collections::BTreeMap;

use apo_dataflow::{RedPartial, RedWindow};
use apo_schemas::red::OVERFLOW_OPERATION;
use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ALPHA: f64 = 0.01;
const T0: i64 = 1_764_115_200_000; // a whole minute, ms

fn span(i: u64, op: &str, kind: SpanKind, status: SpanStatus, end_ms: i64, dur_us: i64) -> Span {
    let end_ns = end_ms * 1_000_000;
    Span {
        links: Vec::new(),
        trace_id: TraceId(i as u128 + 1),
        span_id: SpanId(i + 1),
        parent_span_id: None,
        service: "shop".into(),
        name: op.into(),
        kind,
        start_ns: end_ns - dur_us * 1000,
        end_ns,
        status,
        attributes: Default::default(),
        follows_from: false,
        adjusted_count: 1,
    }
}

fn window() -> RedWindow {
    RedWindow {
        service: "shop".into(),
        window_seconds: 10,
        window_start: T0,
    }
}

#[test]
fn red_rows_match_exact_counts_and_quantiles() {
    let mut rng = StdRng::seed_from_u64(3);
    let ops = ["GET /cart", "POST /pay", "SELECT items"];
    let mut spans = Vec::new();
    for i in 0..30_000u64 {
        let op = ops[rng.random_range(0..ops.len())];
        let kind = if op.starts_with("SELECT") {
            SpanKind::Client
        } else {
            SpanKind::Server
        };
        let status = if rng.random_bool(0.02) {
            SpanStatus::Error
        } else {
            SpanStatus::Unset
        };
        // Log-normal-ish durations from 10 µs to ~10 s.
        let dur_us = (10f64 * (rng.random::<f64>() * 13.8).exp()) as i64;
        spans.push(span(
            i,
            op,
            kind,
            status,
            T0 + rng.random_range(0..10_000),
            dur_us,
        ));
    }
    // Two partials (two workers), merged.
    let mut a = RedPartial::new(window(), ALPHA, 10);
    let mut b = RedPartial::new(window(), ALPHA, 10);
    for (i, s) in spans.iter().enumerate() {
        assert_eq!(RedPartial::window_of(s, 10), window());
        if i % 2 == 0 {
            a.add(s)
        } else {
            b.add(s)
        }
    }
    a.merge(&b);
    let rows = a.finish(1);

    // Exact reference.
    let mut exact: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    let mut per_op: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for s in &spans {
        let k = (s.name.clone(), s.kind.otel_name().to_string());
        exact
            .entry((k.0.clone(), k.1.clone(), s.status.otel_name().to_string()))
            .or_default()
            .push(s.duration_ns() as f64 / 1e6);
        let e = per_op.entry(k).or_default();
        e.0 += 1;
        e.1 += (s.status == SpanStatus::Error) as u64;
    }
    assert_eq!(rows.len(), exact.len());
    for r in &rows {
        let mut v = exact
            .remove(&(
                r.span_name.clone(),
                r.span_kind.clone(),
                r.status_code.clone(),
            ))
            .unwrap_or_else(|| panic!("unexpected row {}", r.key()));
        v.sort_by(f64::total_cmp);
        assert_eq!(r.calls, v.len() as u64);
        assert_eq!(r.rate, v.len() as f64 / 10.0);
        assert_eq!(r.duration_min_ms, v[0]);
        assert_eq!(r.duration_max_ms, v[v.len() - 1]);
        let sum: f64 = v.iter().sum();
        assert!((r.duration_sum_ms - sum).abs() <= 1e-9 * sum);
        for (q, got) in [
            (0.5, r.duration_p50_ms),
            (0.9, r.duration_p90_ms),
            (0.95, r.duration_p95_ms),
            (0.99, r.duration_p99_ms),
            (0.999, r.duration_p999_ms),
        ] {
            let want = v[(q * (v.len() - 1) as f64).floor() as usize];
            assert!(
                ((got - want) / want).abs() <= ALPHA + 1e-12,
                "{} q{q}: {got} vs {want}",
                r.key()
            );
        }
        let (calls, errors) = per_op[&(r.span_name.clone(), r.span_kind.clone())];
        assert_eq!((r.operation_calls, r.operation_errors), (calls, errors));
        assert_eq!(r.error_ratio, errors as f64 / calls as f64);
        assert!(!r.overflow);
        assert_eq!(r.revision, 1);
    }
}

#[test]
fn operations_past_the_limit_fold_into_the_overflow_row() {
    let mut p = RedPartial::new(window(), ALPHA, 2);
    let mut i = 0;
    // Calls per operation: a 5, b 4, c 3, d 3, plus 40 one-off operations (past the hold
    // limit of 2 × 8 = 16, so most of them are folded while the window is open).
    for (op, n) in [("a", 5), ("b", 4), ("c", 3), ("d", 3)] {
        for _ in 0..n {
            p.add(&span(
                i,
                op,
                SpanKind::Server,
                SpanStatus::Unset,
                T0 + 1,
                1000,
            ));
            i += 1;
        }
    }
    for k in 0..40 {
        p.add(&span(
            i,
            &format!("/item/{k}"),
            SpanKind::Server,
            SpanStatus::Error,
            T0 + 1,
            2000,
        ));
        i += 1;
    }
    let rows = p.finish(1);
    let names: Vec<&str> = rows.iter().map(|r| r.span_name.as_str()).collect();
    assert_eq!(
        names[..2],
        ["a", "b"],
        "the two busiest operations keep their rows"
    );
    let over: Vec<_> = rows.iter().filter(|r| r.overflow).collect();
    assert!(over.iter().all(|r| r.span_name == OVERFLOW_OPERATION));
    // c, d and the 40 one-off operations, every call accounted for.
    assert_eq!(over[0].overflow_operations, 42);
    assert_eq!(over.iter().map(|r| r.calls).sum::<u64>(), 3 + 3 + 40);
    assert_eq!(rows.iter().map(|r| r.calls).sum::<u64>(), i);
    assert_eq!(over[0].operation_calls, 46);
    assert_eq!(over[0].operation_errors, 40);
}

#[test]
fn a_sampled_span_counts_as_the_spans_it_stands_for() {
    // Spans sampled at 1, 1/2, 1/4 and 1/10 (adjusted counts 1, 2, 4, 10) against the same
    // spans repeated that many times, unsampled: the same rows.
    let mut rng = StdRng::seed_from_u64(11);
    let ops = ["GET /cart", "POST /pay"];
    let (mut sampled, mut repeated) = (
        RedPartial::new(window(), ALPHA, 10),
        RedPartial::new(window(), ALPHA, 10),
    );
    for i in 0..3_000u64 {
        let status = if rng.random_bool(0.05) {
            SpanStatus::Error
        } else {
            SpanStatus::Ok
        };
        let dur_us = (10f64 * (rng.random::<f64>() * 10.0).exp()) as i64;
        let mut s = span(
            i,
            ops[(i % 2) as usize],
            SpanKind::Server,
            status,
            T0 + rng.random_range(0..10_000),
            dur_us,
        );
        let n = [1, 2, 4, 10][rng.random_range(0..4)];
        for _ in 0..n {
            repeated.add(&s);
        }
        s.adjusted_count = n;
        sampled.add(&s);
    }
    let (a, b) = (sampled.finish(1), repeated.finish(1));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let mut x = x.clone();
        assert!((x.duration_sum_ms - y.duration_sum_ms).abs() <= 1e-9 * y.duration_sum_ms);
        assert!((x.duration_mean_ms - y.duration_mean_ms).abs() <= 1e-9 * y.duration_mean_ms);
        x.duration_sum_ms = y.duration_sum_ms;
        x.duration_mean_ms = y.duration_mean_ms;
        assert_eq!(
            &x, y,
            "calls, errors, rate and quantiles as the repeated spans'"
        );
    }
    assert!(a.iter().map(|r| r.calls).sum::<u64>() > 3_000);
}
