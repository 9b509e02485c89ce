//! `apo bench`'s checkpoints (issue 30): what taking them costs and what they save.
//!
//! 1. **Cost.** The metrics dataflow over 48, 10 000 and 100 000 live series, fed generated
//!    points from memory (no broker, so the dataflow and the checkpoints are all that is
//!    measured), once with checkpoints every 10 s and once without, on the same points in the
//!    same process: points/s of both, and of the checkpoints taken their duration (announcement
//!    to files on disk) and size.
//! 2. **Saving.** Live traffic goes into a topic in real time for `--restart-after` (5 min)
//!    while two pipelines read it, one taking checkpoints and one not (offsets then commit only
//!    at a cut no open window spans, which a stream without pauses does not have); both are
//!    stopped and started again in turn, the traffic going on, and each restart is timed until
//!    its watermark reaches the moment it restarted (caught up), with the messages it read to
//!    get there.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use apo_dataflow::{
    percentile, CheckpointStore, Checkpoints, LaneConfig, MetricsConfig, MetricsJob, Progress,
    SeriesLimits, Taken,
};
use apo_ingest::dlq::{KafkaDeadLetters, MemoryDeadLetters};
use apo_ingest::generator::{Generator, GeneratorConfig, GeneratorSource, Pace};
use apo_ingest::kafka::KafkaSource;
use apo_pipeline::{Broker, Delivery, Outputs};

use crate::phase::{run_workers, Parts};
use crate::series::Discard;

const BATCH: usize = 200;
/// How often checkpoints are taken (`apo run`'s default).
const INTERVAL: Duration = Duration::from_secs(10);

/// `series` live series as services × metrics (at most 1 000 metrics a service), each with a
/// point every event second or more often (at least 1 000 points an event second in all),
/// the event time ending about now for `points` points.
fn generator(series: usize, points: u64, stamp: i64) -> GeneratorConfig {
    let services = series.div_ceil(1_000).max(1);
    let metrics = (series / services).max(1);
    let rate = (services * metrics).max(1_000) as f64;
    GeneratorConfig {
        services,
        metrics,
        rate,
        start_ms: stamp - (points as f64 / rate * 1000.0) as i64 - 60_000,
        incidents_per_hour: 0.0,
        seed: 13,
    }
}

/// The metrics job with the series limits out of the way (the state is what is measured).
fn metrics_config() -> MetricsConfig {
    MetricsConfig {
        series_limits: SeriesLimits {
            max_series: 100_000_000,
            max_series_per_service: 100_000_000,
            max_attribute_sets: 100_000_000,
        },
        ..MetricsConfig::default()
    }
}

/// One run from memory: points/s and the checkpoints taken (with checkpoints under `dir`).
fn memory_run(
    cfg: &LaneConfig,
    series: usize,
    points: u64,
    stamp: i64,
    dir: Option<&Path>,
) -> Result<(f64, Vec<Taken>)> {
    let checkpoints = match dir {
        Some(d) => {
            let store = CheckpointStore::new(d);
            store.clear().context("clearing the bench checkpoints")?;
            Some(Checkpoints::open(
                "metrics",
                store,
                INTERVAL,
                1,
                "bench".into(),
            )?)
        }
        None => None,
    };
    let g = generator(series, points, stamp);
    let metrics = metrics_config();
    let started = Instant::now();
    let used = run_workers(
        1,
        cfg.clone(),
        Arc::new(Progress::new(1)),
        checkpoints.clone(),
        Arc::new(AtomicBool::new(false)),
        move |_, _| -> Result<Parts<MetricsJob>, String> {
            Ok((
                Box::new(GeneratorSource::new(Generator::new(&g), points, BATCH)) as _,
                Box::new(MemoryDeadLetters::default()) as _,
                MetricsJob::from_config(&metrics, vec![Box::new(Discard::default())])
                    .map_err(|e| e.to_string())?,
            ))
        },
    )?;
    let secs = started.elapsed().as_secs_f64();
    let taken = checkpoints.map(|c| c.taken()).unwrap_or_default();
    if let Some(d) = dir {
        CheckpointStore::new(d).clear()?;
    }
    Ok((used as f64 / secs, taken))
}

/// Part 1: one row per size; each run lasts about `seconds`.
fn cost_rows(
    cfg: &LaneConfig,
    sizes: &[usize],
    seconds: f64,
    stamp: i64,
    dir: &Path,
) -> Result<String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| live series | points a run | points/s, no checkpoints | points/s, checkpoints every {} s | ratio | checkpoints | duration p50 / p99 | size p50 / largest |",
        INTERVAL.as_secs()
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &n in sizes {
        // A short run without checkpoints sets the number of points for `seconds`.
        let pilot = (20 * n as u64).max(1_000_000);
        eprintln!("checkpoints at {n} series: pilot of {pilot} points…");
        let (pps, _) = memory_run(cfg, n, pilot, stamp, None)?;
        let points = ((pps * seconds) as u64).max(pilot);
        eprintln!("checkpoints at {n} series: {points} points with checkpoints, then without…");
        let (on, taken) = memory_run(cfg, n, points, stamp, Some(dir))?;
        let (off, _) = memory_run(cfg, n, points, stamp, None)?;
        let mut ms: Vec<f64> = taken
            .iter()
            .map(|t| t.duration.as_secs_f64() * 1000.0)
            .collect();
        let mut mb: Vec<f64> = taken.iter().map(|t| t.bytes as f64 / 1e6).collect();
        let largest = mb.iter().copied().fold(0.0, f64::max);
        let (duration, size) = if taken.is_empty() {
            ("–".to_string(), "–".to_string())
        } else {
            (
                format!(
                    "{:.0} / {:.0} ms",
                    percentile(&mut ms, 0.5),
                    percentile(&mut ms, 0.99)
                ),
                format!("{:.1} / {largest:.1} MB", percentile(&mut mb, 0.5)),
            )
        };
        let _ = writeln!(
            out,
            "| {n} | {points} | {off:.0} | {on:.0} | {:.1} % | {} | {duration} | {size} |",
            100.0 * on / off,
            taken.len()
        );
    }
    Ok(out)
}

/// A pipeline reading the live topic in the background until stopped.
struct Live {
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    thread: JoinHandle<Result<u64>>,
}

impl Live {
    /// Starts the metrics pipeline on `topic` with consumer `group`, writing to `stats` and
    /// `dlq`, with checkpoints under `checkpoints` (none: no checkpoints).
    fn start(
        broker: &Broker,
        topics: (&str, &str, &str),
        group: &str,
        dir: &Path,
        checkpoints: Option<&Path>,
    ) -> Result<Live> {
        let checkpoints = match checkpoints {
            Some(d) => Some(Checkpoints::open(
                "metrics",
                CheckpointStore::new(d),
                INTERVAL,
                1,
                "bench".into(),
            )?),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::new(1));
        let (client, group, dir) = (broker.client().clone(), group.to_string(), dir.to_owned());
        let (topic, stats, dlq) = (
            topics.0.to_string(),
            topics.1.to_string(),
            topics.2.to_string(),
        );
        let (p, s) = (progress.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let cfg = LaneConfig {
                idle_timeout: Duration::from_secs(2),
                ..Default::default()
            };
            run_workers(1, cfg, p, checkpoints, s, move |i, n| {
                let src =
                    KafkaSource::new(&client, &group, &topic, i, n).map_err(|e| e.to_string())?;
                let dead = KafkaDeadLetters::new(&client, &dlq).map_err(|e| e.to_string())?;
                let sinks = Outputs::new(&client, &dir, "w0", Duration::from_secs(10), &dlq)
                    .standard(&stats, Delivery::Prompt)
                    .map_err(|e| e.to_string())?;
                Ok((
                    Box::new(src) as _,
                    Box::new(dead) as _,
                    MetricsJob::from_config(&MetricsConfig::default(), sinks)
                        .map_err(|e| e.to_string())?,
                ))
            })
        });
        Ok(Live {
            stop,
            progress,
            thread,
        })
    }

    /// Stops it as SIGTERM stops `apo run`.
    fn stop(self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("a bench pipeline panicked"))??;
        Ok(())
    }

    /// Waits until its watermark reaches `at` (ms) less the lateness: it has read everything
    /// produced before `at`. Returns the time it took and the messages read, or `None` after
    /// `limit`.
    fn caught_up(&self, at: i64, lateness: Duration, limit: Duration) -> Option<(f64, u64)> {
        let started = Instant::now();
        let target = at - lateness.as_millis() as i64;
        while started.elapsed() < limit {
            if self.progress.watermark_ms().is_some_and(|wm| wm >= target) {
                return Some((
                    started.elapsed().as_secs_f64(),
                    Progress::get(&self.progress.messages_in),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Part 2: live traffic at `rate` points/s for `after`, then a restart of each pipeline.
fn restart_rows(broker: &Broker, dir: &Path, after: Duration, rate: f64) -> Result<String> {
    let stamp = chrono::Utc::now().timestamp_millis();
    let topic = format!("apo.bench.{stamp}.live");
    let stats = format!("{topic}.stats");
    let dlq = format!("{topic}.dlq");
    let partitions = 4;
    broker.prepare_topics(&[&topic, &stats, &dlq], true, partitions)?;
    let traffic_stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let traffic = {
        let (client, topic, stop, produced) = (
            broker.client().clone(),
            topic.clone(),
            traffic_stop.clone(),
            produced.clone(),
        );
        std::thread::spawn(move || {
            let mut g = Generator::new(&GeneratorConfig {
                services: 12,
                metrics: 4,
                rate,
                start_ms: chrono::Utc::now().timestamp_millis(),
                incidents_per_hour: 6.0,
                seed: 17,
            });
            apo_ingest::generator::produce(
                &client,
                &topic,
                &mut g,
                BATCH,
                None,
                None,
                Pace::RealTime,
                &|| stop.load(Ordering::Relaxed),
                &mut |s| produced.store(s.messages, Ordering::Relaxed),
            )
        })
    };
    let topics = (topic.as_str(), stats.as_str(), dlq.as_str());
    let with_dir = dir.join(format!("live-{stamp}-checkpoints"));
    let parquet = |what: &str| dir.join(format!("live-{stamp}-{what}"));
    let with = Live::start(
        broker,
        topics,
        &format!("apo-bench-{stamp}-with"),
        &parquet("with"),
        Some(&with_dir),
    )?;
    let without = Live::start(
        broker,
        topics,
        &format!("apo-bench-{stamp}-without"),
        &parquet("without"),
        None,
    )?;
    eprintln!(
        "restart: {:.0} s of live traffic at {rate:.0} points/s…",
        after.as_secs_f64()
    );
    let started = Instant::now();
    while started.elapsed() < after {
        std::thread::sleep(Duration::from_secs(1));
        if traffic.is_finished() {
            break;
        }
    }
    let lateness = LaneConfig::default().lateness;
    let limit = Duration::from_secs(900);
    let mut rows = Vec::new();
    for (name, live, checkpoints) in [
        ("checkpoints every 10 s", with, Some(with_dir.as_path())),
        ("no checkpoints", without, None),
    ] {
        let group = if checkpoints.is_some() {
            format!("apo-bench-{stamp}-with")
        } else {
            format!("apo-bench-{stamp}-without")
        };
        eprintln!("restart: stopping and starting the pipeline with {name}…");
        live.stop()?;
        let at = chrono::Utc::now().timestamp_millis();
        let before = produced.load(Ordering::Relaxed);
        let again = Live::start(broker, topics, &group, &parquet(name), checkpoints)?;
        let caught = again.caught_up(at, lateness, limit);
        again.stop()?;
        rows.push((name, caught, before));
    }
    traffic_stop.store(true, Ordering::Relaxed);
    let sent = traffic
        .join()
        .map_err(|_| anyhow::anyhow!("the traffic thread panicked"))??;
    let _ = std::fs::remove_dir_all(&with_dir);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Restart after {:.0} s of live traffic ({rate:.0} points/s in messages of up to {BATCH}, \
         48 series, {partitions} partitions, event time = wall time; {} messages sent in all), \
         each pipeline stopped as SIGTERM stops `apo run` and started again while the traffic \
         goes on; caught up = its watermark reached the moment it restarted less the lateness.\n",
        after.as_secs_f64(),
        sent.messages
    );
    let _ = writeln!(
        out,
        "| pipeline | messages in the topic at the restart | messages read to catch up | time to caught up |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (name, caught, before) in rows {
        let (secs, read) = match caught {
            Some((s, r)) => (format!("{s:.2} s"), r.to_string()),
            None => (format!("not in {} s", limit.as_secs()), "–".into()),
        };
        let _ = writeln!(out, "| {name} | {before} | {read} | {secs} |");
    }
    Ok(out)
}

/// The section: part 1 over `sizes` (each run about `seconds`; empty: skipped), part 2 after
/// `after` of live traffic at `rate` points/s (zero: skipped).
pub fn checkpoints_section(
    broker: Option<&Broker>,
    dir: &Path,
    sizes: &[usize],
    seconds: f64,
    after: Duration,
    rate: f64,
) -> Result<String> {
    let cfg = LaneConfig {
        drain: true,
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let stamp = chrono::Utc::now().timestamp_millis();
    let sizes: Vec<usize> = sizes.iter().copied().filter(|&n| n > 0).collect();
    let mut out = String::new();
    if !sizes.is_empty() {
        let _ = writeln!(
            out,
            "Cost: the metrics dataflow from memory (generated points, decode included, no broker), \
             1 worker, windows {:?} s, horizon 5 min, every series with a point each event second \
             or more often; the same points with checkpoints every {} s (written under the data \
             directory: parts, CRC-32, fsync, rename) and without, in the same process. Duration: \
             from a checkpoint's announcement to its files on disk.\n",
            MetricsConfig::default().window_seconds,
            INTERVAL.as_secs()
        );
        out.push_str(&cost_rows(
            &cfg,
            &sizes,
            seconds,
            stamp,
            &dir.join(format!("cost-{stamp}")),
        )?);
    }
    if let (Some(b), false) = (broker, after.is_zero()) {
        out.push('\n');
        out.push_str(&restart_rows(b, dir, after, rate)?);
    }
    Ok(out)
}
