//! `apo broker`: the embedded Kafka-protocol broker as a process of its own, talked to by a
//! real Kafka client (librdkafka), stopped by a real SIGTERM and started again on its data.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{client, consume, produce, unique, use_broker_on_this_thread};

/// Starts `apo broker` on a free port with its log in `dir` and topic `topic` (2 partitions);
/// returns it and the address it printed.
fn start(dir: &std::path::Path, topic: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_apo"))
        .args([
            "broker",
            "--port",
            "0",
            "--topic-partitions",
            "2",
            "--topics",
            topic,
        ])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("apo broker starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("its stdout"))
        .read_line(&mut line)
        .expect("a line on stdout");
    let addr = line
        .trim()
        .strip_prefix("apo broker listening on ")
        .unwrap_or_else(|| panic!("not the address line: {line:?}"))
        .to_string();
    (child, addr)
}

/// Waits at most 15 s for `child` to exit.
fn exited(child: &mut Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("its status") {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "apo broker did not stop within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn apo_broker_serves_its_topics_and_keeps_its_log_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("standalone");
    let (mut first, addr) = start(dir.path(), &topic);
    use_broker_on_this_thread(&addr);
    assert_eq!(
        apo_ingest::kafka::partition_count(&client(), &topic).unwrap(),
        2,
        "the topic asked for, with its partitions"
    );
    produce(&topic, &[(1, b"kept across a restart".to_vec())]);
    let read = consume(&topic, 1, Duration::from_secs(5));
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].payload, b"kept across a restart");

    let term = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(exited(&mut first).success(), "a clean exit on SIGTERM");

    let (mut second, addr) = start(dir.path(), &topic);
    use_broker_on_this_thread(&addr);
    let again = consume(&topic, 2, Duration::from_secs(5));
    assert_eq!(
        again.iter().map(|r| r.payload.clone()).collect::<Vec<_>>(),
        [b"kept across a restart".to_vec()],
        "the log served again from the same data directory"
    );
    let _ = second.kill();
    let _ = second.wait();
}
