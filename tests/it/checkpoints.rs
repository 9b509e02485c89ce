//! Checkpoints against the real broker (issue 30): a live stream that never pauses, `apo run`
//! killed (SIGKILL) in its middle, then run on to the end. The newest checkpoint is at most
//! about one interval behind what was read when it died, the restart resumes from it (not from
//! the stream's start, as it did when offsets committed only at a cut no open window spans),
//! every copy of a window is byte for byte the first, every window equals the exact computation,
//! and SQL counts each once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apo_schemas::{MetricPoint, WindowStats};

use crate::common::*;

const PARTITIONS: i32 = 4;
/// A message per partition every TICK, of POINTS points stamped with the wall clock.
const TICK: Duration = Duration::from_millis(100);
const POINTS: usize = 5;

/// Every point sent, and the messages sent per partition.
type Sent = (Vec<MetricPoint>, BTreeMap<i32, i64>);

/// Feeds `topic` live until `stop`: each message's points have the time it is sent at, over 20
/// series; returns every point sent and the messages sent per partition so far.
struct Feeder {
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<Sent>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    fn start(topic: &str) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let sent: Arc<Mutex<Sent>> = Arc::default();
        let (topic, s, out) = (topic.to_string(), stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let mut rng = Rng(7);
            while !s.load(Ordering::Relaxed) {
                let at = Instant::now();
                let mut batch = Vec::new();
                let mut points = Vec::new();
                for p in 0..PARTITIONS {
                    let ts = now_ms();
                    let pts: Vec<MetricPoint> = (0..POINTS)
                        .map(|i| {
                            let series = p as usize * 5 + i;
                            let value = (1 + rng.below(100_000)) as f64 / 1000.0;
                            let mut pt = point(ts, &format!("svc-{series}"), value);
                            pt.unit = "s".into();
                            pt
                        })
                        .collect();
                    batch.push((p, serde_json::to_vec(&pts).unwrap()));
                    points.extend(pts);
                }
                produce(&topic, &batch);
                let mut g = out.lock().unwrap();
                g.0.extend(points);
                for p in 0..PARTITIONS {
                    *g.1.entry(p).or_default() += 1;
                }
                drop(g);
                std::thread::sleep(TICK.saturating_sub(at.elapsed()));
            }
        });
        Feeder {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Messages sent per partition so far.
    fn messages(&self) -> BTreeMap<i32, i64> {
        self.sent.lock().unwrap().1.clone()
    }

    /// Stops it; every point sent.
    fn finish(mut self) -> Vec<MetricPoint> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut self.sent.lock().unwrap().0)
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The newest complete checkpoint's manifest under `data_dir`.
fn newest_manifest(data_dir: &std::path::Path) -> Option<serde_json::Value> {
    let dir = data_dir.join("checkpoints/metrics");
    let mut epochs: Vec<_> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_none())
        .collect();
    epochs.sort();
    let text = std::fs::read(epochs.last()?.join("manifest.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

#[test]
fn a_killed_live_run_resumes_from_its_last_checkpoint_and_counts_every_window_once() {
    let t = topics("checkpoint", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let run = [
        "--windows",
        "10s",
        "--lateness",
        "2s",
        "--horizon",
        "20s",
        "--parquet-roll",
        "500ms",
        "--checkpoint-interval",
        "2s",
    ];
    let feeder = Feeder::start(&t.metrics);
    let log = dir.path().join("first.log");
    let mut first = run.to_vec();
    first.extend(["--progress-interval", "1s"]);
    let mut child = apo(&apo_run_args(&t, dir.path(), &first))
        .env("APO_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // A live stream: windows keep closing while it runs, so no cut is ever free of open windows.
    let started = Instant::now();
    while consume(&t.stats, 20 * 3, Duration::from_millis(500)).len() < 20 * 3 {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!(
                "no windows from the live run: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    let sent_at_kill = feeder.messages();
    child.kill().unwrap();
    child.wait().unwrap();
    let progress = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        progress.contains("| checkpoint "),
        "the progress line reports checkpoints: {progress}"
    );
    let manifest = newest_manifest(dir.path()).unwrap_or_else(|| {
        panic!(
            "no checkpoint after {:?} of a live stream: {}",
            started.elapsed(),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    // Resumed at most about an interval (2 s) and a commit round behind what was sent when it
    // died: 10 messages a second per partition, 60 allowed (6 s).
    let positions: BTreeMap<i64, i64> = manifest["lanes"][0]["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_i64().unwrap()))
        .collect();
    println!("sent at the kill {sent_at_kill:?}; the checkpoint resumes at {positions:?}");
    for (p, sent) in &sent_at_kill {
        let at = positions.get(&(*p as i64)).copied().unwrap_or(0);
        assert!(
            sent - at <= 60,
            "partition {p}: {sent} messages sent, the checkpoint resumes at {at}"
        );
    }
    // A restart under other settings is refused, saying what differs and what to do.
    let mut twenty = run;
    twenty[1] = "20s";
    let mut other = apo_run_args(&t, dir.path(), &twenty);
    other.push("--drain".into());
    let refused = apo(&other).output().unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && said.contains("windows=[20]")
            && said.contains("--from-scratch"),
        "a checkpoint of other windows must be refused: {said}"
    );
    // The stream goes on a little, then ends; the restart resumes and drains it.
    std::thread::sleep(Duration::from_secs(3));
    let points = feeder.finish();
    let want = exact(&points, &[10]);
    let mut drain = apo_run_args(&t, dir.path(), &run);
    drain.push("--drain".into());
    let mut second = apo(&drain);
    second.env("APO_LOG", "info");
    let out = second.output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the restart: {said}");
    assert!(
        said.contains("resuming from the checkpoint"),
        "the restart did not resume from the checkpoint: {said}"
    );

    assert_no_dead_letters(&t);
    let records = consume(&t.stats, usize::MAX, Duration::from_secs(5));
    let by_key = copies_by_key(records);
    assert_eq!(by_key.len(), want.len(), "every window, and only those");
    let mut twice = 0;
    for (k, v) in &by_key {
        assert!(
            v.iter().all(|x| x == &v[0]),
            "{k}: a copy written after the restart is not byte for byte the first"
        );
        twice += usize::from(v.len() > 1);
        let w: WindowStats = serde_json::from_slice(&v[0]).unwrap();
        assert_eq!(w.revision, 1, "{k}: in-order data never revise");
        check_exact(&w, &want);
    }
    println!("{twice} of {} windows written twice", want.len());
    assert!(
        twice <= 20 * 2,
        "the restart re-emitted {twice} windows: more than the windows of one interval"
    );
    assert_eq!(
        sql_csv(dir.path(), "SELECT count(*) FROM window_stats"),
        vec![vec![want.len().to_string()]]
    );
}
