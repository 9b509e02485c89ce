//! The topology: what every worker runs, built from a [`RunConfig`]. A worker has a metrics
//! lane (its partitions of the metrics topic → window statistics, and the models' scores and
//! forecasts when on) and, when the trace pipeline is on, a trace lane (its partitions of the
//! spans topic → RED, SLOs, critical paths and shares, the service map and its current view,
//! and anomaly scores of RED). Each output table is a [`Outputs::standard`] pair.
//!
//! A new table of an existing lane is a field of its job's sinks and one line here; a new lane
//! is one more `JobLane` pushed in [`worker_lanes`].

use std::sync::Arc;

use apo_dataflow::{
    Checkpoints, Job, JobLane, Lane, MetricsJob, ModelStage, PlannerStage, Progress,
};
use apo_dataflow::{CircuitStage, RedAnomalies, SpanJob, SpanSinks, StateInputs};
use apo_ingest::actions::ActionLog;
use apo_ingest::dlq::{
    already_written, DeadLetterSink, KafkaDeadLetters, SkipWritten, CLOCK_MARGIN_MS,
};
use apo_ingest::kafka::KafkaSource;
use apo_ingest::source::MessageSource;
use rdkafka::ClientConfig;
use timely::worker::Worker;

use crate::outputs::{Delivery, Outputs};
use crate::warm::WarmStart;
use crate::{RunConfig, RunError, Topics};

/// What the workers of a process share: the Kafka client, the actions log, the past windows
/// of a warm start, and each lane's progress.
#[derive(Clone)]
pub struct Shared {
    /// Client settings of the broker.
    pub client: ClientConfig,
    /// Actions carried out, followed on a thread of their own (alert suppression).
    pub actions: Option<ActionLog>,
    /// Past windows for the models' warm start.
    pub past: WarmStart,
    /// The metrics lane's progress, one slot per worker.
    pub metrics_progress: Arc<Progress>,
    /// The trace lane's progress, one slot per worker.
    pub traces_progress: Arc<Progress>,
    /// The metrics job's checkpoints, when it takes them.
    pub metrics_checkpoints: Option<Arc<Checkpoints>>,
    /// The trace job's checkpoints, when it takes them.
    pub traces_checkpoints: Option<Arc<Checkpoints>>,
}

/// The sinks of the trace job's tables, each the standard pair of its topic.
pub fn span_sinks(outputs: &Outputs, topics: &Topics) -> Result<SpanSinks, RunError> {
    let b = Delivery::Batched;
    Ok(SpanSinks {
        red: outputs.standard(&topics.red, b)?,
        critical_path: outputs.standard(&topics.critical_path, b)?,
        critical_path_share: outputs.standard(&topics.critical_path_share, b)?,
        service_map: outputs.standard(&topics.service_map, b)?,
        slo: outputs.standard(&topics.slo, b)?,
        service_map_current: outputs.standard(&topics.service_map_current, b)?,
    })
}

/// The metrics job of `cfg`, writing to `outputs`, with the models' stage when on.
pub fn metrics_job(
    cfg: &RunConfig,
    outputs: &Outputs,
    shared: &Shared,
) -> Result<MetricsJob, RunError> {
    let t = &cfg.topics;
    let sinks = outputs.standard(&t.window_stats, Delivery::Prompt)?;
    let mut job = MetricsJob::from_config(&cfg.metrics, sinks)?;
    if let Some(mc) = &cfg.models {
        job = job.with_models(ModelStage {
            config: mc.clone(),
            anomaly_sinks: outputs.standard(&t.anomalies, Delivery::Batched)?,
            forecast_sinks: outputs.standard(&t.forecasts, Delivery::Batched)?,
            anomaly_inputs: StateInputs {
                actions: shared.actions.clone(),
                past: shared.past.metrics.clone(),
            },
            forecast_past: shared.past.forecasts.clone(),
        });
    }
    if let Some((config, key)) = &cfg.planner {
        // Prompt: the actuators wait for them.
        job = job.with_planner(PlannerStage {
            config: config.clone(),
            key: key.clone(),
            sinks: outputs.standard(&t.decisions, Delivery::Prompt)?,
        });
    }
    Ok(job)
}

/// The trace job of `cfg` (which must have the trace pipeline on), with anomaly scores of RED
/// when the anomaly model is on.
pub fn span_job(
    cfg: &RunConfig,
    outputs: &Outputs,
    shared: &Shared,
) -> Result<Option<SpanJob>, RunError> {
    let Some(span_cfg) = &cfg.spans else {
        return Ok(None);
    };
    let mut job = SpanJob::new(span_cfg.clone(), span_sinks(outputs, &cfg.topics)?);
    if let Some(mc) = cfg.models.as_ref().filter(|m| m.anomaly_model.is_some()) {
        job = job.with_anomalies(RedAnomalies {
            config: mc.clone(),
            // a file prefix of its own: the metrics lane writes the same table
            sinks: outputs
                .suffixed("red")
                .standard(&cfg.topics.anomalies, Delivery::Batched)?,
            inputs: StateInputs {
                actions: shared.actions.clone(),
                past: shared.past.red.clone(),
            },
        });
    }
    if let Some((config, key)) = cfg.planner.as_ref().filter(|(c, _)| !c.circuit.is_empty()) {
        job = job.with_circuits(CircuitStage {
            config: config.clone(),
            key: key.clone(),
            // a file prefix of its own: the metrics lane's planner writes the same table
            sinks: outputs
                .suffixed("circuit")
                .standard(&cfg.topics.decisions, Delivery::Prompt)?,
        });
    }
    Ok(Some(job))
}

/// This worker's source of `topic`: its share of the partitions.
fn source(
    cfg: &RunConfig,
    shared: &Shared,
    topic: &str,
    worker: &Worker,
) -> Result<Box<dyn MessageSource>, RunError> {
    let (index, peers) = (worker.index(), worker.peers());
    let source = KafkaSource::new(&shared.client, &cfg.group, topic, index, peers)
        .map_err(|e| RunError::kafka(format!("reading `{topic}`"), e))?;
    tracing::info!(worker = index, partitions = ?source.partitions(), "reading {topic}");
    Ok(Box::new(source))
}

/// The dead letters of the lane of `worker` reading `topic`. A lane restored from a checkpoint
/// re-reads the messages after the checkpoint's positions: the letters the run before wrote for
/// them are read back from the topic, and not written again.
fn dead_letters(
    cfg: &RunConfig,
    shared: &Shared,
    topic: &str,
    checkpoints: Option<&Arc<Checkpoints>>,
    worker: &Worker,
) -> Result<Box<dyn DeadLetterSink>, RunError> {
    let dlq = KafkaDeadLetters::new(&shared.client, &cfg.topics.dlq)
        .map_err(|e| RunError::kafka(format!("the dead-letter topic `{}`", cfg.topics.dlq), e))?;
    let Some(lane) = checkpoints.and_then(|c| c.restored_lane(worker.index())) else {
        return Ok(Box::new(dlq));
    };
    // A checkpoint of an older version does not say when: the topic from its start.
    let since = lane.at_ms.map_or(0, |t| t - CLOCK_MARGIN_MS);
    match already_written(
        &shared.client,
        &cfg.topics.dlq,
        topic,
        &lane.positions,
        since,
        LETTERS_READ_BACK_WAIT,
    ) {
        Ok(written) => {
            tracing::info!(
                worker = worker.index(),
                topic,
                letters = written.len(),
                "dead letters of the messages the restart re-reads that are already in `{}`: \
                 not written again",
                cfg.topics.dlq
            );
            Ok(Box::new(SkipWritten::new(Box::new(dlq), topic, written)))
        }
        Err(e) => {
            tracing::warn!(
                worker = worker.index(),
                error = %e,
                "could not read back the dead letters of the messages the restart re-reads: \
                 their letters may be written twice"
            );
            Ok(Box::new(dlq))
        }
    }
}

/// How long a restored lane reads the dead-letter topic back before it starts.
const LETTERS_READ_BACK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The lane of `job` on `worker`, reading its share of `topic`, with its dead letters and
/// checkpoints.
fn job_lane<J: Job>(
    worker: &mut Worker,
    cfg: &RunConfig,
    shared: &Shared,
    job: J,
    topic: &str,
    progress: &Arc<Progress>,
    checkpoints: Option<&Arc<Checkpoints>>,
) -> Result<JobLane<J>, RunError> {
    // The letters read back first: the source, once assigned, is seeked to the checkpoint's
    // positions at once (in between it asks the group for committed offsets it will not use).
    let letters = dead_letters(cfg, shared, topic, checkpoints, worker)?;
    let source = source(cfg, shared, topic, worker)?;
    Ok(JobLane::with_checkpoints(
        worker,
        &cfg.lanes,
        job,
        source,
        letters,
        progress.clone(),
        checkpoints.cloned(),
    )?)
}

/// The lanes of one worker.
pub fn worker_lanes(
    worker: &mut Worker,
    cfg: &RunConfig,
    shared: &Shared,
) -> Result<Vec<Box<dyn Lane>>, RunError> {
    let prefix = format!("p{}-w{}", cfg.process, worker.index());
    let outputs = Outputs::new(
        &shared.client,
        &cfg.data_dir,
        &prefix,
        cfg.parquet_roll,
        &cfg.topics.dlq,
    );
    let metrics = job_lane(
        worker,
        cfg,
        shared,
        metrics_job(cfg, &outputs, shared)?,
        &cfg.topics.metrics,
        &shared.metrics_progress,
        shared.metrics_checkpoints.as_ref(),
    )?;
    let mut lanes: Vec<Box<dyn Lane>> = vec![Box::new(metrics)];
    if let Some(job) = span_job(cfg, &outputs, shared)? {
        let spans = job_lane(
            worker,
            cfg,
            shared,
            job,
            &cfg.topics.spans,
            &shared.traces_progress,
            shared.traces_checkpoints.as_ref(),
        )?;
        lanes.push(Box::new(spans));
    }
    Ok(lanes)
}
