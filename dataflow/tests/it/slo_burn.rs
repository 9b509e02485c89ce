//! SLOs: what the default objectives cover and count as bad, and burn-rate alerts that fire
//! exactly when both windows of a pair burn the budget faster than the pair's threshold.

use std::collections::BTreeMap;

use apo_dataflow::{default_objectives, AlertPair, BurnConfig, BurnTracker, Objective};
use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};

fn span(kind: SpanKind, name: &str, ms: i64, error: bool, db: bool) -> Span {
    Span {
        links: Vec::new(),
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
        adjusted_count: 1,
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

/// Burn pairs scaled to 10 s windows: pages fast 60 s / 10 s at 14.4 and slow 360 s / 30 s at
/// 6, tickets 1 440 s / 120 s at 3 and 4 320 s / 360 s at 1; a 12 h period.
fn scaled() -> BurnConfig {
    let pair = |long_ms, short_ms, threshold| AlertPair {
        long_ms,
        short_ms,
        threshold,
    };
    BurnConfig {
        fast: pair(60_000, 10_000, 14.4),
        slow: pair(360_000, 30_000, 6.0),
        ticket: pair(1_440_000, 120_000, 3.0),
        ticket_slow: pair(4_320_000, 360_000, 1.0),
        period_ms: 12 * 3_600_000,
    }
}

fn errors_objective() -> Objective {
    default_objectives()
        .into_iter()
        .find(|o| o.name == "api-errors")
        .unwrap()
}

/// Burn rate over the `n` windows ending with window `i` of `bad` per 1 000 events (budget
/// 0.1 %), by brute force.
fn burn(bad: &[u64], i: usize, n: usize) -> f64 {
    let from = (i + 1).saturating_sub(n);
    let b: u64 = bad[from..=i].iter().sum();
    (b as f64 / (1000 * (i + 1 - from)) as f64) / 0.001
}

#[test]
fn alerts_fire_when_and_only_when_both_windows_of_a_pair_burn_too_fast() {
    // Bad events per 1 000 per 10 s window: healthy, then 1 % (burn 10), then 2 % (burn 20),
    // then healthy again. The budget is 0.1 %.
    let mut bad: Vec<u64> = vec![0; 40];
    bad.extend(vec![10; 40]);
    bad.extend(vec![20; 10]);
    bad.extend(vec![0; 40]);
    let mut t = BurnTracker::new(errors_objective(), "s", 10, scaled());
    let mut alerts = Vec::new();
    let mut fast_fired = None;
    for (i, &b) in bad.iter().enumerate() {
        let st = t.push(i as i64 * 10_000, 1000, b);
        let want = [(6, 1), (36, 3), (144, 12), (432, 36)]
            .map(|(l, s)| (burn(&bad, i, l), burn(&bad, i, s)));
        let got = [
            (st.burn_fast_long, st.burn_fast_short),
            (st.burn_slow_long, st.burn_slow_short),
            (st.burn_ticket_long, st.burn_ticket_short),
            (st.burn_ticket_slow_long, st.burn_ticket_slow_short),
        ];
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g.0 - w.0).abs() < 1e-9 && (g.1 - w.1).abs() < 1e-9,
                "window {i}: {g:?} vs {w:?}"
            );
        }
        let fires = |k: usize, th: f64| want[k].0 > th && want[k].1 > th;
        if fires(0, 14.4) && fast_fired.is_none() {
            fast_fired = Some(i);
        }
        let expected = if fires(0, 14.4) || fires(1, 6.0) {
            "page"
        } else if fires(2, 3.0) || fires(3, 1.0) {
            "ticket"
        } else {
            "none"
        };
        assert_eq!(st.alert, expected, "window {i}");
        assert_eq!(st.compliant, b <= 1, "window {i}");
        alerts.push(st.alert);
    }
    // Worked out by hand: at 1 % the slow page pair fires once 22 of the last 36 windows
    // burned (22 · 10 / 36 > 6), the fast one never (10 < 14.4); at 2 % the fast pair fires
    // from the third window (10 + 3 · 10 / 6 = 15 > 14.4); back to healthy, the short windows
    // stop the pages at once; the ticket pairs, whose short windows are longer (12 and 36
    // windows), go on while theirs still burn: the slow ticket's 36 windows hold more than 36
    // bad events (a burn over 1) until window 123 (88..=123: 2 · 20).
    let first = |a: &str| alerts.iter().position(|x| *x == a).unwrap();
    assert_eq!(first("page"), 40 + 21);
    assert_eq!(fast_fired, Some(80 + 2));
    assert_eq!(alerts[90], "page", "slow short window still burning");
    assert_eq!(alerts[92], "ticket");
    assert_eq!(
        alerts[123], "ticket",
        "the slow ticket's short window still burns"
    );
    assert_eq!(alerts[124], "none");
}

/// `windows` of 60 s from an hour boundary: `healthy` windows, then `burning` windows at
/// `bad` per 1 000 events; the state of each window.
fn run_minutes(healthy: usize, burning: usize, bad: u64) -> Vec<apo_schemas::slo::SloState> {
    let mut t = BurnTracker::new(errors_objective(), "s", 60, BurnConfig::default());
    let t0 = 1_800_000_000_000i64 / 3_600_000 * 3_600_000;
    (0..healthy + burning)
        .map(|i| {
            t.push(
                t0 + i as i64 * 60_000,
                1000,
                if i < healthy { 0 } else { bad },
            )
        })
        .collect()
}

/// The first window of the burn at which `alert` shows.
fn first_at(states: &[apo_schemas::slo::SloState], healthy: usize, alert: &str) -> Option<usize> {
    states
        .iter()
        .position(|s| s.alert == alert)
        .map(|i| i - healthy)
}

#[test]
fn the_fast_page_fires_at_a_burn_of_more_than_14_4_over_an_hour_and_five_minutes() {
    // 1.5 % errors (burn 15): 15 · k / 60 > 14.4 from k = 58 on (57: 14.25)
    let s = run_minutes(120, 90, 15);
    assert_eq!(first_at(&s, 120, "page"), Some(57), "the 58th window");
    assert!((s[120 + 57].burn_fast_long - 14.5).abs() < 1e-9);
    // exactly 14.4 is not more: 1.44 % never pages on the fast pair, nor on the slow one
    // (14.4 · 90 / 360 = 3.6 < 6)
    let s = run_minutes(120, 90, 14);
    assert_eq!(first_at(&s, 120, "page"), None);
}

#[test]
fn the_slow_page_fires_at_a_burn_of_more_than_6_over_six_hours_and_thirty_minutes() {
    // 0.7 % (burn 7): 7 · k / 360 > 6 from k = 309 on; the fast pair never (7 < 14.4)
    let s = run_minutes(400, 330, 7);
    assert_eq!(first_at(&s, 400, "page"), Some(308), "the 309th window");
    assert!(s[400 + 308].burn_slow_long > 6.0 && s[400 + 307].burn_slow_long <= 6.0);
}

#[test]
fn the_ticket_fires_at_a_burn_of_more_than_3_over_a_day_and_two_hours() {
    // 0.4 % (burn 4) after three healthy days: 4 · k / 1 440 > 3 from k = 1 081 on; no page
    // (4 < 6). (The slow ticket's 4 · k / 4 320 > 1 crosses at the same window: the workbook's
    // thresholds keep the day's and the three days' pairs in step for a burn that starts
    // from a healthy history.)
    let s = run_minutes(4400, 1100, 4);
    assert_eq!(first_at(&s, 4400, "page"), None);
    assert_eq!(
        first_at(&s, 4400, "ticket"),
        Some(1080),
        "the 1 081st window"
    );
    let b = s[4400 + 1080].burn_ticket_long;
    assert!((b - 4.0 * 1081.0 / 1440.0).abs() < 1e-9, "{b}");
    assert!(
        (s[4400 + 1079].burn_ticket_long - 3.0).abs() < 1e-9,
        "3 is not more than 3"
    );
}

#[test]
fn the_slow_ticket_fires_at_a_burn_of_more_than_1_over_three_days_and_six_hours() {
    // 0.15 % (burn 1.5): 1.5 · k / 4 320 > 1 from k = 2 881 on; the day's ticket never (1.5 < 3)
    let s = run_minutes(4400, 2900, 1);
    // 0.1 % is exactly the budget's pace: never more than 1
    assert_eq!(first_at(&s, 4400, "ticket"), None);
    let s = run_minutes(4400, 2900, 2);
    // 0.2 % (burn 2): 2 · k / 4 320 > 1 from k = 2 161 on
    assert_eq!(first_at(&s, 4400, "page"), None);
    assert_eq!(
        first_at(&s, 4400, "ticket"),
        Some(2160),
        "the 2 161st window"
    );
    let b = s[4400 + 2160].burn_ticket_slow_long;
    assert!((b - 2.0 * 2161.0 / 4320.0).abs() < 1e-9, "{b}");
    assert!(s[4400 + 2160].burn_ticket_long < 3.0);
}

#[test]
fn the_remaining_budget_is_the_periods_by_hand() {
    // a day healthy, then two hours at 1 %: 1 200 bad of 1 560 000 events against a budget
    // of 0.1 % of them (1 560): 1 - 1 200 / 1 560 remains
    let s = run_minutes(1440, 120, 10);
    let last = s.last().unwrap();
    assert!(
        (last.budget_remaining - (1.0 - 1200.0 / 1560.0)).abs() < 1e-9,
        "{}",
        last.budget_remaining
    );
    assert_eq!(s[0].budget_remaining, 1.0);
    // overspent: negative
    let s = run_minutes(60, 120, 50);
    assert!(s.last().unwrap().budget_remaining < 0.0);
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
    assert_ne!(st.alert, "page");
    // Far later: history forgotten.
    let st = t.push(10_000_000, 10, 0);
    assert_eq!(st.burn_slow_long, 0.0);
}

#[test]
fn a_window_longer_than_six_hours_counts_its_oldest_hour_by_its_share() {
    // Hour 0: its first 30 minutes at 1 %, then healthy for a day. A day's window that starts
    // 15 minutes into hour 0 holds 15 of the bad minutes (150 bad events); summed by the hour,
    // it holds 45/60 of hour 0 (300 bad events): 225.
    let mut bad = vec![10u64; 30];
    bad.extend(vec![0; 30 + 1440]);
    let mut t = BurnTracker::new(errors_objective(), "s", 60, BurnConfig::default());
    let t0 = 1_800_000_000_000i64 / 3_600_000 * 3_600_000;
    let states: Vec<_> = bad
        .iter()
        .enumerate()
        .map(|(i, &b)| t.push(t0 + i as i64 * 60_000, 1000, b))
        .collect();
    // the window ending 1 d + 15 min after hour 0's start: index 1 440 + 15 - 1
    let s = &states[1440 + 14];
    let want = (225.0 / 1_440_000.0) / 0.001;
    assert!(
        (s.burn_ticket_long - want).abs() < 1e-9,
        "{} vs {want}",
        s.burn_ticket_long
    );
    // and at an hour's end, exact: the day from hour 1 on holds none of the bad minutes
    assert_eq!(states[1440 + 59].burn_ticket_long, 0.0);
}
