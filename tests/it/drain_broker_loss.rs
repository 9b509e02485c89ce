//! `apo run --drain` whose broker goes away mid-run ends with an error that says so, naming the
//! broker and what it waited for, instead of waiting forever for a partition end or an
//! acknowledgement that will never come, or for a fixed flush timeout of its own.
//!
//! Runs a broker of its own (`apo broker`; the shared test broker must stay up for the other
//! tests).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{apo, now_ms, OwnBroker};

/// `--drain-stall-timeout` of these runs.
const STALL: Duration = Duration::from_secs(3);

/// Produces 100 messages of 200 points starting at `start` (`now` or RFC 3339) to a broker of
/// the test's own, drains them slowly (5 messages/s: 20 s for the topic), kills the broker 5 s
/// in; returns the broker's address, how long after the kill the run ended, and its stderr.
fn drain_and_lose_the_broker(start: &str) -> (String, Duration, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut broker = OwnBroker::start(dir.path());
    let addr = broker.addr.clone();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let produced = apo(&s(&[
        "produce",
        "--brokers",
        &addr,
        "--count",
        "20000",
        "--pace",
        "flat",
        "--start",
        start,
    ]))
    .output()
    .expect("apo produce");
    assert!(
        produced.status.success(),
        "apo produce: {}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let data = dir.path().join("data");
    let stall = format!("{}s", STALL.as_secs());
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
        &stall,
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
    let limit = Duration::from_secs(90);
    while run.try_wait().expect("apo run status").is_none() {
        if killed.elapsed() > limit {
            let _ = run.kill();
            panic!("apo run --drain still waiting {limit:?} after its broker went away");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let ended = killed.elapsed();
    let out = run.wait_with_output().expect("apo run output");
    assert!(
        !out.status.success(),
        "a drain without its broker must fail"
    );
    (
        addr,
        ended,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn drain_ends_with_an_error_when_the_broker_goes_away() {
    let (addr, ended, stderr) = drain_and_lose_the_broker("now");
    assert!(
        stderr.contains("made no progress")
            && stderr.contains("broker still reachable")
            && stderr.contains(&addr),
        "the error says what happened and names the broker ({addr}): {stderr}"
    );
    // what librdkafka prefetched is still read (at most the 20 s of the whole topic), then
    // the stall limit applies
    assert!(
        ended < Duration::from_secs(20) + STALL + Duration::from_secs(10),
        "ended {ended:?} after the broker went away"
    );
}

/// Every point is a month old (older than `--max-event-age`): everything read goes to the
/// dead-letter topic, and the commits wait for those letters. With the broker gone, the run
/// ends with the drain-stall error naming the broker and the dead-letter topic, within the
/// stall timeout of the prefetched records' end, not after a flush timeout of its own.
#[test]
fn drain_of_dead_letters_ends_with_the_stall_error_when_the_broker_goes_away() {
    let month_ago = now_ms() - 30 * 86_400_000;
    let start = chrono_rfc3339(month_ago);
    let (addr, ended, stderr) = drain_and_lose_the_broker(&start);
    assert!(
        stderr.contains("made no progress")
            && stderr.contains(&addr)
            && stderr.contains("dead letter(s) to apo.dlq"),
        "the error names the broker ({addr}) and the dead-letter topic it waited on: {stderr}"
    );
    assert!(
        !stderr.contains("Flush error"),
        "no flush timeout of its own: {stderr}"
    );
    assert!(
        ended < Duration::from_secs(20) + STALL + Duration::from_secs(10),
        "ended {ended:?} after the broker went away"
    );
}

/// `ms` since the epoch as RFC 3339 (UTC, whole seconds).
fn chrono_rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
