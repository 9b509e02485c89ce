//! The errors of building and running the topology: each names what it was doing.

use apo_core::{IngestError, SinkError};
use apo_dataflow::PipelineError;

/// Why a run (or `apo produce`) could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting is out of range or inconsistent with another; the message names the flag.
    #[error("{0}")]
    Config(String),
    /// A file the run needs (the SLO file, a hostfile) could not be read or parsed.
    #[error("{what} {path}: {reason}")]
    File {
        /// What the file is for.
        what: &'static str,
        /// Its path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broker, a topic, a source or a dead-letter producer.
    #[error("{context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        #[source]
        /// The Kafka error.
        source: IngestError,
    },
    /// An output sink could not be created.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A lane could not be built or failed while running.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The models did not load.
    #[error("loading the models (--models false runs without them)")]
    Models(#[source] apo_models::ModelError),
    /// One or more workers stopped with an error (each worker's, joined).
    #[error("{0}")]
    Workers(String),
}

impl RunError {
    /// A Kafka error, with what was being done.
    pub fn kafka(context: impl Into<String>, source: IngestError) -> Self {
        RunError::Kafka {
            context: context.into(),
            source,
        }
    }
}
