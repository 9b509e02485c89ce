//! A whole series scored or forecast as the stream would, one window per sample: what
//! `apo score` and `apo forecast` run over a `timestamp,value` file (NAB's format).
//!
//! The series' resolution is the median step between timestamps; each sample is one closed
//! window of a gauge sampled once per window (`features::univariate`).

use crate::alerting::{AlertConfig, AlertOutcome, AlertState};
use crate::context::ContextDetector;
use crate::error::ModelError;
use crate::features::{self, KeyHistory, FEATURES};
use crate::forecaster::{Forecast, Forecaster};
use crate::iforest::IsolationForest;

/// One scored sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredSample {
    /// The anomaly score; 0 for the first samples, which have too little history.
    pub score: f64,
    /// Whether the sample had enough history to be scored.
    pub scored: bool,
    /// The contextual detector's score (`None` while it learns the series' range).
    pub context_score: Option<f64>,
    /// What the alert stage made of the scores.
    pub alert: AlertOutcome,
}

/// One forecast, issued at a sample for the time the model's horizon ahead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IssuedForecast {
    /// Index of the sample it was issued at.
    pub issued_at: usize,
    /// Time forecast (ms): the issuing sample's time plus the horizon.
    pub target_ms: i64,
    /// The forecast.
    pub forecast: Forecast,
}

/// Median step between consecutive distinct timestamps (ms), or an error for fewer than two
/// samples or timestamps that go back. Repeated timestamps (NAB has some, where clocks changed
/// for daylight saving) are allowed: each row is still one sample.
pub fn resolution_ms(timestamps: &[i64]) -> Result<i64, ModelError> {
    if timestamps.len() < 2 {
        return Err(ModelError::Input(
            "a series needs at least two samples".into(),
        ));
    }
    let mut steps = Vec::with_capacity(timestamps.len() - 1);
    for (i, w) in timestamps.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(ModelError::Input(format!(
                "timestamps must not go back: sample {} is before sample {i}",
                i + 1
            )));
        }
        if w[1] > w[0] {
            steps.push(w[1] - w[0]);
        }
    }
    if steps.is_empty() {
        return Err(ModelError::Input(
            "every sample has the same timestamp".into(),
        ));
    }
    steps.sort_unstable();
    Ok(steps[steps.len() / 2])
}

/// Scores every sample with the isolation forest and the contextual detector (on the value,
/// the window's p95) and runs the alert stage over the scores.
pub fn score(
    model: &IsolationForest,
    config: &AlertConfig,
    timestamps: &[i64],
    values: &[f64],
) -> Result<Vec<ScoredSample>, ModelError> {
    check_lengths(timestamps, values)?;
    let window_seconds = resolution_ms(timestamps)? as f64 / 1000.0;
    let mut key = KeyHistory::default();
    let mut rows: Vec<[f32; FEATURES]> = Vec::new();
    let mut row_of: Vec<Option<usize>> = Vec::with_capacity(values.len());
    for v in values {
        match key.push(features::univariate(*v, window_seconds)) {
            Some(f) => {
                row_of.push(Some(rows.len()));
                rows.push(f.map(|x| x as f32));
            }
            None => row_of.push(None),
        }
    }
    let scores = model.score(&rows)?;
    let global = config.threshold.unwrap_or(model.meta().threshold);
    let mut state = AlertState::default();
    let mut context = ContextDetector::default();
    Ok(row_of
        .iter()
        .zip(timestamps)
        .zip(values)
        .map(|((row, ts), v)| {
            let c = context.step(&config.context, *v);
            match row {
                Some(r) => {
                    let s = f64::from(scores[*r]);
                    ScoredSample {
                        score: s,
                        scored: true,
                        context_score: c,
                        alert: state.step(config, global, *ts, s, c),
                    }
                }
                None => ScoredSample {
                    score: 0.0,
                    scored: false,
                    context_score: c,
                    alert: AlertOutcome {
                        threshold: global,
                        likelihood: 0.0,
                        is_anomaly: false,
                        raised: false,
                        suppressed: false,
                    },
                },
            }
        })
        .collect())
}

/// Forecasts, at every sample with enough history, the value the model's horizon ahead.
pub fn forecast(
    model: &Forecaster,
    timestamps: &[i64],
    values: &[f64],
) -> Result<Vec<IssuedForecast>, ModelError> {
    check_lengths(timestamps, values)?;
    let resolution = resolution_ms(timestamps)?;
    let steps = model.steps_for(resolution as f64 / 1000.0)?;
    let horizon_ms = steps as i64 * resolution;
    let l = model.seq_len();
    let mut out = Vec::with_capacity(values.len().saturating_sub(l - 1));
    for i in l.saturating_sub(1)..values.len() {
        let f = model.forecast(&values[i + 1 - l..=i], steps)?;
        out.push(IssuedForecast {
            issued_at: i,
            target_ms: timestamps[i] + horizon_ms,
            forecast: f,
        });
    }
    Ok(out)
}

fn check_lengths(timestamps: &[i64], values: &[f64]) -> Result<(), ModelError> {
    if timestamps.len() != values.len() {
        return Err(ModelError::Input(format!(
            "{} timestamps but {} values",
            timestamps.len(),
            values.len()
        )));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::Input(format!(
            "sample {i} is not a finite number ({})",
            values[i]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_is_the_median_step() {
        assert_eq!(resolution_ms(&[0, 300, 600, 1200, 1500]).expect("ok"), 300);
        assert!(resolution_ms(&[0]).is_err());
        assert_eq!(
            resolution_ms(&[0, 300, 300, 600]).expect("repeats allowed"),
            300
        );
        assert!(resolution_ms(&[0, 300, 200]).is_err());
        assert!(resolution_ms(&[5, 5]).is_err());
    }
}
