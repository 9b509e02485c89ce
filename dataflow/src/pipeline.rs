//! The metrics pipeline of one timely worker: read → decode → validate → dead-letter or
//! pre-aggregate → exchange → windows → durable sinks, with offsets committed behind the
//! durability frontier.
//!
//! The worker loop owns the source: it polls messages, keeps the watermark, and advances the
//! dataflow's input time to the watermark (quantised to whole seconds, so window ends — whole
//! seconds — close exactly when the watermark passes them). Each point is classified against the
//! watermark at the moment it is read, which is what makes a replay reproduce the same windows.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apo_ingest::decode::{Encoding, TimeBounds};
use apo_ingest::dlq::{DeadLetter, DeadLetterSink};
use apo_ingest::source::{MessageSource, RawMessage, SourceEvent};
use apo_ingest::watermark::WatermarkTracker;
use apo_ingest::IngestError;
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::worker::Worker;

use crate::commit::PartitionCommits;
use crate::job::{BuildContext, Job, MetricsJob};
use crate::progress::Progress;
use crate::sink::{SinkError, SinkState, StatsSink};

/// Granularity of timely time: the watermark is rounded down to whole seconds.
pub const TICK_MS: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("sink failed: {0}")]
    Sink(#[from] SinkError),
    #[error("invalid configuration: {0}")]
    Config(String),
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

/// The dataflow input with the job's per-tick buffer in front of it. Buffered records go in at
/// the current input time; advancing the time first sends what was buffered at the old one,
/// and notes when each time was reached (for close-to-output latency).
struct Feed<J: Job> {
    input: InputHandleVec<u64, J::Input>,
    job: J,
    outbox: Vec<J::Input>,
    progress: Arc<Progress>,
    worker: usize,
}

impl<J: Job> Feed<J> {
    fn time(&self) -> u64 {
        *self.input.time()
    }

    fn flush(&mut self) {
        if self.job.buffered() > 0 {
            self.job.drain(&mut self.outbox);
            for p in self.outbox.drain(..) {
                self.input.send(p);
            }
        }
    }

    fn advance_to(&mut self, t: u64) {
        if t > self.time() {
            self.flush();
            self.input.advance_to(t);
            self.progress
                .close_clock
                .advance(self.worker, t, Instant::now());
        }
    }
}

fn quantise(wm: i64) -> u64 {
    if wm <= 0 {
        0
    } else {
        (wm - wm.rem_euclid(TICK_MS)) as u64
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
    mut job: J,
    mut source: Box<dyn MessageSource>,
    mut dlq: Box<dyn DeadLetterSink>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> Result<WorkerReport, PipelineError> {
    cfg.validate()?;
    let horizon_ms = cfg.horizon.as_millis() as i64;
    let largest_ms = cfg.window_seconds.iter().copied().max().unwrap_or(1) as i64 * 1000;
    let mut input: InputHandleVec<u64, J::Input> = InputHandleVec::new();
    let probe: ProbeHandle<u64> = ProbeHandle::new();
    let held = Rc::new(Cell::new(0usize));
    let ctx = BuildContext {
        horizon_ms,
        progress: progress.clone(),
        held: held.clone(),
    };
    let sink_states: Vec<Rc<SinkState>> = worker.dataflow::<u64, _, _>(|scope| {
        let (done, states) = job.build(input.to_stream(scope), &ctx);
        done.probe_with(&probe);
        states
    });

    let partitions: Vec<i32> = source.partitions().to_vec();
    let mut tracker =
        WatermarkTracker::new(&partitions, cfg.lateness, cfg.idle_timeout, Instant::now());
    let mut commits: HashMap<i32, PartitionCommits> = partitions
        .iter()
        .map(|&p| (p, PartitionCommits::default()))
        .collect();
    let mut report = WorkerReport::default();
    let mut last_commit = Instant::now();
    let mut last_stats = Instant::now();
    let mut idle_polls = 0u32;
    let mut error: Option<PipelineError> = None;
    let mut feed = Some(Feed {
        input,
        job,
        outbox: Vec::new(),
        progress: progress.clone(),
        worker: worker.index(),
    });
    let wall_now = now_ms();
    // Token bucket for max_messages_per_sec (burst of one second).
    let mut tokens = cfg.max_messages_per_sec.unwrap_or(0.0);
    let mut refilled = Instant::now();

    loop {
        if let Some(e) = sink_states
            .iter()
            .find_map(|s| s.failure.borrow_mut().take())
        {
            error = Some(e.into());
        }
        if error.is_some() {
            break;
        }
        // Stopping: read nothing more, commit what is durable now, and leave.
        let stopping = stop.load(Ordering::Relaxed);
        // Output waiting for the broker: let it catch up before reading more.
        let behind = sink_states.iter().any(|s| s.behind.get());
        if let Some(inp) = feed.as_mut().filter(|_| !stopping && !behind) {
            let now = Instant::now();
            let clock = now_ms().max(wall_now);
            let timeout = if idle_polls > 0 {
                Duration::from_millis(20)
            } else {
                Duration::ZERO
            };
            let mut batch_err: Option<IngestError> = None;
            let mut handle = |ev: SourceEvent<'_>| {
                if batch_err.is_some() {
                    return;
                }
                match ev {
                    SourceEvent::Eof(p) => tracker.caught_up(p),
                    SourceEvent::Message(m) => {
                        tracker.touch(m.partition, now);
                        report.messages += 1;
                        let closed_upto = inp.time() as i64;
                        let r = process_message(
                            m,
                            clock,
                            horizon_ms,
                            &mut tracker,
                            inp,
                            dlq.as_mut(),
                            &progress,
                            &mut report,
                        );
                        match r {
                            Ok((release, end)) => {
                                if let Some(c) = commits.get_mut(&m.partition) {
                                    c.push(m.offset, release, end, closed_upto);
                                }
                            }
                            Err(e) => batch_err = Some(e),
                        }
                    }
                }
            };
            let mut max = cfg.poll_batch;
            if let Some(rate) = cfg.max_messages_per_sec {
                tokens = (tokens + refilled.elapsed().as_secs_f64() * rate).min(rate.max(1.0));
                refilled = Instant::now();
                max = max.min(tokens.floor() as usize);
            }
            let n = if max == 0 {
                std::thread::sleep(Duration::from_millis(5));
                0
            } else {
                source.poll(max, timeout, &mut handle)?
            };
            tokens -= n as f64;
            if let Some(e) = batch_err {
                error = Some(e.into());
                break;
            }
            Progress::add(&progress.messages_in, n as u64);
            idle_polls = if n == 0 && max > 0 {
                idle_polls.saturating_add(1)
            } else {
                0
            };
            inp.flush();
            let wm = tracker.refresh(Instant::now(), now_ms());
            let t = quantise(wm);
            inp.advance_to(t);
            for c in commits.values_mut() {
                c.closed_until(inp.time() as i64);
            }
            progress.watermark_ms.store(wm, Ordering::Relaxed);
            let caught_up = tracker.all_caught_up();
            if cfg.drain && caught_up && n == 0 && max > 0 {
                // End of input: closing the input closes every window.
                feed = None;
                // Windows still open close now, because the input ended.
                progress
                    .close_clock
                    .advance(worker.index(), u64::MAX, Instant::now());
                for c in commits.values_mut() {
                    c.finish();
                }
                tracing::info!(
                    worker = worker.index(),
                    "input drained; closing all windows"
                );
            }
        }
        if behind {
            worker.step_or_park(Some(Duration::from_millis(1)));
        } else {
            worker.step();
        }

        // Commit what is durable.
        let finished = probe.done() || stopping;
        if finished || last_commit.elapsed() >= cfg.commit_interval {
            let durable = probe.with_frontier(|f| f.first().map_or(i64::MAX, |&t| t as i64));
            let mut offsets = Vec::new();
            for (&p, c) in commits.iter_mut() {
                if let Some(o) = c.take_committable(durable) {
                    offsets.push((p, o));
                }
            }
            if !offsets.is_empty() {
                dlq.flush()?;
                source.commit(&offsets, finished)?;
            }
            last_commit = Instant::now();
            // Windows not reported durable yet end after `durable`.
            progress
                .close_clock
                .forget_before((durable.max(0) as u64).saturating_sub(largest_ms as u64));
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            if let Some(lag) = source.lag() {
                progress.lag.store(lag, Ordering::Relaxed);
            }
            progress
                .windows_held
                .store(held.get() as i64, Ordering::Relaxed);
            last_stats = Instant::now();
        }
        if finished {
            break;
        }
    }
    if let Some(e) = error {
        tracing::error!(worker = worker.index(), error = %e, "stopping without committing further");
        return Err(e);
    }
    dlq.flush()?;
    Ok(report)
}

/// Decodes and routes one message; returns its release time for offset commits.
#[allow(clippy::too_many_arguments)]
fn process_message<J: Job>(
    m: RawMessage<'_>,
    clock_ms: i64,
    horizon_ms: i64,
    tracker: &mut WatermarkTracker,
    feed: &mut Feed<J>,
    dlq: &mut dyn DeadLetterSink,
    progress: &Progress,
    report: &mut WorkerReport,
) -> Result<(i64, i64), IngestError> {
    let decoded = match feed.job.decode(m.payload, clock_ms) {
        Ok(d) => d,
        Err(e) => {
            dlq.send(DeadLetter {
                origin: m,
                reason: e.reason(),
                detail: &e.to_string(),
                points: None,
            })?;
            Progress::add(&progress.dlq_messages, 1);
            Progress::add(&progress.points_dlq, 1);
            return Ok((i64::MIN, i64::MIN));
        }
    };
    let total = decoded.items.len() + decoded.errors.len();
    let mut release = i64::MIN;
    let mut last_end = i64::MIN;
    let mut late: Vec<usize> = Vec::new();
    let mut late_detail = String::new();
    // Positions of the points in the message (valid points fill the gaps between errors).
    let mut error_pos = decoded.errors.iter().map(|(i, _)| *i).peekable();
    let mut pos = 0usize;
    let mut used = 0u64;
    for p in decoded.items {
        while error_pos.peek() == Some(&pos) {
            error_pos.next();
            pos += 1;
        }
        let ts = feed.job.event_time(&p);
        let wm = tracker.observe(m.partition, ts);
        let t = quantise(wm);
        // The watermark moved: what was buffered so far belongs to the old time.
        feed.advance_to(t);
        if ts < t as i64 - horizon_ms {
            if late.is_empty() {
                late_detail = format!(
                    "event time {} ms is more than the {} s horizon behind the watermark {} ms",
                    ts,
                    horizon_ms / 1000,
                    t
                );
            }
            late.push(pos);
        } else {
            let end = feed.job.closes_at(&p);
            feed.job.buffer(p);
            used += 1;
            release = release.max(end + horizon_ms);
            last_end = last_end.max(end);
        }
        pos += 1;
    }
    report.points += used;
    Progress::add(&progress.points_in, used);
    // Dead letters: one per reason, naming the unusable points when others were used.
    let partial = used > 0;
    let list = |v: &[usize]| {
        v.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut by_reason: BTreeMap<&'static str, (Vec<usize>, String)> = BTreeMap::new();
    for (i, e) in &decoded.errors {
        let entry = by_reason
            .entry(e.reason())
            .or_insert_with(|| (Vec::new(), e.to_string()));
        entry.0.push(*i);
    }
    if !late.is_empty() {
        by_reason.insert("late", (late, late_detail));
    }
    for (reason, (points, detail)) in &by_reason {
        let listed = list(points);
        let detail = if points.len() < total {
            format!("{} of {} points: {}", points.len(), total, detail)
        } else {
            detail.clone()
        };
        dlq.send(DeadLetter {
            origin: m,
            reason,
            detail: &detail,
            points: if partial || points.len() < total {
                Some(&listed)
            } else {
                None
            },
        })?;
        Progress::add(&progress.dlq_messages, 1);
        Progress::add(&progress.points_dlq, points.len() as u64);
    }
    Ok((release, last_end))
}
