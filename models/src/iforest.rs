//! The isolation forest: loaded once with tract, scores batches of feature vectors.
//!
//! The ONNX graph (built by `models/train/train_iforest.py`) takes `features` `[batch, 10]`
//! and gives `anomaly_score` `[batch, 1]`, scikit-learn's `-score_samples`: near 1 for an
//! isolated point, near 0.5 and below for ordinary ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::ModelError;
use crate::features::FEATURES;
use crate::metadata::{self, IforestMeta};

/// Rows scored per run of the plan: every run has this shape, the last of a call padded with
/// zeros. One shape for every call, because tract's kernels for other shapes sum in another
/// order: on some CPUs the same row scored in a batch of 64 and in one of 16 differed in the
/// last bit of an f32, enough for a restart's warm start (which scores past windows in other
/// batches than the first run did) to give other alert likelihoods.
pub const BATCH: usize = 16;

/// A loaded isolation forest.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    /// The graph with the batch fixed at [`BATCH`]: tract runs it without evaluating symbolic
    /// shapes per call, and a row's score does not depend on the batch it came in.
    plan: Arc<TypedRunnableModel>,
    meta: IforestMeta,
    path: PathBuf,
}

impl IsolationForest {
    /// Loads `path` (ONNX) with its metadata beside it; refuses a file whose digest, inputs or
    /// outputs do not match.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let (bytes, meta) = metadata::load::<IforestMeta>(path)?;
        let typed = optimised(path, &bytes, &[meta.input.as_str()], &meta.output)?;
        let onnx_err = onnx_error(path);
        let fact = typed.input_fact(0).map_err(onnx_err)?;
        let dims = fact.shape.dims();
        if fact.datum_type != f32::datum_type()
            || dims.len() != 2
            || dims[1] != TDim::from(FEATURES as i64)
        {
            return Err(ModelError::Mismatch {
                path: path.to_path_buf(),
                reason: format!("input is {fact:?}, expected f32 [batch, {FEATURES}]"),
            });
        }
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .and_then(|m| m.with_input_fact(0, f32::fact([BATCH, FEATURES]).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(onnx_err)?;
        Ok(Self {
            plan,
            meta,
            path: path.to_path_buf(),
        })
    }

    /// The metadata the model was loaded with.
    pub fn meta(&self) -> &IforestMeta {
        &self.meta
    }

    /// Model version (from the metadata).
    pub fn version(&self) -> &str {
        &self.meta.version
    }

    /// Anomaly scores of a batch of feature vectors, in order.
    pub fn score(&self, rows: &[[f32; FEATURES]]) -> Result<Vec<f32>, ModelError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let run_err = |e: TractError| ModelError::Run {
            model: self.path.display().to_string(),
            reason: format!("{e:#}"),
        };
        let mut scores = Vec::with_capacity(rows.len());
        let mut rest = rows;
        while !rest.is_empty() {
            let take = rest.len().min(BATCH);
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            let mut flat: Vec<f32> = chunk.iter().flatten().copied().collect();
            flat.resize(BATCH * FEATURES, 0.0);
            let input = Tensor::from_shape(&[BATCH, FEATURES], &flat).map_err(run_err)?;
            let out = self.plan.run(tvec![input.into()]).map_err(run_err)?;
            let view = out[0].to_plain_array_view::<f32>().map_err(run_err)?;
            scores.extend(view.iter().copied().take(take));
        }
        Ok(scores)
    }
}

/// Maps a tract error while loading `path` to [`ModelError::Onnx`].
pub(crate) fn onnx_error(path: &Path) -> impl Fn(TractError) -> ModelError + Copy + '_ {
    move |e| ModelError::Onnx {
        path: path.to_path_buf(),
        reason: format!("{e:#}"),
    }
}

/// Reads an ONNX graph, checks its input and output names, and optimises it.
pub(crate) fn optimised(
    path: &Path,
    bytes: &[u8],
    inputs: &[&str],
    output: &str,
) -> Result<TypedModel, ModelError> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(onnx_error(path))?;
    check_io(&model, path, inputs, output)?;
    model.into_optimized().map_err(onnx_error(path))
}

/// Checks that the graph's inputs and first output carry the names the metadata gives.
pub(crate) fn check_io(
    model: &InferenceModel,
    path: &Path,
    inputs: &[&str],
    output: &str,
) -> Result<(), ModelError> {
    let mismatch = |reason: String| ModelError::Mismatch {
        path: path.to_path_buf(),
        reason,
    };
    let ins = model.input_outlets().map_err(|e| mismatch(e.to_string()))?;
    let got: Vec<&str> = ins
        .iter()
        .map(|o| model.node(o.node).name.as_str())
        .collect();
    if got != inputs {
        return Err(mismatch(format!(
            "inputs are {got:?}, metadata says {inputs:?}"
        )));
    }
    let outs = model
        .output_outlets()
        .map_err(|e| mismatch(e.to_string()))?;
    let got_out = outs
        .first()
        .map(|o| {
            model
                .outlet_label(*o)
                .unwrap_or(model.node(o.node).name.as_str())
                .to_string()
        })
        .unwrap_or_default();
    if got_out != output {
        return Err(mismatch(format!(
            "first output is {got_out:?}, metadata says {output:?}"
        )));
    }
    Ok(())
}
