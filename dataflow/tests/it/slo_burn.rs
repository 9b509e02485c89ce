//! SLOs: what the default objectives cover and count as bad, and burn-rate alerts that fire
//! exactly when both windows of a pair burn the budget faster than the pair's threshold.

use std::collections::BTreeMap;

use apo_dataflow::{default_objectives, AlertPair, BurnConfig, BurnTracker, Objective};
use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};

fn span(kind: SpanKind, name: &str, ms: i64, error: bool, db: bool) -> Span {
    Span {
        trace_id: TraceId(1),
        span_id: SpanId(1),
        parent_span_id: None,
        service: "s".into(),
        name: name.into(),
        kind,
        start_ns: 0,
        end_ns: ms * 1_000_000,
        status: if error {
            SpanStatus::Error
        } else {
            SpanStatus::Ok
        },
        attributes: if db {
            [("db.system".to_string(), "postgresql".to_string())].into()
        } else {
            BTreeMap::new()
        },
        follows_from: false,
    }
}

fn verdicts(s: &Span) -> Vec<(String, bool)> {
    default_objectives()
        .iter()
        .filter(|o| o.covers(s))
        .map(|o| (o.name.clone(), o.is_bad(s)))
        .collect()
}

#[test]
fn default_objectives_follow_the_sla() {
    let v = |n: &str, b: bool| (n.to_string(), b);
    assert_eq!(
        verdicts(&span(SpanKind::Server, "GET /", 600, false, false)),
        [
            v("api-latency-p50", true),
            v("api-latency-p95", true),
            v("api-latency-p99", false),
            v("api-errors", false)
        ]
    );
    assert_eq!(
        verdicts(&span(SpanKind::Server, "GET /", 99, true, false)),
        [
            v("api-latency-p50", false),
            v("api-latency-p95", false),
            v("api-latency-p99", false),
            v("api-errors", true)
        ]
    );
    assert_eq!(
        verdicts(&span(
            SpanKind::Client,
            "select * from items",
            50,
            false,
            true
        )),
        [v("db-select-p95", true)],
        "the threshold itself is too slow"
    );
    assert_eq!(
        verdicts(&span(SpanKind::Client, "UPDATE carts", 150, false, true)),
        [v("db-write-p95", false)]
    );
    assert!(verdicts(&span(SpanKind::Client, "SELECT", 500, false, false)).is_empty());
    let o = &default_objectives()[1];
    assert_eq!(
        (o.target(), o.description().as_str()),
        (0.95, "p95 < 500 ms")
    );
}

/// Burn pairs scaled to 10 s windows: fast 60 s / 10 s at 14.4, slow 360 s / 30 s at 6.
fn scaled() -> BurnConfig {
    BurnConfig {
        fast: AlertPair {
            long_ms: 60_000,
            short_ms: 10_000,
            threshold: 14.4,
        },
        slow: AlertPair {
            long_ms: 360_000,
            short_ms: 30_000,
            threshold: 6.0,
        },
    }
}

fn errors_objective() -> Objective {
    default_objectives()
        .into_iter()
        .find(|o| o.name == "api-errors")
        .unwrap()
}

#[test]
fn alerts_fire_when_and_only_when_both_windows_burn_too_fast() {
    // Bad events per 1 000 per 10 s window: healthy, then 1 % (burn 10), then 2 % (burn 20),
    // then healthy again. The budget is 0.1 %.
    let mut bad: Vec<u64> = vec![0; 40];
    bad.extend(vec![10; 40]);
    bad.extend(vec![20; 10]);
    bad.extend(vec![0; 40]);
    let mut t = BurnTracker::new(errors_objective(), "s", 10, scaled());
    let burn = |i: usize, n: usize| {
        let from = (i + 1).saturating_sub(n);
        let b: u64 = bad[from..=i].iter().sum();
        (b as f64 / (1000 * (i + 1 - from)) as f64) / 0.001
    };
    let mut alerts = Vec::new();
    for (i, &b) in bad.iter().enumerate() {
        let st = t.push(i as i64 * 10_000, 1000, b);
        let (fl, fs, sl, ss) = (burn(i, 6), burn(i, 1), burn(i, 36), burn(i, 3));
        for (got, want) in [
            (st.burn_fast_long, fl),
            (st.burn_fast_short, fs),
            (st.burn_slow_long, sl),
            (st.burn_slow_short, ss),
        ] {
            assert!((got - want).abs() < 1e-9, "window {i}: {got} vs {want}");
        }
        let want = if fl > 14.4 && fs > 14.4 {
            "page"
        } else if sl > 6.0 && ss > 6.0 {
            "ticket"
        } else {
            "none"
        };
        assert_eq!(st.alert, want, "window {i}");
        assert_eq!(st.compliant, b <= 1, "window {i}");
        alerts.push(st.alert);
    }
    // Worked out by hand: at 1 % the slow pair fires once 22 of the last 36 windows burned
    // (22 · 10 / 36 > 6), the fast pair never (10 < 14.4); at 2 % the fast pair fires from the
    // third window (10 + 3 · 10 / 6 = 15 > 14.4); back to healthy, the short windows stop the
    // page at once and the ticket after the slow short window (3 windows) has cleared.
    let first = |a: &str| alerts.iter().position(|x| *x == a).unwrap();
    assert_eq!(first("ticket"), 40 + 21);
    assert_eq!(first("page"), 80 + 2);
    assert_eq!(alerts[90], "ticket", "slow short window still burning");
    assert_eq!(alerts[92], "none");
    assert!(alerts[92..].iter().all(|a| *a == "none"));
}

#[test]
fn gaps_count_as_windows_without_events() {
    let mut t = BurnTracker::new(errors_objective(), "s", 10, scaled());
    let st = t.push(0, 1000, 100);
    assert_eq!(st.alert, "page");
    // 50 s later (4 empty windows between): the short window has no events, so no page.
    let st = t.push(50_000, 1000, 0);
    assert_eq!(st.burn_fast_short, 0.0);
    assert!(
        (st.burn_fast_long - 50.0).abs() < 1e-9,
        "{}",
        st.burn_fast_long
    );
    assert_eq!(st.alert, "none");
    // Far later: history forgotten.
    let st = t.push(10_000_000, 10, 0);
    assert_eq!(st.burn_slow_long, 0.0);
}
