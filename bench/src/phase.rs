//! A benchmark phase: one job on a number of timely workers until its input is drained, timed,
//! with the process's peak resident memory over it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use apo_dataflow::{
    run_lanes, Checkpoints, Job, JobLane, LaneConfig, Latency, MemoryBudget, Progress,
};
use apo_ingest::dlq::DeadLetterSink;
use apo_ingest::source::MessageSource;
use apo_schemas::WindowStats;

/// Peak resident memory since the last reset, in MiB (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Resets the peak resident memory the kernel reports (Linux; elsewhere nothing happens).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// What a phase measured.
pub struct PhaseResult {
    /// Wall-clock seconds the phase took.
    pub seconds: f64,
    /// Records used (points or spans).
    pub points: u64,
    /// Peak resident memory over the phase, MiB (Linux).
    pub rss_mib: Option<f64>,
    /// Close-to-output latencies of the rows written.
    pub latencies: Vec<Latency>,
    /// Rows collected, where the phase keeps them.
    pub rows: Vec<WindowStats>,
    /// Metric series live at the last batch, distinct series folded into overflow series then,
    /// and points folded in all.
    pub series: (u64, u64, u64),
    /// Times the memory budget went over.
    pub over_budget: u64,
}

/// What one worker of a phase runs: its source, dead letters and job (with the job's sinks).
pub type Parts<J> = (Box<dyn MessageSource>, Box<dyn DeadLetterSink>, J);

/// Runs `make`'s job on `workers` timely workers until drained; times it and takes peak RSS.
pub fn run_phase<J: Job>(
    workers: usize,
    cfg: LaneConfig,
    make: impl Fn(usize, usize) -> Result<Parts<J>, String> + Send + Sync + 'static,
) -> Result<PhaseResult> {
    run_phase_under(workers, cfg, MemoryBudget::unlimited(), make)
}

/// [`run_phase`] under a memory `budget`.
pub fn run_phase_under<J: Job>(
    workers: usize,
    cfg: LaneConfig,
    budget: Arc<MemoryBudget>,
    make: impl Fn(usize, usize) -> Result<Parts<J>, String> + Send + Sync + 'static,
) -> Result<PhaseResult> {
    let progress = Arc::new(Progress::new(workers).with_budget(budget));
    reset_peak_rss();
    let started = Instant::now();
    let points = run_workers(
        workers,
        cfg,
        progress.clone(),
        None,
        Arc::new(AtomicBool::new(false)),
        make,
    )?;
    Ok(PhaseResult {
        seconds: started.elapsed().as_secs_f64(),
        points,
        rss_mib: peak_rss_mib(),
        latencies: progress.take_latencies(),
        rows: Vec::new(),
        series: progress.series(),
        over_budget: progress.budget.usage().episodes,
    })
}

/// Runs `make`'s job on `workers` timely workers, counting into `progress`, with its state in
/// `checkpoints` (restored from the newest one; none: no checkpoints), until drained or `stop`
/// is set; returns the records used.
pub fn run_workers<J: Job>(
    workers: usize,
    cfg: LaneConfig,
    progress: Arc<Progress>,
    checkpoints: Option<Arc<Checkpoints>>,
    stop: Arc<AtomicBool>,
    make: impl Fn(usize, usize) -> Result<Parts<J>, String> + Send + Sync + 'static,
) -> Result<u64> {
    if let Some(c) = &checkpoints {
        c.report_to(progress.clone());
    }
    let guards = timely::execute(
        timely::Config::process(workers),
        move |worker| -> Result<u64, String> {
            let (src, dlq, job) = make(worker.index(), worker.peers())?;
            let lane = JobLane::with_checkpoints(
                worker,
                &cfg,
                job,
                src,
                dlq,
                progress.clone(),
                checkpoints.clone(),
            )
            .map_err(|e| e.to_string())?;
            let reports =
                run_lanes(worker, vec![Box::new(lane)], stop.clone()).map_err(|e| e.to_string())?;
            Ok(reports.iter().map(|r| r.points).sum())
        },
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let mut points = 0;
    for g in guards.join() {
        points += g
            .map_err(|e| anyhow::anyhow!(e))?
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(points)
}
