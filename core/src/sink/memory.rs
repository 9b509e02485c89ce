//! A sink that keeps output rows in memory, always durable: for benchmarks and tests (every
//! crate's tests collect rows with it instead of a collecting sink of their own).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{RowSink, SinkError};
use apo_schemas::WindowStats;

/// Collects every row written.
pub struct MemorySink<R = WindowStats> {
    /// The rows written so far, shared with every clone.
    pub rows: Arc<Mutex<Vec<R>>>,
    writes: u64,
}

impl<R> Default for MemorySink<R> {
    fn default() -> Self {
        MemorySink {
            rows: Arc::new(Mutex::new(Vec::new())),
            writes: 0,
        }
    }
}

impl<R> MemorySink<R> {
    /// A sink writing into `rows` (shared with whoever holds them).
    pub fn sharing(rows: Arc<Mutex<Vec<R>>>) -> Self {
        MemorySink { rows, writes: 0 }
    }
}

impl<R> Clone for MemorySink<R> {
    fn clone(&self) -> Self {
        MemorySink {
            rows: self.rows.clone(),
            writes: self.writes,
        }
    }
}

impl<R: Clone> RowSink<R> for MemorySink<R> {
    fn name(&self) -> &str {
        "memory"
    }
    fn write(&mut self, rows: &[R]) -> Result<(), SinkError> {
        self.rows
            .lock()
            .map_err(|_| SinkError("memory sink poisoned".into()))?
            .extend_from_slice(rows);
        self.writes += 1;
        Ok(())
    }
    fn poll_durable(&mut self, _finish: bool) -> Result<u64, SinkError> {
        Ok(self.writes)
    }
    fn next_poll(&self) -> Option<Duration> {
        None
    }
}
