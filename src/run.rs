//! `apo run`: wires the embedded broker (when no --brokers), the generators, the timely cluster,
//! and on every worker two lanes — metrics and traces — each with its Kafka source, dead-letter
//! producer and sinks; prints progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use apo_dataflow::AssemblyConfig;
use apo_dataflow::RowSink;
use apo_dataflow::{anomaly_warm_windows, ModelConfig, StateInputs};
use apo_dataflow::{percentile, Progress};
use apo_dataflow::{run_lanes, PipelineConfig};
use apo_dataflow::{JobLane, Lane};
use apo_dataflow::{Loader, PastWindows};
use apo_dataflow::{MetricsJob, ModelStage};
use apo_dataflow::{RedAnomalies, SpanConfig, SpanJob, SpanSinks};
use apo_ingest::actions::follow_actions;
use apo_ingest::decode::TimeBounds;
use apo_ingest::dlq::KafkaDeadLetters;
use apo_ingest::kafka::{ensure_topics, partition_count, KafkaSource};
use apo_ingest::trace_generator::{TraceGenerator, TraceGeneratorConfig};
use apo_ingest::trace_produce::{produce_traces, SpanFormat};
use apo_models::features::HISTORY;
use apo_schemas::red::RedStats;
use apo_schemas::WindowStats;
use apo_sinks::history::{read_since, ReadBack};
use apo_sinks::kafka::KafkaStatsSink;
use apo_sinks::parquet::ParquetStatsSink;

use crate::cli::RunArgs;
use crate::config::kafka_client;

pub fn pipeline_config(a: &RunArgs) -> Result<PipelineConfig> {
    let mut windows = Vec::new();
    for w in &a.windows {
        if w.subsec_nanos() != 0 || w.as_secs() == 0 || w.as_secs() > u32::MAX as u64 {
            bail!("window size {w:?} must be a whole number of seconds");
        }
        windows.push(w.as_secs() as u32);
    }
    windows.sort_unstable();
    windows.dedup();
    let cfg = PipelineConfig {
        window_seconds: windows,
        relative_accuracy: a.accuracy,
        lateness: a.lateness,
        horizon: a.horizon,
        idle_timeout: a.idle_timeout,
        encoding: a.encoding,
        time_bounds: TimeBounds {
            max_age_ms: a.max_event_age.as_millis() as i64,
            max_future_ms: a.max_event_future.as_millis() as i64,
        },
        drain: a.drain,
        drain_stall: a.drain_stall_timeout,
        max_messages_per_sec: a.max_messages_per_sec,
        ..Default::default()
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The models' stage, or `None` when it is off or no model is found. Models named on the
/// command line must load; the default ones are used when present.
pub fn model_config(a: &RunArgs) -> Result<Option<ModelConfig>> {
    let m = &a.models;
    if !m.enabled {
        return Ok(None);
    }
    let pick = |given: &Option<std::path::PathBuf>, default: &str, what: &str| {
        given.clone().or_else(|| {
            let p = std::path::Path::new(apo_models::DEFAULT_ARTIFACTS).join(default);
            if p.exists() {
                Some(p)
            } else {
                tracing::warn!("no {what} model at {} (run from the repository root, or give its path): {what} off", p.display());
                None
            }
        })
    };
    let cfg = ModelConfig {
        anomaly_model: pick(&m.anomaly_model, "iforest.onnx", "anomaly"),
        forecast_model: pick(&m.forecast_model, "lstm.onnx", "forecast"),
        alert: apo_models::alerting::AlertConfig {
            suppress_seconds: m.suppress_seconds,
            ..m.alert.config()
        },
        forecast_signal: m.forecast_signal,
        reload_check: m.model_reload_check,
    };
    if cfg.anomaly_model.is_none() && cfg.forecast_model.is_none() {
        return Ok(None);
    }
    cfg.check()
        .context("loading the models (--models false runs without them)")?;
    Ok(Some(cfg))
}

/// Past windows for a warm start of the models' per-series state, one set per consumer.
#[derive(Default)]
struct WarmStart {
    metrics: Option<Arc<PastWindows<WindowStats>>>,
    forecasts: Option<Arc<PastWindows<WindowStats>>>,
    red: Option<Arc<PastWindows<RedStats>>>,
}

fn warm_start(
    m: &ModelConfig,
    data_dir: &std::path::Path,
    cfg: &PipelineConfig,
    spans: Option<&SpanConfig>,
) -> Result<WarmStart> {
    fn loader<R: ReadBack>(dir: &std::path::Path) -> Loader<R> {
        let dir = dir.to_path_buf();
        Box::new(move |since| read_since::<R>(&dir, since).map_err(|e| e.to_string()))
    }
    let largest = |secs: &[u32]| i64::from(secs.iter().copied().max().unwrap_or(1)) * 1000;
    let metrics_ms = largest(&cfg.window_seconds);
    let mut w = WarmStart::default();
    let need = anomaly_warm_windows(&m.alert);
    // the forest and the forecaster both warm from window_stats: one read for both
    let mut views: Vec<(usize, usize)> = Vec::new();
    if m.anomaly_model.is_some() {
        views.push((need, HISTORY));
    }
    if let Some(p) = &m.forecast_model {
        let l = apo_models::Forecaster::load(p)?.seq_len();
        views.push((l, l));
    }
    let mut metrics = PastWindows::shared(&views, metrics_ms, loader(data_dir)).into_iter();
    if m.anomaly_model.is_some() {
        w.metrics = metrics.next();
        if let Some(s) = spans {
            let red_ms = largest(&[s.window_seconds]);
            w.red = Some(PastWindows::new(need, HISTORY, red_ms, loader(data_dir)));
        }
    }
    w.forecasts = metrics.next();
    Ok(w)
}

pub fn span_config(a: &RunArgs, cfg: &PipelineConfig) -> Result<SpanConfig> {
    let t = &a.traces;
    let w = t.trace_window;
    if w.subsec_nanos() != 0 || w.as_secs() == 0 || w.as_secs() > u32::MAX as u64 {
        bail!("--trace-window {w:?} must be a whole number of seconds");
    }
    if t.max_trace_spans == 0 || t.max_held_spans == 0 {
        bail!("--max-trace-spans and --max-held-spans must be at least 1");
    }
    let (objectives, burn) = crate::slo_config::load(t.slo_file.as_deref())?;
    Ok(SpanConfig {
        window_seconds: w.as_secs() as u32,
        relative_accuracy: cfg.relative_accuracy,
        max_operations: t.max_operations.max(1),
        max_share_rows: t.max_share_rows.max(1),
        assembly: AssemblyConfig {
            idle_ms: t.trace_idle.as_millis() as i64,
            max_spans_per_trace: t.max_trace_spans,
            max_spans_held: t.max_held_spans,
            horizon_ms: cfg.horizon.as_millis() as i64,
        },
        time_bounds: cfg.time_bounds,
        objectives,
        burn,
        map_horizon_ms: t.map_horizon.as_millis().max(1) as i64,
    })
}

pub fn timely_config(
    workers: usize,
    processes: usize,
    process: usize,
    hostfile: Option<&std::path::Path>,
) -> Result<timely::Config> {
    if workers == 0 {
        bail!("--workers must be at least 1");
    }
    if processes <= 1 {
        return Ok(timely::Config::process(workers));
    }
    if process >= processes {
        bail!("--process {process} must be below --processes {processes}");
    }
    let addresses: Vec<String> = match hostfile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading hostfile {}", path.display()))?;
            let hosts: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if hosts.len() < processes {
                bail!(
                    "hostfile {} lists {} hosts for {processes} processes",
                    path.display(),
                    hosts.len()
                );
            }
            hosts.into_iter().take(processes).collect()
        }
        None => (0..processes)
            .map(|i| format!("localhost:{}", 2101 + i))
            .collect(),
    };
    Ok(timely::Config {
        communication: timely::CommunicationConfig::Cluster {
            threads: workers,
            process,
            addresses,
            report: false,
            zerocopy: false,
        },
        worker: timely::WorkerConfig::default(),
    })
}

/// Runs a synthetic load producer on a thread of its own, logging why it stopped if it failed.
fn spawn_generator(
    name: &'static str,
    produce: impl FnOnce() -> Result<apo_ingest::generator::ProduceStats, apo_ingest::IngestError>
        + Send
        + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        if let Err(e) = produce() {
            tracing::error!(error = %e, "{name} stopped");
        }
    })
}

/// Sets `stop` on SIGINT or SIGTERM.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handler")?;
    }
    Ok(stop)
}

/// What a progress line calls the records and outputs of a lane.
struct Labels {
    lane: &'static str,
    records: &'static str,
    outputs: &'static str,
}

const METRICS: Labels = Labels {
    lane: "metrics",
    records: "points",
    outputs: "windows",
};
const TRACES: Labels = Labels {
    lane: "traces",
    records: "spans",
    outputs: "rows",
};

fn print_progress(l: &Labels, p: &Progress, started: Instant, last: &mut (Instant, u64)) {
    let points = Progress::get(&p.records_in);
    let rate = (points - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
    *last = (Instant::now(), points);
    let now = chrono::Utc::now().timestamp_millis();
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
    eprintln!(
        "[{:>6.0}s] {:<7} | {} in {points} ({rate:.0}/s) | {} out {} ({} revisions) | close→out p50/p99 {latency} | dlq {} | lag {lag} msgs | watermark delay {delay} | held {}",
        started.elapsed().as_secs_f64(),
        l.lane,
        l.records,
        l.outputs,
        Progress::get(&p.rows_out),
        Progress::get(&p.revisions_out),
        Progress::get(&p.dlq_messages),
        p.held(),
    );
}

pub fn run(a: RunArgs) -> Result<()> {
    let cfg = pipeline_config(&a)?;
    let span_cfg = a
        .traces
        .enabled
        .then(|| span_config(&a, &cfg))
        .transpose()?;
    let model_cfg = model_config(&a)?;
    let timely_cfg = timely_config(a.workers, a.processes, a.process, a.hostfile.as_deref())?;
    let stop = stop_on_signals()?;

    #[cfg(feature = "embedded-broker")]
    let mut _embedded: Option<apo_ingest::embedded::EmbeddedBroker> = None;
    let mut generator: Option<std::thread::JoinHandle<()>> = None;
    let brokers = match &a.kafka.brokers {
        Some(b) => b.clone(),
        None => {
            #[cfg(feature = "embedded-broker")]
            {
                if a.processes > 1 {
                    bail!(
                        "a timely cluster (--processes > 1) needs a shared Kafka: pass --brokers"
                    );
                }
                let b = apo_ingest::embedded::EmbeddedBroker::start(&a.data_dir, a.embedded_port)?;
                let addr = b.address().to_string();
                eprintln!(
                    "embedded Kafka-protocol broker listening on {addr} (storage: {}/broker.db)",
                    a.data_dir.display()
                );
                eprintln!("  other processes can use it: apo produce --brokers {addr}   |   apo sql --data-dir {} \"SELECT …\"", a.data_dir.display());
                _embedded = Some(b);
                addr
            }
            #[cfg(not(feature = "embedded-broker"))]
            bail!("no --brokers given, and this build has no embedded broker (feature `embedded-broker`)");
        }
    };
    let client = kafka_client(&brokers, &a.kafka.kafka);
    let t = &a.traces;
    let mut topics = vec![&a.metrics_topic, &a.window_stats_topic, &a.dlq_topic];
    if t.enabled {
        topics.extend([
            &t.spans_topic,
            &t.red_topic,
            &t.critical_path_topic,
            &t.critical_path_share_topic,
            &t.service_map_topic,
            &t.slo_topic,
            &t.service_map_current_topic,
        ]);
    }
    let suppressing = model_cfg
        .as_ref()
        .is_some_and(|m| m.anomaly_model.is_some())
        && !a.models.actions_topic.is_empty();
    if model_cfg.is_some() {
        topics.extend([&a.models.anomalies_topic, &a.models.forecasts_topic]);
    }
    if suppressing {
        topics.push(&a.models.actions_topic);
    }
    let topics: Vec<&str> = topics.into_iter().map(String::as_str).collect();
    if a.kafka.create_topics {
        ensure_topics(&client, &topics, a.kafka.partitions)
            .with_context(|| format!("creating topics on {brokers}"))?;
    } else {
        // A missing output topic would otherwise only show as deliveries timing out minutes later.
        for topic in &topics {
            partition_count(&client, topic)?;
        }
    }
    if a.kafka.brokers.is_none() && a.generate_rate > 0.0 {
        let client = client.clone();
        let topic = a.metrics_topic.clone();
        let rate = a.generate_rate;
        let stop = stop.clone();
        eprintln!("synthetic traffic: {rate} points/s to {topic}");
        generator = Some(spawn_generator("synthetic generator", move || {
            let mut g =
                apo_ingest::generator::Generator::new(&apo_ingest::generator::GeneratorConfig {
                    rate,
                    start_ms: chrono::Utc::now().timestamp_millis(),
                    ..Default::default()
                });
            apo_ingest::generator::produce(
                &client,
                &topic,
                &mut g,
                200,
                None,
                None,
                apo_ingest::generator::Pace::RealTime,
                &|| stop.load(Ordering::Relaxed),
                &mut |_| {},
            )
        }));
    }

    let mut trace_generator: Option<std::thread::JoinHandle<()>> = None;
    if a.kafka.brokers.is_none() && a.generate_traces > 0.0 && a.traces.enabled {
        let client = client.clone();
        let topic = a.traces.spans_topic.clone();
        let rate = a.generate_traces;
        let stop = stop.clone();
        eprintln!("synthetic traffic: {rate} traces/s to {topic}");
        trace_generator = Some(spawn_generator("synthetic trace generator", move || {
            let mut g = TraceGenerator::new(&TraceGeneratorConfig {
                rate,
                start_ms: chrono::Utc::now().timestamp_millis(),
                ..Default::default()
            });
            produce_traces(
                &client,
                &topic,
                &mut g,
                SpanFormat::Json,
                None,
                None,
                apo_ingest::generator::Pace::RealTime,
                &|| stop.load(Ordering::Relaxed),
                &mut |_| {},
            )
        }));
    }

    let mut actions_reader: Option<std::thread::JoinHandle<()>> = None;
    let actions = if suppressing {
        let (log, reader) = follow_actions(
            &client,
            &a.models.actions_topic,
            &a.dlq_topic,
            Duration::from_secs(30),
            stop.clone(),
        )
        .with_context(|| {
            format!(
                "reading the actions topic `{}` (--actions-topic \"\" turns alert suppression off)",
                a.models.actions_topic
            )
        })?;
        actions_reader = Some(reader);
        Some(log)
    } else {
        None
    };

    let past = model_cfg
        .as_ref()
        .filter(|_| a.models.warm_start)
        .map(|m| warm_start(m, &a.data_dir, &cfg, span_cfg.as_ref()))
        .transpose()?
        .unwrap_or_default();

    let progress = Arc::new(Progress::new(a.workers.max(1)));
    let span_progress = Arc::new(Progress::new(a.workers.max(1)));
    let done = Arc::new(AtomicBool::new(false));
    let reporter = if a.progress_interval > Duration::ZERO {
        let (p, d, every) = (progress.clone(), done.clone(), a.progress_interval);
        let sp = span_cfg.is_some().then(|| span_progress.clone());
        Some(std::thread::spawn(move || {
            let started = Instant::now();
            let (mut last, mut last_spans) = ((Instant::now(), 0), (Instant::now(), 0));
            let mut next = Instant::now() + every;
            let print = |last: &mut (Instant, u64), last_spans: &mut (Instant, u64)| {
                print_progress(&METRICS, &p, started, last);
                if let Some(sp) = &sp {
                    print_progress(&TRACES, sp, started, last_spans);
                }
            };
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if Instant::now() >= next {
                    print(&mut last, &mut last_spans);
                    next += every;
                }
            }
            print(&mut last, &mut last_spans);
        }))
    } else {
        None
    };

    let (group, metrics_topic, stats_topic, dlq_topic) = (
        a.group.clone(),
        a.metrics_topic.clone(),
        a.window_stats_topic.clone(),
        a.dlq_topic.clone(),
    );
    let trace_topics = a.traces.clone();
    let model_topics = (
        a.models.anomalies_topic.clone(),
        a.models.forecasts_topic.clone(),
    );
    let (data_dir, roll, process) = (a.data_dir.clone(), a.parquet_roll, a.process);
    let worker_stop = stop.clone();
    let (metrics_progress, traces_progress) = (progress.clone(), span_progress.clone());
    let guards = timely::execute(timely_cfg, move |worker| -> Result<(), String> {
        let (index, peers) = (worker.index(), worker.peers());
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let prefix = format!("p{process}-w{index}");
        let source = KafkaSource::new(&client, &group, &metrics_topic, index, peers).map_err(|x| e(&x))?;
        tracing::info!(worker = index, partitions = ?apo_ingest::source::MessageSource::partitions(&source), "reading {metrics_topic}");
        let sinks: Vec<Box<dyn RowSink>> = vec![
            Box::new(KafkaStatsSink::new(&client, &stats_topic).map_err(|x| e(&x))?),
            Box::new(ParquetStatsSink::new(&data_dir, &prefix, roll).map_err(|x| e(&x))?),
        ];
        let mut job = MetricsJob::new(&cfg.window_seconds, cfg.relative_accuracy, cfg.encoding, cfg.time_bounds, sinks);
        if let Some(mc) = &model_cfg {
            let batched = apo_sinks::kafka::batched(&client);
            job = job.with_models(ModelStage {
                config: mc.clone(),
                anomaly_sinks: vec![Box::new(KafkaStatsSink::new(&batched, &model_topics.0).map_err(|x| e(&x))?), Box::new(ParquetStatsSink::new(&data_dir, &prefix, roll).map_err(|x| e(&x))?)],
                forecast_sinks: vec![Box::new(KafkaStatsSink::new(&batched, &model_topics.1).map_err(|x| e(&x))?), Box::new(ParquetStatsSink::new(&data_dir, &prefix, roll).map_err(|x| e(&x))?)],
                anomaly_inputs: StateInputs { actions: actions.clone(), past: past.metrics.clone() },
                forecast_past: past.forecasts.clone(),
            });
        }
        let dlq = KafkaDeadLetters::new(&client, &dlq_topic).map_err(|x| e(&x))?;
        let metrics = JobLane::new(worker, &cfg, job, Box::new(source), Box::new(dlq), metrics_progress.clone()).map_err(|x| e(&x))?;
        let mut lanes: Vec<Box<dyn Lane>> = vec![Box::new(metrics)];
        if let Some(span_cfg) = &span_cfg {
            let t = &trace_topics;
            let source = KafkaSource::new(&client, &group, &t.spans_topic, index, peers).map_err(|x| e(&x))?;
            tracing::info!(worker = index, partitions = ?apo_ingest::source::MessageSource::partitions(&source), "reading {}", t.spans_topic);
            let batched = apo_sinks::kafka::batched(&client);
            let kafka = |topic: &str| KafkaStatsSink::new(&batched, topic).map_err(|x| e(&x));
            let sinks = SpanSinks {
                red: vec![Box::new(kafka(&t.red_topic)?), Box::new(ParquetStatsSink::new(&data_dir, &prefix, roll).map_err(|x| e(&x))?)],
                critical_path: vec![Box::new(kafka(&t.critical_path_topic)?), Box::new(ParquetStatsSink::new(&data_dir, &prefix, roll).map_err(|x| e(&x))?)],
                critical_path_share: vec![Box::new(kafka(&t.critical_path_share_topic)?), Box::new(ParquetStatsSink::new(&data_dir, &prefix, roll).map_err(|x| e(&x))?)],
                service_map: vec![Box::new(kafka(&t.service_map_topic)?), Box::new(ParquetStatsSink::new(&data_dir, &prefix, roll).map_err(|x| e(&x))?)],
                slo: vec![Box::new(kafka(&t.slo_topic)?), Box::new(ParquetStatsSink::new(&data_dir, &prefix, roll).map_err(|x| e(&x))?)],
                service_map_current: vec![Box::new(kafka(&t.service_map_current_topic)?), Box::new(ParquetStatsSink::new(&data_dir, &prefix, roll).map_err(|x| e(&x))?)],
            };
            let dlq = KafkaDeadLetters::new(&client, &dlq_topic).map_err(|x| e(&x))?;
            let mut job = SpanJob::new(span_cfg.clone(), sinks);
            if let Some(mc) = model_cfg.as_ref().filter(|m| m.anomaly_model.is_some()) {
                job = job.with_anomalies(RedAnomalies {
                    config: mc.clone(),
                    // a file prefix of its own: the metrics lane writes the same table
                    sinks: vec![Box::new(kafka(&model_topics.0)?), Box::new(ParquetStatsSink::new(&data_dir, &format!("{prefix}-red"), roll).map_err(|x| e(&x))?)],
                    inputs: StateInputs { actions: actions.clone(), past: past.red.clone() },
                });
            }
            let spans = JobLane::new(worker, &cfg, job, Box::new(source), Box::new(dlq), traces_progress.clone()).map_err(|x| e(&x))?;
            lanes.push(Box::new(spans));
        }
        run_lanes(worker, lanes, worker_stop.clone()).map_err(|x| e(&x))?;
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("starting timely: {e}"))?;
    let mut errors = Vec::new();
    for r in guards.join() {
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("worker panicked: {e}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    for g in [generator, trace_generator, actions_reader]
        .into_iter()
        .flatten()
    {
        let _ = g.join();
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}
