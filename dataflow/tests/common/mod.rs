//! Shared by the dataflow tests: a sink that collects rows in memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apo_dataflow::sink::{SinkError, StatsSink};

/// Collects every row written; always durable.
#[derive(Clone)]
pub struct Collect<R>(pub Arc<Mutex<Vec<R>>>, pub u64);

impl<R> Default for Collect<R> {
    fn default() -> Self {
        Collect(Arc::new(Mutex::new(Vec::new())), 0)
    }
}

impl<R: Clone> StatsSink<R> for Collect<R> {
    fn name(&self) -> &str {
        "collect"
    }
    fn write(&mut self, rows: &[R]) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend_from_slice(rows);
        self.1 += 1;
        Ok(())
    }
    fn poll_durable(&mut self, _finish: bool) -> Result<u64, SinkError> {
        Ok(self.1)
    }
    fn next_poll(&self) -> Option<Duration> {
        None
    }
}
