//! `apo-sinks`: where results go.
//!
//! - [`kafka`]: window statistics to the `apo.window_stats` topic (JSON, key = series + window);
//! - [`parquet`]: window statistics to Parquet files under `<data-dir>/window_stats/date=…/`,
//!   written to a temporary file and renamed into place when complete;
//! - [`memory`]: an in-memory sink for benchmarks and tests;
//! - [`sql`]: `apo sql`, DataFusion over every table in the data directory.

pub mod kafka;
pub mod memory;
pub mod parquet;
pub mod sql;
