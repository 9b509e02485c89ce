//! The progress lines `apo run` prints to stderr every `--progress-interval`: per lane, records
//! in and their rate, rows out and revisions, close-to-output latency, dead letters, consumer
//! lag, watermark delay and windows held; and the process's memory against its budget.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apo_dataflow::{percentile, BudgetUse, Progress};

/// What a progress line calls the records and outputs of a lane.
pub struct Labels {
    /// The lane's name.
    pub lane: &'static str,
    /// What its records are.
    pub records: &'static str,
    /// What its outputs are.
    pub outputs: &'static str,
}

/// The metrics lane's labels.
pub const METRICS: Labels = Labels {
    lane: "metrics",
    records: "points",
    outputs: "windows",
};

/// The trace lane's labels.
pub const TRACES: Labels = Labels {
    lane: "traces",
    records: "spans",
    outputs: "rows",
};

/// One lane's line; `last` is the previous line's time and record count, for the rate.
fn line(l: &Labels, p: &Progress, started: Instant, last: &mut (Instant, u64)) -> String {
    let points = Progress::get(&p.records_in);
    let rate = (points - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
    *last = (Instant::now(), points);
    let now = apo_core::clock::now_ms();
    let delay = match p.watermark_ms() {
        None => "–".to_string(),
        Some(wm) => format!("{:.1} s", (now - wm) as f64 / 1000.0),
    };
    let lag = p.lag().map_or("–".to_string(), |l| l.to_string());
    let mut lat: Vec<f64> = p.take_latencies().iter().map(|l| l.total_ms).collect();
    let latency = if lat.is_empty() {
        "–".to_string()
    } else {
        let p50 = percentile(&mut lat, 0.5);
        format!("{p50:.0}/{:.0} ms", percentile(&mut lat, 0.99))
    };
    let refused = match Progress::get(&p.rows_dead_lettered) {
        0 => String::new(),
        n => format!(", {n} refused by the broker"),
    };
    let letters_refused = match Progress::get(&p.dlq_refused) {
        0 => String::new(),
        n => format!(" ({n} refused by the broker)"),
    };
    let series = match p.series() {
        (0, 0, _) => String::new(),
        (live, 0, _) => format!(" | series {live} live"),
        (live, folded, points) => {
            format!(" | series {live} live, {folded} over the limit ({points} points to overflow)")
        }
    };
    let series = match p.cumulative() {
        (0, 0) => series,
        (live, 0) => format!("{series} | cumulative streams {live}"),
        (live, stale) => {
            format!("{series} | cumulative streams {live}, {stale} stale points not counted")
        }
    };
    let series = match p.last_checkpoint() {
        None => series,
        Some((epoch, bytes, ms)) => {
            format!("{series} | checkpoint {epoch}: {} in {ms} ms", mb(bytes))
        }
    };
    let series = p.stuck().into_iter().fold(series, |line, (partition, s)| {
        let at = s.offset.map_or("?".to_string(), |o| o.to_string());
        let lag = s.lag.map_or("?".to_string(), |l| l.to_string());
        let holds = if s.released {
            "no longer holding the watermark"
        } else {
            "holding the watermark"
        };
        format!("{line} | STUCK partition {partition} at offset {at} ({lag} behind, {holds})")
    });
    let state = mb(p.held_bytes());
    format!(
        "[{:>6.0}s] {:<7} | {} in {points} ({rate:.0}/s) | {} out {} ({} revisions{refused}) | close→out p50/p99 {latency} | dlq {}{letters_refused} | lag {lag} msgs | watermark delay {delay} | held {} ({state}){series}",
        started.elapsed().as_secs_f64(),
        l.lane,
        l.records,
        l.outputs,
        Progress::get(&p.rows_out),
        Progress::get(&p.revisions_out),
        Progress::get(&p.dlq_messages),
        p.held(),
    )
}

/// `b` bytes in MB, for a progress line.
fn mb(b: u64) -> String {
    format!("{:.0} MB", b as f64 / 1e6)
}

/// The process's memory line: state held against its allowance, the budget, resident memory.
fn memory_line(u: &BudgetUse) -> String {
    // As the budget's last evaluation read it (0: not known).
    let rss = if u.resident == 0 {
        "–".to_string()
    } else {
        mb(u.resident)
    };
    match (u.allowed, u.limit) {
        (Some(allowed), Some(limit)) => {
            let pct = u.used as f64 * 100.0 / allowed.max(1) as f64;
            let state = if u.over {
                " | OVER BUDGET: reading slowly, new series fold into overflow"
            } else {
                ""
            };
            format!(
                "[memory] state {} of {} ({pct:.0} %) | budget {} | resident {rss} | over budget {} times{state}",
                mb(u.used),
                mb(allowed),
                mb(limit),
                u.episodes
            )
        }
        _ => format!(
            "[memory] state {} | no budget (--memory-budget) | resident {rss}",
            mb(u.used)
        ),
    }
}

/// A thread printing the lanes' progress every interval, and once more when stopped.
pub struct Reporter {
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Reporter {
    /// Starts printing `lanes` every `every`; `None` when `every` is zero (no progress lines).
    pub fn start(every: Duration, lanes: Vec<(&'static Labels, Arc<Progress>)>) -> Option<Self> {
        if every.is_zero() {
            return None;
        }
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = vec![(Instant::now(), 0u64); lanes.len()];
            let print = |last: &mut [(Instant, u64)]| {
                for ((labels, p), last) in lanes.iter().zip(last.iter_mut()) {
                    eprintln!("{}", line(labels, p, started, last));
                }
                if let Some((_, p)) = lanes.first() {
                    eprintln!("{}", memory_line(&p.budget.usage()));
                }
            };
            let mut next = Instant::now() + every;
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if Instant::now() >= next {
                    print(&mut last);
                    next += every;
                }
            }
            print(&mut last);
        });
        Some(Reporter { done, thread })
    }

    /// Prints the last lines and stops.
    pub fn finish(self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
