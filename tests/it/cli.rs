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
