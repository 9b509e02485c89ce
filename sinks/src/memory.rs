//! Keeps window statistics in memory (benchmarks, tests). Always durable.

use std::sync::{Arc, Mutex};

use apo_dataflow::sink::{SinkError, StatsSink};
use apo_schemas::WindowStats;

#[derive(Clone, Default)]
pub struct MemorySink {
    pub rows: Arc<Mutex<Vec<WindowStats>>>,
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
        Ok(())
    }
    fn commit_due(&self) -> bool {
        true
    }
    fn commit(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
