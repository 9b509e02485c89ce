//! `apo-bench`: APO measured. [`bench`] is `apo bench`: the metrics pipeline (`metrics`), the
//! trace pipeline (`spans`), the models (`models`) and the planner and actuator (`decisions`), each against a baseline measured in the
//! same run (raw consumption of the same topic, the broker's own acknowledgement time: `raw`),
//! with every phase timed and its peak memory taken (`phase`); what checkpoints cost and save
//! (`checkpoints`); OTLP input as the SDK exports
//! it against APO JSON (`otlp`). [`score`] and [`forecast`] are
//! `apo score` and `apo forecast`: the models over a `timestamp,value` CSV file, as the stream
//! would run them, for offline evaluation (`offline`).
//!
//! This crate is the body of those commands and prints their reports, so it reports errors
//! with `anyhow` as the binary does.

mod args;
mod checkpoints;
mod decisions;
mod metrics;
mod models;
mod offline;
pub mod otlp;
mod phase;
mod raw;
mod series;
mod spans;

pub use args::{BenchArgs, ForecastArgs, ScoreArgs, SeriesIo};
pub use metrics::bench;
pub use offline::{forecast, score};
pub use phase::{peak_rss_mib, reset_peak_rss, run_phase, Parts, PhaseResult};
pub use raw::raw_consume;
