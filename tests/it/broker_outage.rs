//! A live `apo run` (no `--drain`) rides out a broker outage of 90 s while both its outputs and
//! its dead letters have records waiting: it keeps running, says that it is waiting and for
//! what, commits nothing meanwhile, and once the broker is back its output is an
//! uninterrupted run's (every window exact, no two different records under one key) and
//! every unusable message is in the dead-letter topic.
//!
//! Runs a broker of its own (`apo broker`), which it stops and starts again.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use apo_schemas::WindowStats;

use crate::common::*;

/// How long the broker stays away.
const OUTAGE: Duration = Duration::from_secs(90);

#[test]
fn a_live_run_rides_out_a_90_s_broker_outage_with_outputs_and_dead_letters_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = OwnBroker::start(dir.path());
    broker.use_on_this_thread();
    let t = topics("outage", 4);
    let pts = dataset(30_000, 20, base(), 10, 3_000, 7);
    let want = exact(&pts, &[10, 60]);
    // Every tenth message is a month old (past --max-event-age): a dead letter.
    let mut msgs = messages(&pts, 4, 100);
    let month_ago = now_ms() - 30 * 86_400_000;
    let bad: Vec<(i32, Vec<u8>)> = (0..30)
        .map(|i| {
            let old = point(month_ago + i, "svc-old", 1.0);
            ((i % 4) as i32, serde_json::to_vec(&[old]).unwrap())
        })
        .collect();
    for (i, b) in bad.into_iter().enumerate() {
        msgs.insert((i * 10).min(msgs.len()), b);
    }
    produce(&t.metrics, &msgs);

    let data = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    // Throttled so that reading goes on while the broker is away (librdkafka has prefetched
    // the topic: what it holds is read during the outage, its windows and dead letters queue).
    let args = apo_run_args(
        &t,
        data.path(),
        &[
            "--windows",
            "10s,60s",
            "--lateness",
            "5s",
            "--horizon",
            "20s",
            "--max-messages-per-sec",
            "20",
        ],
    );
    let mut run = apo(&args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(run.try_wait().unwrap().is_none(), "apo run ended early");
    broker.kill();
    let down = Instant::now();
    while down.elapsed() < OUTAGE {
        if let Some(status) = run.try_wait().unwrap() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "apo run ended {:?} into the outage ({status}): {log}",
                down.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let during = std::fs::read_to_string(&log).unwrap_or_default();
    broker.restart();

    // Every window that can close in a live run (its end before the last event time less the
    // lateness) comes out; then a stop, and a drain for the rest.
    let last = pts.iter().map(|p| p.timestamp).max().unwrap();
    let closable = want
        .keys()
        .filter(|(_, _, s, start)| start + *s as i64 * 1000 + 5_000 < last)
        .count();
    let stats = t.stats.clone();
    stop_after_output(&mut run, closable, || {
        let keys: BTreeSet<String> =
            window_stats(&consume(&stats, usize::MAX, Duration::from_secs(2)))
                .iter()
                .map(WindowStats::key)
                .collect();
        keys.len()
    });
    let mut drain = apo_run_args(
        &t,
        data.path(),
        &["--windows", "10s,60s", "--lateness", "5s"],
    );
    drain.extend(["--horizon".into(), "20s".into(), "--drain".into()]);
    let out = run_to_end(&drain, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "the drain after the outage: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        during.contains("has acknowledged nothing") && during.contains(&broker.addr),
        "the outage is reported, naming the broker: {during}"
    );
    assert_uninterrupted_output(&t, &want);
    let letters = consume(&t.dlq, usize::MAX, Duration::from_secs(3));
    let origins: BTreeSet<(String, String)> = letters
        .iter()
        .map(|l| {
            assert_eq!(
                l.headers.get("apo.dlq.reason").map(String::as_str),
                Some("invalid_field"),
                "{:?}",
                l.headers
            );
            (
                l.headers["apo.dlq.partition"].clone(),
                l.headers["apo.dlq.offset"].clone(),
            )
        })
        .collect();
    assert_eq!(
        origins.len(),
        30,
        "every month-old message is a dead letter"
    );
}
