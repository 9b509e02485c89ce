//! One input of a worker: a source read into a job's dataflow. A lane keeps the source's
//! watermark, classifies each record against it (late ones to the dead-letter topic), feeds the
//! job's dataflow at the quantised watermark, pauses while the job's sinks are behind, and
//! commits offsets behind the job's durability frontier. The worker loop
//! ([`crate::engine::worker::run_lanes`]) steps one timely worker over several lanes, so the metrics
//! and trace pipelines share one cluster.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apo_ingest::dlq::{DeadLetter, DeadLetterSink};
use apo_ingest::source::{MessageSource, RawMessage, SourceEvent};
use apo_ingest::watermark::{IdlePolicy, WatermarkTracker};
use apo_ingest::IngestError;
use timely::dataflow::operators::Probe;
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::worker::Worker;

use crate::engine::checkpoint::{Checkpoints, LaneState};
use crate::engine::commit::{MessageTimes, PartitionCommits};
use crate::engine::config::{LaneConfig, TICK_MS};
use crate::engine::context::BuildContext;
use crate::engine::error::PipelineError;
use crate::engine::job::Job;
use crate::engine::progress::{Progress, StuckPartition};
use crate::engine::sink::SinkState;

/// A lane as the worker loop sees it (the job's types hidden).
pub trait Lane {
    /// A sink failure, once: the loop stops without committing further.
    fn failure(&self) -> Option<PipelineError>;
    /// Output is waiting for the broker: read nothing until it catches up.
    fn behind(&self) -> bool;
    /// The last poll found nothing (or the input is drained): the loop may wait in the next poll.
    fn idle(&self) -> bool;
    /// Reads up to a batch (waiting at most `timeout` for the first message), feeds the
    /// dataflow and advances its input time to the watermark.
    fn pump(&mut self, timeout: Duration) -> Result<(), PipelineError>;
    /// After a worker step: commits what is durable (all of it when `stopping`); true once
    /// this lane has nothing more to do.
    fn settle(&mut self, stopping: bool) -> Result<bool, PipelineError>;
    /// Flushes dead letters; what the lane did.
    fn finish(&mut self) -> Result<WorkerReport, PipelineError>;
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
    /// An advance closed an output since the last read began: stop reading, step the dataflow.
    closed: bool,
    /// The input time at which a record behind the watermark went in (it may revise a closed
    /// window), until the time moves past it.
    revising: Option<u64>,
    /// When the input time was last moved on for such a record without the watermark.
    nudged: Instant,
    /// The job's checkpoints, when it takes them.
    checkpoints: Option<Arc<Checkpoints>>,
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

    /// Moves the input time to `t` at a message boundary (the only place it moves), telling
    /// the job's checkpoints first: every message up to `positions` went in before `t`, none
    /// after them.
    fn move_to(&mut self, t: u64, tracker: &WatermarkTracker, positions: &BTreeMap<i32, i64>) {
        if t <= self.time() {
            return;
        }
        if let Some(c) = &self.checkpoints {
            c.lane_moving(
                self.time(),
                t,
                lane_state(self.worker, positions, tracker, t),
            );
        }
        self.advance_to(t);
    }

    /// Lets records behind the watermark revise their windows now rather than when the
    /// watermark next moves: the input time steps 1 ms past their time (at most every
    /// [`NUDGE_EVERY`], and never to the next tick, whose windows only the watermark closes).
    /// A window ends on a whole second, so the step closes nothing; it only lets the frontier
    /// pass the records' time, which is when operators apply them.
    fn nudge(&mut self, tracker: &WatermarkTracker, positions: &BTreeMap<i32, i64>) {
        let Some(at) = self.revising else {
            return;
        };
        let t = self.time();
        if t > at {
            self.revising = None;
            return;
        }
        let tick = TICK_MS as u64;
        if self.nudged.elapsed() >= NUDGE_EVERY && t % tick < tick - 1 {
            self.move_to(t + 1, tracker, positions);
            self.nudged = Instant::now();
            self.revising = None;
        }
    }

    fn advance_to(&mut self, t: u64) {
        if t > self.time() {
            self.closed |= self.job.closes_between(self.time(), t);
            self.flush();
            self.input.advance_to(t);
            self.progress
                .close_clock
                .advance(self.worker, t, Instant::now());
        }
    }
}

/// The longest a worker reads before it steps the dataflow again.
const READ_BUDGET: Duration = Duration::from_millis(5);

/// The least time between two steps of the input time for records behind the watermark
/// ([`Feed::nudge`]): a stalled watermark leaves 999 such steps within its tick, about four
/// minutes of revisions at this pace before they wait for it again.
const NUDGE_EVERY: Duration = Duration::from_millis(250);

/// How often a lane publishes the bytes it holds and re-evaluates the memory budget.
const BUDGET_EVERY: Duration = Duration::from_millis(100);

/// Over the memory budget, a lane reads a tenth of a poll batch at most this often.
const OVER_BUDGET_PAUSE: Duration = Duration::from_millis(10);

fn quantise(wm: i64) -> u64 {
    if wm <= 0 {
        0
    } else {
        (wm - wm.rem_euclid(TICK_MS)) as u64
    }
}

/// The clock event times are judged against (`APO_NOW` moves it).
fn now_ms() -> i64 {
    apo_core::clock::now_ms()
}

/// A job with its source, dead letters, watermark and commits.
pub struct JobLane<J: Job> {
    cfg: LaneConfig,
    feed: Option<Feed<J>>,
    source: Box<dyn MessageSource>,
    dlq: Box<dyn DeadLetterSink>,
    tracker: WatermarkTracker,
    commits: HashMap<i32, PartitionCommits>,
    probe: ProbeHandle<u64>,
    sink_states: Vec<Rc<SinkState>>,
    /// What the job's dataflow was built with (its operators' held-state cells).
    ctx: BuildContext,
    progress: Arc<Progress>,
    report: WorkerReport,
    worker: usize,
    horizon_ms: i64,
    close_delay_ms: i64,
    wall_now: i64,
    last_commit: Instant,
    last_stats: Instant,
    idle_polls: u32,
    /// Last time a message was read or the broker acknowledged something (drain stall check).
    last_progress: Instant,
    /// The durability frontier when last looked (see `acknowledged`).
    last_durable: i64,
    /// Output rows dead-lettered by the sinks, as last added to the progress counter.
    dead_lettered: u64,
    /// Dead letters refused by the broker, as last added to the progress counter.
    letters_refused: u64,
    /// Partitions reported silent (`true`: reported stuck), until they deliver again.
    reported_silent: BTreeMap<i32, bool>,
    /// Messages behind each partition's position, from the consumer's last statistics.
    lags: BTreeMap<i32, i64>,
    /// Since when each stuck partition has been stuck (see `watch_stuck`).
    stuck_since: BTreeMap<i32, Instant>,
    /// When the lane last polled its source for messages.
    polled: Instant,
    /// Token bucket for max_messages_per_sec (burst of one second).
    tokens: f64,
    refilled: Instant,
    /// Where this lane publishes the bytes its operators hold on this worker.
    budget_slot: Arc<AtomicU64>,
    last_budget: Instant,
    /// Last read while over the memory budget.
    over_read: Instant,
    /// Offsets due for commit whose messages' dead letters the broker has not acknowledged
    /// yet, per partition: committed once it has.
    uncommitted: BTreeMap<i32, i64>,
    /// Dead letters waiting for the broker when last looked (fewer is an acknowledgement).
    letters_waiting: usize,
    /// Since when commits have waited for dead letters.
    letters_stuck: Option<Instant>,
    /// A live run's outage watch: since when the broker has acknowledged nothing while
    /// something waits for it, and when that was last reported.
    outage: Option<(Instant, Instant)>,
    /// The next offset to read of each partition read from (a checkpoint's positions).
    positions: BTreeMap<i32, i64>,
    /// The last checkpoint epoch this worker's operators were woken for.
    woken_for: u64,
}

/// How long one commit round waits for the dead letters its offsets depend on before it leaves
/// them for the next round: the broker answers in milliseconds when it is there, and a worker
/// must not stop reading and stepping for long when it is not.
const LETTERS_WAIT: Duration = Duration::from_millis(100);

/// How long the broker may acknowledge nothing, while output rows or dead letters wait for it,
/// before a live run says so, and how often it says it again.
const OUTAGE_REPORT_EVERY: Duration = Duration::from_secs(5);

/// How long a stop (SIGINT / SIGTERM) waits for dead letters before leaving their messages to
/// the replay after the restart.
const STOP_LETTERS_WAIT: Duration = Duration::from_secs(5);

/// How long a partition must have been stuck before it is reported (besides the idle timeout):
/// while the consumer catches up, librdkafka can serve other partitions' fetched messages for
/// a few seconds before a partition's next ones.
const STUCK_REPORT_AFTER: Duration = Duration::from_secs(5);

/// How long a partition with messages behind its position must deliver nothing, while the
/// lane polls, before it counts as stuck (statistics come every 2 s; a partition that is merely
/// busy delivers far more often).
const STUCK_QUIET: Duration = Duration::from_secs(1);

impl<J: Job> JobLane<J> {
    /// Builds `job`'s dataflow on `worker`, reading from `source`.
    pub fn new(
        worker: &mut Worker,
        cfg: &LaneConfig,
        job: J,
        source: Box<dyn MessageSource>,
        dlq: Box<dyn DeadLetterSink>,
        progress: Arc<Progress>,
    ) -> Result<Self, PipelineError> {
        Self::with_checkpoints(worker, cfg, job, source, dlq, progress, None)
    }

    /// [`JobLane::new`] for a job whose state goes into `checkpoints`: the lane and every
    /// stateful operator resume from the newest one, and each one written lets the lane commit
    /// the offsets it reflects.
    pub fn with_checkpoints(
        worker: &mut Worker,
        cfg: &LaneConfig,
        mut job: J,
        mut source: Box<dyn MessageSource>,
        dlq: Box<dyn DeadLetterSink>,
        progress: Arc<Progress>,
        checkpoints: Option<Arc<Checkpoints>>,
    ) -> Result<Self, PipelineError> {
        cfg.validate()?;
        let horizon_ms = cfg.horizon.as_millis() as i64;
        let mut input: InputHandleVec<u64, J::Input> = InputHandleVec::new();
        let probe: ProbeHandle<u64> = ProbeHandle::new();
        let mut ctx = BuildContext::new(horizon_ms, progress.clone());
        if let Some(c) = &checkpoints {
            ctx = ctx.with_checkpoints(c.clone(), worker.index());
        }
        let sink_states: Vec<Rc<SinkState>> = worker.dataflow::<u64, _, _>(|scope| {
            let (done, states) = job.build(input.to_stream(scope), &ctx);
            done.probe_with(&probe);
            states
        });
        let partitions: Vec<i32> = source.partitions().to_vec();
        let mut tracker = WatermarkTracker::new(
            &partitions,
            cfg.lateness,
            cfg.idle_timeout,
            cfg.idle_policy,
            Instant::now(),
        );
        let mut positions = BTreeMap::new();
        if let Some(c) = &checkpoints {
            if let Some(l) = c.restored_lane(worker.index()) {
                source.seek(&l.positions)?;
                tracker.restore(&l.event_times, l.watermark);
                input.advance_to(l.time);
                positions.extend(l.positions.iter().copied());
                tracing::info!(
                    worker = worker.index(),
                    topic = source.topic(),
                    positions = ?l.positions,
                    time = l.time,
                    "resuming from the checkpoint"
                );
            }
            let t = *input.time();
            c.lane_started(t, lane_state(worker.index(), &positions, &tracker, t));
        }
        let commits = partitions
            .iter()
            .map(|&p| (p, PartitionCommits::default()))
            .collect();
        let close_delay_ms = job.close_delay_ms();
        Ok(JobLane {
            cfg: cfg.clone(),
            feed: Some(Feed {
                input,
                job,
                outbox: Vec::new(),
                progress: progress.clone(),
                worker: worker.index(),
                closed: false,
                revising: None,
                nudged: Instant::now(),
                checkpoints,
            }),
            source,
            dlq,
            tracker,
            commits,
            probe,
            sink_states,
            ctx,
            report: WorkerReport::default(),
            worker: worker.index(),
            horizon_ms,
            close_delay_ms,
            wall_now: now_ms(),
            last_commit: Instant::now(),
            last_stats: Instant::now(),
            idle_polls: 0,
            last_progress: Instant::now(),
            last_durable: i64::MIN,
            dead_lettered: 0,
            letters_refused: 0,
            reported_silent: BTreeMap::new(),
            lags: BTreeMap::new(),
            stuck_since: BTreeMap::new(),
            polled: Instant::now(),
            tokens: cfg.max_messages_per_sec.unwrap_or(0.0),
            refilled: Instant::now(),
            budget_slot: progress.budget.slot(),
            last_budget: Instant::now(),
            over_read: Instant::now(),
            uncommitted: BTreeMap::new(),
            letters_waiting: 0,
            letters_stuck: None,
            outage: None,
            positions,
            woken_for: 0,
            progress,
        })
    }
}

impl<J: Job> Lane for JobLane<J> {
    fn failure(&self) -> Option<PipelineError> {
        self.sink_states
            .iter()
            .find_map(|s| s.failure.borrow_mut().take())
            .map(PipelineError::from)
    }

    fn behind(&self) -> bool {
        self.sink_states.iter().any(|s| s.behind.get())
    }

    fn idle(&self) -> bool {
        self.feed.is_none() || self.idle_polls > 0
    }

    fn pump(&mut self, timeout: Duration) -> Result<(), PipelineError> {
        let Some(inp) = self.feed.as_mut() else {
            return Ok(());
        };
        let cfg = &self.cfg;
        let now = Instant::now();
        let clock = now_ms().max(self.wall_now);
        let (tracker, commits, dlq, progress, report, horizon_ms, positions) = (
            &mut self.tracker,
            &mut self.commits,
            &mut self.dlq,
            &self.progress,
            &mut self.report,
            self.horizon_ms,
            &mut self.positions,
        );
        let mut batch_err: Option<IngestError> = None;
        inp.closed = false;
        let mut handle = |ev: SourceEvent<'_>| {
            if batch_err.is_some() {
                return ControlFlow::Break(());
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
                        tracker,
                        inp,
                        dlq.as_mut(),
                        progress,
                        report,
                    );
                    match r {
                        Ok((release, end, times)) => {
                            if let Some(c) = commits.get_mut(&m.partition) {
                                c.push(m.offset, release, end, closed_upto, times);
                            }
                            positions.insert(m.partition, m.offset + 1);
                            // The input time moves between messages only: a checkpoint's
                            // positions are then a clean cut of the input.
                            inp.move_to(quantise(tracker.watermark()), tracker, positions);
                        }
                        Err(e) => batch_err = Some(e),
                    }
                }
            }
            // A window closed: let the worker hand it on before reading on (the rest of a
            // batch's read and decode time would otherwise be its output latency). Nor read
            // for long: another worker's close may be waiting for this one's step.
            if inp.closed || batch_err.is_some() || now.elapsed() >= READ_BUDGET {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let mut max = cfg.poll_batch;
        if let Some(rate) = cfg.max_messages_per_sec {
            self.tokens =
                (self.tokens + self.refilled.elapsed().as_secs_f64() * rate).min(rate.max(1.0));
            self.refilled = Instant::now();
            max = max.min(self.tokens.floor() as usize);
        }
        // Over the memory budget: read a little at a time, letting the dataflow catch up.
        if self.progress.budget.over() {
            if self.over_read.elapsed() < OVER_BUDGET_PAUSE {
                max = 0;
            } else {
                max = max.div_ceil(10);
                self.over_read = Instant::now();
            }
        }
        let n = if max == 0 {
            std::thread::sleep(Duration::from_millis(5));
            0
        } else {
            let t = if self.idle_polls > 0 {
                timeout
            } else {
                Duration::ZERO
            };
            self.polled = Instant::now();
            self.source.poll(max, t, &mut handle)?
        };
        self.tokens -= n as f64;
        if let Some(e) = batch_err {
            return Err(e.into());
        }
        Progress::add(&self.progress.messages_in, n as u64);
        if n > 0 {
            self.last_progress = Instant::now();
        }
        self.idle_polls = if n == 0 && max > 0 {
            self.idle_polls.saturating_add(1)
        } else {
            0
        };
        inp.flush();
        let wm = self.tracker.refresh(Instant::now(), now_ms());
        inp.move_to(quantise(wm), &self.tracker, &self.positions);
        inp.nudge(&self.tracker, &self.positions);
        for c in self.commits.values_mut() {
            c.closed_until(inp.time() as i64);
        }
        self.progress.set_watermark(self.worker, wm);
        if cfg.drain && self.tracker.all_caught_up() && n == 0 && max > 0 {
            // End of input: closing the input closes every window.
            self.feed = None;
            self.progress
                .close_clock
                .advance(self.worker, u64::MAX, Instant::now());
            for c in self.commits.values_mut() {
                c.finish();
            }
            tracing::info!(
                worker = self.worker,
                topic = self.source.topic(),
                "input drained; closing all windows"
            );
        }
        Ok(())
    }

    fn settle(&mut self, stopping: bool) -> Result<bool, PipelineError> {
        let done = self.probe.done();
        let last_round = done || stopping;
        let durable = self
            .probe
            .with_frontier(|f| f.first().map_or(i64::MAX, |&t| t as i64));
        if let Some(c) = self.feed.as_ref().and_then(|f| f.checkpoints.clone()) {
            c.lane_settled(self.worker, durable.max(0) as u64);
            // A new epoch: operators whose frontier already reached it deposit now.
            if c.announced() > self.woken_for {
                self.woken_for = c.announced();
                self.ctx.wake_checkpointed();
            }
            // A checkpoint on disk: its positions are safe to commit (once the dead letters
            // of the messages before them are acknowledged, as any commit).
            if let Some(positions) = c.take_commit(self.worker) {
                for (p, next) in positions {
                    self.commit_up_to(p, next - 1);
                }
            }
        }
        if last_round || self.last_commit.elapsed() >= self.cfg.commit_interval {
            let mut due = Vec::new();
            for (&p, c) in self.commits.iter_mut() {
                if let Some(o) = c.take_committable(durable) {
                    due.push((p, o));
                }
            }
            for (p, o) in due {
                self.commit_up_to(p, o);
            }
            self.commit_after_letters(stopping)?;
            self.last_commit = Instant::now();
            // Outputs not reported durable yet end after `durable` less the job's delay.
            self.progress.close_clock.forget_before(
                (durable.max(0) as u64).saturating_sub(self.close_delay_ms.max(0) as u64),
            );
        }
        // A drain is over once its last offsets are committed, which waits for their dead
        // letters; a stop leaves what is not committed to the replay.
        let finished = stopping || (done && self.uncommitted.is_empty());
        if self.cfg.drain && !finished {
            self.check_stall(durable)?;
        } else if !self.cfg.drain && !stopping {
            self.report_outage(durable);
        }
        self.count_refused();
        let dead_lettered: u64 = self.sink_states.iter().map(|s| s.dead_lettered.get()).sum();
        if dead_lettered > self.dead_lettered {
            Progress::add(
                &self.progress.rows_dead_lettered,
                dead_lettered - self.dead_lettered,
            );
            self.dead_lettered = dead_lettered;
        }
        if self.last_stats.elapsed() >= Duration::from_secs(1) {
            if let Some(lag) = self.source.lag() {
                self.progress.set_lag(self.worker, lag);
            }
            self.report_silent();
            self.last_stats = Instant::now();
        }
        if self.last_budget.elapsed() >= BUDGET_EVERY {
            let (n, bytes) = self.ctx.held_total();
            self.progress.set_held(self.worker, n, bytes);
            self.budget_slot.store(bytes as u64, Ordering::Relaxed);
            self.progress.budget.evaluate();
            self.last_budget = Instant::now();
        }
        Ok(finished)
    }

    fn finish(&mut self) -> Result<WorkerReport, PipelineError> {
        // Letters of messages whose offsets are not committed are written again by the
        // replay; these are only given their chance to arrive once.
        let wait = if self.letters_stuck.is_some() {
            Duration::ZERO
        } else {
            STOP_LETTERS_WAIT
        };
        let flushed = self.dlq.flush(wait)?;
        self.count_refused();
        if !flushed {
            tracing::warn!(
                worker = self.worker,
                letters = self.dlq.waiting(),
                destination = %self.dlq.destination(),
                "stopping with dead letters the broker has not acknowledged; the messages they \
                 came from are not committed and are read again after a restart"
            );
        }
        Ok(self.report.clone())
    }
}

impl<J: Job> JobLane<J> {
    /// Adds the dead letters the broker refused since the last look to the progress counter.
    fn count_refused(&mut self) {
        let refused = self.dlq.refused();
        if refused > self.letters_refused {
            Progress::add(&self.progress.dlq_refused, refused - self.letters_refused);
            self.letters_refused = refused;
        }
    }

    /// Marks `offset` of `partition` due for commit (a clean cut or a checkpoint's position,
    /// whichever is further).
    fn commit_up_to(&mut self, partition: i32, offset: i64) {
        let o = self.uncommitted.entry(partition).or_insert(offset);
        *o = (*o).max(offset);
    }

    /// Commits the offsets due once the dead letters of their messages are durable. While the
    /// broker does not acknowledge them, nothing is committed (the letters stay queued, so
    /// nothing is lost), the worker goes on, and a live run says so every few seconds; a drain
    /// is bounded by its stall timeout. At a stop, it waits a few seconds at most.
    fn commit_after_letters(&mut self, stopping: bool) -> Result<(), PipelineError> {
        if self.uncommitted.is_empty() {
            self.letters_stuck = None;
            return Ok(());
        }
        let wait = if stopping {
            STOP_LETTERS_WAIT
        } else {
            LETTERS_WAIT
        };
        if self.dlq.flush(wait)? {
            let offsets: Vec<(i32, i64)> =
                std::mem::take(&mut self.uncommitted).into_iter().collect();
            // The last commit of a drain waits for the broker within the stall limit; a stop's
            // a few seconds, and a stop whose commit is not stored only replays more.
            let wait = if stopping {
                Some(STOP_LETTERS_WAIT)
            } else if self.probe.done() {
                Some(self.cfg.drain_stall)
            } else {
                None
            };
            match self.source.commit(&offsets, wait) {
                Ok(()) => {}
                Err(e @ IngestError::CommitNotAcknowledged { .. }) if stopping => {
                    tracing::warn!(
                        worker = self.worker,
                        error = %e,
                        "stopping without the last commit: the next run reads a little more again"
                    );
                }
                Err(e @ IngestError::CommitNotAcknowledged { .. }) => {
                    return Err(PipelineError::Stalled(format!(
                        "--drain made no progress: {e}; is the broker still reachable? \
                         (--drain-stall-timeout sets this limit)"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(since) = self.letters_stuck.take() {
                tracing::info!(
                    worker = self.worker,
                    destination = %self.dlq.destination(),
                    "the broker acknowledged the dead letters after {:.0} s; committing again",
                    since.elapsed().as_secs_f64()
                );
            }
            return Ok(());
        }
        self.letters_stuck.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Whether the broker acknowledged something since the last look (the durability frontier
    /// moved, or fewer dead letters wait), and how many dead letters wait now.
    fn acknowledged(&mut self, durable: i64) -> (bool, usize) {
        let letters = self.dlq.waiting();
        let moved = durable != self.last_durable || letters < self.letters_waiting;
        self.last_durable = durable;
        self.letters_waiting = letters;
        (moved, letters)
    }

    /// A live run: says every few seconds that the broker at the source's address has
    /// acknowledged nothing (no output became durable, no dead letter was acknowledged) while
    /// output rows or dead letters wait for it, and once it acknowledges again.
    fn report_outage(&mut self, durable: i64) {
        let (acknowledged, letters) = self.acknowledged(durable);
        let behind = self.behind();
        let now = Instant::now();
        if acknowledged || (letters == 0 && !behind) {
            if let Some((since, reported)) = self.outage.take() {
                if reported != since {
                    tracing::info!(
                        worker = self.worker,
                        brokers = self.source.brokers().unwrap_or("?"),
                        "the broker acknowledges again, after {:.0} s",
                        since.elapsed().as_secs_f64()
                    );
                }
            }
            if letters > 0 || behind {
                self.outage = Some((now, now));
            }
            return;
        }
        let (since, reported) = self.outage.get_or_insert((now, now));
        if reported.elapsed() >= OUTAGE_REPORT_EVERY {
            *reported = now;
            let brokers = self.source.brokers().unwrap_or("?");
            tracing::warn!(
                worker = self.worker,
                topic = self.source.topic(),
                brokers,
                letters,
                outputs_waiting = behind,
                "the broker at {brokers} has acknowledged nothing for {:.0} s while output rows \
                 or dead letters (to {}) wait for it: is it reachable? Nothing is committed \
                 until it answers; what waits stays queued and is sent then",
                since.elapsed().as_secs_f64(),
                self.dlq.destination()
            );
        }
    }

    /// Says, once per silence, which partition has delivered nothing for the idle timeout while
    /// it matters: one behind its log end (its fetch is stuck), or one holding the watermark
    /// with the others' data well past it (more than the lateness, at least 1 s). A topic that is
    /// quiet as a whole, its partitions level, is not reported. A partition stuck for the stuck
    /// timeout stops holding the watermark, and the report says so.
    fn report_silent(&mut self) {
        let now = Instant::now();
        self.watch_stuck(now);
        let silent = self.tracker.silent(now);
        let wm = self.tracker.watermark();
        let hold = self.tracker.policy() == IdlePolicy::Hold;
        // The furthest any partition has got: a silent one well behind it keeps windows open
        // that the others' data would close.
        let ahead = self
            .source
            .partitions()
            .iter()
            .map(|&p| self.tracker.partition_watermark(p))
            .max()
            .unwrap_or(i64::MIN);
        let gap = (self.cfg.lateness.as_millis() as i64).max(1_000);
        self.reported_silent
            .retain(|p, _| silent.iter().any(|(q, _, _)| q == p));
        for &(p, _, pwm) in &silent {
            // Reported stuck: nothing more to say; reported holding the watermark: it may
            // still turn out stuck.
            let reported = self.reported_silent.get(&p).copied();
            if reported == Some(true) || (reported.is_some() && !self.stuck_since.contains_key(&p))
            {
                continue;
            }
            let secs = self.cfg.idle_timeout.as_secs_f64();
            let topic = self.source.topic();
            let stuck_for = self
                .stuck_since
                .get(&p)
                .map(|since| now.duration_since(*since));
            if stuck_for.is_some_and(|d| d < STUCK_REPORT_AFTER) {
                // Not yet: a partition can go unserved for a few seconds while the consumer
                // catches up on the others.
                continue;
            }
            if stuck_for.is_some() {
                tracing::warn!(
                    topic,
                    partition = p,
                    offset = self.positions.get(&p).copied(),
                    lag = self.lags.get(&p).copied(),
                    stuck_timeout_s = self.cfg.stuck_timeout.as_secs_f64(),
                    "partition has delivered nothing for {secs:.0} s though it has not reached \
                     its log end: its fetch is stuck at `offset` (a record larger than the fetch \
                     limit, a broker problem); `lag` messages wait behind it. It stops holding \
                     the watermark after --stuck-timeout"
                );
            } else if hold && pwm <= wm && ahead.saturating_sub(pwm) > gap {
                tracing::warn!(
                    topic,
                    partition = p,
                    watermark_ms = wm,
                    "partition has delivered nothing for {secs:.0} s and holds the watermark: \
                     windows past it close when it delivers (--idle-advance lets a silent \
                     partition stop holding it, at the cost of late records when it resumes)"
                );
            } else {
                continue;
            }
            self.reported_silent.insert(p, stuck_for.is_some());
        }
        for &p in self.source.partitions() {
            let stuck = self.reported_silent.get(&p) == Some(&true);
            let s = stuck.then(|| StuckPartition {
                offset: self.positions.get(&p).copied(),
                lag: self.lags.get(&p).copied(),
                released: self.tracker.released(p),
            });
            self.progress.set_stuck(p, s);
        }
    }

    /// Follows which partitions are stuck: messages wait behind their position (the consumer's
    /// statistics) while they deliver nothing and the lane is reading. One stuck for the stuck
    /// timeout stops holding the watermark until it delivers.
    fn watch_stuck(&mut self, now: Instant) {
        self.lags = self.source.partition_lags();
        // A lane that did not poll (over the memory budget, its sinks behind) cannot blame its
        // partitions for delivering nothing.
        let reading = now.duration_since(self.polled) < STUCK_QUIET;
        let partitions = self.source.partitions().to_vec();
        for p in partitions {
            let behind = self.lags.get(&p).is_some_and(|l| *l > 0);
            self.tracker.set_behind(p, behind);
            let quiet = self.tracker.quiet_for(p, now).unwrap_or_default();
            if !(behind && reading && quiet >= STUCK_QUIET) {
                let was_reported = self.reported_silent.get(&p) == Some(&true);
                if self.stuck_since.remove(&p).is_some() && was_reported && quiet < STUCK_QUIET {
                    tracing::info!(
                        topic = self.source.topic(),
                        partition = p,
                        "partition delivers again; it holds the watermark again"
                    );
                }
                continue;
            }
            let since = *self.stuck_since.entry(p).or_insert(now);
            let timeout = self.cfg.stuck_timeout;
            if timeout.is_zero() || now.duration_since(since) < timeout || self.tracker.released(p)
            {
                continue;
            }
            let wm = self.tracker.release(p);
            tracing::warn!(
                topic = self.source.topic(),
                partition = p,
                offset = self.positions.get(&p).copied(),
                lag = self.lags.get(&p).copied(),
                watermark_ms = wm,
                "partition has been stuck for {:.0} s (--stuck-timeout): it no longer holds the \
                 watermark, so windows close on the other partitions' data; its records, if they \
                 come, are judged late by its own partition's rule. The record at `offset` \
                 cannot be fetched: compare its size with the consumer's fetch limits and the \
                 broker's, or move the consumer group past it",
                timeout.as_secs_f64()
            );
        }
    }

    /// Drain mode: an error once neither input nor output (the `durable` frontier) has moved
    /// for `drain_stall`.
    fn check_stall(&mut self, durable: i64) -> Result<(), PipelineError> {
        let (acknowledged, letters) = self.acknowledged(durable);
        if acknowledged {
            self.last_progress = Instant::now();
        }
        if self.last_progress.elapsed() < self.cfg.drain_stall {
            return Ok(());
        }
        let brokers = self.source.brokers().unwrap_or("?");
        let topic = self.source.topic();
        let waiting = if letters > 0 {
            format!(
                "the broker at {brokers} to acknowledge {letters} dead letter(s) to {}",
                self.dlq.destination()
            )
        } else if self.feed.is_some() {
            format!("the rest of {topic} from the broker at {brokers}")
        } else {
            format!("the broker at {brokers} to acknowledge the output")
        };
        Err(PipelineError::Stalled(format!(
            "--drain made no progress on {topic} for {:?}: nothing read and nothing acknowledged \
             while waiting for {waiting}; is the broker still reachable? (--drain-stall-timeout \
             sets this limit)",
            self.cfg.drain_stall
        )))
    }
}

/// A lane's state for a checkpoint at input time `time`: where each partition is read next,
/// and its watermark.
fn lane_state(
    worker: usize,
    positions: &BTreeMap<i32, i64>,
    tracker: &WatermarkTracker,
    time: u64,
) -> LaneState {
    LaneState {
        worker,
        positions: positions.iter().map(|(&p, &o)| (p, o)).collect(),
        event_times: tracker.event_times(),
        watermark: tracker.watermark(),
        time,
        // the real clock (not `APO_NOW`'s): the one dead letters are stamped with
        at_ms: Some(apo_core::clock::system_ms()),
    }
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
) -> Result<(i64, i64, MessageTimes), IngestError> {
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
            Progress::add(&progress.records_dlq, 1);
            return Ok((i64::MIN, i64::MIN, MessageTimes::default()));
        }
    };
    let total = decoded.items.len() + decoded.errors.len();
    let mut release = i64::MIN;
    let mut last_end = i64::MIN;
    let mut late: Vec<usize> = Vec::new();
    let mut times = MessageTimes::default();
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
        times.max = Some(times.max.map_or(ts, |m| m.max(ts)));
        // Late by the partition's own records before this one: what a replay decides too.
        // Under `advance` the worker's watermark can be ahead of it (partitions that went
        // idle) and then decides.
        let own = quantise(tracker.partition_watermark(m.partition));
        let wm = tracker.observe(m.partition, ts);
        let t = quantise(wm);
        // The input time moves after the message (`JobLane::pump`): every point of a message
        // goes in at one time, so a message boundary is a clean cut for checkpoints.
        let bound = own.max(t) as i64;
        if ts < bound - horizon_ms {
            if late.is_empty() {
                let whose = if own >= t {
                    "its partition's watermark"
                } else {
                    "the watermark"
                };
                late_detail = format!(
                    "event time {} ms is more than the {} s horizon behind {whose} {} ms",
                    ts,
                    horizon_ms / 1000,
                    bound
                );
            }
            late.push(pos);
        } else {
            if ts < t as i64 {
                // Behind the watermark: it may revise a closed window.
                feed.revising = Some(feed.time());
            }
            let end = feed.job.closes_at(&p);
            feed.job.buffer(p);
            used += 1;
            release = release.max(end + horizon_ms);
            last_end = last_end.max(end);
        }
        pos += 1;
    }
    report.points += used;
    Progress::add(&progress.records_in, used);
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
    times.late = !late.is_empty();
    if times.late {
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
        Progress::add(&progress.records_dlq, points.len() as u64);
    }
    Ok((release, last_end, times))
}

/// What a worker did, returned when it stops.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    /// Messages read.
    pub messages: u64,
    /// Records used (points or spans).
    pub points: u64,
}
