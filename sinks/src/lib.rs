//! `apo-sinks`: where results go.
//!
//! - [`columns`]: rows of any table to Arrow batches and back, from the table's one declaration;
//! - [`kafka`]: window statistics to the `apo.window_stats` topic (JSON, key = series + window);
//! - [`parquet`]: window statistics to Parquet files under `<data-dir>/window_stats/date=…/`,
//!   written to a temporary file and renamed into place when complete;
//! - [`history`]: `window_stats` and `red` rows read back from Parquet (warm start of the models);
//! - [`sql`]: `apo sql`, DataFusion over every table in the data directory.

pub mod columns;
pub mod history;
pub mod kafka;
pub mod parquet;
pub mod sql;
