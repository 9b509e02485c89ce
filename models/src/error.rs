//! The models crate's errors: every way loading or scoring a model can fail, each naming the
//! file and what was wrong, so a startup error says what to fix.

use std::path::PathBuf;

/// Loading or running a model failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model or its metadata could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata JSON beside a model is malformed or says something this build cannot use.
    #[error("model metadata {path}: {reason}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ONNX file does not match its metadata (digest, inputs, outputs).
    #[error("model {path} does not match its metadata: {reason}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// tract could not load or optimise the ONNX graph.
    #[error("model {path} is not a usable ONNX graph: {reason}")]
    Onnx {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Scoring failed at run time (wrong batch shape, tract error).
    #[error("scoring with {model} failed: {reason}")]
    Run {
        /// The model's name and version.
        model: String,
        /// What failed.
        reason: String,
    },
    /// The caller's input cannot be scored (too short a history, bad resolution).
    #[error("{0}")]
    Input(String),
}
