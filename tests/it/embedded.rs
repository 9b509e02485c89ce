//! The README's first command: `apo run` with no --brokers starts the embedded broker and the
//! synthetic generator, windows come out, SIGTERM stops it cleanly, and `apo sql` reads the result.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::apo;

#[test]
fn embedded_broker_with_synthetic_traffic_produces_windows_and_stops_on_sigterm() {
    // tansu resolves its sqlite path against the working directory: stay under it.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().display().to_string();
    let args: Vec<String> = [
        "run",
        "--embedded-port",
        "0",
        "--data-dir",
        &data,
        "--windows",
        "1s",
        "--lateness",
        "500ms",
        "--parquet-roll",
        "1s",
        "--progress-interval",
        "1s",
        "--generate-rate",
        "3000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = apo(&args)
        .env("APO_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let started = Instant::now();
    let mut windows_out = 0u64;
    let mut address = String::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("embedded Kafka-protocol broker listening on ") {
            address = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
        if let Some(i) = line.find("windows out ") {
            windows_out = line[i + 12..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
        if windows_out >= 20 || started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    assert!(
        address.starts_with("127.0.0.1:"),
        "the broker address is printed"
    );
    assert!(
        windows_out >= 20,
        "windows come out of the embedded pipeline"
    );
    // Parquet files are rolled every second; give one roll, then stop gracefully.
    std::thread::sleep(Duration::from_millis(2500));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "apo run did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "clean exit on SIGTERM");
    let out = apo(&[
        "sql".into(),
        "--data-dir".into(),
        data,
        "--format".into(),
        "csv".into(),
        "SELECT count(*) > 0 AS any, count(DISTINCT service) AS services FROM window_stats".into(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "any,services\ntrue,6\n"
    );
}

#[test]
fn a_normal_start_and_restart_log_nothing_at_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    for run in 0..2 {
        let args: Vec<String> = [
            "run",
            "--embedded-port",
            "0",
            "--data-dir",
            &data,
            "--models",
            "false",
            "--progress-interval",
            "1s",
            "--generate-rate",
            "200",
            "--generate-traces",
            "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut child = apo(&args)
            .env("APO_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let started = Instant::now();
        // Until two progress lines of the trace lane: the start is over.
        let mut progress = 0;
        while progress < 2 {
            assert!(started.elapsed() < Duration::from_secs(120), "{seen:#?}");
            let line = lines.next().expect("apo run exited").unwrap();
            if line.contains("] traces ") {
                progress += 1;
            }
            seen.push(line);
        }
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        seen.extend(lines.map_while(Result::ok));
        assert!(child.wait().unwrap().success());
        let errors: Vec<&String> = seen.iter().filter(|l| l.contains("ERROR")).collect();
        assert!(
            errors.is_empty(),
            "run {run} (data directory {} the first time): {errors:#?}",
            if run == 0 { "new" } else { "used" }
        );
    }
}
