//! The worker loop. [`run_lanes`] steps one timely worker over its lanes (one per input topic,
//! see [`crate::engine::lane`]): each reads its source, keeps its watermark, feeds its job's
//! dataflow, and commits offsets behind that job's durability frontier; [`run_job`] runs one
//! job alone.
//!
//! The dataflow's input time is the watermark quantised to whole seconds, so window ends —
//! whole seconds — close exactly when the watermark passes them. Each record is classified
//! against the watermark at the moment it is read, which is what makes a replay reproduce the
//! same windows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apo_ingest::dlq::DeadLetterSink;
use apo_ingest::source::MessageSource;
use timely::worker::Worker;

use crate::engine::config::LaneConfig;
use crate::engine::error::PipelineError;
use crate::engine::job::Job;
use crate::engine::lane::{JobLane, Lane, WorkerReport};
use crate::engine::progress::Progress;

/// Further worker steps after each read batch, while operators have work queued.
const MAX_EXTRA_STEPS: usize = 8;

/// Runs `job` alone on this worker until the input is drained (drain mode), `stop` is set, or an
/// error makes progress impossible (then nothing more is committed and the error returned).
pub fn run_job<J: Job>(
    worker: &mut Worker,
    cfg: &LaneConfig,
    job: J,
    source: Box<dyn MessageSource>,
    dlq: Box<dyn DeadLetterSink>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> Result<WorkerReport, PipelineError> {
    let lane = JobLane::new(worker, cfg, job, source, dlq, progress)?;
    let mut reports = run_lanes(worker, vec![Box::new(lane)], stop)?;
    Ok(reports.pop().unwrap_or_default())
}

/// Steps this worker over `lanes` (each a job built on it with [`JobLane::new`]) until every
/// lane is finished (drain mode), `stop` is set, or an error makes progress impossible (then
/// nothing more is committed and the error returned). Returns each lane's report, in order.
pub fn run_lanes(
    worker: &mut Worker,
    mut lanes: Vec<Box<dyn Lane>>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<WorkerReport>, PipelineError> {
    let result = (|| loop {
        if let Some(e) = lanes.iter().find_map(|l| l.failure()) {
            return Err(e);
        }
        // Stopping: read nothing more, commit what is durable now, and leave.
        let stopping = stop.load(Ordering::Relaxed);
        // Wait for input only when no lane has any.
        let all_idle = lanes.iter().all(|l| l.idle());
        let timeout = if all_idle {
            Duration::from_millis(20) / lanes.len().max(1) as u32
        } else {
            Duration::ZERO
        };
        let mut behind = false;
        for lane in lanes.iter_mut() {
            // Output waiting for the broker: let it catch up before reading more.
            if lane.behind() {
                behind = true;
            } else if !stopping {
                lane.pump(timeout)?;
            }
        }
        if behind {
            worker.step_or_park(Some(Duration::from_millis(1)));
        } else {
            worker.step();
        }
        // A closed window crosses several operators (aggregate, exchange, merge, sink), one per
        // step: finish that now rather than one hop per read batch, which would add a batch's
        // read-and-decode time per hop to close-to-output latency. Bounded, as an operator may
        // keep itself busy.
        for _ in 0..MAX_EXTRA_STEPS {
            if worker.activations().borrow().empty_for() != Some(Duration::ZERO) {
                break;
            }
            worker.step();
        }
        let mut finished = true;
        for lane in lanes.iter_mut() {
            finished &= lane.settle(stopping)?;
        }
        if finished {
            return Ok(());
        }
    })();
    if let Err(e) = result {
        tracing::error!(worker = worker.index(), error = %e, "stopping without committing further");
        // Operators still hold capabilities (output waiting for a broker that is gone, windows
        // never closed): timely would step them forever after this returns. Drop them.
        drop_dataflows(worker, lanes);
        return Err(e);
    }
    let reports = lanes.iter_mut().map(|l| l.finish()).collect();
    if stop.load(Ordering::Relaxed) {
        // A stop is not the end of the input: dropping the inputs would close every open
        // window and retract the whole current service map, in an event time that never
        // came. What is durable is committed; the rest is replayed after a restart.
        drop_dataflows(worker, lanes);
    }
    reports
}

/// Drops the lanes and every dataflow of `worker` without letting their inputs close.
fn drop_dataflows(worker: &mut Worker, lanes: Vec<Box<dyn Lane>>) {
    drop(lanes);
    for id in worker.installed_dataflows() {
        worker.drop_dataflow(id);
    }
}
