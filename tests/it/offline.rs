//! `apo score` and `apo forecast`, the offline evaluation commands, run as a user runs them on a
//! `timestamp,value` file: their columns against the library's computation of the same series
//! (the contextual detector's against a detector of the test's own), and clear errors for bad
//! input.

use std::path::{Path, PathBuf};

use crate::common::{apo, artifacts};
use apo_models::alerting::AlertConfig;
use apo_models::context::{ContextConfig, ContextDetector};
use apo_models::{series, Forecaster, IsolationForest};

/// 1 200 5-minute samples (epoch seconds): a 4-hour wave with a little deterministic jitter,
/// and a level shift (samples 1 000 to 1 009) the contextual detector should notice.
fn series_file(dir: &Path) -> (PathBuf, Vec<i64>, Vec<f64>) {
    let start = 1_700_000_000_i64 / 300 * 300;
    let (mut times, mut values) = (Vec::new(), Vec::new());
    let mut text = String::from("timestamp,value\n");
    for i in 0..1200_i64 {
        let t = start + 300 * i;
        let phase = (i % 48) as f64 / 48.0 * std::f64::consts::TAU;
        let jitter = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
        let shift = if (1000..1010).contains(&i) { 40.0 } else { 0.0 };
        let v = 50.0 + 20.0 * phase.sin() + jitter + shift;
        text.push_str(&format!("{t},{v}\n"));
        times.push(t * 1000);
        values.push(v);
    }
    let path = dir.join("series.csv");
    std::fs::write(&path, text).unwrap();
    (path, times, values)
}

fn run(args: &[&str]) -> std::process::Output {
    apo(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .output()
        .unwrap()
}

fn rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let mut out = vec![header];
    for rec in r.records() {
        out.push(rec.unwrap().iter().map(String::from).collect());
    }
    out
}

fn close(cell: &str, want: f64) -> bool {
    cell.parse::<f64>()
        .map(|x| (x - want).abs() < 1e-6)
        .unwrap_or(false)
}

/// Runs `apo COMMAND series.csv --model MODEL EXTRA… -o out.csv` on [`series_file`]: the rows
/// written (header first), the series' times (ms) and values.
fn run_on_series(
    command: &str,
    model: &Path,
    extra: &[&str],
) -> (Vec<Vec<String>>, Vec<i64>, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let (input, times, values) = series_file(dir.path());
    let out = dir.path().join("out.csv");
    let mut args = vec![
        command,
        input.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", out.to_str().unwrap()]);
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (rows(&out), times, values)
}

#[test]
fn score_writes_what_the_library_computes() {
    let model = artifacts().join("iforest.onnx");
    let (got, times, values) = run_on_series("score", &model, &["--context-learn-windows", "200"]);
    assert_eq!(
        got[0],
        [
            "timestamp",
            "value",
            "anomaly_score",
            "label",
            "context_score"
        ]
    );
    assert_eq!(got.len() - 1, values.len(), "one row per sample");

    let config = AlertConfig {
        context: ContextConfig {
            learn_windows: 200,
            ..ContextConfig::default()
        },
        ..AlertConfig::default()
    };
    let forest = IsolationForest::load(&model).unwrap();
    let want = series::score(&forest, &config, &times, &values).unwrap();
    // the contextual detector, run here on its own
    let mut detector = ContextDetector::default();
    let mut raised = Vec::new();
    for (i, (row, w)) in got[1..].iter().zip(&want).enumerate() {
        assert!(close(&row[1], values[i]), "row {i}: value {}", row[1]);
        assert!(
            close(&row[2], w.score),
            "row {i}: score {} vs {}",
            row[2],
            w.score
        );
        assert_eq!(row[3] == "1", w.alert.raised, "row {i}: label");
        if w.alert.raised {
            raised.push(i);
        }
        match detector.step(&config.context, values[i]) {
            None => assert!(row[4].is_empty(), "row {i}: learning, yet {:?}", row[4]),
            Some(c) => assert!(close(&row[4], c), "row {i}: context {} vs {c}", row[4]),
        }
    }
    assert!(
        got[1..201].iter().all(|r| r[4].is_empty()) && got[201..].iter().all(|r| !r[4].is_empty()),
        "context scores start after the 200 learning windows"
    );
    assert!(
        raised.iter().any(|i| (1000..1010).contains(i)),
        "the level shift raised an alert: {raised:?}"
    );
}

#[test]
fn forecast_writes_what_the_library_computes() {
    let model = artifacts().join("lstm.onnx");
    let (got, times, values) = run_on_series("forecast", &model, &[]);
    assert_eq!(
        got[0],
        [
            "timestamp",
            "value",
            "forecast",
            "lower",
            "upper",
            "issued_at"
        ]
    );
    let want = series::forecast(&Forecaster::load(&model).unwrap(), &times, &values).unwrap();
    assert!(!want.is_empty());
    assert_eq!(got.len() - 1, want.len(), "one row per forecast issued");
    for (row, w) in got[1..].iter().zip(&want) {
        assert!(close(&row[2], w.forecast.value), "{row:?}");
        assert!(close(&row[3], w.forecast.lower), "{row:?}");
        assert!(close(&row[4], w.forecast.upper), "{row:?}");
        assert_eq!(row[5], (times[w.issued_at] / 1000).to_string());
        // the actual is there when the target time is a sample's
        match times.iter().position(|t| *t == w.target_ms) {
            Some(i) => assert!(close(&row[1], values[i]), "{row:?}"),
            None => assert!(row[1].is_empty(), "{row:?}"),
        }
    }
}

#[test]
fn bad_series_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = artifacts().join("iforest.onnx");
    let cases = [
        (
            "timestamp,value\n1700000000,1\n1700000300,abc\n",
            "line 3: value \"abc\" is not a finite number",
        ),
        (
            "timestamp,value\n1700000000,1\nyesterday,2\n",
            "line 3: timestamp \"yesterday\"",
        ),
        (
            "time,v\n1700000000,1\n",
            "must name `timestamp` and `value`",
        ),
        ("timestamp,value\n", "no samples"),
    ];
    for (text, want) in cases {
        let input = dir.path().join("bad.csv");
        std::fs::write(&input, text).unwrap();
        let o = run(&[
            "score",
            input.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{text:?} was accepted");
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let o = run(&[
        "score",
        "/nonexistent/series.csv",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read /nonexistent/series.csv"));
}
