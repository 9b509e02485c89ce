//! Checkpoints (issue 30): a consistent snapshot of a job's state on every worker — each
//! lane's read positions and watermark, each stateful operator's state — taken every
//! `--checkpoint-interval` without stopping the stream, written to the job's checkpoint
//! directory before the offsets it reflects are committed, and restored at start, so a restart
//! re-reads at most one interval of input instead of the stream since its last clean cut.
//! `coordinator.rs` decides the epochs and collects the deposits; `store.rs` writes, checks
//! and loads them, in a directory or (`object.rs`) an object store.

pub(crate) mod coordinator;
pub(crate) mod object;
pub(crate) mod store;

pub use coordinator::{Checkpoints, OperatorCheckpoint, RestoreError, Taken, Wakers};
#[allow(unused_imports)]
pub use store::{LaneState, Loaded, Manifest, Store, StoreError, KEEP};
