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
/// The windows of the live runs here: 10 s windows, 2 s lateness, revisable for 20 s.
const LIVE_WINDOWS: &[&str] = &["--windows", "10s", "--lateness", "2s", "--horizon", "20s"];

/// Every point sent, the messages sent per partition, and the (partition, offset) of every bad
/// message sent.
type Sent = (Vec<MetricPoint>, BTreeMap<i32, i64>, Vec<(i32, i64)>);

/// A bad message (not JSON) follows every BAD_EVERY-th message on each partition.
const BAD_EVERY: u64 = 10;

/// Feeds `topic` live until `stop`: each message's points have the time it is sent at, over 20
/// series, and every BAD_EVERY-th message is followed by one that is not JSON (a dead letter);
/// returns every point sent and the messages sent per partition so far.
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
            let mut ticks = 0u64;
            while !s.load(Ordering::Relaxed) {
                ticks += 1;
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
                    if ticks.is_multiple_of(BAD_EVERY) {
                        batch.push((p, b"{not json".to_vec()));
                    }
                }
                produce(&topic, &batch);
                let mut g = out.lock().unwrap();
                let (sent_points, counts, bad) = &mut *g;
                sent_points.extend(points);
                for (p, m) in &batch {
                    let next = counts.entry(*p).or_default();
                    if m[0] != b'[' {
                        bad.push((*p, *next));
                    }
                    *next += 1;
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

    /// Stops it; every point sent, and where every bad message went.
    fn finish(mut self) -> (Vec<MetricPoint>, Vec<(i32, i64)>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let mut g = self.sent.lock().unwrap();
        (std::mem::take(&mut g.0), std::mem::take(&mut g.2))
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The window records of a run killed and resumed from a checkpoint: every window once or
/// more, each copy byte for byte the first, exact, in order (no revision), and no more than the
/// windows of about one interval written twice; and one dead letter for each of the `bad`
/// messages, however many of them the restart re-read.
fn check_resumed_output(t: &Topics, want: &Exact, bad: &[(i32, i64)]) {
    let mut letters: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for d in consume(&t.dlq, usize::MAX, Duration::from_secs(3)) {
        assert_eq!(
            d.headers["apo.dlq.reason"], "invalid_json",
            "{:?}",
            d.headers
        );
        let at = |h: &str| d.headers[h].parse::<i64>().unwrap();
        *letters
            .entry((at("apo.dlq.partition") as i32, at("apo.dlq.offset")))
            .or_default() += 1;
    }
    let twice: Vec<_> = letters.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "dead letters written more than once (partition, offset): {twice:?}"
    );
    let mut bad = bad.to_vec();
    bad.sort_unstable();
    assert_eq!(
        letters.keys().copied().collect::<Vec<_>>(),
        bad,
        "one dead letter for each bad message"
    );
    let by_key = copies_by_key(consume(&t.stats, usize::MAX, Duration::from_secs(5)));
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
        check_exact(&w, want);
    }
    println!("{twice} of {} windows written twice", want.len());
    assert!(
        twice <= 20 * 2,
        "the restart re-emitted {twice} windows: more than the windows of one interval"
    );
}

#[test]
fn a_killed_live_run_resumes_from_its_last_checkpoint_and_counts_every_window_once() {
    let t = topics("checkpoint", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let run = [
        LIVE_WINDOWS,
        ["--parquet-roll", "500ms", "--checkpoint-interval", "2s"].as_slice(),
    ]
    .concat();
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
    let manifest = newest_manifest(dir.path(), "metrics").unwrap_or_else(|| {
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
    let mut twenty = run.clone();
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
    // So is one of another worker count, naming it (state is not redistributed yet).
    let mut three = apo_run_args(&t, dir.path(), &run);
    three.extend(["-w".into(), "3".into(), "--drain".into()]);
    let refused = apo(&three).output().unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && said.contains("`workers=1` (this run: `workers=3`)")
            && !said.contains("windows=")
            && said.contains("--from-scratch"),
        "a checkpoint of one worker restored into three must be refused, saying so: {said}"
    );
    // The stream goes on a little, then ends; the restart resumes and drains it.
    std::thread::sleep(Duration::from_secs(3));
    let (points, bad) = feeder.finish();
    let reread = bad
        .iter()
        .filter(|(p, o)| {
            *o >= positions.get(&(*p as i64)).copied().unwrap_or(0) && *o < sent_at_kill[p]
        })
        .count();
    println!("{reread} bad messages between the checkpoint and the kill: re-read by the restart");
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

    check_resumed_output(&t, &want, &bad);
    assert_eq!(
        sql_csv(dir.path(), "SELECT count(*) FROM window_stats"),
        vec![vec![want.len().to_string()]]
    );
}

/// An S3-compatible server of the test's own: moto's (`pip install 'moto[server]'`, which
/// `scripts/test.sh` does), the closest stand-in for S3 that runs here; killed when dropped.
struct S3Server {
    child: std::process::Child,
    /// `http://127.0.0.1:port`.
    endpoint: String,
}

impl S3Server {
    fn start(bucket: &str) -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("moto_server ({e}): install it with pip install 'moto[server]'")
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let s = S3Server { child, endpoint };
        let started = Instant::now();
        while !s
            .curl(&["-X", "PUT", &format!("{}/{bucket}", s.endpoint)])
            .0
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }

    fn curl(&self, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new("curl")
            .args(["-sf"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    /// The keys under `prefix` in `bucket`.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (_, xml) = self.curl(&[&format!(
            "{}/{bucket}?list-type=2&prefix={prefix}",
            self.endpoint
        )]);
        xml.split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The environment `apo run` reads the store's settings from.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--checkpoint-url s3://…` (issue 30, item 2): a live run killed on one "machine" (data
/// directory) resumes on another from the checkpoints in the object store, not from the
/// stream's start, and every window is exact and written byte for byte as the first time.
#[test]
fn a_run_moved_to_another_data_directory_resumes_from_checkpoints_in_an_object_store() {
    let s3 = S3Server::start("apo-ckpt");
    let t = topics("checkpoint-s3", PARTITIONS);
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = [
        LIVE_WINDOWS,
        [
            "--checkpoint-interval",
            "2s",
            "--checkpoint-url",
            "s3://apo-ckpt/here",
        ]
        .as_slice(),
    ]
    .concat();
    let feeder = Feeder::start(&t.metrics);
    let log = first_dir.path().join("first.log");
    let mut first = apo(&apo_run_args(&t, first_dir.path(), &run));
    first.envs(s3.env()).env("APO_LOG", "info");
    let mut child = first
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while s3.keys("apo-ckpt", "here/metrics/").len() < 2 * 2 {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!(
                "no checkpoint in the object store: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    child.kill().unwrap();
    child.wait().unwrap();
    let keys = s3.keys("apo-ckpt", "here/metrics/");
    let manifests = keys
        .iter()
        .filter(|k| k.ends_with("/manifest.json"))
        .count();
    assert!(
        (1..=3).contains(&manifests),
        "one to three complete checkpoints kept: {keys:?}"
    );
    assert!(
        !first_dir.path().join("checkpoints/metrics").exists(),
        "nothing under the data directory"
    );
    std::thread::sleep(Duration::from_secs(2));
    let (points, bad) = feeder.finish();
    let want = exact(&points, &[10]);
    let mut drain = apo_run_args(&t, second_dir.path(), &run);
    drain.push("--drain".into());
    let mut second = apo(&drain);
    second.envs(s3.env()).env("APO_LOG", "info");
    let out = second.output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the restart: {said}");
    assert!(
        said.lines()
            .any(|l| l.contains("restoring the newest checkpoint")
                && l.contains("s3://apo-ckpt/here/metrics/epoch-")),
        "the restart on another data directory did not resume from the object store: {said}"
    );
    check_resumed_output(&t, &want, &bad);
    // The drain committed everything and removed its checkpoints.
    assert!(
        !s3.keys("apo-ckpt", "here/metrics/")
            .iter()
            .any(|k| k.ends_with("/manifest.json")),
        "checkpoints left after the drain"
    );
}
