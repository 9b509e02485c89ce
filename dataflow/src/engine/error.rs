//! Why a worker stopped.

use apo_ingest::IngestError;

use apo_core::SinkError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("sink failed: {0}")]
    Sink(#[from] SinkError),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Drain mode made no progress for the configured time.
    #[error("{0}")]
    Stalled(String),
}
