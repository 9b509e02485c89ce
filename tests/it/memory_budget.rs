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

/// Issue 30, item 6: points read while an empty partition holds the watermark wait for it in
/// the dataflow, and they are counted where the memory budget sees them: merged by series and
/// window (one partial each, not one per batch read) and reported as held. When the partition
/// delivers, every series is kept (none folded into overflow because its input waited) and
/// every window is exact. Before, the waiting points were counted nowhere (`held 0 (0 MB)`)
/// while resident memory grew with them, and their series were folded into overflow when the
/// watermark finally moved.
#[test]
fn points_waiting_behind_a_held_watermark_are_counted_merged_and_keep_their_series() {
    const WAITING: usize = 200;
    let t = topics("held-wm", 4);
    let start = (now_ms() - 600_000) / 60_000 * 60_000;
    // 200 series × 500 points over 50 s, in messages of 50 points of one series, to
    // partitions 0-2; partition 3 stays empty and holds the watermark at the start of time.
    let mut points = Vec::new();
    let mut msgs = Vec::new();
    for chunk in 0..10 {
        for s in 0..WAITING {
            let pts: Vec<MetricPoint> = (0..50)
                .map(|i| {
                    let k = chunk * 50 + i;
                    let value = (1 + (k * 7919 + s * 104_729) % 100_000) as f64 / 100.0;
                    point(start + k as i64 * 100, &format!("svc-{s:03}"), value)
                })
                .collect();
            msgs.push(((s % 3) as i32, serde_json::to_vec(&pts).unwrap()));
            points.extend(pts);
        }
    }
    produce(&t.metrics, &msgs);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = apo(&apo_run_args(
        &t,
        dir.path(),
        &["--progress-interval", "1s"],
    ))
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    // Everything read, nothing out: the progress line counts what waits.
    let started = std::time::Instant::now();
    let held = loop {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let last = said
            .lines()
            .rfind(|l| {
                l.contains("] metrics") && l.contains(&format!("points in {} ", points.len()))
            })
            .map(str::to_string);
        if let Some(l) = last {
            break l;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("not every point read in 120 s: {said}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let held_n: usize = held
        .split("| held ")
        .nth(1)
        .and_then(|h| h.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no held count in {held}"));
    // Each series' 500 points are in 5 windows of 10 s and one of 60 s: merged, at most six
    // partials a series wait in each of the two stages that hold them.
    assert!(
        (WAITING..=2 * 6 * WAITING).contains(&held_n),
        "{held_n} items held while {} points wait: {held}",
        points.len()
    );
    // Partition 3 delivers: every partition's watermark passes the data.
    let closer: Vec<(i32, Vec<u8>)> = (0..4)
        .map(|p| {
            let pts = [point(start + 200_000, "closer", 1.0)];
            (p, serde_json::to_vec(&pts).unwrap())
        })
        .collect();
    produce(&t.metrics, &closer);
    let want = exact(&points, &[10, 60]);
    stop_after_output(&mut child, want.len(), || {
        consume(&t.stats, usize::MAX, Duration::from_millis(500)).len()
    });
    let stats = window_stats(&consume(&t.stats, usize::MAX, Duration::from_secs(3)));
    assert!(
        stats
            .iter()
            .all(|w| w.metric != OVERFLOW && w.service != OVERFLOW),
        "a series was folded into overflow"
    );
    let latest = latest(&stats);
    assert_eq!(latest.len(), want.len(), "every window");
    for w in latest.values() {
        check_exact(w, &want);
    }
    assert_no_dead_letters(&t);
    println!("while the watermark was held: {held}");
}
