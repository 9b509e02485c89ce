//! The memory budget against the real broker (issue 14, part 2): 200 000 distinct series in
//! three minutes of event time, with the series limits raised out of the way so that only the
//! budget bounds the state. Without a budget the process grows with the series (about 1.3 GB
//! here); with a budget of 650 MB the series it could not hold are folded into overflow series
//! (counted, nothing lost), it says so, and its resident memory stays near the budget: 582,
//! 649, 662 and 771 MB at its peak in four runs with the shipped settings (chosen on this
//! data: in-sample), the peak coming from a burst of closing windows' rows on their way out.
//! The bound asserted is therefore the budget plus a quarter, not the budget itself: a strict
//! ceiling needs that output burst bounded too (issue 14).

use std::time::Duration;

use apo_schemas::{MetricPoint, WindowStats};

use crate::common::*;

const OVERFLOW: &str = "otel.metric.overflow";
const SERIES: usize = 200_000;

/// One point of each of `SERIES` series (100 services, 2 000 metrics each), spread over three
/// minutes in order of time.
fn points() -> Vec<MetricPoint> {
    let start = base();
    (0..SERIES)
        .map(|i| {
            let ts = start + (i as i64 * 180_000) / SERIES as i64;
            let mut p = point(ts, &format!("svc-{:03}", i % 100), (i % 997) as f64);
            p.name = format!("metric.{:05}", i / 100);
            p
        })
        .collect()
}

/// Drains `t` with `extra` flags; the latest revision of each window, stderr, and the peak
/// resident memory.
fn drain(t: &Topics, extra: &[&str]) -> (Vec<WindowStats>, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--drain",
        "--max-series",
        "10000000",
        "--max-series-per-service",
        "10000000",
        "--parquet-roll",
        "1s",
    ];
    args.extend_from_slice(extra);
    let (out, peak) = run_to_end_peak_rss(
        &apo_run_args(t, dir.path(), &args),
        Duration::from_secs(600),
    );
    let stats = window_stats(&consume(&t.stats, usize::MAX, Duration::from_secs(5)));
    (
        latest(&stats).into_values().collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        peak,
    )
}

fn total(rows: &[WindowStats], window_seconds: u32) -> u64 {
    rows.iter()
        .filter(|r| r.window_seconds == window_seconds)
        .map(|r| r.count)
        .sum()
}

#[test]
fn two_hundred_thousand_series_stay_under_the_budget_with_overflow_counted() {
    let pts = points();
    let msgs = messages(&pts, 2, 500);

    let free = topics("budget-none", 2);
    produce(&free.metrics, &msgs);
    let (rows, e0, peak_free) = drain(
        &free,
        &["--memory-budget", "none", "--progress-interval", "3s"],
    );
    eprintln!("{e0}");
    assert_eq!(
        rows.iter().filter(|r| r.window_seconds == 10).count(),
        SERIES,
        "without a budget every series has its window"
    );
    assert!(rows.iter().all(|r| r.metric != OVERFLOW));

    // A budget well under what the run took without one.
    let budget: u64 = 650_000_000;
    assert!(
        peak_free > budget * 3 / 2,
        "without a budget the run took {peak_free} bytes: the test needs more series"
    );
    let t = topics("budget", 2);
    produce(&t.metrics, &msgs);
    let flag = budget.to_string();
    let (rows, stderr, peak) = drain(&t, &["--memory-budget", &flag]);
    eprintln!(
        "peak resident memory: {} MB without a budget, {} MB under a budget of {} MB",
        peak_free / 1_000_000,
        peak / 1_000_000,
        budget / 1_000_000
    );
    assert!(
        peak < budget + budget / 4,
        "resident memory {peak} went more than a quarter over the budget {budget}"
    );
    assert!(
        stderr.contains("memory budget reached"),
        "the budget is reported: {stderr}"
    );
    let overflow: Vec<&WindowStats> = rows.iter().filter(|r| r.metric == OVERFLOW).collect();
    assert!(!overflow.is_empty(), "series past the budget are folded");
    let kept = rows
        .iter()
        .filter(|r| r.window_seconds == 10 && r.metric != OVERFLOW)
        .count();
    assert!(
        kept < SERIES / 2,
        "the budget held back most series: {kept} kept"
    );
    // Nothing is lost: every point is in some window of each size.
    for size in [10, 60] {
        assert_eq!(total(&rows, size), SERIES as u64, "{size} s windows");
    }
    assert_no_dead_letters(&t);
}
