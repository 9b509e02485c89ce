//! The checkpoints of one job in one process: when one is taken, what each lane and operator
//! of each worker deposits for it, when it is complete, its writing (on a thread of its own, so
//! the stream does not wait for the disk), and the offsets each lane may commit afterwards.
//!
//! A lane moves its input time only between messages, and tells the coordinator each move
//! (from, to, and its read positions and watermark state at that boundary) before making it:
//! every record before those positions went in before `to`, every record after them at or after
//! it. An epoch's time `T` is the lowest input time of any lane when it is announced, so no
//! operator's frontier is past it (the frontier is at most the lowest input time), and every
//! lane deposits the state of the move that reached `T` (its start, for a lane that has not
//! moved), kept from the moves it has told since the lowest lane time. Each operator deposits
//! its state once its input frontier has reached `T`, having applied everything before `T` and
//! nothing after (timely's progress tracking is the barrier, as in Carbone et al., 2015). The epoch is complete when every lane and every operator of every
//! worker has deposited and every output before `T` is durable (every lane's durability
//! frontier has reached `T`): then it is written, and once it is on disk each lane commits its
//! positions to the consumer group.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::engine::checkpoint::store::{LaneState, Loaded, Manifest, Store};

/// An epoch announced and not yet complete.
struct Open {
    epoch: u64,
    time: u64,
    started: Instant,
    lanes: BTreeMap<usize, LaneState>,
    parts: Vec<(usize, String, Vec<u8>)>,
    /// Parts deposited per worker.
    deposited: Vec<usize>,
    /// Whether each worker's outputs before `time` are durable.
    durable: Vec<bool>,
}

/// What one checkpoint took, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Its epoch.
    pub epoch: u64,
    /// Its time.
    pub time: u64,
    /// From its announcement to its files on disk.
    pub duration: Duration,
    /// Its size on disk, bytes.
    pub bytes: u64,
}

/// A complete epoch on its way to the writer: its manifest, its operator parts (worker,
/// operator, bytes) and when it was announced.
type ToWrite = (Manifest, Vec<(usize, String, Vec<u8>)>, Instant);

/// One move of a lane's input time, with the lane's state at the message boundary it was made
/// (or the lane's start: its state when it started at `to`).
struct Move {
    from: u64,
    to: u64,
    start: bool,
    state: LaneState,
}

/// The state of the lane whose moves are `moves` at time `t`: that of the move that reached `t`
/// (every record before its positions went in before `t`, every one after at or after it).
fn state_at(moves: &std::collections::VecDeque<Move>, t: u64) -> Option<&LaneState> {
    let m = moves.iter().find(|m| t <= m.to)?;
    (m.start || m.from < t).then_some(&m.state)
}

struct Inner {
    /// Each worker's lane input time, once its lane is built.
    lanes: Vec<Option<u64>>,
    /// Each worker's lane's moves since the lowest lane time (older ones reach no epoch still
    /// to be announced).
    moves: Vec<std::collections::VecDeque<Move>>,
    /// Stateful operators registered per worker.
    operators: Vec<usize>,
    open: Option<Open>,
    next_epoch: u64,
    last_start: Instant,
    /// The time of the last epoch announced (none is announced again at the same time:
    /// nothing moved since).
    last_time: Option<u64>,
    /// An epoch is being written.
    writing: bool,
    /// Positions each worker's lane may commit, once their checkpoint is on disk.
    commits: Vec<Option<Vec<(i32, i64)>>>,
    /// Checkpoints written.
    taken: Vec<Taken>,
    writer: Option<mpsc::Sender<ToWrite>>,
}

/// The checkpoints of one job in this process (shared by its workers).
pub struct Checkpoints {
    job: String,
    workers: usize,
    interval: Duration,
    fingerprint: String,
    store: Store,
    restored: Option<Loaded>,
    /// The newest epoch announced (0: none), read by operators without the lock.
    announced: AtomicU64,
    /// Where each checkpoint written is reported (the lane's progress line).
    progress: std::sync::OnceLock<Arc<crate::engine::progress::Progress>>,
    inner: Mutex<Inner>,
}

/// Why a checkpoint cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    /// The store failed.
    Store(#[from] crate::engine::checkpoint::store::StoreError),
    #[error(
        "the newest checkpoint ({path}) was taken under other settings: {differs}. Run with the \
         checkpoint's settings to resume from it, or with --from-scratch to discard the \
         checkpoints and start from the committed offsets"
    )]
    /// The checkpoint belongs to another configuration.
    Mismatch {
        /// The checkpoint.
        path: String,
        /// What differs, setting by setting ([`differences`]).
        differs: String,
    },
}

/// A fingerprint's settings: its `key=value` fields in order (a value may hold spaces; a new
/// field starts at a space followed by `key=`).
fn fields(fingerprint: &str) -> Vec<(&str, &str)> {
    let starts_field = |rest: &str| {
        let key_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
            .count();
        key_len > 0 && rest.as_bytes().get(key_len) == Some(&b'=')
    };
    let mut cuts = vec![0];
    for (i, _) in fingerprint.match_indices(' ') {
        if starts_field(&fingerprint[i + 1..]) {
            cuts.push(i + 1);
        }
    }
    cuts.push(fingerprint.len() + 1);
    cuts.windows(2)
        .filter_map(|w| {
            let field = fingerprint.get(w[0]..w[1] - 1)?.trim();
            Some(field.split_once('=').unwrap_or(("", field)))
        })
        .collect()
}

/// What differs between a checkpoint's fingerprint and this run's, setting by setting:
/// "`workers=2` (this run: `workers=3`)", joined; the whole of both when either has no
/// `key=value` field.
pub fn differences(theirs: &str, ours: &str) -> String {
    let (t, o) = (fields(theirs), fields(ours));
    fn value<'a>(f: &[(&str, &'a str)], k: &str) -> Option<&'a str> {
        f.iter().find(|(key, _)| *key == k).map(|x| x.1)
    }
    let keys: Vec<&str> = t.iter().chain(&o).map(|(k, _)| *k).collect();
    let mut seen = std::collections::BTreeSet::new();
    let shown = |k: &str, v: Option<&str>| match v {
        Some(v) if k.is_empty() => format!("`{v}`"),
        Some(v) => format!("`{k}={v}`"),
        None => "nothing".to_string(),
    };
    let differs: Vec<String> = keys
        .into_iter()
        .filter(|k| seen.insert(*k))
        .filter(|k| value(&t, k) != value(&o, k))
        .map(|k| {
            format!(
                "{} (this run: {})",
                shown(k, value(&t, k)),
                shown(k, value(&o, k))
            )
        })
        .collect();
    let keyed = |f: &[(&str, &str)]| f.iter().any(|(k, _)| !k.is_empty());
    if differs.is_empty() || !keyed(&t) || !keyed(&o) {
        format!("it has `{theirs}`, this run `{ours}`")
    } else {
        differs.join("; ")
    }
}

impl Checkpoints {
    /// The checkpoints of `job` in `store`, taken every `interval` by `workers` workers under
    /// `fingerprint` (the settings its state depends on). The newest complete one is loaded
    /// for the lanes and operators to restore; one taken under another fingerprint is an
    /// error.
    pub fn open(
        job: &str,
        store: Store,
        interval: Duration,
        workers: usize,
        fingerprint: String,
    ) -> Result<Arc<Self>, RestoreError> {
        let restored = store.load_newest()?;
        if let Some(c) = &restored {
            if c.manifest.fingerprint != fingerprint {
                return Err(RestoreError::Mismatch {
                    path: c.path.display().to_string(),
                    differs: differences(&c.manifest.fingerprint, &fingerprint),
                });
            }
            tracing::info!(
                job,
                epoch = c.manifest.epoch,
                time = c.manifest.time,
                path = %c.path.display(),
                "restoring the newest checkpoint: reading resumes from its offsets"
            );
        }
        let next_epoch = store.last_epoch()?.unwrap_or(0) + 1;
        Ok(Arc::new(Checkpoints {
            job: job.to_string(),
            workers: workers.max(1),
            interval,
            fingerprint,
            store,
            restored,
            announced: AtomicU64::new(0),
            progress: std::sync::OnceLock::new(),
            inner: Mutex::new(Inner {
                lanes: vec![None; workers.max(1)],
                moves: (0..workers.max(1)).map(|_| Default::default()).collect(),
                operators: vec![0; workers.max(1)],
                open: None,
                next_epoch,
                last_start: Instant::now(),
                last_time: None,
                writing: false,
                commits: vec![None; workers.max(1)],
                taken: Vec::new(),
                writer: None,
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A worker that panicked while holding the lock leaves its state as it was: the next
        // checkpoint simply never completes, which only means a longer replay.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The restored checkpoint's state of `worker`'s lane.
    pub fn restored_lane(&self, worker: usize) -> Option<&LaneState> {
        self.restored
            .as_ref()?
            .manifest
            .lanes
            .iter()
            .find(|l| l.worker == worker)
    }

    /// The restored checkpoint's epoch.
    pub fn restored_epoch(&self) -> Option<u64> {
        self.restored.as_ref().map(|c| c.manifest.epoch)
    }

    /// Registers a stateful operator of `worker` (named `name`, unique on the worker): its
    /// handle for restoring and depositing state.
    pub fn operator(
        self: &Arc<Self>,
        worker: usize,
        name: String,
        wakers: Wakers,
    ) -> OperatorCheckpoint {
        let mut inner = self.lock();
        if let Some(n) = inner.operators.get_mut(worker) {
            *n += 1;
        }
        OperatorCheckpoint {
            checkpoints: self.clone(),
            worker,
            name,
            last: 0,
            wakers,
        }
    }

    /// `worker`'s lane starts (or resumes) at input time `time` with `state`.
    pub fn lane_started(&self, time: u64, state: LaneState) {
        let mut inner = self.lock();
        let worker = state.worker;
        if let Some(l) = inner.lanes.get_mut(worker) {
            *l = Some(time);
        }
        if let Some(m) = inner.moves.get_mut(worker) {
            m.clear();
            m.push_back(Move {
                from: time,
                to: time,
                start: true,
                state,
            });
        }
    }

    /// `worker`'s lane is about to move its input time `from` → `to` at a message boundary
    /// where its state is `state` (every record before its positions went in before `to`).
    pub fn lane_moving(self: &Arc<Self>, from: u64, to: u64, state: LaneState) {
        let mut inner = self.lock();
        let worker = state.worker;
        if let Some(l) = inner.lanes.get_mut(worker) {
            *l = Some(to);
        }
        // Moves ending below the lowest lane time reach no epoch still to come (an epoch's
        // time is the lowest lane time when it is announced).
        let lowest = inner.lanes.iter().flatten().copied().min().unwrap_or(0);
        if let Some(m) = inner.moves.get_mut(worker) {
            while m.front().is_some_and(|x| x.to < lowest) {
                m.pop_front();
            }
            m.push_back(Move {
                from,
                to,
                start: false,
                state,
            });
        }
    }

    /// `worker`'s lane after a step: its outputs before `durable` are durable. Starts an
    /// epoch when one is due, and hands a complete one to the writer.
    pub fn lane_settled(self: &Arc<Self>, worker: usize, durable: u64) {
        let mut inner = self.lock();
        if let Some(o) = inner.open.as_mut() {
            if durable >= o.time {
                if let Some(d) = o.durable.get_mut(worker) {
                    *d = true;
                }
            }
        }
        let lowest = inner.lanes.iter().flatten().copied().min();
        if inner.open.is_none()
            && !inner.writing
            && inner.last_start.elapsed() >= self.interval
            && inner.lanes.iter().all(Option::is_some)
            && lowest.is_some_and(|t| Some(t) != inner.last_time)
        {
            // Every lane is at or past the lowest lane time: each deposits the state of the
            // move that reached it; no operator's frontier is past it.
            let time = lowest.unwrap_or(0);
            let epoch = inner.next_epoch;
            inner.next_epoch += 1;
            inner.last_start = Instant::now();
            inner.last_time = Some(time);
            let mut lanes = BTreeMap::new();
            for (w, moves) in inner.moves.iter().enumerate() {
                if let Some(s) = state_at(moves, time) {
                    lanes.insert(w, s.clone());
                }
            }
            inner.open = Some(Open {
                epoch,
                time,
                started: Instant::now(),
                lanes,
                parts: Vec::new(),
                deposited: vec![0; self.workers],
                durable: vec![false; self.workers],
            });
            self.announced.store(epoch, Ordering::Release);
            tracing::debug!(job = %self.job, epoch, time, "checkpoint announced");
        }
        self.complete(&mut inner);
    }

    /// Reports each checkpoint written to `progress` (its epoch, size and duration).
    pub fn report_to(&self, progress: Arc<crate::engine::progress::Progress>) {
        let _ = self.progress.set(progress);
    }

    /// The newest epoch announced (0: none yet).
    pub fn announced(&self) -> u64 {
        self.announced.load(Ordering::Acquire)
    }

    /// Positions `worker`'s lane may commit now (their checkpoint is on disk).
    pub fn take_commit(&self, worker: usize) -> Option<Vec<(i32, i64)>> {
        self.lock().commits.get_mut(worker).and_then(Option::take)
    }

    /// Checkpoints written so far in this run.
    pub fn taken(&self) -> Vec<Taken> {
        self.lock().taken.clone()
    }

    fn deposit_part(self: &Arc<Self>, worker: usize, epoch: u64, name: String, bytes: Vec<u8>) {
        let mut inner = self.lock();
        if let Some(o) = inner.open.as_mut().filter(|o| o.epoch == epoch) {
            o.parts.push((worker, name, bytes));
            if let Some(n) = o.deposited.get_mut(worker) {
                *n += 1;
            }
        }
        self.complete(&mut inner);
    }

    /// Hands the open epoch to the writer once every lane and operator deposited and every
    /// output before it is durable.
    fn complete(self: &Arc<Self>, inner: &mut Inner) {
        let Some(o) = inner.open.as_ref() else {
            return;
        };
        let whole = o.lanes.len() == self.workers
            && o.deposited == inner.operators
            && o.durable.iter().all(|d| *d);
        if !whole {
            tracing::trace!(
                job = %self.job,
                epoch = o.epoch,
                lanes = o.lanes.len(),
                deposited = ?o.deposited,
                operators = ?inner.operators,
                durable = ?o.durable,
                "checkpoint waiting"
            );
            return;
        }
        let Some(o) = inner.open.take() else {
            return;
        };
        let manifest = Manifest {
            format: 0,
            job: self.job.clone(),
            epoch: o.epoch,
            time: o.time,
            taken_at_ms: apo_core::clock::now_ms(),
            fingerprint: self.fingerprint.clone(),
            workers: self.workers,
            lanes: o.lanes.into_values().collect(),
            parts: Vec::new(),
        };
        inner.writing = true;
        if inner.writer.is_none() {
            inner.writer = self.start_writer();
        }
        let sent = inner
            .writer
            .as_ref()
            .is_some_and(|w| w.send((manifest, o.parts, o.started)).is_ok());
        if !sent {
            inner.writing = false;
            tracing::warn!(job = %self.job, "the checkpoint writer is gone; no checkpoint taken");
        }
    }

    /// The thread that writes complete epochs and then lets the lanes commit.
    fn start_writer(self: &Arc<Self>) -> Option<mpsc::Sender<ToWrite>> {
        let (tx, rx) = mpsc::channel::<ToWrite>();
        let store = self.store.clone();
        let job = self.job.clone();
        // The writer holds only a weak reference: it ends when the run drops its checkpoints.
        let me = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name(format!("apo-checkpoint-{job}"))
            .spawn(move || {
                for (manifest, parts, started) in rx {
                    let (epoch, time) = (manifest.epoch, manifest.time);
                    let positions: Vec<(usize, Vec<(i32, i64)>)> = manifest
                        .lanes
                        .iter()
                        .map(|l| (l.worker, l.positions.clone()))
                        .collect();
                    let written = store.write(manifest, &parts);
                    let Some(me) = me.upgrade() else {
                        return;
                    };
                    let mut inner = me.lock();
                    inner.writing = false;
                    match written {
                        Ok((path, bytes)) => {
                            let taken = Taken {
                                epoch,
                                time,
                                duration: started.elapsed(),
                                bytes,
                            };
                            tracing::debug!(
                                job = %job,
                                epoch,
                                time,
                                bytes,
                                millis = taken.duration.as_millis() as u64,
                                path = %path.display(),
                                "checkpoint written"
                            );
                            if let Some(p) = me.progress.get() {
                                for (i, v) in [epoch, bytes, taken.duration.as_millis() as u64]
                                    .into_iter()
                                    .enumerate()
                                {
                                    p.checkpoint[i].store(v, Ordering::Relaxed);
                                }
                            }
                            inner.taken.push(taken);
                            for (w, p) in positions {
                                if let Some(c) = inner.commits.get_mut(w) {
                                    *c = Some(p);
                                }
                            }
                        }
                        Err(e) => tracing::warn!(
                            job = %job,
                            epoch,
                            error = %e,
                            "checkpoint not written; offsets stay where the previous one put them"
                        ),
                    }
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(job = %self.job, error = %e, "no checkpoint writer thread");
                None
            }
        }
    }

    /// Removes every checkpoint of the job (at the end of a drain, whose commits already
    /// cover everything; or `--from-scratch`).
    pub fn clear(&self) -> Result<(), crate::engine::checkpoint::store::StoreError> {
        self.store.clear()
    }
}

/// Activators of a worker's checkpointed operators: an announced epoch wakes them, since an
/// operator whose frontier already reached its time (a quiet stream) is not scheduled again
/// until something changes.
pub type Wakers = std::rc::Rc<std::cell::RefCell<Vec<timely::scheduling::Activator>>>;

/// One stateful operator's handle: its restored state and its deposits.
pub struct OperatorCheckpoint {
    checkpoints: Arc<Checkpoints>,
    worker: usize,
    name: String,
    /// The last epoch deposited (or found not to concern it).
    last: u64,
    wakers: Wakers,
}

impl OperatorCheckpoint {
    /// The operator's activator (`scope.activator_for(info.address)`), woken when an epoch is
    /// announced.
    pub fn wake_with(&self, activator: timely::scheduling::Activator) {
        self.wakers.borrow_mut().push(activator);
    }

    /// The operator's state in the restored checkpoint.
    pub fn restored(&self) -> Option<&[u8]> {
        self.checkpoints
            .restored
            .as_ref()?
            .parts
            .get(&(self.worker, self.name.clone()))
            .map(Vec::as_slice)
    }

    /// The announced epoch this operator has not deposited whose time is at or below `upto`
    /// (the operator has applied everything before `upto`): its number and time.
    pub fn due(&mut self, upto: u64) -> Option<(u64, u64)> {
        if self.checkpoints.announced.load(Ordering::Acquire) <= self.last {
            return None;
        }
        let inner = self.checkpoints.lock();
        let o = inner.open.as_ref()?;
        (o.epoch > self.last && o.time <= upto).then_some((o.epoch, o.time))
    }

    /// Deposits `snapshot(time)` for every announced epoch due at or below `upto` (the
    /// operator has applied everything before `upto` and nothing after). A state that does not
    /// serialise is logged and not deposited: that checkpoint never completes, and the
    /// restart replays from the one before.
    pub fn deposit_due<E: std::fmt::Display>(
        &mut self,
        upto: u64,
        mut snapshot: impl FnMut(u64) -> Result<Vec<u8>, E>,
    ) {
        while let Some((epoch, time)) = self.due(upto) {
            match snapshot(time) {
                Ok(bytes) => self.deposit(epoch, bytes),
                Err(e) => {
                    self.last = epoch;
                    tracing::error!(operator = %self.name, error = %e, "state not serialisable; no checkpoint this time");
                }
            }
        }
    }

    /// Deposits the operator's state for `epoch`.
    pub fn deposit(&mut self, epoch: u64, bytes: Vec<u8>) {
        self.last = epoch;
        self.checkpoints
            .deposit_part(self.worker, epoch, self.name.clone(), bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(worker: usize, next: i64, time: u64) -> LaneState {
        LaneState {
            worker,
            positions: vec![(worker as i32, next)],
            event_times: vec![(worker as i32, Some(time as i64))],
            watermark: time as i64,
            time,
            at_ms: None,
        }
    }

    /// Two lanes, one far ahead of the other: the epoch is at the slower lane's time, the
    /// faster lane's part is its state at the move that crossed that time (not its newest),
    /// each operator deposits once its frontier reaches it, the checkpoint is written once the
    /// outputs before it are durable, and then each lane may commit its part's positions.
    #[test]
    fn an_epoch_at_the_lowest_lane_time_takes_each_lane_at_the_move_that_reached_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let c = Checkpoints::open("metrics", store.clone(), Duration::ZERO, 2, "f".into()).unwrap();
        let mut ops: Vec<OperatorCheckpoint> = (0..2)
            .map(|w| c.operator(w, "Windows#0".into(), Wakers::default()))
            .collect();
        c.lane_started(0, state(0, 0, 0));
        c.lane_started(0, state(1, 0, 0));
        // Lane 0 moves 0 → 5 000 → 9 000 (after messages up to offsets 10 and 20); lane 1
        // moves 0 → 4 000 → 6 000.
        c.lane_moving(0, 5_000, state(0, 10, 5_000));
        c.lane_moving(5_000, 9_000, state(0, 20, 9_000));
        c.lane_moving(0, 4_000, state(1, 7, 4_000));
        c.lane_moving(4_000, 6_000, state(1, 9, 6_000));
        c.lane_settled(0, 0);
        assert_eq!(c.announced(), 1);
        // Operators below the epoch's time have nothing due.
        assert_eq!(ops[0].due(5_999), None);
        for op in ops.iter_mut() {
            op.deposit_due(6_000, |t| {
                assert_eq!(t, 6_000, "the lowest lane time");
                Ok::<_, bincode::Error>(vec![1, 2, 3])
            });
        }
        assert!(
            c.taken().is_empty(),
            "outputs before it are not durable yet"
        );
        c.lane_settled(0, 6_000);
        c.lane_settled(1, 6_000);
        let started = Instant::now();
        while c.taken().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        let loaded = store.load_newest().unwrap().unwrap();
        let lanes: Vec<_> = loaded
            .manifest
            .lanes
            .iter()
            .map(|l| (l.worker, l.positions.clone(), l.time))
            .collect();
        // Lane 0 crossed 6 000 on its move to 9 000: after offset 20, resuming at 9 000.
        assert_eq!(
            lanes,
            vec![(0, vec![(0, 20)], 9_000), (1, vec![(1, 9)], 6_000)]
        );
        assert_eq!(loaded.manifest.time, 6_000);
        assert_eq!(loaded.parts.len(), 2);
        assert_eq!(c.take_commit(0), Some(vec![(0, 20)]));
        assert_eq!(c.take_commit(0), None);
        // Nothing moved since: no new epoch at the same time.
        c.lane_settled(0, 6_000);
        assert_eq!(c.announced(), 1);
    }

    /// A refusal names the settings that differ, each with this run's, and nothing else.
    #[test]
    fn a_refusal_names_what_differs() {
        let theirs = "metrics workers=2 topic=apo.metrics windows=[10, 60] accuracy=0.01 \
                      planner_attributes=None";
        let ours = "metrics workers=3 topic=apo.metrics windows=[10, 60] accuracy=0.01 \
                    planner_attributes=Some([\"k8s.pod.name\"])";
        assert_eq!(
            differences(theirs, ours),
            "`workers=2` (this run: `workers=3`); `planner_attributes=None` (this run: \
             `planner_attributes=Some([\"k8s.pod.name\"])`)"
        );
        assert_eq!(
            differences("metrics workers=1", "metrics workers=1 spans=on"),
            "nothing (this run: `spans=on`)"
        );
        assert_eq!(differences("a b", "c"), "it has `a b`, this run `c`");
    }

    /// A restart resumes from the newest checkpoint; a checkpoint of other settings is refused.
    #[test]
    fn a_checkpoint_of_other_settings_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let m = Manifest {
            format: 0,
            job: "metrics".into(),
            epoch: 4,
            time: 1_000,
            taken_at_ms: 0,
            fingerprint: "windows=[10]".into(),
            workers: 1,
            lanes: vec![state(0, 3, 1_000)],
            parts: Vec::new(),
        };
        store.write(m, &[]).unwrap();
        let c = Checkpoints::open(
            "metrics",
            store.clone(),
            Duration::ZERO,
            1,
            "windows=[10]".into(),
        )
        .unwrap();
        assert_eq!(c.restored_epoch(), Some(4));
        assert_eq!(
            c.restored_lane(0).map(|l| l.positions.clone()),
            Some(vec![(0, 3)])
        );
        let e = Checkpoints::open("metrics", store, Duration::ZERO, 1, "windows=[20]".into())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("windows=[10]")
                && e.contains("windows=[20]")
                && e.contains("--from-scratch"),
            "{e}"
        );
    }
}
