//! Live counters of a running pipeline, shared by all workers of a process; the CLI prints them
//! and the benchmark reads them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

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
    /// Milliseconds from a window's close (watermark passing its end) to its acknowledged output.
    pub close_to_output_ms: Mutex<Vec<f64>>,
}

impl Progress {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Takes the latency samples gathered so far.
    pub fn take_latencies(&self) -> Vec<f64> {
        self.close_to_output_ms
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}
