//! `apo run --drain` whose broker goes away mid-run ends with an error that says so, instead
//! of waiting forever for a partition end or an acknowledgement that will never come.
//!
//! Runs a `tansu` broker of its own (the shared test broker must stay up for the other tests):
//! `scripts/test.sh` installs it on the PATH.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{apo, OwnBroker};

#[test]
fn drain_ends_with_an_error_when_the_broker_goes_away() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut broker = OwnBroker::start(dir.path());
    let addr = broker.addr.clone();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    // 100 messages of 200 points
    let produced = apo(&s(&[
        "produce",
        "--brokers",
        &addr,
        "--count",
        "20000",
        "--pace",
        "flat",
        "--start",
        "now",
    ]))
    .output()
    .expect("apo produce");
    assert!(
        produced.status.success(),
        "apo produce: {}",
        String::from_utf8_lossy(&produced.stderr)
    );
    // read slowly (5 messages/s: 20 s for the topic) so the broker dies mid-drain
    let data = dir.path().join("data");
    let mut run = apo(&s(&[
        "run",
        "--brokers",
        &addr,
        "--drain",
        "--traces",
        "false",
        "--models",
        "false",
        "--max-messages-per-sec",
        "5",
        "--drain-stall-timeout",
        "3s",
        "--progress-interval",
        "0s",
        "--data-dir",
        &data.display().to_string(),
    ]))
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("apo run");
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        run.try_wait().expect("apo run status").is_none(),
        "apo run ended before the broker went away"
    );
    broker.kill();
    let killed = Instant::now();
    // what librdkafka prefetched is still read (at most the 20 s of the whole topic), then
    // the stall limit applies
    let limit = Duration::from_secs(90);
    while run.try_wait().expect("apo run status").is_none() {
        if killed.elapsed() > limit {
            let _ = run.kill();
            panic!("apo run --drain still waiting {limit:?} after its broker went away");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = run.wait_with_output().expect("apo run output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a drain without its broker must fail"
    );
    assert!(
        stderr.contains("made no progress") && stderr.contains("broker still reachable"),
        "the error says what happened: {stderr}"
    );
}
