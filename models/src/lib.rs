//! `apo-models`: the ONNX models of DESIGN.md §5, loaded once with tract and scored in batches.
//!
//! - [`features`]: the isolation forest's feature vectors, computed per key from closed
//!   windows exactly as `models/train/apo_features.py` computes them for training.
//! - [`iforest`]: the isolation forest (anomaly score per feature vector).
//! - [`forecaster`]: the LSTM forecaster (median and 90 % interval 15 minutes ahead).
//! - [`context`]: a contextual (sequence) anomaly detector learnt online per series, no
//!   model file (after CAD OSE).
//! - [`alerting`]: what turns scores into alerts: per-key adaptive threshold, minimum
//!   duration and hysteresis, suppression after a decision.
//! - [`metadata`]: the JSON beside each model and its checks against the ONNX file.
//!
//! Training scripts are in `models/train/`; the committed models in `models/artifacts/`.

pub mod alerting;
pub mod context;
pub mod error;
pub mod features;
pub mod forecaster;
pub mod iforest;
pub mod metadata;
pub mod series;
pub mod watch;

pub use error::ModelError;
pub use forecaster::{Forecast, Forecaster};
pub use iforest::IsolationForest;

/// Where the committed models live, relative to the repository root.
pub const DEFAULT_ARTIFACTS: &str = "models/artifacts";
