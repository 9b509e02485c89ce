//! `apo bench --span-count N`: the trace pipeline's benchmark, in the same run as the metrics one.
//! Loads generated web-shop traces (one APO JSON message per trace, keyed by trace id) into a
//! topic, then measures
//!
//! 1. raw consumption of that topic by rdkafka consumers that only count (the limit);
//! 2. the trace pipeline on it: decode, RED, SLOs, assembly, critical paths, shares and the
//!    service map, into Kafka and Parquet (spans/s, close-to-output latency, peak RSS);
//! 3. the same dataflow fed the same messages from memory (no broker).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use apo_core::MemorySink;
use apo_dataflow::percentile;
use apo_dataflow::LaneConfig;
use apo_dataflow::{SpanConfig, SpanJob, SpanSinks};
use apo_ingest::dlq::{KafkaDeadLetters, MemoryDeadLetters};
use apo_ingest::generator::Pace;
use apo_ingest::kafka::{ensure_topics, KafkaSource};
use apo_ingest::source::MemorySource;
use apo_ingest::trace_generator::{TraceGenerator, TraceGeneratorConfig};
use apo_ingest::trace_produce::{produce_traces, SpanFormat};
use apo_pipeline::topology::span_sinks;
use apo_pipeline::{Outputs, Topics};
use rdkafka::ClientConfig;

use crate::phase::run_phase;
use crate::raw::raw_consume;

/// Traces per second of event time.
const TRACE_RATE: f64 = 1_000.0;

fn generator(start_ms: i64) -> TraceGenerator {
    TraceGenerator::new(&TraceGeneratorConfig {
        rate: TRACE_RATE,
        start_ms,
        incidents_per_hour: 6.0,
        seed: 11,
    })
}

/// Runs the span benchmark on the broker of `client`; returns its Markdown section.
pub fn bench_spans(
    client: &ClientConfig,
    partitions: i32,
    workers: usize,
    spans: u64,
    stamp: i64,
    data_dir: &Path,
) -> Result<String> {
    let topics = Topics::with_prefix(&format!("apo.bench.{stamp}"));
    let topic = topics.spans.clone();
    let all = [
        &topic,
        &topics.dlq,
        &topics.red,
        &topics.critical_path,
        &topics.critical_path_share,
        &topics.service_map,
        &topics.slo,
        &topics.service_map_current,
    ];
    ensure_topics(client, &all.map(String::as_str), partitions)?;
    // About 7 spans per trace; event time ends before now.
    let start_ms = stamp - (spans as f64 / 5.0 / TRACE_RATE * 1000.0) as i64 - 60_000;

    eprintln!("loading {spans} spans into {topic}…");
    let t0 = Instant::now();
    let loaded = produce_traces(
        client,
        &topic,
        &mut generator(start_ms),
        SpanFormat::Json,
        Some(spans),
        None,
        Pace::Flat,
        &|| false,
        &mut |_| {},
    )?;
    let load_s = t0.elapsed().as_secs_f64();

    eprintln!("raw consumption of spans…");
    let (msgs, bytes, raw_s) = raw_consume(client, &topic, partitions, workers, stamp + 1)?;
    if msgs < loaded.messages {
        anyhow::bail!("raw consumer read {msgs} of {} messages", loaded.messages);
    }

    let cfg = LaneConfig {
        drain: true,
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let span_cfg = SpanConfig::default();

    eprintln!("trace pipeline…");
    let (c2, t2) = (client.clone(), topics.clone());
    let (dir, sc) = (data_dir.join(format!("spans-{stamp}")), span_cfg.clone());
    let group = format!("apo-bench-spans-{stamp}");
    let full = run_phase(workers, cfg.clone(), move |i, n| {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let src = KafkaSource::new(&c2, &group, &t2.spans, i, n).map_err(|x| e(&x))?;
        let dlq = KafkaDeadLetters::new(&c2, &t2.dlq).map_err(|x| e(&x))?;
        let outputs = Outputs::new(
            &c2,
            &dir,
            &format!("w{i}"),
            Duration::from_secs(10),
            &t2.dlq,
        );
        let sinks = span_sinks(&outputs, &t2).map_err(|x| e(&x))?;
        Ok((
            Box::new(src) as _,
            Box::new(dlq) as _,
            SpanJob::new(sc.clone(), sinks),
        ))
    })?;

    eprintln!("trace dataflow from memory…");
    let mut g = generator(start_ms);
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut n = 0u64;
    while n < spans {
        let t = g.next_trace();
        n += t.len() as u64;
        payloads.push(SpanFormat::Json.encode(&t));
    }
    let payloads = Arc::new(payloads);
    let mem = {
        let (payloads, sc) = (payloads.clone(), span_cfg.clone());
        run_phase(workers, cfg, move |i, n| {
            let mine: Vec<Vec<u8>> = payloads.iter().skip(i).step_by(n).cloned().collect();
            let sinks = SpanSinks {
                red: vec![Box::new(MemorySink::default())],
                critical_path: vec![Box::new(MemorySink::default())],
                critical_path_share: vec![Box::new(MemorySink::default())],
                service_map: vec![Box::new(MemorySink::default())],
                slo: vec![Box::new(MemorySink::default())],
                service_map_current: vec![Box::new(MemorySink::default())],
            };
            Ok((
                Box::new(MemorySource::new("memory", mine)) as _,
                Box::new(MemoryDeadLetters::default()) as _,
                SpanJob::new(sc.clone(), sinks),
            ))
        })?
    };

    let raw_sps = loaded.points as f64 / raw_s;
    let full_sps = full.points as f64 / full.seconds;
    let mem_sps = mem.points as f64 / mem.seconds;
    let mb = bytes as f64 / 1e6;
    let rss = |r: Option<f64>| r.map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
    let mut lat: Vec<f64> = full.latencies.iter().map(|l| l.total_ms).collect();
    let mut out = String::new();
    let _ = writeln!(out, "Spans: {} in {} messages (one trace each, keyed by trace id; {mb:.1} MB of APO JSON), {partitions} partition(s), {workers} worker(s); RED/SLO/share/map window {} s, trace idle {} s.", loaded.points, loaded.messages, span_cfg.window_seconds, span_cfg.assembly.idle_ms / 1000);
    let _ = writeln!(out, "Load (produce) took {load_s:.1} s.\n");
    let _ = writeln!(
        out,
        "| measurement | spans/s | MB/s | time | peak RSS | note |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    let _ = writeln!(out, "| raw consumption (baseline: rdkafka, count only, one consumer per worker) | {raw_sps:.0} | {:.1} | {raw_s:.2} s | – | the limit |", mb / raw_s);
    let _ = writeln!(out, "| trace pipeline (Kafka → RED, SLO, assembly, critical path, shares, map → Kafka + Parquet) | {full_sps:.0} | {:.1} | {:.2} s | {} | {:.0} % of raw |", mb / full.seconds, full.seconds, rss(full.rss_mib), 100.0 * full_sps / raw_sps);
    let _ = writeln!(out, "| trace dataflow from memory (decode included) | {mem_sps:.0} | {:.1} | {:.2} s | {} | no broker |", mb / mem.seconds, mem.seconds, rss(mem.rss_mib));
    let _ = writeln!(
        out,
        "\nClose → output acknowledged (trace pipeline, {} rows; trace outputs close the idle time after their window): p50 {:.1} ms, p99 {:.1} ms.",
        lat.len(),
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99)
    );
    if full.points != loaded.points || mem.points != n {
        let _ = writeln!(
            out,
            "\nWARNING: spans counted {} (broker) / {} (memory), {} / {n} sent.",
            full.points, mem.points, loaded.points
        );
    }
    Ok(out)
}
