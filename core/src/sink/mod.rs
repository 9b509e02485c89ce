//! The output-sink contract: where rows of any output table go ([`RowSink`]), numbered writes
//! that become durable on the sink's own schedule, and its error. The durable sink operator in
//! `apo-dataflow` drives it; `apo-sinks` implements it (Kafka topics, Parquet files, memory).

mod memory;

pub use memory::MemorySink;

use std::time::Duration;
use std::time::Instant;

use apo_schemas::WindowStats;

/// A sink failure; the message names the sink and the cause.
#[derive(Debug, thiserror::Error, Clone)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where windowed output rows (by default window statistics) go. Writes are numbered 1, 2, …
/// in the order of `write` calls.
pub trait RowSink<R = WindowStats> {
    /// The sink's name in logs and errors (`kafka:apo.window_stats`, `parquet:red`, …).
    fn name(&self) -> &str;
    /// Accepts rows; must not wait for them to become durable.
    fn write(&mut self, rows: &[R]) -> Result<(), SinkError>;
    /// Advances durability without waiting on the network (a sink may do due local work, such
    /// as writing a file) and returns how many writes are durable: every write up to that
    /// number. `finish`: no more writes will come, make everything durable as soon as possible.
    fn poll_durable(&mut self, finish: bool) -> Result<u64, SinkError>;
    /// While writes are not durable: how long until `poll_durable` should be called again.
    fn next_poll(&self) -> Option<Duration>;
    /// How long a write may wait to become durable here before the pipeline should stop
    /// reading (backpressure). `None` (the default): durability comes on the sink's own
    /// schedule (a Parquet roll), and waiting for it must not stop the input.
    fn backpressure_after(&self) -> Option<Duration> {
        None
    }
    /// When the writes `poll_durable` last counted became durable, where the sink knows it
    /// (a delivery report served off the worker thread); `None`: when `poll_durable` said so.
    fn durable_at(&self) -> Option<Instant> {
        None
    }
    /// Rows this sink could never store (a Kafka record the broker refuses for its size or
    /// content) and sent to the dead-letter topic instead, so far. Such a row counts as
    /// durable once its dead letter is; it does not stop the pipeline.
    fn dead_lettered(&self) -> u64 {
        0
    }
}

/// How long a write to a network sink (Kafka) may wait for its acknowledgement before the sinks
/// report themselves behind ([`SinkState::behind`]).
pub const OUTPUT_DELAY_BOUND: Duration = Duration::from_millis(10);
