//! Shared by the dataflow tests: a sink that collects rows in memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apo_dataflow::{RowSink, SinkError};

/// Collects every row written; always durable.
#[derive(Clone)]
pub struct Collect<R>(pub Arc<Mutex<Vec<R>>>, pub u64);

impl<R> Default for Collect<R> {
    fn default() -> Self {
        Collect(Arc::new(Mutex::new(Vec::new())), 0)
    }
}

impl<R: Clone> RowSink<R> for Collect<R> {
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

/// Runs the job made by `make_job` on `workers` timely workers in drain mode, worker 0 reading
/// `payloads` from memory (one partition).
#[allow(dead_code)] // not every test binary uses it
pub fn run_from_memory<J: apo_dataflow::Job>(
    workers: usize,
    payloads: Vec<Vec<u8>>,
    make_job: impl Fn() -> J + Send + Sync + 'static,
) {
    use apo_dataflow::Progress;
    use apo_dataflow::{run_job, LaneConfig};
    use apo_ingest::dlq::MemoryDeadLetters;
    use apo_ingest::source::MemorySource;
    use std::sync::atomic::AtomicBool;

    let payloads = Arc::new(payloads);
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let cfg = LaneConfig {
            drain: true,
            ..Default::default()
        };
        let mine = if worker.index() == 0 {
            (*payloads).clone()
        } else {
            Vec::new()
        };
        run_job(
            worker,
            &cfg,
            make_job(),
            Box::new(MemorySource::new("memory", mine)),
            Box::new(MemoryDeadLetters::default()),
            Arc::new(Progress::default()),
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap()
    })
    .unwrap();
    for g in guards.join() {
        g.unwrap();
    }
}
