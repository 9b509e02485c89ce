//! The run's settings as flags: clap argument groups of `apo run` and `apo produce`. Every flag
//! can also come from an environment variable (`APO_…`, shown in `--help`); the binary layers a
//! TOML file under both (file values become the flags' defaults). [`crate::RunConfig`] turns
//! [`RunArgs`] into the typed, checked configuration the topology is built from.

mod alert;
mod kafka;
mod produce;
mod run;

use std::time::Duration;

pub use alert::AlertArgs;
pub use kafka::KafkaArgs;
pub use produce::ProduceArgs;
pub use run::{ModelArgs, RunArgs, TraceArgs};

/// Parses a human duration (`500ms`, `10s`, `5m`, `7d`) for a flag.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (examples: 500ms, 10s, 5m, 7d)"))
}
