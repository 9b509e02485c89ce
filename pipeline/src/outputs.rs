//! A worker's outputs: every table is written to a Kafka topic and a Parquet table, and
//! [`Outputs::standard`] gives that pair for any row type. Adding a table is one call. A row the
//! broker refuses for good (too large, invalid) goes to the dead-letter topic instead of
//! stopping the pipeline ([`KafkaStatsSink::with_dead_letters`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use apo_core::{RowSink, SinkError};
use apo_schemas::OutputRow;
use apo_sinks::kafka::{batched, KafkaStatsSink};
use apo_sinks::parquet::{ParquetRow, ParquetStatsSink};
use rdkafka::ClientConfig;
use serde::Serialize;

/// How a table's Kafka producer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every write sent at once (`linger.ms=0`): the close-to-output latency is the point
    /// (window statistics).
    Prompt,
    /// Compressed and batched for a few milliseconds (`lz4`, `linger.ms=5`, unless the client
    /// settings say otherwise): for tables of many small writes (the trace pipeline's, the
    /// models'), where bytes and requests bound the throughput.
    Batched,
}

/// Where one worker writes its tables: a Kafka client, the data directory, the worker's own
/// Parquet file prefix and the roll interval.
#[derive(Clone)]
pub struct Outputs {
    prompt: ClientConfig,
    batched: ClientConfig,
    data_dir: PathBuf,
    prefix: String,
    roll: Duration,
    dead_letters: String,
}

impl Outputs {
    /// Outputs through `client`, Parquet files under `data_dir` named from `prefix` (unique per
    /// writer: process and worker, e.g. `p0-w1`), written at least every `roll`; rows the
    /// broker refuses go to `dead_letters` (the dead-letter topic).
    pub fn new(
        client: &ClientConfig,
        data_dir: &Path,
        prefix: &str,
        roll: Duration,
        dead_letters: &str,
    ) -> Self {
        Outputs {
            prompt: client.clone(),
            batched: batched(client),
            data_dir: data_dir.to_path_buf(),
            prefix: prefix.to_string(),
            roll,
            dead_letters: dead_letters.to_string(),
        }
    }

    /// The same outputs with `suffix` added to the file prefix: for a second writer of a table
    /// on the same worker (the trace lane's anomaly rows beside the metrics lane's).
    pub fn suffixed(&self, suffix: &str) -> Self {
        Outputs {
            prefix: format!("{}-{suffix}", self.prefix),
            ..self.clone()
        }
    }

    /// The client settings of prompt outputs (for a topic without a Parquet table).
    pub fn client(&self) -> &ClientConfig {
        &self.prompt
    }

    /// The standard output of a table: its rows to `topic` (JSON, keyed by the row's
    /// dimensions and window; a row the broker refuses to the dead-letter topic) and to the
    /// row type's Parquet table.
    pub fn standard<R>(
        &self,
        topic: &str,
        delivery: Delivery,
    ) -> Result<Vec<Box<dyn RowSink<R>>>, SinkError>
    where
        R: OutputRow + ParquetRow + Serialize,
    {
        let client = match delivery {
            Delivery::Prompt => &self.prompt,
            Delivery::Batched => &self.batched,
        };
        Ok(vec![
            Box::new(KafkaStatsSink::with_dead_letters(
                client,
                topic,
                &self.dead_letters,
            )?),
            Box::new(ParquetStatsSink::<R>::new(
                &self.data_dir,
                &self.prefix,
                self.roll,
            )?),
        ])
    }
}
