//! tract against the training frameworks, on the golden vectors the training scripts wrote:
//! isolation-forest scores within 1e-4 of scikit-learn's `-score_samples`, LSTM outputs within
//! 1e-4 of PyTorch, and the Rust feature vectors equal to `apo_features.py`'s.

use std::path::PathBuf;

use apo_models::features::{self, KeyHistory, Signals, FEATURES};
use apo_models::{Forecaster, IsolationForest};
use serde_json::Value;

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts")
}

fn golden(name: &str) -> Value {
    let path = artifacts().join("golden").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn isolation_forest_matches_scikit_learn() {
    let model = IsolationForest::load(&artifacts().join("iforest.onnx")).expect("load");
    let g = golden("iforest.json");
    let rows: Vec<[f32; FEATURES]> = g["features"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let v = floats(r);
            std::array::from_fn(|i| v[i] as f32)
        })
        .collect();
    let expected = floats(&g["anomaly_score"]);
    let got = model.score(&rows).expect("score");
    assert_eq!(got.len(), expected.len());
    let worst = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-4,
        "largest difference from scikit-learn: {worst}"
    );
    // the batch does not change a row's score, to the bit (a restart's warm start scores
    // past windows in other batches than the first run did, and must give the same alerts):
    // one at a time, in padded small batches and in full ones
    let many: Vec<[f32; FEATURES]> = rows.iter().cycle().take(150).copied().collect();
    let all = model.score(&many).expect("score 150");
    for (n, chunk) in [1usize, 7, 16, 64, 100].iter().map(|&n| (n, &many[..n])) {
        assert_eq!(model.score(chunk).expect("score"), all[..n], "{n} rows");
    }
    // nor does a row's position in the batch: every offset, in small and full batches
    for start in 1..40 {
        for n in [1usize, 5, 16, 17, 64, 80] {
            let end = (start + n).min(many.len());
            let got = model.score(&many[start..end]).expect("score");
            assert_eq!(got, all[start..end], "rows {start}..{end}");
        }
    }
    let one = model.score(&rows[5..6]).expect("score one");
    assert_eq!(one[0], got[5]);
    // scores spread: ordinary rows and far-out rows both present
    assert!(expected.iter().any(|s| *s < 0.5) && expected.iter().any(|s| *s > 0.65));
}

#[test]
fn lstm_matches_pytorch() {
    let model = Forecaster::load(&artifacts().join("lstm.onnx")).expect("load");
    let g = golden("lstm.json");
    let n = g["history"].as_array().expect("cases").len();
    assert!(n >= 8);
    let mut worst = 0.0f64;
    for i in 0..n {
        let to32 = |v: &Value| {
            floats(v)
                .into_iter()
                .map(|x| x as f32)
                .collect::<Vec<f32>>()
        };
        let out = model
            .run_normalised(
                &to32(&g["history"][i]),
                &to32(&g["h0"][i]),
                &to32(&g["c0"][i]),
            )
            .expect("run");
        let expected = g["forecast"][i].as_array().expect("steps");
        assert_eq!(out.len(), expected.len());
        for (step, want) in out.iter().zip(expected) {
            for (a, b) in step.iter().zip(floats(want)) {
                worst = worst.max((f64::from(*a) - b).abs());
            }
        }
    }
    assert!(worst < 1e-4, "largest difference from PyTorch: {worst}");
}

#[test]
fn features_match_the_python_definition() {
    let g = golden("features.json");
    let signals: Vec<Signals> = g["signals"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|w| {
            let v = floats(w);
            std::array::from_fn(|i| v[i])
        })
        .collect();
    let expected = g["features"].as_array().expect("features");
    let mut key = KeyHistory::default();
    let mut compared = 0;
    for (i, s) in signals.iter().enumerate() {
        let got = key.push(*s);
        match (&got, expected[i].is_null()) {
            (None, true) => {}
            (Some(f), false) => {
                for (a, b) in f.iter().zip(floats(&expected[i])) {
                    assert!((a - b).abs() < 1e-9, "window {i}: {a} vs {b}");
                }
                compared += 1;
            }
            _ => panic!("window {i}: Rust gives {got:?}, Python {}", expected[i]),
        }
    }
    assert_eq!(compared, signals.len() - features::MIN_HISTORY);
    // the incident 20 windows before the end stands out in the levels
    let at = signals.len() - 20;
    let f = features::features(&signals[..at], &signals[at]).expect("features");
    assert!(f[0] > 5.0, "p50 level at the incident: {}", f[0]);
}

#[test]
fn forecasts_are_ordered_and_in_units_of_the_series() {
    let model = Forecaster::load(&artifacts().join("lstm.onnx")).expect("load");
    // a request rate around 1000/interval with a gentle cycle
    let series: Vec<f64> = (0..100)
        .map(|i| 1000.0 + 100.0 * (i as f64 / 20.0).sin())
        .collect();
    let steps = model.steps_for(300.0).expect("5-minute resolution");
    assert_eq!(steps, 3);
    let f = model.forecast(&series, steps).expect("forecast");
    assert!(f.lower <= f.value && f.value <= f.upper, "{f:?}");
    assert!(f.value > 700.0 && f.value < 1300.0, "{f:?}");
    assert!(
        model.steps_for(3600.0).is_err(),
        "hourly data cannot be forecast 15 minutes ahead"
    );
    assert!(
        model.steps_for(10.0).is_err(),
        "90 steps is past the model's 15"
    );
    assert!(model.forecast(&series[..10], 3).is_err());
    // several horizons from one run: each as the forecast of its step alone
    let many = model
        .forecast_steps(&series, &[1, 2, 3, 15])
        .expect("steps");
    for f in &many {
        assert_eq!(*f, model.forecast(&series, f.steps).expect("one step"));
    }
    let seconds: Vec<u64> = many.iter().map(|f| f.horizon_seconds).collect();
    assert_eq!(
        seconds,
        [60, 120, 180, 900],
        "a step is 60 s of the model's own"
    );
    assert!(model.forecast_steps(&series, &[2, 16]).is_err(), "past 15");
    assert!(model.forecast_steps(&series, &[0]).is_err());
    // horizons in seconds: whole steps of the series' windows, 1 to 15 of them
    assert_eq!(model.steps_ahead(60.0, 120).unwrap(), 2);
    assert_eq!(model.steps_ahead(10.0, 150).unwrap(), 15);
    assert!(model.steps_ahead(10.0, 160).is_err(), "16 steps");
    assert!(model.steps_ahead(60.0, 90).is_err(), "a step and a half");
    assert!(model.steps_ahead(60.0, 0).is_err());
}
