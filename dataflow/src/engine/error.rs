//! Why a worker stopped.

use apo_ingest::IngestError;

use apo_core::SinkError;

#[derive(Debug, thiserror::Error)]
/// Why a lane could not be built or stopped.
pub enum PipelineError {
    #[error(transparent)]
    /// Its source or dead-letter sink failed.
    Ingest(#[from] IngestError),
    #[error("sink failed: {0}")]
    /// An output sink failed.
    Sink(#[from] SinkError),
    #[error("invalid configuration: {0}")]
    /// A setting no lane can run with.
    Config(String),
    /// Drain mode made no progress for the configured time.
    #[error("{0}")]
    Stalled(String),
}
