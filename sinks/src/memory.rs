//! Keeps window statistics in memory (benchmarks, tests). Always durable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apo_dataflow::sink::{SinkError, StatsSink};
use apo_schemas::WindowStats;

#[derive(Clone, Default)]
pub struct MemorySink {
    pub rows: Arc<Mutex<Vec<WindowStats>>>,
    writes: u64,
}

impl StatsSink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }
    fn write(&mut self, rows: &[WindowStats]) -> Result<(), SinkError> {
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
