//! `apo run`: the broker (embedded when no `--brokers`, with synthetic traffic), the topics,
//! the actions log, the warm start, the timely cluster whose workers run [`worker_lanes`], and
//! the progress lines; stops on SIGINT / SIGTERM (or at the end of the input with `--drain`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use apo_dataflow::{run_lanes, CheckpointStore, Checkpoints, MemoryBudget, Progress};
use apo_ingest::actions::follow_actions;

use crate::args::RunArgs;
use crate::broker::Broker;
use crate::config::cluster::timely_config;
use crate::report::{Reporter, METRICS, TRACES};
use crate::signals::stop_on_signals;
use crate::topology::{worker_lanes, Shared};
use crate::warm::WarmStart;
use crate::{traffic, RunConfig, RunError};

/// What a closed loop run beside the embedded broker is given: the broker, its address and
/// the stop flag it must stop on.
pub struct Embedded<'a> {
    /// The broker's client settings.
    pub client: &'a rdkafka::ClientConfig,
    /// Its address, `host:port`.
    pub address: String,
    /// Set when the run stops.
    pub stop: Arc<AtomicBool>,
}

/// Starts the embedded default's traffic in place of the open-loop generator of metric
/// points; returns its threads, joined when the run stops.
pub type StartTraffic = Box<dyn FnOnce(&Embedded) -> Result<Vec<JoinHandle<()>>, RunError>>;

/// Runs the pipelines of `a` until stopped.
pub fn run(a: RunArgs) -> Result<(), RunError> {
    run_with(a, None)
}

/// The same; on the embedded broker, `traffic` (when given) instead of the generator of
/// metric points.
pub fn run_with(a: RunArgs, traffic: Option<StartTraffic>) -> Result<(), RunError> {
    crate::clock_moved()?;
    let cfg = RunConfig::from_args(&a)?;
    let timely_cfg = timely_config(a.workers, a.processes, a.process, a.hostfile.as_deref())?;
    if a.kafka.brokers.is_none() && a.processes > 1 {
        return Err(RunError::Config(
            "a timely cluster (--processes > 1) needs a shared Kafka: pass --brokers".into(),
        ));
    }
    let stop = stop_on_signals()?;
    let broker = Broker::connect(&a.kafka, &a.data_dir, a.embedded_port)?;
    if broker.is_embedded() {
        let addr = broker.address();
        eprintln!(
            "embedded Kafka-protocol broker listening on {addr} (storage: {}/broker.db)",
            a.data_dir.display()
        );
        eprintln!("  other processes can use it: apo produce --brokers {addr}   |   apo sql --data-dir {} \"SELECT …\"", a.data_dir.display());
    }
    if !broker.is_embedded() {
        broker.wait_until_reachable(&stop, Duration::from_secs(3))?;
    }
    let client = broker.client().clone();
    broker.prepare_topics(
        &cfg.used_topics(),
        a.kafka.create_topics,
        a.kafka.partitions,
    )?;

    let mut threads = Vec::new();
    let traffic = traffic.filter(|_| broker.is_embedded());
    let closed_loop = traffic.is_some();
    if let Some(start) = traffic {
        threads.extend(start(&Embedded {
            client: &client,
            address: broker.address().to_string(),
            stop: stop.clone(),
        })?);
    }
    if broker.is_embedded() && !closed_loop && a.generate_rate > 0.0 {
        eprintln!(
            "synthetic traffic: {} points/s to {}",
            a.generate_rate, cfg.topics.metrics
        );
        threads.push(traffic::points(
            &client,
            &cfg.topics.metrics,
            a.generate_rate,
            stop.clone(),
        ));
    }
    if broker.is_embedded() && a.generate_traces > 0.0 && cfg.spans.is_some() {
        eprintln!(
            "synthetic traffic: {} traces/s to {}",
            a.generate_traces, cfg.topics.spans
        );
        threads.push(traffic::traces(
            &client,
            &cfg.topics.spans,
            a.generate_traces,
            stop.clone(),
        ));
    }
    let actions = match &cfg.topics.actions {
        Some(topic) => {
            let (log, reader) = follow_actions(
                &client,
                topic,
                &cfg.topics.dlq,
                Duration::from_secs(30),
                stop.clone(),
            )
            .map_err(|e| {
                RunError::kafka(
                    format!("reading the actions topic `{topic}` (--actions-topic \"\" turns alert suppression off)"),
                    e,
                )
            })?;
            threads.push(reader);
            Some(log)
        }
        None => None,
    };

    let budget = Arc::new(MemoryBudget::new(a.memory_budget.0));
    let metrics_checkpoints = metrics_checkpoints(&cfg, &a)?;
    let traces_checkpoints = traces_checkpoints(&cfg, &a)?;
    let shared = Shared {
        metrics_checkpoints: metrics_checkpoints.clone(),
        traces_checkpoints: traces_checkpoints.clone(),
        client,
        actions,
        past: WarmStart::for_run(&cfg)?,
        metrics_progress: Arc::new(Progress::new(a.workers.max(1)).with_budget(budget.clone())),
        traces_progress: Arc::new(Progress::new(a.workers.max(1)).with_budget(budget)),
    };
    let mut lanes = vec![(&METRICS, shared.metrics_progress.clone())];
    if cfg.spans.is_some() {
        lanes.push((&TRACES, shared.traces_progress.clone()));
    }
    if let Some(c) = &metrics_checkpoints {
        c.report_to(shared.metrics_progress.clone());
    }
    if let Some(c) = &traces_checkpoints {
        c.report_to(shared.traces_progress.clone());
    }
    let reporter = Reporter::start(a.progress_interval, lanes);

    let worker_stop = stop.clone();
    let guards = timely::execute(timely_cfg, move |worker| -> Result<(), String> {
        let lanes = worker_lanes(worker, &cfg, &shared).map_err(|e| e.to_string())?;
        run_lanes(worker, lanes, worker_stop.clone()).map_err(|e| e.to_string())?;
        Ok(())
    })
    .map_err(|e| RunError::Workers(format!("starting timely: {e}")))?;
    let mut errors = Vec::new();
    for r in guards.join() {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("worker panicked: {e}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        r.finish();
    }
    for (job, c) in [
        ("metrics", &metrics_checkpoints),
        ("traces", &traces_checkpoints),
    ] {
        let Some(c) = c else {
            continue;
        };
        let taken = c.taken();
        if let Some(last) = taken.last() {
            tracing::info!(
                job,
                checkpoints = taken.len(),
                last_epoch = last.epoch,
                last_bytes = last.bytes,
                last_millis = last.duration.as_millis() as u64,
                "checkpoints taken in this run"
            );
        }
        if a.drain && errors.is_empty() {
            // The drain committed everything it read and closed every window: the next run
            // starts from those offsets with nothing open, not from a checkpoint before them.
            if let Err(e) = c.clear() {
                tracing::warn!(error = %e, "could not remove the checkpoints after the drain");
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    drop(broker);
    if !errors.is_empty() {
        return Err(RunError::Workers(errors.join("; ")));
    }
    Ok(())
}

/// The metrics job's checkpoints: the newest one loaded for the workers to resume from, or
/// `None` (with the reason logged) when the run takes none.
fn metrics_checkpoints(cfg: &RunConfig, a: &RunArgs) -> Result<Option<Arc<Checkpoints>>, RunError> {
    let workers = a.workers.max(1) * a.processes.max(1);
    job_checkpoints(
        "metrics",
        cfg,
        cfg.metrics_checkpoint_dir(),
        cfg.metrics_checkpoints_off(a.processes),
        cfg.metrics_fingerprint(workers),
        workers,
    )
}

/// The trace job's checkpoints (`None` without the trace pipeline or when the run takes none).
fn traces_checkpoints(cfg: &RunConfig, a: &RunArgs) -> Result<Option<Arc<Checkpoints>>, RunError> {
    if cfg.spans.is_none() {
        return Ok(None);
    }
    let workers = a.workers.max(1) * a.processes.max(1);
    job_checkpoints(
        "traces",
        cfg,
        cfg.traces_checkpoint_dir(),
        cfg.traces_checkpoints_off(a.processes),
        cfg.traces_fingerprint(workers),
        workers,
    )
}

/// `job`'s checkpoints in `dir` (removed first with --from-scratch), unless `off` says why not.
fn job_checkpoints(
    job: &str,
    cfg: &RunConfig,
    dir: std::path::PathBuf,
    off: Option<&'static str>,
    fingerprint: String,
    workers: usize,
) -> Result<Option<Arc<Checkpoints>>, RunError> {
    let store = match &cfg.checkpoint_url {
        Some(url) => CheckpointStore::at_url(url, job)
            .map_err(|e| RunError::Config(format!("--checkpoint-url: {e}")))?,
        None => CheckpointStore::new(dir),
    };
    if cfg.from_scratch {
        store
            .clear()
            .map_err(|e| RunError::Config(format!("--from-scratch: {e}")))?;
        tracing::info!(job, dir = %store.dir().display(), "--from-scratch: checkpoints removed");
    }
    if let Some(why) = off {
        tracing::info!(
            job,
            reason = why,
            "no checkpoints of this job: a restart replays from the committed offsets"
        );
        return Ok(None);
    }
    Checkpoints::open(job, store, cfg.checkpoint_interval, workers, fingerprint)
        .map(Some)
        .map_err(|e| RunError::Config(e.to_string()))
}
