//! The LSTM forecaster: loaded once with tract; from a series' last `seq_len` values at its
//! own resolution, the median and 90 % interval of the value 15 minutes ahead.
//!
//! The graph (`models/train/train_lstm.py`) takes `history` `[1, seq_len, 1]` (normalised:
//! `(x − mean)/scale`, `scale = max(std, 0.001·|mean|, 1e-9)`), `h0` and `c0`
//! `[1, 1, hidden]`, and gives `forecast` `[1, horizon_steps, 3]` (median, lower, upper) for
//! each of the next steps, in normalised units.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::ModelError;
use crate::iforest::{onnx_error, optimised};
use crate::metadata::{self, LstmMeta};

/// A forecast of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Seconds ahead of the last input value at the model's own resolution (its horizon over
    /// its steps, a step).
    pub horizon_seconds: u64,
    /// Steps ahead at the series' resolution.
    pub steps: usize,
    /// The median forecast.
    pub value: f64,
    /// The lower bound of the 90 % interval.
    pub lower: f64,
    /// The upper bound of the 90 % interval.
    pub upper: f64,
}

/// A loaded LSTM forecaster.
#[derive(Debug, Clone)]
pub struct Forecaster {
    plan: Arc<TypedRunnableModel>,
    meta: LstmMeta,
    path: PathBuf,
}

/// Mean and scale of an input window (population standard deviation, as numpy's `std`).
pub fn normalise(history: &[f64]) -> (f64, f64) {
    let n = history.len() as f64;
    let mean = history.iter().sum::<f64>() / n;
    let var = history.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt().max(0.001 * mean.abs()).max(1e-9))
}

impl Forecaster {
    /// Loads `path` (ONNX) with its metadata beside it.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let (bytes, meta) = metadata::load::<LstmMeta>(path)?;
        let typed = optimised(path, &bytes, &["history", "h0", "c0"], "forecast")?;
        let onnx_err = onnx_error(path);
        let expect: [&[usize]; 3] = [
            &[1, meta.seq_len, 1],
            &[1, 1, meta.hidden],
            &[1, 1, meta.hidden],
        ];
        for (ix, want) in expect.iter().enumerate() {
            let fact = typed.input_fact(ix).map_err(onnx_err)?;
            let dims: Vec<TDim> = want.iter().map(|d| TDim::from(*d as i64)).collect();
            if fact.datum_type != f32::datum_type() || fact.shape.dims() != dims.as_slice() {
                return Err(ModelError::Mismatch {
                    path: path.to_path_buf(),
                    reason: format!("input {ix} is {fact:?}, metadata implies f32 {want:?}"),
                });
            }
        }
        let out = typed.output_fact(0).map_err(onnx_err)?;
        let want: Vec<TDim> = [1, meta.horizon_steps as i64, 3]
            .iter()
            .map(|d| TDim::from(*d))
            .collect();
        if out.shape.dims() != want.as_slice() {
            return Err(ModelError::Mismatch {
                path: path.to_path_buf(),
                reason: format!(
                    "output is {out:?}, metadata implies [1, {}, 3]",
                    meta.horizon_steps
                ),
            });
        }
        let plan = typed.into_runnable().map_err(onnx_err)?;
        Ok(Self {
            plan,
            meta,
            path: path.to_path_buf(),
        })
    }

    /// The metadata the model was loaded with.
    pub fn meta(&self) -> &LstmMeta {
        &self.meta
    }

    /// Model version (from the metadata).
    pub fn version(&self) -> &str {
        &self.meta.version
    }

    /// Values of history the model reads.
    pub fn seq_len(&self) -> usize {
        self.meta.seq_len
    }

    /// The step that lies the model's horizon ahead at `resolution_seconds`, or an error when
    /// the resolution does not divide into 1..=horizon_steps steps.
    pub fn steps_for(&self, resolution_seconds: f64) -> Result<usize, ModelError> {
        let steps = (self.meta.horizon_seconds as f64 / resolution_seconds).round();
        if !resolution_seconds.is_finite()
            || resolution_seconds <= 0.0
            || steps < 1.0
            || steps > self.meta.horizon_steps as f64
        {
            return Err(ModelError::Input(format!(
                "a series at {resolution_seconds} s resolution cannot be forecast {} s ahead: the model gives 1 to {} steps",
                self.meta.horizon_seconds, self.meta.horizon_steps
            )));
        }
        Ok(steps as usize)
    }

    /// The step that lies `horizon_seconds` ahead at `resolution_seconds`, or an error unless
    /// the horizon is a whole number of steps in 1..=horizon_steps.
    pub fn steps_ahead(
        &self,
        resolution_seconds: f64,
        horizon_seconds: u64,
    ) -> Result<usize, ModelError> {
        let exact = horizon_seconds as f64 / resolution_seconds;
        let steps = exact.round();
        if !resolution_seconds.is_finite()
            || resolution_seconds <= 0.0
            || steps < 1.0
            || steps > self.meta.horizon_steps as f64
            || (exact - steps).abs() > 1e-9 * exact.max(1.0)
        {
            return Err(ModelError::Input(format!(
                "a series at {resolution_seconds} s resolution cannot be forecast {horizon_seconds} s ahead: the model gives 1 to {} whole steps",
                self.meta.horizon_steps
            )));
        }
        Ok(steps as usize)
    }

    /// The most steps ahead the model forecasts.
    pub fn horizon_steps(&self) -> usize {
        self.meta.horizon_steps
    }

    /// Raw model output for normalised inputs: `[horizon_steps][median, lower, upper]`.
    pub fn run_normalised(
        &self,
        history: &[f32],
        h0: &[f32],
        c0: &[f32],
    ) -> Result<Vec<[f32; 3]>, ModelError> {
        let run_err = |e: TractError| ModelError::Run {
            model: self.path.display().to_string(),
            reason: format!("{e:#}"),
        };
        let (l, h) = (self.meta.seq_len, self.meta.hidden);
        if history.len() != l || h0.len() != h || c0.len() != h {
            return Err(ModelError::Input(format!(
                "the model reads {l} values and states of {h}; got {}, {}, {}",
                history.len(),
                h0.len(),
                c0.len()
            )));
        }
        let inputs = tvec![
            Tensor::from_shape(&[1, l, 1], history)
                .map_err(run_err)?
                .into(),
            Tensor::from_shape(&[1, 1, h], h0).map_err(run_err)?.into(),
            Tensor::from_shape(&[1, 1, h], c0).map_err(run_err)?.into(),
        ];
        let out = self.plan.run(inputs).map_err(run_err)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(run_err)?;
        let flat: Vec<f32> = view.iter().copied().collect();
        Ok(flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
    }

    /// Forecast `steps` ahead from the last `seq_len` values of `history` (oldest first).
    pub fn forecast(&self, history: &[f64], steps: usize) -> Result<Forecast, ModelError> {
        let mut one = self.forecast_steps(history, &[steps])?;
        one.pop()
            .ok_or_else(|| ModelError::Input("no forecast for one step".into()))
    }

    /// Forecasts at each of `steps` ahead (each in 1..=horizon_steps), in their order, from one
    /// run of the model on the last `seq_len` values of `history` (oldest first): the model
    /// gives every step at once, so more horizons cost no more runs.
    pub fn forecast_steps(
        &self,
        history: &[f64],
        steps: &[usize],
    ) -> Result<Vec<Forecast>, ModelError> {
        let l = self.meta.seq_len;
        if history.len() < l {
            return Err(ModelError::Input(format!(
                "the model needs {l} values of history, got {}",
                history.len()
            )));
        }
        if let Some(bad) = steps
            .iter()
            .find(|&&s| s == 0 || s > self.meta.horizon_steps)
        {
            return Err(ModelError::Input(format!(
                "steps must be 1..={}, got {bad}",
                self.meta.horizon_steps
            )));
        }
        let window = &history[history.len() - l..];
        if let Some(bad) = window.iter().find(|v| !v.is_finite()) {
            return Err(ModelError::Input(format!(
                "history holds a non-finite value ({bad})"
            )));
        }
        let (mean, scale) = normalise(window);
        let x: Vec<f32> = window.iter().map(|v| ((v - mean) / scale) as f32).collect();
        let zeros = vec![0.0f32; self.meta.hidden];
        let out = self.run_normalised(&x, &zeros, &zeros)?;
        let back = |y: f32| mean + scale * f64::from(y);
        let per_step = self.meta.horizon_seconds / self.meta.horizon_steps.max(1) as u64;
        steps
            .iter()
            .map(|&s| {
                let [m, lo, hi] = *out.get(s - 1).ok_or_else(|| {
                    ModelError::Input(format!("the model gave {} steps, not {s}", out.len()))
                })?;
                Ok(Forecast {
                    horizon_seconds: per_step * s as u64,
                    steps: s,
                    value: back(m),
                    lower: back(lo),
                    upper: back(hi),
                })
            })
            .collect()
    }
}
