//! Live counters of a running pipeline, shared by all workers of a process; the CLI prints them
//! and the benchmark reads them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default, Debug)]
pub struct Progress {
    /// Kafka messages read.
    pub messages_in: AtomicU64,
    /// Points used (counted into windows).
    pub points_in: AtomicU64,
    /// Points that went to the dead-letter topic (undecodable messages count as one).
    pub points_dlq: AtomicU64,
    /// Dead-letter records written.
    pub dlq_messages: AtomicU64,
    /// Window statistics written (all revisions).
    pub windows_out: AtomicU64,
    /// Revisions (> 1) among them.
    pub revisions_out: AtomicU64,
    /// Windows held in memory, summed over workers.
    pub windows_held: AtomicI64,
    /// Lowest watermark over this process's workers (ms; i64::MIN before any).
    pub watermark_ms: AtomicI64,
    /// Consumer lag (messages) over this process's workers, when known.
    pub lag: AtomicI64,
    /// Close-to-output latency of each window output since the last take.
    pub close_to_output: Mutex<Vec<Latency>>,
    /// When the windows closed.
    pub close_clock: CloseClock,
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
        Progress::add(&self.windows_out, n);
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
            ..Default::default()
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

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
