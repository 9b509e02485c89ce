//! The metadata JSON beside each model (`iforest.onnx` → `iforest.json`), and the checks
//! made at load: the right kind, the feature definition this build computes, and the
//! SHA-256 of the ONNX file it describes (a truncated or swapped file is refused).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::features::{FEATURES_VERSION, FEATURE_NAMES};

/// Metadata of the isolation forest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IforestMeta {
    /// The model kind (`iforest`, `lstm`), checked against the loader's.
    pub kind: String,
    /// The model's version, carried into every output row.
    pub version: String,
    /// SHA-256 of the ONNX file, checked at load.
    pub sha256: String,
    /// The feature layout the model was trained on, checked against this build's.
    pub features_version: u32,
    /// The ONNX input's name.
    pub input: String,
    /// The ONNX output's name (the score).
    pub output: String,
    /// The feature names, in input order, checked against this build's.
    pub features: Vec<String>,
    /// Anomaly score at or above which a window is anomalous (before alert shaping).
    pub threshold: f64,
    /// How the threshold was chosen.
    #[serde(default)]
    pub threshold_rule: String,
    /// What the model was trained on (kept for the record).
    #[serde(default)]
    pub training_data: serde_json::Value,
    /// How it scored on its training data (kept for the record).
    #[serde(default)]
    pub training_metrics: serde_json::Value,
}

/// Metadata of the LSTM forecaster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LstmMeta {
    /// The model kind (`iforest`, `lstm`), checked against the loader's.
    pub kind: String,
    /// The model's version, carried into every output row.
    pub version: String,
    /// SHA-256 of the ONNX file, checked at load.
    pub sha256: String,
    /// The feature layout the model was trained on, checked against this build's.
    pub features_version: u32,
    /// Values of history the model reads.
    pub seq_len: usize,
    /// Width of its hidden state.
    pub hidden: usize,
    /// Steps ahead it forecasts.
    pub horizon_steps: usize,
    /// Seconds ahead it forecasts at its training resolution.
    pub horizon_seconds: u64,
    /// The names of its output columns (median and interval bounds).
    pub output_columns: Vec<String>,
    /// What the model was trained on (kept for the record).
    #[serde(default)]
    pub training_data: serde_json::Value,
    /// How it scored on held-out data (kept for the record).
    #[serde(default)]
    pub training_metrics: serde_json::Value,
}

/// The metadata path of a model: the same name with `.json`.
pub fn metadata_path(model: &Path) -> PathBuf {
    model.with_extension("json")
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a model's bytes and its metadata, checking the digest.
pub fn load<M: DeserializeOwned + Described>(model: &Path) -> Result<(Vec<u8>, M), ModelError> {
    let meta_path = metadata_path(model);
    let bytes = read(model)?;
    let meta_bytes = read(&meta_path)?;
    let meta: M = serde_json::from_slice(&meta_bytes).map_err(|e| ModelError::Metadata {
        path: meta_path.clone(),
        reason: e.to_string(),
    })?;
    let bad = |reason: String| ModelError::Metadata {
        path: meta_path.clone(),
        reason,
    };
    if meta.kind() != M::KIND {
        return Err(bad(format!(
            "kind is {:?}, expected {:?}",
            meta.kind(),
            M::KIND
        )));
    }
    if meta.features_version() != FEATURES_VERSION {
        return Err(bad(format!(
            "features_version {} but this build computes version {FEATURES_VERSION}",
            meta.features_version()
        )));
    }
    let digest = hex(&Sha256::digest(&bytes));
    if !digest.eq_ignore_ascii_case(meta.sha256()) {
        return Err(ModelError::Mismatch {
            path: model.to_path_buf(),
            reason: format!("SHA-256 is {digest}, metadata says {}", meta.sha256()),
        });
    }
    meta.check(&meta_path)?;
    Ok((bytes, meta))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`load`] needs to know of a metadata type.
pub trait Described {
    /// The kind the file must name.
    const KIND: &'static str;
    /// The kind it names.
    fn kind(&self) -> &str;
    /// The ONNX file's digest it names.
    fn sha256(&self) -> &str;
    /// The feature layout it names.
    fn features_version(&self) -> u32;
    /// Further checks of the metadata's own fields.
    fn check(&self, path: &Path) -> Result<(), ModelError>;
}

impl Described for IforestMeta {
    const KIND: &'static str = "isolation_forest";
    fn kind(&self) -> &str {
        &self.kind
    }
    fn sha256(&self) -> &str {
        &self.sha256
    }
    fn features_version(&self) -> u32 {
        self.features_version
    }
    fn check(&self, path: &Path) -> Result<(), ModelError> {
        if self.features.iter().map(String::as_str).ne(FEATURE_NAMES) {
            return Err(ModelError::Metadata {
                path: path.to_path_buf(),
                reason: format!(
                    "features {:?}, this build computes {FEATURE_NAMES:?}",
                    self.features
                ),
            });
        }
        if !self.threshold.is_finite() || self.threshold <= 0.0 || self.threshold >= 1.0 {
            return Err(ModelError::Metadata {
                path: path.to_path_buf(),
                reason: format!(
                    "threshold {} is not an anomaly score in (0, 1)",
                    self.threshold
                ),
            });
        }
        Ok(())
    }
}

impl Described for LstmMeta {
    const KIND: &'static str = "lstm_forecaster";
    fn kind(&self) -> &str {
        &self.kind
    }
    fn sha256(&self) -> &str {
        &self.sha256
    }
    fn features_version(&self) -> u32 {
        self.features_version
    }
    fn check(&self, path: &Path) -> Result<(), ModelError> {
        let bad = |reason: String| ModelError::Metadata {
            path: path.to_path_buf(),
            reason,
        };
        if self.seq_len == 0
            || self.hidden == 0
            || self.horizon_steps == 0
            || self.horizon_seconds == 0
        {
            return Err(bad(
                "seq_len, hidden, horizon_steps and horizon_seconds must be positive".into(),
            ));
        }
        if self.output_columns != ["median", "lower", "upper"] {
            return Err(bad(format!(
                "output_columns {:?}, expected median, lower, upper",
                self.output_columns
            )));
        }
        Ok(())
    }
}
