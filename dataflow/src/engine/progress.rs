//! Live counters of a running lane (metrics or traces), shared by all workers of a process; the
//! CLI prints them and the benchmark reads them. Counters are summed by every worker; gauges
//! (watermark, lag, state held) have one slot per local worker, combined when read (least
//! watermark, summed lag and state).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::engine::budget::MemoryBudget;

/// Counters and gauges of one lane in one process. `Progress::default()` has one worker slot.
#[derive(Debug)]
pub struct Progress {
    /// Kafka messages read.
    pub messages_in: AtomicU64,
    /// Records used (metric points or spans counted into the dataflow).
    pub records_in: AtomicU64,
    /// Records that went to the dead-letter topic (undecodable messages count as one).
    pub records_dlq: AtomicU64,
    /// Dead-letter records written.
    pub dlq_messages: AtomicU64,
    /// Dead letters the broker refused for good (each logged with its origin; not in the
    /// dead-letter topic).
    pub dlq_refused: AtomicU64,
    /// Output rows made durable (all revisions; for the trace lane, rows of every trace table).
    pub rows_out: AtomicU64,
    /// Revisions (> 1) among them.
    pub revisions_out: AtomicU64,
    /// Output rows a sink could never store (the broker refused them for their size or
    /// content), sent to the dead-letter topic instead.
    pub rows_dead_lettered: AtomicU64,
    /// Per-worker gauges; read with [`Progress::watermark_ms`], [`Progress::lag`] and
    /// [`Progress::held`].
    gauges: Vec<WorkerGauges>,
    /// Close-to-output latency of each window output since the last take.
    pub close_to_output: Mutex<Vec<Latency>>,
    /// When the windows closed.
    pub close_clock: CloseClock,
    /// The process's memory budget, shared with its other lanes.
    pub budget: Arc<MemoryBudget>,
    /// The last checkpoint written: its epoch (0: none yet), size in bytes, and milliseconds
    /// from its announcement to its files on disk.
    pub checkpoint: [AtomicU64; 3],
    /// Partitions whose fetch is stuck, as their lanes last reported them.
    stuck: Mutex<BTreeMap<i32, StuckPartition>>,
}

/// A partition that delivers nothing while messages wait behind its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuckPartition {
    /// The offset it cannot get past (the next one to read), when known.
    pub offset: Option<i64>,
    /// Messages waiting behind it, as of the consumer's last statistics.
    pub lag: Option<i64>,
    /// Stuck past the stuck timeout: it no longer holds the watermark.
    pub released: bool,
}

/// One worker's gauges.
#[derive(Debug)]
struct WorkerGauges {
    /// `i64::MIN` until the worker has a watermark.
    watermark_ms: AtomicI64,
    /// `-1` while unknown.
    lag: AtomicI64,
    held: AtomicI64,
    held_bytes: AtomicU64,
    /// Live metric series, folded ones among them, points folded so far (metrics lane).
    series: [AtomicU64; 3],
    /// Live cumulative streams, and their points not counted as stale so far.
    cumulative: [AtomicU64; 2],
}

impl Default for WorkerGauges {
    fn default() -> Self {
        WorkerGauges {
            watermark_ms: AtomicI64::new(i64::MIN),
            lag: AtomicI64::new(-1),
            held: AtomicI64::new(0),
            held_bytes: AtomicU64::new(0),
            series: Default::default(),
            cumulative: Default::default(),
        }
    }
}

/// One window's latency from its close (the watermark passing its end), ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// To its output being acknowledged (durable in the first sink).
    pub total_ms: f64,
    /// To its being handed to the sinks: the dataflow's share (the rest is the sinks', e.g.
    /// waiting for the broker's ack).
    pub to_sinks_ms: f64,
}

/// When the process's dataflow input time — the least over its workers, which is what closes
/// windows — reached each value. A window closes when every worker's input passed its end, not
/// when the first one did: timing from one worker's own advance would count the other workers'
/// watermark lag as output latency.
#[derive(Debug)]
pub struct CloseClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default)]
struct ClockState {
    /// Input time per local worker.
    inputs: Vec<u64>,
    least: u64,
    reached: BTreeMap<u64, Instant>,
}

impl Default for CloseClock {
    fn default() -> Self {
        CloseClock::new(1)
    }
}

impl CloseClock {
    /// A clock for a process with `workers` local workers.
    pub fn new(workers: usize) -> Self {
        CloseClock {
            state: Mutex::new(ClockState {
                inputs: vec![0; workers.max(1)],
                ..Default::default()
            }),
        }
    }

    /// Worker `index` (global index; taken modulo the local worker count) advanced its input
    /// to `t` (`u64::MAX`: input closed).
    pub fn advance(&self, index: usize, t: u64, now: Instant) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let n = s.inputs.len();
        let slot = &mut s.inputs[index % n];
        *slot = (*slot).max(t);
        let least = s.inputs.iter().copied().min().unwrap_or(t);
        if least > s.least {
            s.least = least;
            s.reached.insert(least, now);
        }
    }

    /// When the least input time first reached `end` or beyond: when a window ending at `end`
    /// closed.
    pub fn closed_at(&self, end: u64) -> Option<Instant> {
        let s = self.state.lock().ok()?;
        s.reached.range(end..).next().map(|(_, at)| *at)
    }

    /// Forgets the times before `t`.
    pub fn forget_before(&self, t: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.reached = s.reached.split_off(&t);
        }
    }
}

impl Progress {
    /// Counts rows made durable (at `now`) and their close-to-output latency, split at
    /// `written`, when they were handed to the sinks (revisions are counted, not timed: they are
    /// caused by late data, not by a close).
    pub fn record_output(
        &self,
        rows: impl Iterator<Item = (i64, u32)>,
        written: Instant,
        now: Instant,
    ) {
        let (mut n, mut revisions) = (0u64, 0u64);
        let mut lat = Vec::new();
        for (end, revision) in rows {
            n += 1;
            if revision > 1 {
                revisions += 1;
                continue;
            }
            if let Some(at) = self.close_clock.closed_at(end.max(0) as u64) {
                lat.push(Latency {
                    total_ms: now.duration_since(at).as_secs_f64() * 1000.0,
                    to_sinks_ms: written.saturating_duration_since(at).as_secs_f64() * 1000.0,
                });
            }
        }
        Progress::add(&self.rows_out, n);
        Progress::add(&self.revisions_out, revisions);
        if let Ok(mut v) = self.close_to_output.lock() {
            if v.len() < 1_000_000 {
                v.extend(lat);
            }
        }
    }

    /// Counters for a process with `workers` local workers.
    pub fn new(workers: usize) -> Self {
        Progress {
            close_clock: CloseClock::new(workers),
            gauges: (0..workers.max(1))
                .map(|_| WorkerGauges::default())
                .collect(),
            ..Default::default()
        }
    }

    /// The last checkpoint written: its epoch, bytes and milliseconds (`None` before the first).
    pub fn last_checkpoint(&self) -> Option<(u64, u64, u64)> {
        let g = |i: usize| self.checkpoint[i].load(Ordering::Relaxed);
        (g(0) > 0).then(|| (g(0), g(1), g(2)))
    }

    /// `partition` is stuck as `s` says (`None`: it delivers again).
    pub fn set_stuck(&self, partition: i32, s: Option<StuckPartition>) {
        if let Ok(mut m) = self.stuck.lock() {
            match s {
                Some(s) => m.insert(partition, s),
                None => m.remove(&partition),
            };
        }
    }

    /// The partitions stuck now, by partition.
    pub fn stuck(&self) -> BTreeMap<i32, StuckPartition> {
        self.stuck.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Worker `index`'s gauge slot (global index, taken modulo the local worker count).
    fn slot(&self, index: usize) -> Option<&WorkerGauges> {
        let n = self.gauges.len();
        (n > 0).then(|| &self.gauges[index % n])
    }

    /// Worker `index`'s watermark is now `ms`.
    pub fn set_watermark(&self, index: usize, ms: i64) {
        if let Some(g) = self.slot(index) {
            g.watermark_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Worker `index`'s consumer lag is now `messages`.
    pub fn set_lag(&self, index: usize, messages: i64) {
        if let Some(g) = self.slot(index) {
            g.lag.store(messages.max(0), Ordering::Relaxed);
        }
    }

    /// Worker `index` now holds `n` windows (or spans, for trace assembly) in memory, taking
    /// about `bytes`.
    pub fn set_held(&self, index: usize, n: usize, bytes: usize) {
        if let Some(g) = self.slot(index) {
            g.held.store(n as i64, Ordering::Relaxed);
            g.held_bytes.store(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Estimated bytes held, summed over this process's workers.
    pub fn held_bytes(&self) -> u64 {
        self.sum_over_workers(|g| &g.held_bytes)
    }

    /// The same counters under the process's memory `budget`.
    pub fn with_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Worker `index`'s series limiter counts now `c` (live series, folded ones, points folded).
    pub fn set_series(&self, index: usize, live: usize, folded: usize, points_folded: u64) {
        if let Some(g) = self.slot(index) {
            g.series[0].store(live as u64, Ordering::Relaxed);
            g.series[1].store(folded as u64, Ordering::Relaxed);
            g.series[2].store(points_folded, Ordering::Relaxed);
        }
    }

    /// Worker `index` holds `live` cumulative streams and has not counted `stale` points.
    pub fn set_cumulative(&self, index: usize, live: usize, stale: u64) {
        if let Some(g) = self.slot(index) {
            g.cumulative[0].store(live as u64, Ordering::Relaxed);
            g.cumulative[1].store(stale, Ordering::Relaxed);
        }
    }

    /// Live cumulative streams and stale points not counted, summed over this process's
    /// workers.
    pub fn cumulative(&self) -> (u64, u64) {
        let sum = |i: usize| self.sum_over_workers(|g| &g.cumulative[i]);
        (sum(0), sum(1))
    }

    /// Live metric series, distinct series folded into overflow series, and points folded,
    /// summed over this process's workers.
    pub fn series(&self) -> (u64, u64, u64) {
        let sum = |i: usize| self.sum_over_workers(|g| &g.series[i]);
        (sum(0), sum(1), sum(2))
    }

    /// One gauge of every worker of this process, summed.
    fn sum_over_workers(&self, gauge: impl Fn(&WorkerGauges) -> &AtomicU64) -> u64 {
        self.gauges
            .iter()
            .map(|g| gauge(g).load(Ordering::Relaxed))
            .sum()
    }

    /// The least watermark over this process's workers (ms); `None` until every worker has one.
    pub fn watermark_ms(&self) -> Option<i64> {
        let wm = self
            .gauges
            .iter()
            .map(|g| g.watermark_ms.load(Ordering::Relaxed))
            .min()?;
        (wm != i64::MIN).then_some(wm)
    }

    /// Consumer lag (messages) summed over this process's workers; `None` while no worker knows
    /// its own.
    pub fn lag(&self) -> Option<i64> {
        let known: Vec<i64> = self
            .gauges
            .iter()
            .map(|g| g.lag.load(Ordering::Relaxed))
            .filter(|&l| l >= 0)
            .collect();
        (!known.is_empty()).then(|| known.iter().sum())
    }

    /// State held in memory, summed over this process's workers.
    pub fn held(&self) -> i64 {
        self.gauges
            .iter()
            .map(|g| g.held.load(Ordering::Relaxed))
            .sum()
    }

    /// Adds `n` to one of the counters.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads one of the counters.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Takes the latency samples gathered so far.
    pub fn take_latencies(&self) -> Vec<Latency> {
        self.close_to_output
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// The `q` quantile (nearest rank) of `samples`, which it sorts; NaN when empty.
pub fn percentile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let i = (q * (samples.len() - 1) as f64).round() as usize;
    samples[i.min(samples.len() - 1)]
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            messages_in: AtomicU64::new(0),
            records_in: AtomicU64::new(0),
            records_dlq: AtomicU64::new(0),
            dlq_messages: AtomicU64::new(0),
            dlq_refused: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            revisions_out: AtomicU64::new(0),
            rows_dead_lettered: AtomicU64::new(0),
            gauges: vec![WorkerGauges::default()],
            close_to_output: Mutex::default(),
            close_clock: CloseClock::default(),
            budget: MemoryBudget::unlimited(),
            checkpoint: Default::default(),
            stuck: Mutex::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn gauges_combine_every_workers_slot() {
        let p = Progress::new(2);
        assert_eq!(p.watermark_ms(), None, "no worker has a watermark yet");
        assert_eq!(p.lag(), None);
        p.set_watermark(0, 5_000);
        assert_eq!(
            p.watermark_ms(),
            None,
            "worker 1 has none yet: it holds the least back"
        );
        p.set_watermark(1, 3_000);
        // The last writer does not win: the least over the workers does.
        p.set_watermark(0, 9_000);
        assert_eq!(p.watermark_ms(), Some(3_000));
        p.set_lag(1, 7);
        assert_eq!(
            p.lag(),
            Some(7),
            "worker 0's lag is unknown, worker 1's counts"
        );
        p.set_lag(0, 5);
        assert_eq!(p.lag(), Some(12), "lag sums over the workers");
        p.set_held(0, 10, 100);
        p.set_held(1, 4, 40);
        p.set_held(1, 6, 60);
        assert_eq!(
            p.held(),
            16,
            "held sums over the workers, each its latest value"
        );
        // Global worker indices of a second process map onto the local slots.
        assert_eq!(p.held_bytes(), 160);
        p.set_held(3, 1, 10);
        assert_eq!(p.held(), 11);
    }
}
