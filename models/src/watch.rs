//! Replacing a model while the pipeline runs: a [`Watched`] model looks at its files'
//! modification times at most every `every` and, when either the ONNX file or its metadata
//! changed, loads the new pair. A pair that does not load (half-written, digest not yet
//! matching, corrupt) is logged and the running model keeps scoring, so no window goes
//! unscored; the next change is tried again. To roll out a model, write both files under
//! temporary names and rename them over the old ones.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::ModelError;
use crate::metadata::metadata_path;
use crate::{Forecaster, IsolationForest};

/// A model that can be loaded from a path and names its version.
pub trait Loadable: Sized {
    /// Loads the model at `path` (and its metadata beside it).
    fn load(path: &Path) -> Result<Self, ModelError>;
    /// The loaded model's version.
    fn version(&self) -> &str;
}

impl Loadable for IsolationForest {
    fn load(path: &Path) -> Result<Self, ModelError> {
        IsolationForest::load(path)
    }
    fn version(&self) -> &str {
        IsolationForest::version(self)
    }
}

impl Loadable for Forecaster {
    fn load(path: &Path) -> Result<Self, ModelError> {
        Forecaster::load(path)
    }
    fn version(&self) -> &str {
        Forecaster::version(self)
    }
}

type Stamp = (Option<SystemTime>, Option<SystemTime>);

/// A loaded model and the files it came from. A clone watches the same files on its own.
#[derive(Clone)]
pub struct Watched<M> {
    path: PathBuf,
    model: M,
    stamp: Stamp,
    every: Duration,
    checked: Instant,
    reloads: u64,
}

fn stamp(path: &Path) -> Stamp {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(path), m(&metadata_path(path)))
}

impl<M: Loadable> Watched<M> {
    /// Loads the model; an error here is a startup error.
    pub fn load(path: &Path, every: Duration) -> Result<Self, ModelError> {
        let before = stamp(path);
        let model = M::load(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            model,
            stamp: before,
            every,
            checked: Instant::now(),
            reloads: 0,
        })
    }

    /// The current model, reloaded first if its files changed since the last look.
    pub fn get(&mut self) -> &M {
        if self.checked.elapsed() >= self.every {
            self.checked = Instant::now();
            let now = stamp(&self.path);
            if now != self.stamp {
                self.stamp = now;
                match M::load(&self.path) {
                    Ok(m) => {
                        tracing::info!(path = %self.path.display(), from = self.model.version(), to = m.version(), "model reloaded");
                        self.model = m;
                        self.reloads += 1;
                    }
                    Err(e) => {
                        tracing::warn!(path = %self.path.display(), error = %e, version = self.model.version(), "model files changed but do not load; still scoring with the running model");
                    }
                }
            }
        }
        &self.model
    }

    /// Times a new model was taken.
    pub fn reloads(&self) -> u64 {
        self.reloads
    }
}
