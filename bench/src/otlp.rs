//! `apo bench`'s OTLP input (issue 15): metrics as the official OpenTelemetry SDK exports them,
//! against APO JSON in the same run.
//!
//! Twelve processes (one `SdkMeterProvider` each, `service.name` = `svc-NN`) record a counter
//! and an explicit-bucket histogram on 25 routes, one value per route and instrument between
//! two exports, and export in cumulative temporality (the SDKs' default) through the SDK's own
//! conversion to OTLP protobuf (`opentelemetry-proto`), as the Collector's Kafka exporter
//! writes it: 50 data points an export, each a cumulative point the pipeline turns into a
//! delta. The exports are then
//!
//! 1. fed to the metrics dataflow from memory (decode, differencing, windows), and
//! 2. loaded into a topic (a process's exports in one partition, as the exporter's
//!    `partition_metrics_by_resource_attributes` puts them) and read by the full pipeline.
//!
//! Throughput is counted in data points (a histogram data point is one point, as an APO JSON
//! point is), beside the APO JSON phases of the same run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use apo_dataflow::LaneConfig;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;
use prost::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::phase::PhaseResult;

/// Processes (services) exporting.
const SERVICES: usize = 12;
/// Attribute sets (routes) of each instrument.
const ROUTES: usize = 25;
/// Data points in one export: two instruments on every route.
pub const POINTS_PER_EXPORT: usize = 2 * ROUTES;

/// An exporter that keeps each export as the OTLP exporter would send it.
#[derive(Debug, Clone)]
struct Kept(Arc<Mutex<Vec<Vec<u8>>>>);

impl PushMetricExporter for Kept {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let bytes = ExportMetricsServiceRequest::from(metrics).encode_to_vec();
        if let Ok(mut v) = self.0.lock() {
            v.push(bytes);
        }
        std::future::ready(Ok(()))
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// The SDK's exports, in the order they were made: (process, OTLP protobuf bytes), with at
/// least `points` data points in all.
pub fn sdk_exports(points: u64) -> Result<Vec<(usize, Vec<u8>)>> {
    struct Process {
        provider: SdkMeterProvider,
        kept: Arc<Mutex<Vec<Vec<u8>>>>,
        requests: opentelemetry::metrics::Counter<u64>,
        latency: opentelemetry::metrics::Histogram<f64>,
    }
    let processes: Vec<Process> = (0..SERVICES)
        .map(|i| {
            let kept = Arc::new(Mutex::new(Vec::new()));
            let reader = PeriodicReader::builder(Kept(kept.clone()))
                .with_interval(Duration::from_secs(3600))
                .build();
            let provider = SdkMeterProvider::builder()
                .with_resource(
                    Resource::builder()
                        .with_service_name(format!("svc-{i:02}"))
                        .build(),
                )
                .with_reader(reader)
                .build();
            let meter = provider.meter("apo-bench");
            Process {
                requests: meter.u64_counter("http.server.requests").build(),
                latency: meter
                    .f64_histogram("http.server.request.duration")
                    .with_unit("ms")
                    .build(),
                provider,
                kept,
            }
        })
        .collect();
    let routes: Vec<[KeyValue; 1]> = (0..ROUTES)
        .map(|r| [KeyValue::new("http.route", format!("/route/{r:02}"))])
        .collect();
    let rounds = points.div_ceil((SERVICES * POINTS_PER_EXPORT) as u64);
    let mut out = Vec::with_capacity((rounds as usize) * SERVICES);
    // A fixed sequence of latencies (a linear congruential generator): the same exports' values
    // every run.
    let mut x: u64 = 7;
    for _ in 0..rounds {
        for (i, p) in processes.iter().enumerate() {
            for r in &routes {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                p.requests.add(1 + (x >> 60), r);
                p.latency
                    .record(1.0 + (x >> 40) as f64 / 16_777_216.0 * 900.0, r);
            }
            p.provider
                .force_flush()
                .map_err(|e| anyhow::anyhow!("the SDK did not export: {e}"))?;
            let mut kept = p
                .kept
                .lock()
                .map_err(|_| anyhow::anyhow!("exporter poisoned"))?;
            out.extend(kept.drain(..).map(|b| (i, b)));
        }
    }
    for p in processes {
        let _ = p.provider.shutdown();
    }
    Ok(out)
}

/// Data points per second decoding `payloads` on one thread (as a worker decodes what it
/// reads: format sniffing, validity bounds and field limits included), and how many there were.
pub fn decode_rate<'a>(payloads: impl Iterator<Item = &'a [u8]>) -> (f64, u64) {
    use apo_ingest::decode::{decode_metric_message, Encoding, FieldLimits, TimeBounds};
    let payloads: Vec<&[u8]> = payloads.collect();
    let (bounds, limits) = (TimeBounds::default(), FieldLimits::default());
    let now = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let mut points = 0u64;
    for p in &payloads {
        if let Ok(d) = decode_metric_message(Some(p), Encoding::Auto, &bounds, &limits, now) {
            points += d.items.len() as u64;
        }
    }
    (points as f64 / started.elapsed().as_secs_f64(), points)
}

/// Rounds of [`decode_comparison`].
pub const DECODE_ROUNDS: usize = 5;

/// Decoding alone, OTLP against APO JSON in the same state of the process: `rounds` rounds,
/// each decoding all of `otlp` then all of `json`, so that neither is measured only first (on
/// a cold heap) or only after the other. Each one's points/s per round, and the medians.
pub struct DecodeComparison {
    /// OTLP data points/s, per round.
    pub otlp: Vec<f64>,
    /// APO JSON points/s, per round.
    pub json: Vec<f64>,
    /// Data points in `otlp`, points in `json`.
    pub counts: (u64, u64),
}

impl DecodeComparison {
    /// Runs the rounds.
    pub fn run(otlp: &[&[u8]], json: &[&[u8]], rounds: usize) -> Self {
        let mut c = DecodeComparison {
            otlp: Vec::new(),
            json: Vec::new(),
            counts: (0, 0),
        };
        for _ in 0..rounds.max(1) {
            let (o, n) = decode_rate(otlp.iter().copied());
            let (j, m) = decode_rate(json.iter().copied());
            c.otlp.push(o);
            c.json.push(j);
            c.counts = (n, m);
        }
        c
    }

    /// The medians: (OTLP, APO JSON).
    pub fn medians(&self) -> (f64, f64) {
        (median(&self.otlp), median(&self.json))
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The OTLP measurements: decoding alone against APO JSON's `json_payloads` ([`DecodeComparison`]),
/// the dataflow from memory and the full pipeline through the broker, on the SDK's exports of
/// about `points` data points; rows to print beside the APO JSON phases (points/s of those
/// given as `json`: from memory, the full pipeline).
#[allow(clippy::too_many_arguments)]
pub fn otlp_rows(
    client: &rdkafka::ClientConfig,
    partitions: i32,
    workers: usize,
    points: u64,
    stamp: i64,
    data_dir: &std::path::Path,
    cfg: &LaneConfig,
    json_payloads: &[Vec<u8>],
    json: (f64, f64),
) -> Result<String> {
    eprintln!("OTLP: the SDK exporting about {points} data points…");
    let exports = Arc::new(sdk_exports(points)?);
    let data_points = (exports.len() * POINTS_PER_EXPORT) as u64;
    let bytes: usize = exports.iter().map(|(_, b)| b.len()).sum();
    eprintln!("OTLP: decoding alone against APO JSON, {DECODE_ROUNDS} rounds…");
    let decoding = DecodeComparison::run(
        &exports
            .iter()
            .map(|(_, b)| b.as_slice())
            .collect::<Vec<_>>(),
        &json_payloads.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        DECODE_ROUNDS,
    );
    if decoding.counts.0 != data_points {
        anyhow::bail!(
            "decoded {} of {data_points} OTLP data points",
            decoding.counts.0
        );
    }

    eprintln!("OTLP: dataflow from memory…");
    let mem = {
        let exports = exports.clone();
        // A process's exports on one worker, in order (as one partition would give them).
        crate::metrics::memory_phase(workers, cfg.clone(), move |i, n| {
            exports
                .iter()
                .filter(|(p, _)| p % n == i)
                .map(|(_, b)| b.clone())
                .collect()
        })?
    };
    let windows = mem.rows.len();

    eprintln!("OTLP: loading {} exports into the broker…", exports.len());
    let topic = format!("apo.bench.{stamp}.otlp");
    let stats_topic = format!("apo.bench.{stamp}.otlp.stats");
    let dlq_topic = format!("apo.bench.{stamp}.otlp.dlq");
    let probe_topic = format!("apo.bench.{stamp}.otlp.probe");
    apo_ingest::kafka::ensure_topics(
        client,
        &[&topic, &stats_topic, &dlq_topic, &probe_topic],
        partitions,
    )
    .context("creating the OTLP topics")?;
    let producer: ThreadedProducer<DefaultProducerContext> = client
        .clone()
        .set("linger.ms", "20")
        .create()
        .context("creating the OTLP producer")?;
    for (p, b) in exports.iter() {
        let part = (*p as i32) % partitions.max(1);
        let mut rec = BaseRecord::<(), [u8]>::to(&topic)
            .payload(b)
            .partition(part);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((e, back)) => {
                    if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                        anyhow::bail!("producing OTLP: {e}");
                    }
                    rec = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the OTLP topic")?;

    eprintln!("OTLP: full pipeline…");
    let (full, _) = crate::metrics::full_pipeline(
        client,
        [&topic, &stats_topic, &dlq_topic, &probe_topic],
        &data_dir.join(format!("parquet-{stamp}-otlp")),
        format!("apo-bench-{stamp}-otlp"),
        workers,
        cfg.clone(),
    )?;
    Ok(report(
        &mem,
        &full,
        &decoding,
        data_points,
        bytes,
        windows,
        json,
    ))
}

fn report(
    mem: &PhaseResult,
    full: &PhaseResult,
    decoding: &DecodeComparison,
    data_points: u64,
    bytes: usize,
    windows: usize,
    (json_mem, json_full): (f64, f64),
) -> String {
    let (decode_pps, json_decode) = decoding.medians();
    let rounds = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{:.2}", x / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rate = |r: &PhaseResult| r.points as f64 / r.seconds;
    let fmt_rss = |r: Option<f64>| r.map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
    let mut out = format!(
        "{data_points} data points in {} OTLP protobuf exports ({:.1} MB) of the Rust SDK in \
         cumulative temporality: {SERVICES} processes, a counter and an explicit-bucket \
         histogram on {ROUTES} routes each ({} series: the route is a series attribute; the \
         APO JSON points are scalar values of {} series without attributes, so OTLP carries more \
         per point); {windows} windows out of the dataflow from memory.\n\n\
         | measurement | data points/s | time | peak RSS | against APO JSON (same run) |\n\
         |---|---:|---:|---:|---|\n",
        data_points / POINTS_PER_EXPORT as u64,
        bytes as f64 / 1e6,
        SERVICES * POINTS_PER_EXPORT,
        crate::metrics::json_series(),
    );
    out += &format!(
        "| OTLP, decoding alone (one thread; median of {} rounds alternating with APO JSON) | {decode_pps:.0} | – | – | APO JSON decoding {json_decode:.0} points/s ({} points): {:.2}× |\n",
        decoding.otlp.len(),
        decoding.counts.1,
        decode_pps / json_decode
    );
    out += &format!(
        "| OTLP, dataflow from memory (decode, cumulative → delta, windows) | {:.0} | {:.2} s | {} | APO JSON from memory {json_mem:.0} points/s: {:.2}× |\n",
        rate(mem),
        mem.seconds,
        fmt_rss(mem.rss_mib),
        rate(mem) / json_mem
    );
    out += &format!(
        "| OTLP, full pipeline (Kafka → windows → Kafka + Parquet) | {:.0} | {:.2} s | {} | APO JSON full pipeline {json_full:.0} points/s: {:.2}× |\n",
        rate(full),
        full.seconds,
        fmt_rss(full.rss_mib),
        rate(full) / json_full
    );
    out += &format!(
        "\nDecoding rounds, M points/s: OTLP {}; APO JSON {}.\n",
        rounds(&decoding.otlp),
        rounds(&decoding.json)
    );
    out
}
