//! The contextual detector against its Python reference (`models/train/context_reference.py`),
//! on the golden vectors it wrote: every score equal to 1e-12, the same windows unscored, the
//! same number of contexts learnt (relearning included).

use std::path::PathBuf;

use apo_models::context::{ContextConfig, ContextDetector};
use serde_json::Value;

fn golden() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts/golden/context.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden JSON")
}

#[test]
fn contextual_detector_matches_the_python_reference() {
    let g = golden();
    let cases = g["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let config: ContextConfig = serde_json::from_value(case["config"].clone()).expect("config");
        config.validate().expect("valid config");
        let mut d = ContextDetector::default();
        let mut scored = 0;
        let mut high = 0;
        for (i, (v, want)) in case["values"]
            .as_array()
            .expect("values")
            .iter()
            .zip(case["scores"].as_array().expect("scores"))
            .enumerate()
        {
            let got = d.step(&config, v.as_f64().expect("value"));
            match (got, want.as_f64()) {
                (None, None) => {}
                (Some(a), Some(b)) => {
                    assert!((a - b).abs() < 1e-12, "{name} window {i}: {a} against {b}");
                    scored += 1;
                    if a >= 0.75 {
                        high += 1;
                    }
                }
                (a, b) => panic!("{name} window {i}: {a:?} against {b:?}"),
            }
        }
        assert_eq!(
            d.contexts() as u64,
            case["contexts"].as_u64().expect("contexts"),
            "{name}"
        );
        assert!(scored > 0, "{name}: nothing scored");
        eprintln!(
            "{name}: {scored} scored, {high} at or above 0.75, {} contexts",
            d.contexts()
        );
    }
}

#[test]
fn a_spike_after_a_learnt_cycle_scores_high_and_the_cycle_does_not() {
    // exact expectations that do not come from the reference: a square wave learnt for a
    // while is predicted (scores near 0 once learnt); a value in a bin never seen after it
    // scores high (nothing the past predicts holds).
    let config = ContextConfig {
        learn_windows: 24,
        rest_windows: 1,
        ..ContextConfig::default()
    };
    let mut d = ContextDetector::default();
    let wave = |i: usize| if (i / 6).is_multiple_of(2) { 0.0 } else { 10.0 };
    let mut last = Vec::new();
    for i in 0..600 {
        if let Some(s) = d.step(&config, wave(i)) {
            last.push(s);
        }
    }
    let tail = &last[last.len() - 48..];
    assert!(
        tail.iter().all(|s| *s < 0.2),
        "learnt wave still scores: {tail:?}"
    );
    let spike = d.step(&config, 5.0).expect("scored");
    assert!(
        spike >= 0.75,
        "a never-seen level after the wave scored {spike}"
    );
}
