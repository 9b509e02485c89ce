//! The chaos test: a known workload on a broker of the test's own; `apo run` is SIGKILLed at
//! random moments ten times and the broker is killed and restarted twice while it runs; a
//! last `--drain` finishes. The union of everything written, de-duplicated by key, must be an
//! uninterrupted run's output: every window there, each equal to the exact computation, no two
//! different records under one key, nothing in the dead-letter topic. Once with one worker,
//! once with `-w 2`, once with two processes. One process checkpoints every second, and its
//! newest checkpoint must move between kills: the restarts resume from checkpoints. The moments are drawn from a seeded generator
//! (printed), so a failure can be replayed.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::*;

const RUN: [&str; 10] = [
    "--windows",
    "10s,60s",
    "--lateness",
    "5s",
    "--horizon",
    "20s",
    "--parquet-roll",
    "200ms",
    // Checkpoints between the kills (one process; two take none yet).
    "--checkpoint-interval",
    "1s",
];

/// The epoch of the newest complete checkpoint of the metrics job under `data_dir`.
fn newest_checkpoint(data_dir: &std::path::Path) -> Option<u64> {
    std::fs::read_dir(data_dir.join("checkpoints/metrics"))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix("epoch-")?.parse::<u64>().ok()
        })
        .max()
}

/// `apo run` as `processes` processes (each with `extra`), with stderr discarded.
fn spawn(t: &Topics, dir: &std::path::Path, extra: &[&str], processes: usize) -> Vec<Child> {
    let mut base: Vec<&str> = RUN.to_vec();
    base.extend_from_slice(extra);
    if processes == 1 {
        return vec![apo(&apo_run_args(t, dir, &base))
            .stderr(Stdio::null())
            .spawn()
            .unwrap()];
    }
    let hostfile = dir.join("hosts");
    let hosts: String = (0..processes)
        .map(|_| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            format!("127.0.0.1:{port}\n")
        })
        .collect();
    std::fs::write(&hostfile, hosts).unwrap();
    (0..processes)
        .map(|i| {
            let (n, p, h) = (
                processes.to_string(),
                i.to_string(),
                hostfile.display().to_string(),
            );
            let mut a = base.clone();
            a.extend(["-n", &n, "-p", &p, "-H", &h]);
            apo(&apo_run_args(t, dir, &a))
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn chaos(name: &str, extra: &[&str], processes: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = OwnBroker::start(dir.path());
    broker.use_on_this_thread();
    let t = topics(name, 4);
    let pts = dataset(60_000, 20, base(), 10, 3_000, seed);
    let want = exact(&pts, &[10, 60]);
    produce(&t.metrics, &messages(&pts, 4, 100));
    let data = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed);
    println!("chaos {name}: seed {seed}");
    // Throttled (100 messages/s per worker: the 600 messages take a few seconds) so that the
    // kills (2 to 5 s after a start, which itself takes a second or two) land while there is
    // input left.
    let mut live = extra.to_vec();
    live.extend(["--max-messages-per-sec", "100"]);
    let mut epochs = Vec::new();
    for round in 0..10 {
        let mut children = spawn(&t, data.path(), &live, processes);
        std::thread::sleep(Duration::from_millis(2_000 + rng.below(3_000)));
        if round == 3 || round == 7 {
            // The broker goes away under the running pipeline and comes back.
            broker.restart();
            std::thread::sleep(Duration::from_millis(500 + rng.below(1_500)));
        }
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        epochs.push(newest_checkpoint(data.path()));
    }
    println!("chaos {name}: the newest checkpoint after each kill: {epochs:?}");
    if processes == 1 {
        // Checkpoints were written between kills, and each restart resumed from them.
        let moved = epochs.windows(2).filter(|w| w[1] > w[0]).count();
        assert!(
            moved >= 3,
            "checkpoints moved between only {moved} kills: {epochs:?}"
        );
    }
    let before = consume(&t.stats, usize::MAX, Duration::from_secs(2)).len();
    println!(
        "chaos {name}: {before} records written by the killed runs, {} windows in all",
        want.len()
    );
    assert!(
        before > 0,
        "the killed runs wrote nothing: the kills tested nothing"
    );
    let mut drain = extra.to_vec();
    drain.push("--drain");
    let children = spawn(&t, data.path(), &drain, processes);
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "the last drain failed");
    }

    assert_no_dead_letters(&t);
    assert_uninterrupted_output(&t, &want);
}

#[test]
fn ten_kills_and_two_broker_restarts_leave_an_uninterrupted_runs_output() {
    chaos("chaos-1", &[], 1, 41);
}

#[test]
fn ten_kills_and_two_broker_restarts_with_two_workers() {
    chaos("chaos-w2", &["-w", "2"], 1, 42);
}

#[test]
fn ten_kills_and_two_broker_restarts_with_two_processes() {
    chaos("chaos-n2", &[], 2, 43);
}
