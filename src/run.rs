//! `apo run`: wires the embedded broker (when no --brokers), the generator, the timely cluster,
//! the Kafka source, the dead-letter producer and the sinks, and prints progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use apo_dataflow::pipeline::{run_worker, PipelineConfig};
use apo_dataflow::progress::{percentile, Progress};
use apo_dataflow::sink::StatsSink;
use apo_ingest::decode::TimeBounds;
use apo_ingest::dlq::KafkaDeadLetters;
use apo_ingest::kafka::{ensure_topics, KafkaSource};
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
        max_messages_per_sec: a.max_messages_per_sec,
        ..Default::default()
    };
    cfg.validate()?;
    Ok(cfg)
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

/// Sets `stop` on SIGINT or SIGTERM.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handler")?;
    }
    Ok(stop)
}

fn print_progress(p: &Progress, started: Instant, last: &mut (Instant, u64)) {
    let points = Progress::get(&p.points_in);
    let rate = (points - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
    *last = (Instant::now(), points);
    let wm = p.watermark_ms.load(Ordering::Relaxed);
    let now = chrono::Utc::now().timestamp_millis();
    let delay = if wm == i64::MIN {
        "–".to_string()
    } else {
        format!("{:.1} s", (now - wm) as f64 / 1000.0)
    };
    let lag = p.lag.load(Ordering::Relaxed);
    let mut lat = p.take_latencies();
    let latency = if lat.is_empty() {
        "–".to_string()
    } else {
        let p50 = percentile(&mut lat, 0.5);
        format!("{p50:.0}/{:.0} ms", percentile(&mut lat, 0.99))
    };
    eprintln!(
        "[{:>6.0}s] points in {points} ({rate:.0}/s) | windows out {} ({} revisions) | close→out p50/p99 {latency} | dlq {} | lag {lag} msgs | watermark delay {delay} | windows held {}",
        started.elapsed().as_secs_f64(),
        Progress::get(&p.windows_out),
        Progress::get(&p.revisions_out),
        Progress::get(&p.dlq_messages),
        p.windows_held.load(Ordering::Relaxed),
    );
}

pub fn run(a: RunArgs) -> Result<()> {
    let cfg = pipeline_config(&a)?;
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
    if a.kafka.create_topics {
        ensure_topics(
            &client,
            &[&a.metrics_topic, &a.window_stats_topic, &a.dlq_topic],
            a.kafka.partitions,
        )
        .with_context(|| format!("creating topics on {brokers}"))?;
    }
    if a.kafka.brokers.is_none() && a.generate_rate > 0.0 {
        let client = client.clone();
        let topic = a.metrics_topic.clone();
        let rate = a.generate_rate;
        let stop = stop.clone();
        eprintln!("synthetic traffic: {rate} points/s to {topic}");
        generator = Some(std::thread::spawn(move || {
            let mut g =
                apo_ingest::generator::Generator::new(&apo_ingest::generator::GeneratorConfig {
                    rate,
                    start_ms: chrono::Utc::now().timestamp_millis(),
                    ..Default::default()
                });
            let r = apo_ingest::generator::produce(
                &client,
                &topic,
                &mut g,
                200,
                None,
                None,
                apo_ingest::generator::Pace::RealTime,
                &|| stop.load(Ordering::Relaxed),
                &mut |_| {},
            );
            if let Err(e) = r {
                tracing::error!(error = %e, "synthetic generator stopped");
            }
        }));
    }

    let progress = Arc::new(Progress::new(a.workers.max(1)));
    progress.watermark_ms.store(i64::MIN, Ordering::Relaxed);
    let done = Arc::new(AtomicBool::new(false));
    let reporter = if a.progress_interval > Duration::ZERO {
        let (p, d, every) = (progress.clone(), done.clone(), a.progress_interval);
        Some(std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = (Instant::now(), 0);
            let mut next = Instant::now() + every;
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if Instant::now() >= next {
                    print_progress(&p, started, &mut last);
                    next += every;
                }
            }
            print_progress(&p, started, &mut last);
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
    let (data_dir, roll, process) = (a.data_dir.clone(), a.parquet_roll, a.process);
    let worker_progress = progress.clone();
    let worker_stop = stop.clone();
    let guards = timely::execute(timely_cfg, move |worker| -> Result<u64, String> {
        let (index, peers) = (worker.index(), worker.peers());
        let source = KafkaSource::new(&client, &group, &metrics_topic, index, peers).map_err(|e| e.to_string())?;
        tracing::info!(worker = index, partitions = ?apo_ingest::source::MessageSource::partitions(&source), "reading {metrics_topic}");
        let dlq = KafkaDeadLetters::new(&client, &dlq_topic).map_err(|e| e.to_string())?;
        let sinks: Vec<Box<dyn StatsSink>> = vec![
            Box::new(KafkaStatsSink::new(&client, &stats_topic).map_err(|e| e.to_string())?),
            Box::new(ParquetStatsSink::new(&data_dir, &format!("p{process}-w{index}"), roll).map_err(|e| e.to_string())?),
        ];
        let report = run_worker(worker, &cfg, Box::new(source), Box::new(dlq), sinks, worker_progress.clone(), worker_stop.clone())
            .map_err(|e| e.to_string())?;
        Ok(report.points)
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
    if let Some(g) = generator {
        let _ = g.join();
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}
