//! The actuator's errors: what stops `apo actuate` (a decision that cannot be carried out is
//! not one: it is audited as `rejected` or `failed` and the actuator goes on).

/// Why `apo actuate` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ActuateError {
    /// A flag, the policy file or a key is unusable.
    #[error("{0}")]
    Config(String),
    /// The broker failed or went away.
    #[error("kafka ({context}): {error}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        error: String,
    },
    /// The claims file could not be read or written: executing without it could execute a
    /// decision twice, so the actuator stops.
    #[error("claims file {path}: {error}")]
    Claims {
        /// The file.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// The audit record's row could not be written to the `actions` table (it is on the
    /// topic; the restart writes the row again).
    #[error("the actions table: {0}")]
    Table(String),
    /// Setting up the broker connection failed.
    #[error(transparent)]
    Run(#[from] apo_pipeline::RunError),
}

impl ActuateError {
    /// A Kafka error with what was being done.
    pub fn kafka(context: impl Into<String>, error: impl std::fmt::Display) -> Self {
        ActuateError::Kafka {
            context: context.into(),
            error: error.to_string(),
        }
    }
}
