//! The command line: configuration file and environment precedence, and clear errors.

use crate::common::apo;

fn sql(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = apo(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn config_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = dir.path().join("apo.toml");
    std::fs::write(
        &cfg,
        format!(
            "format = \"json\"\n[sql]\ndata_dir = \"{}\"\nformat = \"csv\"\n",
            data.display()
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let q = "SELECT count(*) AS n FROM window_stats";
    // The [sql] table beats the top level; the data directory comes from the file.
    let out = sql(&["--config", &cfg, "sql", q], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n0\n");
    // The environment beats the file, and a flag beats both.
    let out = sql(&["--config", &cfg, "sql", q], &[("APO_FORMAT", "json")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[{\"n\":0}]");
    let out = sql(
        &["--config", &cfg, "sql", "--format", "table", q],
        &[("APO_FORMAT", "json")],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| n |"));
}

#[test]
fn bad_configuration_and_arguments_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("apo.toml");
    std::fs::write(&cfg, "[run]\nlatenes = \"5s\"\n").unwrap();
    let out = sql(&["--config", &cfg.display().to_string(), "run"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key `latenes` in [run]"));

    let out = sql(
        &["run", "--brokers", "127.0.0.1:1", "--windows", "1500ms"],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("whole number of seconds"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = sql(&["run", "--lateness", "soon"], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("examples: 500ms"));

    let out = sql(&["sql", "--data-dir", "/nonexistent/apo", "SELECT 1"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    let out = sql(
        &[
            "sql",
            "--data-dir",
            &dir.path().display().to_string(),
            "SELEC nonsense",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}

#[test]
fn a_broker_that_does_not_answer_is_reported_within_seconds_naming_its_address() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut child = apo(&[
        "run".into(),
        "--brokers".into(),
        address.clone(),
        "--data-dir".into(),
        dir.path().display().to_string(),
        "--models".into(),
        "false".into(),
    ])
    .env("APO_LOG", "warn")
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let started = Instant::now();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut reports = 0;
    while reports < 2 {
        let line = lines
            .next()
            .expect("apo run exited before reporting the broker")
            .unwrap();
        if line.contains(&format!("no Kafka broker answers at {address}")) {
            reports += 1;
        }
    }
    // Reported, and reported again: it keeps trying, visibly.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(child.try_wait().unwrap().is_none(), "still trying");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert!(!exit.success());
    assert!(
        rest.iter()
            .any(|l| l.contains(&format!("no Kafka broker answered at {address}"))),
        "{rest:?}"
    );
}
