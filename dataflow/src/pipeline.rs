//! The worker loop and the settings it runs under. [`run_lanes`] steps one timely worker over
//! its lanes (one per input topic, see [`crate::lane`]): each reads its source, keeps its
//! watermark, feeds its job's dataflow, and commits offsets behind that job's durability
//! frontier. [`run_worker`] is the metrics pipeline alone: read → decode → validate →
//! dead-letter or pre-aggregate → exchange → windows → durable sinks.
//!
//! The dataflow's input time is the watermark quantised to whole seconds, so window ends —
//! whole seconds — close exactly when the watermark passes them. Each record is classified
//! against the watermark at the moment it is read, which is what makes a replay reproduce the
//! same windows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apo_ingest::decode::{Encoding, TimeBounds};
use apo_ingest::dlq::DeadLetterSink;
use apo_ingest::source::MessageSource;
use apo_ingest::IngestError;
use timely::worker::Worker;

use crate::job::{Job, MetricsJob};
use crate::lane::{JobLane, Lane};
use crate::progress::Progress;
use crate::sink::{SinkError, StatsSink};

/// Granularity of timely time: the watermark is rounded down to whole seconds.
pub const TICK_MS: i64 = 1000;

/// Further worker steps after each read batch, while operators have work queued.
const MAX_EXTRA_STEPS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("sink failed: {0}")]
    Sink(#[from] SinkError),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Drain mode made no progress for the configured time.
    #[error("{0}")]
    Stalled(String),
}

/// Settings of the metrics pipeline (see `apo run --help` for their meaning and defaults).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub window_seconds: Vec<u32>,
    pub relative_accuracy: f64,
    pub lateness: Duration,
    pub horizon: Duration,
    pub idle_timeout: Duration,
    pub encoding: Encoding,
    pub time_bounds: TimeBounds,
    /// Stop once every partition is caught up, closing all windows (batch / test mode).
    pub drain: bool,
    /// Drain mode: fail when no message was read and no output became durable for this long
    /// (the broker is gone: without it a drain would wait forever).
    pub drain_stall: Duration,
    pub commit_interval: Duration,
    pub poll_batch: usize,
    /// Per-worker ceiling on messages read per second (throttles backfills); `None`: unlimited.
    pub max_messages_per_sec: Option<f64>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            window_seconds: vec![10, 60],
            relative_accuracy: 0.01,
            lateness: Duration::from_secs(5),
            horizon: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(30),
            encoding: Encoding::Auto,
            time_bounds: TimeBounds::default(),
            drain: false,
            drain_stall: Duration::from_secs(60),
            commit_interval: Duration::from_secs(1),
            poll_batch: 100,
            max_messages_per_sec: None,
        }
    }
}

impl PipelineConfig {
    pub fn validate(&self) -> Result<(), PipelineError> {
        let bad = |m: String| Err(PipelineError::Config(m));
        if self.window_seconds.is_empty() || self.window_seconds.contains(&0) {
            return bad("window sizes must be whole seconds, at least one, none zero".into());
        }
        if !(self.relative_accuracy > 0.0 && self.relative_accuracy < 1.0) {
            return bad(format!(
                "relative accuracy must be in (0, 1), got {}",
                self.relative_accuracy
            ));
        }
        if self
            .max_messages_per_sec
            .is_some_and(|r| r.is_nan() || r <= 0.0)
        {
            return bad("the message rate limit must be positive".into());
        }
        if self.poll_batch == 0 {
            return bad("poll batch must be at least 1".into());
        }
        Ok(())
    }
}

/// What a worker did, returned when it stops.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    pub messages: u64,
    pub points: u64,
}

/// Runs the metrics pipeline on this worker until the input is drained (drain mode), `stop` is
/// set, or an error makes progress impossible (then nothing more is committed and the error
/// returned).
pub fn run_worker(
    worker: &mut Worker,
    cfg: &PipelineConfig,
    source: Box<dyn MessageSource>,
    dlq: Box<dyn DeadLetterSink>,
    sinks: Vec<Box<dyn StatsSink>>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> Result<WorkerReport, PipelineError> {
    let job = MetricsJob::new(
        &cfg.window_seconds,
        cfg.relative_accuracy,
        cfg.encoding,
        cfg.time_bounds,
        sinks,
    );
    run_job(worker, cfg, job, source, dlq, progress, stop)
}

/// Runs `job` on this worker (see [`run_worker`]).
pub fn run_job<J: Job>(
    worker: &mut Worker,
    cfg: &PipelineConfig,
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
        drop(lanes);
        for id in worker.installed_dataflows() {
            worker.drop_dataflow(id);
        }
        return Err(e);
    }
    lanes.iter_mut().map(|l| l.finish()).collect()
}
