//! The README's first command: `apo run` with no --brokers starts the embedded broker and the
//! closed loop (the simulated service scaled by the planner through an actuator), or with
//! --open-loop the synthetic generator; windows come out, SIGTERM stops it cleanly, and `apo
//! sql` reads the result.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{apo, sql_csv};

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
        "--open-loop",
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
            "--open-loop",
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

/// The embedded default closes the loop: the step a minute in overloads the simulated
/// `checkout`, the planner decides, the actuator scales it through the sim's webhook, the p95
/// is back under 500 ms, nothing is logged at ERROR, and `apo sql` finds the decisions and the
/// actions. Replayed 10 times faster than real time (`APO_NOW`).
#[test]
fn the_embedded_default_scales_the_simulated_service_back_under_its_objective() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().display().to_string();
    let args: Vec<String> = [
        "run",
        "--embedded-port",
        "0",
        "--data-dir",
        &data,
        "--models",
        "false",
        "--generate-traces",
        "0",
        "--parquet-roll",
        "1s",
        "--progress-interval",
        "2s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = apo(&args)
        .env(
            "APO_LOG",
            "warn,apo=info,apo_actuators=info,apo_pipeline=info,apo_sim=info",
        )
        .env("APO_NOW", crate::sim::fast_clock(10))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    let (mut seen, mut overloaded, mut scaled, mut recovered) = (Vec::new(), false, false, false);
    while !recovered {
        assert!(started.elapsed() < Duration::from_secs(150), "{seen:#?}");
        let line = lines.next().expect("apo run exited").unwrap();
        // the sim's line per minute: "... p95 12.345 s OVER ... replicas 2 (2 serving)"
        if line.contains(" req/s ") {
            overloaded |= line.contains(" OVER ");
            let serving = line
                .split("replicas ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0);
            recovered = overloaded && scaled && serving >= 4 && !line.contains(" OVER ");
        }
        scaled |= line.contains("audited") && line.contains("succeeded");
        seen.push(line);
    }
    std::thread::sleep(Duration::from_millis(2500));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    seen.extend(lines.map_while(Result::ok));
    assert!(child.wait().unwrap().success(), "{seen:#?}");
    for l in seen
        .iter()
        .filter(|l| l.contains(" req/s ") || l.contains("audited"))
    {
        eprintln!("{l}");
    }
    let errors: Vec<&String> = seen.iter().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let rows = sql_csv(
        dir.path(),
        "SELECT (SELECT count(*) FROM decisions WHERE target = 'checkout') > 0 AS decided, \
         (SELECT count(*) FROM actions WHERE outcome = 'succeeded') > 0 AS acted",
    );
    assert_eq!(rows, [["true", "true"]]);
}

/// The embedded default (the closed loop: the simulated service, the models, the planner and
/// the trace pipeline) checkpoints both jobs, models and planner included: stopped and started
/// again on its data directory, it resumes each from its checkpoint instead of replaying its
/// topics from their start (issue 30: before, a restart of the default re-read everything), and
/// logs nothing at ERROR either time.
#[test]
fn the_embedded_default_resumes_both_jobs_from_their_checkpoints() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().display().to_string();
    let args: Vec<String> = [
        "run",
        "--embedded-port",
        "0",
        "--data-dir",
        &data,
        "--progress-interval",
        "1s",
        "--checkpoint-interval",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for run in 0..2 {
        let mut child = apo(&args)
            .env("APO_LOG", "warn,apo_dataflow=info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let started = Instant::now();
        // The first run: until both jobs wrote a checkpoint. The second: until both resumed.
        let done = |seen: &[String]| {
            let has =
                |lane: &str, what: &str| seen.iter().any(|l| l.contains(lane) && l.contains(what));
            if run == 0 {
                has("] metrics ", "| checkpoint ") && has("] traces ", "| checkpoint ")
            } else {
                let resumed = |topic: &str| {
                    seen.iter()
                        .any(|l| l.contains("resuming from the checkpoint") && l.contains(topic))
                };
                resumed("apo.metrics") && resumed("apo.spans")
            }
        };
        while !done(&seen) {
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "run {run}: {seen:#?}"
            );
            let line = lines.next().expect("apo run exited").unwrap();
            seen.push(line);
        }
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        seen.extend(lines.map_while(Result::ok));
        assert!(child.wait().unwrap().success(), "run {run}: {seen:#?}");
        let errors: Vec<&String> = seen.iter().filter(|l| l.contains("ERROR")).collect();
        assert!(errors.is_empty(), "run {run}: {errors:#?}");
    }
}
