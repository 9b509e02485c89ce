//! Watermarks against the real broker, as `apo run` holds them by default: a partition that is
//! empty at start holds the watermark until its backlog arrives, and an hour of old data sent
//! after an idle period lands in its windows. In both, nothing goes to the dead-letter topic
//! and every window equals the exact computation.

use std::time::Duration;

use apo_schemas::MetricPoint;

use crate::common::*;

/// One point of series `closer` per partition, `at` ms: it moves every partition's watermark
/// past the data's last window (its own window stays open).
fn closers(at: i64, partitions: i32) -> Vec<(i32, Vec<u8>)> {
    (0..partitions)
        .map(|p| (p, serde_json::to_vec(&[point(at, "closer", 1.0)]).unwrap()))
        .collect()
}

/// Runs `apo run` live on `t` with `extra`, calls `middle` once it is up, waits for `want`
/// window records and stops it with SIGTERM; returns its stderr.
fn live_run(
    t: &Topics,
    extra: &[&str],
    want: usize,
    middle: impl FnOnce(),
) -> (Vec<apo_schemas::WindowStats>, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = apo(&apo_run_args(t, dir.path(), extra))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // A failed check in `middle` must not leave `apo run` running after the test.
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(middle)) {
        let _ = child.kill();
        let _ = child.wait();
        std::panic::resume_unwind(e);
    }
    stop_after_output(&mut child, want, || {
        consume(&t.stats, usize::MAX, Duration::from_millis(500)).len()
    });
    let stats = window_stats(&consume(&t.stats, usize::MAX, Duration::from_secs(3)));
    (stats, std::fs::read_to_string(&log).unwrap_or_default())
}

fn check_all(stats: &[apo_schemas::WindowStats], want: &Exact, t: &Topics) {
    assert_no_dead_letters(t);
    assert_eq!(
        stats.len(),
        want.len(),
        "one record per window, every window"
    );
    for w in stats {
        assert_eq!(w.revision, 1, "{}", w.key());
        check_exact(w, want);
    }
}

#[test]
fn a_backlog_on_a_partition_empty_at_start_lands_in_its_windows() {
    let t = topics("backlog", 4);
    // 400 s of points over 20 series, shuffled within 3 s (less than the lateness).
    let pts = dataset(40_000, 20, base(), 10, 3_000, 11);
    let want = exact(&pts, &[10]);
    let last = pts.iter().map(|p| p.timestamp).max().unwrap();
    let (backlog, early): (Vec<_>, Vec<_>) = messages(&pts, 4, 100)
        .into_iter()
        .partition(|(p, _)| *p == 3);
    assert!(!backlog.is_empty() && !early.is_empty());
    produce(&t.metrics, &early);
    let (stats, log) = live_run(
        &t,
        &["--windows", "10s", "--lateness", "5s"],
        want.len(),
        || {
            // Longer than the idle timeout (2 s): under the old rule partition 3 was idle by now
            // and the watermark ran ahead of everything it would deliver.
            std::thread::sleep(Duration::from_secs(8));
            assert!(
                consume(&t.stats, 1, Duration::from_secs(1)).is_empty(),
                "no window closes while partition 3 has delivered nothing"
            );
            produce(&t.metrics, &backlog);
            produce(&t.metrics, &closers(last + 60_000, 4));
        },
    );
    check_all(&stats, &want, &t);
    assert!(
        log.contains("holds the watermark") && log.contains("partition=3"),
        "the silent partition was reported: {log}"
    );
}

#[test]
fn an_hour_of_old_data_after_an_idle_period_lands_in_its_windows() {
    let t = topics("backfill", 2);
    let start = (now_ms() - 2 * 3_600_000) / 60_000 * 60_000;
    // 100 s of data, then (after the pipeline was idle) the hour that follows it.
    let first = dataset(2_000, 4, start, 50, 0, 3);
    let hour = dataset(36_000, 4, start + 100_000, 100, 0, 5);
    let all: Vec<MetricPoint> = first.iter().chain(&hour).cloned().collect();
    let want = exact(&all, &[60]);
    let last = all.iter().map(|p| p.timestamp).max().unwrap();
    produce(&t.metrics, &messages(&first, 2, 50));
    let extra = ["--windows", "60s", "--lateness", "5s"];
    let (stats, _) = live_run(&t, &extra, want.len(), || {
        // The first windows close, then nothing arrives for longer than the idle timeout:
        // under the old rule the watermark then followed the wall clock, two hours ahead.
        let started = std::time::Instant::now();
        while consume(&t.stats, 1, Duration::from_millis(500)).is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no first windows"
            );
        }
        std::thread::sleep(Duration::from_secs(6));
        produce(&t.metrics, &messages(&hour, 2, 100));
        produce(&t.metrics, &closers(last + 120_000, 2));
    });
    check_all(&stats, &want, &t);
}

/// A late record within the horizon revises its window at the next tick, though nothing moves
/// the watermark after it (issue 30, item 7: it used to wait for newer data).
#[test]
fn a_late_record_revises_its_window_without_waiting_for_the_watermark() {
    let t = topics("revise-now", 1);
    let start = (now_ms() - 120_000) / 10_000 * 10_000;
    // 60 s of points, one every 100 ms: with 1 s of lateness, five 10 s windows close.
    let pts: Vec<MetricPoint> = (0..600)
        .map(|i| point(start + i * 100, "svc", (i % 7) as f64))
        .collect();
    produce(&t.metrics, &messages(&pts, 1, 100));
    let late = point(start + 1_000, "svc", 1_000.0);
    let mut all = pts.clone();
    all.push(late.clone());
    let want = exact(&all, &[10]);
    let extra = ["--windows", "10s", "--lateness", "1s", "--horizon", "5m"];
    let (stats, _) = live_run(&t, &extra, 6, || {
        let started = std::time::Instant::now();
        while consume(&t.stats, 5, Duration::from_millis(500)).len() < 5 {
            assert!(started.elapsed() < Duration::from_secs(120), "no windows");
        }
        // The watermark stays where it is from now on: nothing newer comes.
        std::thread::sleep(Duration::from_secs(2));
        produce(&t.metrics, &messages(&[late], 1, 1));
        let sent = std::time::Instant::now();
        while consume(&t.stats, 6, Duration::from_millis(500)).len() < 6 {
            assert!(
                sent.elapsed() < Duration::from_secs(20),
                "the late record revised nothing within 20 s"
            );
        }
        println!("revision after {:.1} s", sent.elapsed().as_secs_f64());
    });
    assert_no_dead_letters(&t);
    let revised: Vec<_> = stats.iter().filter(|w| w.revision == 2).collect();
    assert_eq!(revised.len(), 1, "{stats:?}");
    assert_eq!(revised[0].window_start, start);
    check_exact(revised[0], &want);
    assert_eq!(stats.len(), 6, "five windows and one revision");
}

/// A record the broker never serves (the embedded broker does not serve a record larger than
/// the consumer's fetch limit) stops its partition after the partition had reached its end: the
/// lane reports it stuck, with the offset it cannot get past and the messages behind it, within
/// the idle timeout (issue 30, item 5: it was taken for an idle partition and nothing said);
/// after the stuck timeout it stops holding the watermark, so the other partition's windows
/// close (they stayed open for good), and the progress line says so.
#[test]
fn a_partition_stuck_behind_a_record_it_cannot_fetch_is_reported_then_stops_holding_the_watermark()
{
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let t = topics("stuck", 2);
    let start = (now_ms() - 120_000) / 10_000 * 10_000;
    let small = |from: i64| -> Vec<(i32, Vec<u8>)> {
        (0..2)
            .map(|p| {
                let pts: Vec<MetricPoint> = (0..10)
                    .map(|i| point(from + i * 100, &format!("svc-{p}"), 1.0))
                    .collect();
                (p, serde_json::to_vec(&pts).unwrap())
            })
            .collect()
    };
    produce(&t.metrics, &small(start));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let args = apo_run_args(
        &t,
        dir.path(),
        &[
            "--windows",
            "10s",
            "--stuck-timeout",
            "6s",
            "--progress-interval",
            "1s",
        ],
    );
    let mut child = apo(&args)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Both partitions read to their end, then a valid 10 MB array on partition 0 (offset 1)
    // and a small message behind it.
    std::thread::sleep(Duration::from_secs(5));
    let big: Vec<MetricPoint> = (0..110_000)
        .map(|i| point(start + 2_000 + i / 100, "svc-0", 1.0))
        .collect();
    let big = serde_json::to_vec(&big).unwrap();
    assert!(big.len() > 8_000_000, "{} bytes", big.len());
    let producer: BaseProducer = client()
        .set("message.max.bytes", "20000000")
        .create()
        .unwrap();
    producer
        .send(
            BaseRecord::<[u8], [u8]>::to(&t.metrics)
                .partition(0)
                .payload(&big),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(60)).unwrap();
    produce(&t.metrics, &small(start + 3_000)[..1]);
    // Partition 1 goes on: its data would close its windows up to start + 30 s, were
    // partition 0 not holding the watermark at start + 1 s less the lateness.
    for from in [start + 15_000, start + 25_000, start + 36_000] {
        produce(&t.metrics, &small(from)[1..]);
    }
    let sent = std::time::Instant::now();
    let wait_for = |what: &str, limit: u64| -> String {
        loop {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            if said.contains(what) || sent.elapsed() > Duration::from_secs(limit) {
                return said;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let said = wait_for("fetch is stuck", 30);
    let reported = sent.elapsed();
    // Until the stuck timeout, partition 0 holds the watermark: svc-1's windows stay open.
    let closed = |stats: &[apo_schemas::WindowStats]| {
        stats
            .iter()
            .filter(|w| w.service == "svc-1" && w.window_start >= start + 10_000)
            .count()
    };
    let held = window_stats(&consume(&t.stats, usize::MAX, Duration::from_secs(1)));
    let held_at = sent.elapsed();
    let said_released = wait_for("no longer holds the watermark", 60);
    let released = sent.elapsed();
    // After it, the other partition's windows close.
    let mut stats = Vec::new();
    while sent.elapsed() < Duration::from_secs(90) {
        stats = window_stats(&consume(&t.stats, usize::MAX, Duration::from_secs(1)));
        if closed(&stats) >= 2 {
            break;
        }
    }
    let progress = wait_for("no longer holding the watermark", 90);
    let _ = child.kill();
    let _ = child.wait();
    let line = said
        .lines()
        .find(|l| l.contains("fetch is stuck"))
        .unwrap_or_else(|| panic!("no partition reported stuck in 30 s: {said}"));
    assert!(
        line.contains("partition=0") && line.contains("offset=1") && line.contains("lag="),
        "{line}"
    );
    if held_at < Duration::from_secs(6) {
        assert_eq!(
            closed(&held),
            0,
            "closed before the stuck timeout: {held:?}"
        );
    }
    let line = said_released
        .lines()
        .find(|l| l.contains("no longer holds the watermark"))
        .unwrap_or_else(|| panic!("partition 0 never stopped holding the watermark: {said}"));
    assert!(
        line.contains("partition=0") && line.contains("offset=1"),
        "{line}"
    );
    assert!(
        released >= Duration::from_secs(6),
        "released after {released:?}, before the stuck timeout"
    );
    assert_eq!(
        closed(&stats),
        2,
        "svc-1's windows at start + 10 s and + 20 s close once partition 0 stops holding \
         the watermark: {stats:?}"
    );
    let line = progress
        .lines()
        .rfind(|l| l.contains("STUCK partition 0"))
        .unwrap_or_else(|| panic!("no progress line names the stuck partition: {progress}"));
    assert!(
        line.contains("at offset 1") && line.contains("no longer holding the watermark"),
        "{line}"
    );
    println!(
        "reported after {:.1} s, released after {:.1} s: {line}",
        reported.as_secs_f64(),
        released.as_secs_f64()
    );
}
