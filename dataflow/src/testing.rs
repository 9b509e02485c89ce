//! Helpers for the tests of this crate and of the crates above it (feature `test-util`): a job
//! run from memory to the end of its input. Rows are collected with [`crate::MemorySink`].

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use apo_ingest::dlq::MemoryDeadLetters;
use apo_ingest::source::MemorySource;

use crate::{run_job, Job, LaneConfig, Progress};

/// Runs the job made by `make_job` on `workers` timely workers in drain mode, worker 0 reading
/// `payloads` from memory (one partition). Panics when a worker fails: for tests.
pub fn run_from_memory<J: Job>(
    workers: usize,
    payloads: Vec<Vec<u8>>,
    make_job: impl Fn() -> J + Send + Sync + 'static,
) {
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
        .expect("the job runs to the end of its input")
    })
    .expect("timely starts");
    for g in guards.join() {
        g.expect("a worker finished");
    }
}
