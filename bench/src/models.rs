//! `apo bench`'s models section (issue 4): tract's scoring rates on one thread, and the
//! metrics pipeline from memory with the models off and on, over the same data in the same run.
//!
//! The data for the on/off pair is model-heavy on purpose: 48 series at 200 points/s of event
//! time for 1 M points (83 minutes), so each series closes about 500 ten-second windows and 80
//! one-minute windows, every one of them scored, and the one-minute series are forecast from
//! their 48th window on. The contextual detector learns each series' range from its first
//! [`BENCH_LEARN_WINDOWS`] windows instead of the default 750 (which these series never reach),
//! so that it scores most of the run, as it would in a long-running pipeline.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use apo_core::MemorySink;
use apo_dataflow::LaneConfig;
use apo_dataflow::ModelConfig;
use apo_dataflow::{MetricsConfig, MetricsJob, ModelStage};
use apo_ingest::dlq::MemoryDeadLetters;
use apo_ingest::generator::{Generator, GeneratorConfig};
use apo_ingest::source::MemorySource;
use apo_models::alerting::AlertConfig;
use apo_models::context::ContextConfig;
use apo_models::features::FEATURES;
use apo_models::{Forecaster, IsolationForest, DEFAULT_ARTIFACTS};
use apo_schemas::model_output::{AnomalyRecord, ForecastRecord};

use crate::phase::run_phase;

const MODEL_RATE: f64 = 200.0;

/// The contextual detector's learning period in the on/off pair.
const BENCH_LEARN_WINDOWS: usize = 100;

/// Rows per second through `f`, repeated for about `budget`.
fn rate(budget: Duration, rows_per_call: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let start = Instant::now();
    let mut rows = 0usize;
    while start.elapsed() < budget {
        f()?;
        rows += rows_per_call;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}

/// Deterministic feature vectors: ordinary ones and a few far out.
fn vectors(n: usize) -> Vec<[f32; FEATURES]> {
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 2001) as f32 / 1000.0 - 1.0
    };
    (0..n)
        .map(|i| std::array::from_fn(|_| next() * if i % 50 == 0 { 12.0 } else { 2.0 }))
        .collect()
}

/// The section's Markdown.
pub fn models_section(cfg: &LaneConfig, points: u64, workers: usize) -> Result<String> {
    let dir = Path::new(DEFAULT_ARTIFACTS);
    let (iforest_path, lstm_path) = (dir.join("iforest.onnx"), dir.join("lstm.onnx"));
    let forest = IsolationForest::load(&iforest_path)
        .context("the models section runs from the repository root")?;
    let lstm = Forecaster::load(&lstm_path)?;
    let mut out = String::new();

    eprintln!("model scoring rates…");
    let _ = writeln!(
        out,
        "Scoring on one thread (tract, release build), {} and {}:\n",
        forest.version(),
        lstm.version()
    );
    let _ = writeln!(out, "| model | batch | rows/s |");
    let _ = writeln!(out, "|---|---:|---:|");
    for batch in [1usize, 64, 1024] {
        let rows = vectors(batch);
        let r = rate(Duration::from_millis(1500), batch, || {
            forest.score(&rows).map(|_| ()).map_err(Into::into)
        })?;
        let _ = writeln!(
            out,
            "| isolation forest (100 trees, depth 8) | {batch} | {r:.0} |"
        );
    }
    let history: Vec<f64> = (0..lstm.seq_len())
        .map(|i| 100.0 + 10.0 * (i as f64 / 7.0).sin())
        .collect();
    let r = rate(Duration::from_millis(1500), 1, || {
        lstm.forecast(&history, 15).map(|_| ()).map_err(Into::into)
    })?;
    let _ = writeln!(
        out,
        "| LSTM forecaster (48 steps in, hidden 32) | 1 | {r:.0} |"
    );

    // the same model-heavy data through the pipeline, models off then on
    let now = chrono::Utc::now().timestamp_millis();
    let gen_cfg = GeneratorConfig {
        services: 12,
        metrics: 4,
        rate: MODEL_RATE,
        start_ms: now - (points as f64 / MODEL_RATE * 1000.0) as i64 - 60_000,
        incidents_per_hour: 6.0,
        seed: 11,
    };
    let mut g = Generator::new(&gen_cfg);
    let payloads: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..points)
            .collect::<Vec<_>>()
            .chunks(200)
            .map(|c| {
                serde_json::to_vec(&c.iter().map(|_| g.next_point()).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect(),
    );
    let mut results = Vec::new();
    for on in [false, true] {
        eprintln!(
            "dataflow from memory, models {}…",
            if on { "on" } else { "off" }
        );
        let anomalies: MemorySink<AnomalyRecord> = MemorySink::default();
        let forecasts: MemorySink<ForecastRecord> = MemorySink::default();
        let (a_rows, f_rows) = (anomalies.rows.clone(), forecasts.rows.clone());
        let payloads = payloads.clone();
        let (ip, lp) = (iforest_path.clone(), lstm_path.clone());
        let r = run_phase(workers, cfg.clone(), move |i, n| {
            let mine: Vec<Vec<u8>> = payloads.iter().skip(i).step_by(n).cloned().collect();
            let mut job = MetricsJob::from_config(
                &MetricsConfig::default(),
                vec![Box::new(MemorySink::default())],
            )
            .map_err(|e| e.to_string())?;
            if on {
                job = job.with_models(ModelStage {
                    config: ModelConfig {
                        anomaly_model: Some(ip.clone()),
                        forecast_model: Some(lp.clone()),
                        alert: AlertConfig {
                            context: ContextConfig {
                                learn_windows: BENCH_LEARN_WINDOWS,
                                ..ContextConfig::default()
                            },
                            ..AlertConfig::default()
                        },
                        ..ModelConfig::default()
                    },
                    anomaly_sinks: vec![Box::new(anomalies.clone())],
                    forecast_sinks: vec![Box::new(forecasts.clone())],
                    anomaly_inputs: Default::default(),
                    forecast_past: None,
                });
            }
            Ok((
                Box::new(MemorySource::new("memory", mine)) as _,
                Box::new(MemoryDeadLetters::default()) as _,
                job,
            ))
        })?;
        let (scored, contextual) = a_rows
            .lock()
            .map(|v| {
                (
                    v.len(),
                    v.iter().filter(|a| a.context_score.is_some()).count(),
                )
            })
            .unwrap_or((0, 0));
        let forecast = f_rows.lock().map(|v| v.len()).unwrap_or(0);
        results.push((
            on,
            r.points as f64 / r.seconds,
            r.seconds,
            scored,
            contextual,
            forecast,
        ));
    }
    let _ = writeln!(out, "\nMetrics pipeline from memory ({points} points, 48 series, {MODEL_RATE} points/s of event time, windows {:?} s, {workers} worker(s)):\n", MetricsConfig::default().window_seconds);
    let _ = writeln!(
        out,
        "| models | points/s | time | windows scored | with a contextual score | forecasts |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for (on, pps, s, scored, contextual, forecast) in &results {
        let _ = writeln!(
            out,
            "| {} | {pps:.0} | {s:.2} s | {scored} | {contextual} | {forecast} |",
            if *on { "on" } else { "off (baseline)" }
        );
    }
    if let [(_, off, ..), (_, on, ..)] = results.as_slice() {
        let _ = writeln!(
            out,
            "\nWith the models on the pipeline runs at {:.0} % of its speed with them off.",
            100.0 * on / off
        );
    }
    Ok(out)
}
