//! `apo bench`: loads synthetic points into a topic, then measures in one run
//!
//! 1. raw consumption of that topic by an rdkafka consumer that only counts (the limit);
//! 2. the full pipeline on the same topic (throughput, window-close-to-output latency, peak RSS);
//! 3. the same dataflow fed the same records from memory (decode included, no broker);
//! 4. quantile error against exact values of the generated points;
//! 5. peak RSS of the dataflow at two input sizes (points generated lazily), to show memory does
//!    not grow with the number of points;
//! 6. with `--span-count N` (default 1 M), the trace pipeline against raw consumption of its topic (`bench_spans`);
//! 7. with `--otlp-points N` (default 1 M), OTLP as the SDK exports it, from memory and through
//!    the broker, against the APO JSON phases 2 and 3 (`otlp`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use apo_core::MemorySink;
use apo_dataflow::{percentile, LaneConfig, MetricsConfig, MetricsJob};
use apo_ingest::dlq::{KafkaDeadLetters, MemoryDeadLetters};
use apo_ingest::generator::{Generator, GeneratorConfig, GeneratorSource, Pace};
use apo_ingest::kafka::KafkaSource;
use apo_ingest::source::MemorySource;
use apo_pipeline::{Broker, Delivery, Outputs};
use apo_schemas::MetricPoint;

use crate::args::BenchArgs;
use crate::phase::{run_phase, PhaseResult};
use crate::raw::{probe_acks, raw_consume};

const RATE: f64 = 2_000.0;
const BATCH: usize = 200;
/// `--write` keeps the old file from this heading on (sections other commands measure).
const KEPT_FROM: &str = "## Model quality";

/// Series of the APO JSON phases' points (services × metrics of [`generator_config`]).
pub(crate) fn json_series() -> usize {
    let g = generator_config(0);
    g.services * g.metrics
}

fn generator_config(start_ms: i64) -> GeneratorConfig {
    GeneratorConfig {
        services: 12,
        metrics: 4,
        rate: RATE,
        start_ms,
        incidents_per_hour: 6.0,
        seed: 7,
    }
}

/// The full metrics pipeline on `topics` (input, window stats, dead letters, ack probe) with a
/// new consumer `group`, writing Parquet under `dir`; with the broker's ack times for a lone
/// record, probed every 20 ms meanwhile (the latency's baseline).
pub(crate) fn full_pipeline(
    client: &rdkafka::ClientConfig,
    topics: [&String; 4],
    dir: &std::path::Path,
    group: String,
    workers: usize,
    cfg: LaneConfig,
) -> Result<(PhaseResult, Vec<f64>)> {
    let [topic, stats_topic, dlq_topic, probe_topic] = topics.map(|t| t.clone());
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let (client, stop) = (client.clone(), probe_stop.clone());
        std::thread::spawn(move || probe_acks(&client, &probe_topic, &stop))
    };
    let (client, dir) = (client.clone(), dir.to_path_buf());
    let full = run_phase(workers, cfg, move |i, n| {
        let src = KafkaSource::new(&client, &group, &topic, i, n).map_err(|e| e.to_string())?;
        let dlq = KafkaDeadLetters::new(&client, &dlq_topic).map_err(|e| e.to_string())?;
        let sinks = Outputs::new(
            &client,
            &dir,
            &format!("w{i}"),
            Duration::from_secs(10),
            &dlq_topic,
        )
        .standard(&stats_topic, Delivery::Prompt)
        .map_err(|e| e.to_string())?;
        Ok((
            Box::new(src) as _,
            Box::new(dlq) as _,
            MetricsJob::from_config(&MetricsConfig::default(), sinks).map_err(|e| e.to_string())?,
        ))
    });
    probe_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acks = probe
        .join()
        .map_err(|_| anyhow::anyhow!("ack probe panicked"))??;
    Ok((full?, acks))
}

/// The metrics dataflow fed from memory (decode included, no broker): worker `i` of `n` reads
/// `mine(i, n)`; the window rows it made are kept.
pub(crate) fn memory_phase(
    workers: usize,
    cfg: LaneConfig,
    mine: impl Fn(usize, usize) -> Vec<Vec<u8>> + Send + Sync + 'static,
) -> Result<PhaseResult> {
    let sink = MemorySink::default();
    let rows = sink.rows.clone();
    let mem = run_phase(workers, cfg, move |i, n| {
        Ok((
            Box::new(MemorySource::new("memory", mine(i, n))) as _,
            Box::new(MemoryDeadLetters::default()) as _,
            MetricsJob::from_config(&MetricsConfig::default(), vec![Box::new(sink.clone())])
                .map_err(|e| e.to_string())?,
        ))
    })?;
    Ok(PhaseResult {
        rows: rows.lock().map(|r| r.clone()).unwrap_or_default(),
        ..mem
    })
}

/// The close-to-output latency of a pipeline run, split at the hand-over to the sinks, and the
/// broker probe's ack times of the same run.
fn latency_lines(what: &str, run: &PhaseResult, acks: &mut [f64]) -> String {
    let mut lat: Vec<f64> = run.latencies.iter().map(|l| l.total_ms).collect();
    let mut to_write: Vec<f64> = run.latencies.iter().map(|l| l.to_sinks_ms).collect();
    let mut to_ack: Vec<f64> = run
        .latencies
        .iter()
        .map(|l| l.total_ms - l.to_sinks_ms)
        .collect();
    format!(
        "Window close → output acknowledged by Kafka ({what}, {} windows): p50 {:.1} ms, p99 {:.1} ms; \
         of which close → handed to the sinks (the dataflow) p50 {:.1} ms, p99 {:.1} ms, \
         handed → acknowledged (producer and broker) p50 {:.1} ms, p99 {:.1} ms. \
         Baseline in the same run: the broker acknowledged a lone 100-byte record (sent every \
         20 ms, {} records) in p50 {:.1} ms, p99 {:.1} ms.\n\n",
        lat.len(),
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        percentile(&mut to_write, 0.5),
        percentile(&mut to_write, 0.99),
        percentile(&mut to_ack, 0.5),
        percentile(&mut to_ack, 0.99),
        acks.len(),
        percentile(acks, 0.5),
        percentile(acks, 0.99),
    )
}

/// Runs the benchmarks `a` asks for and prints (and with `--write`, writes) the report.
pub fn bench(a: BenchArgs) -> Result<()> {
    if a.points == 0 {
        bail!("--points must be positive");
    }
    if a.models_only {
        let cfg = LaneConfig {
            drain: true,
            idle_timeout: Duration::from_secs(2),
            ..Default::default()
        };
        println!(
            "{}",
            crate::models::models_section(&cfg, a.points, a.workers)?
        );
        return Ok(());
    }
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    if a.checkpoints_only {
        let broker = if a.restart_after.is_zero() {
            None
        } else {
            Some(Broker::connect(&a.kafka, &a.data_dir, 0)?)
        };
        println!(
            "{}",
            crate::checkpoints::checkpoints_section(
                broker.as_ref(),
                &a.data_dir,
                &a.checkpoint_series,
                a.checkpoint_seconds,
                a.restart_after,
                a.restart_rate,
            )?
        );
        return Ok(());
    }
    if a.decisions_only {
        let broker = Broker::connect(&a.kafka, &a.data_dir, 0)?;
        println!(
            "{}",
            crate::decisions::decisions_section(&broker, &a.data_dir, a.workers, a.decisions)?
        );
        return Ok(());
    }
    let stamp = chrono::Utc::now().timestamp_millis();
    let cfg = LaneConfig {
        drain: true,
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    };

    // Memory against live series first, while the process holds least.
    let series_section = match (a.series_sizes.is_empty(), a.series_budget.0) {
        (false, Some(budget)) => Some(crate::series::series_section(
            &cfg,
            &a.series_sizes,
            budget,
            stamp,
        )?),
        (false, None) => {
            bail!("--series-budget needs a size: the measurement compares it with none")
        }
        (true, _) => None,
    };
    if a.series_only {
        if let Some(s) = &series_section {
            println!("{s}");
        }
        return Ok(());
    }

    // 5 first. Memory at two sizes, points generated lazily; before the broker and the other
    // phases hold memory of their own.
    let mut rss_sizes = Vec::new();
    for n in [a.points, a.memory_points] {
        eprintln!("peak memory at {n} points…");
        let r = run_phase(1, cfg.clone(), move |_, _| {
            let g = Generator::new(&generator_config(
                stamp - (n as f64 / RATE * 1000.0) as i64 - 60_000,
            ));
            Ok((
                Box::new(GeneratorSource::new(g, n, BATCH)) as _,
                Box::new(MemoryDeadLetters::default()) as _,
                MetricsJob::from_config(
                    &MetricsConfig::default(),
                    vec![Box::new(MemorySink::default())],
                )
                .map_err(|e| e.to_string())?,
            ))
        })?;
        rss_sizes.push((n, r.rss_mib, r.points as f64 / r.seconds));
    }
    let broker = Broker::connect(&a.kafka, &a.data_dir, 0)?;
    let (client, brokers) = (broker.client().clone(), broker.address());
    let topic = format!("apo.bench.{stamp}");
    let stats_topic = format!("apo.bench.{stamp}.stats");
    let dlq_topic = format!("apo.bench.{stamp}.dlq");
    let probe_topic = format!("apo.bench.{stamp}.probe");
    let partitions = a.kafka.partitions.max(1);
    broker.prepare_topics(
        &[&topic, &stats_topic, &dlq_topic, &probe_topic],
        true,
        partitions,
    )?;
    // Event time ends about now, so nothing is outside the validity bounds.
    let start_ms = stamp - (a.points as f64 / RATE * 1000.0) as i64 - 60_000;

    // 0. Load.
    eprintln!(
        "loading {} points into {topic} on {brokers} ({partitions} partitions)…",
        a.points
    );
    let mut g = Generator::new(&generator_config(start_ms));
    let t0 = Instant::now();
    let loaded = apo_ingest::generator::produce(
        &client,
        &topic,
        &mut g,
        BATCH,
        Some(a.points),
        None,
        Pace::Flat,
        &|| false,
        &mut |_| {},
    )?;
    let load_s = t0.elapsed().as_secs_f64();

    // 1. Raw consumption.
    eprintln!("raw consumption…");
    let (msgs, bytes, raw_s) = raw_consume(&client, &topic, partitions, a.workers, stamp)?;
    if msgs < loaded.messages {
        bail!("raw consumer read {msgs} of {} messages", loaded.messages);
    }

    // 2. Full pipeline: catching up at the broker's limit, then (on the same topic, a new
    // group) paced to a fraction of the raw rate, a steady load as a live pipeline sees.
    eprintln!("full pipeline…");
    let run_full = |group: String, rate: Option<f64>, out: &str| {
        full_pipeline(
            &client,
            [&topic, &stats_topic, &dlq_topic, &probe_topic],
            &a.data_dir.join(format!("parquet-{stamp}-{out}")),
            group,
            a.workers,
            LaneConfig {
                max_messages_per_sec: rate,
                ..cfg.clone()
            },
        )
    };
    let (full, mut acks) = run_full(format!("apo-bench-{stamp}"), None, "full")?;
    let mut paced = if a.paced > 0.0 {
        // Per worker: each reads its share of the partitions.
        let rate = a.paced * msgs as f64 / raw_s / a.workers as f64;
        eprintln!("full pipeline paced to {:.0} % of raw…", 100.0 * a.paced);
        Some(run_full(
            format!("apo-bench-{stamp}-paced"),
            Some(rate),
            "paced",
        )?)
    } else {
        None
    };

    // 3. Same records from memory.
    eprintln!("dataflow from memory…");
    let mut g = Generator::new(&generator_config(start_ms));
    let generated: Vec<MetricPoint> = (0..a.points).map(|_| g.next_point()).collect();
    let payloads: Arc<Vec<Vec<u8>>> = Arc::new(
        generated
            .chunks(BATCH)
            .map(|c| serde_json::to_vec(c).unwrap_or_default())
            .collect(),
    );
    drop(generated);
    // The exact reference is computed from the values as decoded from the same JSON, so it
    // checks the aggregation, not the float parsing.
    let points: Vec<MetricPoint> = payloads
        .iter()
        .flat_map(|p| serde_json::from_slice::<Vec<MetricPoint>>(p).unwrap_or_default())
        .collect();
    let mem = {
        let payloads = payloads.clone();
        memory_phase(a.workers, cfg.clone(), move |i, n| {
            payloads.iter().skip(i).step_by(n).cloned().collect()
        })?
    };

    // 4. Accuracy against exact quantiles.
    let mut exact: BTreeMap<(String, String, u32, i64), Vec<f64>> = BTreeMap::new();
    for p in &points {
        for s in &MetricsConfig::default().window_seconds {
            let ms = *s as i64 * 1000;
            exact
                .entry((
                    p.service.clone(),
                    p.name.clone(),
                    *s,
                    p.timestamp.div_euclid(ms) * ms,
                ))
                .or_default()
                .push(p.value);
        }
    }
    drop(points);
    let mut max_err = [0f64; 5];
    let mut counts_exact = true;
    for w in &mem.rows {
        let Some(v) = exact.get_mut(&(
            w.service.clone(),
            w.metric.clone(),
            w.window_seconds,
            w.window_start,
        )) else {
            counts_exact = false;
            continue;
        };
        v.sort_by(f64::total_cmp);
        let same = w.count == v.len() as u64 && w.min == v[0] && w.max == v[v.len() - 1];
        if !same && counts_exact {
            eprintln!(
                "mismatch in {}: count {} vs {}, min {} vs {}, max {} vs {}",
                w.key(),
                w.count,
                v.len(),
                w.min,
                v[0],
                w.max,
                v[v.len() - 1]
            );
        }
        counts_exact &= same;
        for (i, (q, got)) in [
            (0.5, w.p50),
            (0.9, w.p90),
            (0.95, w.p95),
            (0.99, w.p99),
            (0.999, w.p999),
        ]
        .iter()
        .enumerate()
        {
            let want = v[(q * (v.len() - 1) as f64).floor() as usize];
            if want != 0.0 {
                max_err[i] = max_err[i].max(((got - want) / want).abs());
            }
        }
    }
    if mem.rows.len() != exact.len() {
        eprintln!("{} windows out, {} expected", mem.rows.len(), exact.len());
        counts_exact = false;
    }

    // OTLP as the SDK exports it, against the APO JSON phases above.
    let otlp_section = if a.otlp_points > 0 {
        Some(crate::otlp::otlp_rows(
            &client,
            partitions,
            a.workers,
            a.otlp_points,
            stamp,
            &a.data_dir,
            &cfg,
            &payloads,
            (
                mem.points as f64 / mem.seconds,
                full.points as f64 / full.seconds,
            ),
        )?)
    } else {
        None
    };
    drop(payloads);

    // The trace pipeline, on the same broker.
    let spans_section = if a.span_count > 0 {
        Some(crate::spans::bench_spans(
            &client,
            partitions,
            a.workers,
            a.span_count,
            stamp,
            &a.data_dir,
        )?)
    } else {
        None
    };

    // Report.
    let raw_pps = a.points as f64 / raw_s;
    let full_pps = full.points as f64 / full.seconds;
    let mem_pps = mem.points as f64 / mem.seconds;
    let fmt_rss = |r: Option<f64>| r.map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
    let mut out = String::new();
    let _ = writeln!(out, "Points: {} in {} messages of {BATCH} ({:.1} MB of APO JSON), {} series, {} partition(s), {} worker(s); windows {:?} s; accuracy 1 %.", a.points, loaded.messages, loaded.bytes as f64 / 1e6, generator_config(0).services * generator_config(0).metrics, partitions, a.workers, MetricsConfig::default().window_seconds);
    let _ = writeln!(out, "Load (produce) took {load_s:.1} s.\n");
    let _ = writeln!(
        out,
        "| measurement | points/s | MB/s | time | peak RSS | note |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    let _ = writeln!(out, "| raw consumption (baseline: rdkafka, count only, one consumer per worker) | {raw_pps:.0} | {:.1} | {raw_s:.2} s | – | the limit |", bytes as f64 / 1e6 / raw_s);
    let _ = writeln!(out, "| full pipeline (Kafka → windows → Kafka + Parquet) | {full_pps:.0} | {:.1} | {:.2} s | {} | {:.0} % of raw |", bytes as f64 / 1e6 / full.seconds, full.seconds, fmt_rss(full.rss_mib), 100.0 * full_pps / raw_pps);
    if let Some((p, _)) = &paced {
        let pps = p.points as f64 / p.seconds;
        let _ = writeln!(out, "| full pipeline, reading paced to {:.0} % of raw (steady load) | {pps:.0} | {:.1} | {:.2} s | {} | {:.0} % of raw |", 100.0 * a.paced, bytes as f64 / 1e6 / p.seconds, p.seconds, fmt_rss(p.rss_mib), 100.0 * pps / raw_pps);
    }
    let _ = writeln!(out, "| dataflow from memory (decode included) | {mem_pps:.0} | {:.1} | {:.2} s | {} | no broker |", bytes as f64 / 1e6 / mem.seconds, mem.seconds, fmt_rss(mem.rss_mib));
    let _ = writeln!(out);
    let _ = write!(out, "{}", latency_lines("full pipeline", &full, &mut acks));
    if let Some((p, acks)) = &mut paced {
        let _ = write!(
            out,
            "{}",
            latency_lines(
                &format!("paced to {:.0} % of raw", 100.0 * a.paced),
                p,
                acks
            )
        );
    }
    let _ = writeln!(out, "Quantile error against exact values over {} windows (bound 1 %): p50 {:.4} %, p90 {:.4} %, p95 {:.4} %, p99 {:.4} %, p99.9 {:.4} %; counts, min and max exact: {}.", mem.rows.len(), 100.0 * max_err[0], 100.0 * max_err[1], 100.0 * max_err[2], 100.0 * max_err[3], 100.0 * max_err[4], if counts_exact { "yes" } else { "NO" });
    let _ = writeln!(
        out,
        "\n| points (generated lazily, 1 worker) | peak RSS | points/s |"
    );
    let _ = writeln!(out, "|---:|---:|---:|");
    for (n, r, pps) in &rss_sizes {
        let _ = writeln!(out, "| {n} | {} | {pps:.0} |", fmt_rss(*r));
    }
    if let Some(section) = &otlp_section {
        let _ = write!(out, "\n## OTLP input (issue 15)\n\n{section}");
    }
    if let Some(section) = &series_section {
        let _ = write!(
            out,
            "\n## Memory against live series (issue 14)\n\n{section}"
        );
    }
    if let Some(section) = &spans_section {
        let _ = write!(out, "\n## Trace pipeline (issue 3)\n\n{section}");
    }
    if a.models {
        let section = crate::models::models_section(&cfg, a.points, a.workers)?;
        let _ = write!(out, "\n## Models (issue 4)\n\n{section}");
    }
    if a.checkpoint_series.iter().any(|&n| n > 0) || !a.restart_after.is_zero() {
        let section = crate::checkpoints::checkpoints_section(
            Some(&broker),
            &a.data_dir,
            &a.checkpoint_series,
            a.checkpoint_seconds,
            a.restart_after,
            a.restart_rate,
        )?;
        let _ = write!(out, "\n## Checkpoints (issue 30)\n\n{section}");
    }
    let section =
        crate::decisions::decisions_section(&broker, &a.data_dir, a.workers, a.decisions)?;
    let _ = write!(out, "\n## Decisions and actions (issue 16)\n\n{section}");
    println!("{out}");
    if let Some(path) = &a.write {
        let cmd: Vec<String> = std::env::args().collect();
        let doc = format!(
            "# Benchmarks\n\nMeasured {} on this project's 2-core machine, release build.\n\nCommand: `{}`\n\n## Metrics pipeline (issue 2)\n\n{out}",
            chrono::Utc::now().format("%Y-%m-%d"),
            cmd.join(" ")
        );
        // Sections measured by other commands (the NAB evaluation) are kept.
        let kept = std::fs::read_to_string(path)
            .ok()
            .and_then(|old| old.find(KEPT_FROM).map(|i| old[i..].to_string()))
            .unwrap_or_default();
        let doc = if kept.is_empty() {
            doc
        } else {
            format!("{doc}\n{kept}")
        };
        std::fs::write(path, doc).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
