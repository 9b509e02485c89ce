//! OpenTelemetry input as the official SDK sends it, end to end against the real broker: the
//! Rust `opentelemetry_sdk`'s meters, exported by its periodic reader in cumulative temporality
//! (the SDKs' default), encoded by `opentelemetry-proto`'s own conversion into the OTLP protobuf
//! the Collector's Kafka exporter writes, produced to Kafka unchanged; `apo run` counts each
//! export's new values once, in the window of the export, with two workers and a stream's
//! exports spread over two partitions (the exporter does not key them); an SDK restart
//! mid-stream (a new start time) creates no spike and loses nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apo_schemas::WindowStats;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};
use opentelemetry_sdk::Resource;
use prost::Message;

use crate::common::*;

/// An exporter that does what the OTLP exporter does up to the wire: each export's metrics in
/// the SDK's own protobuf conversion, kept for the test to produce to Kafka.
#[derive(Debug, Clone)]
struct Kept {
    temporality: Temporality,
    exports: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

impl PushMetricExporter for Kept {
    fn export(
        &self,
        metrics: &ResourceMetrics,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.exports
            .lock()
            .unwrap()
            .push(ExportMetricsServiceRequest::from(metrics));
        std::future::ready(Ok(()))
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        self.temporality
    }
}

/// One instrumented process: a meter provider of service `sdk-cart` with a periodic reader
/// (whose interval never comes: the test flushes it) exporting in `temporality`.
struct Process {
    provider: SdkMeterProvider,
    exports: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    orders: opentelemetry::metrics::Counter<u64>,
    latency: opentelemetry::metrics::Histogram<f64>,
    /// An exponential histogram (a view asks for it, as users do for the best accuracy).
    rpc: opentelemetry::metrics::Histogram<f64>,
}

impl Process {
    fn start(temporality: Temporality) -> Self {
        let exporter = Kept {
            temporality,
            exports: Arc::default(),
        };
        let exports = exporter.exports.clone();
        let reader = PeriodicReader::builder(exporter)
            .with_interval(Duration::from_secs(3600))
            .build();
        let provider = SdkMeterProvider::builder()
            // host.name is a resource attribute, a series attribute by default: every series
            // takes it
            .with_resource(
                Resource::builder()
                    .with_service_name("sdk-cart")
                    .with_attribute(KeyValue::new("host.name", "sdk-host"))
                    .build(),
            )
            .with_reader(reader)
            .with_view(|i: &Instrument| {
                (i.name() == "rpc.server.duration").then(|| {
                    Stream::builder()
                        .with_aggregation(Aggregation::Base2ExponentialHistogram {
                            max_size: 160,
                            max_scale: 20,
                            record_min_max: true,
                        })
                        .build()
                        .expect("a valid stream")
                })
            })
            .build();
        let meter = provider.meter("checkout-instrumentation");
        let orders = meter.u64_counter("orders").build();
        let latency = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_boundaries(vec![0.05, 0.1, 0.25, 0.5, 1.0])
            .build();
        let rpc = meter
            .f64_histogram("rpc.server.duration")
            .with_unit("s")
            .build();
        Process {
            provider,
            exports,
            orders,
            latency,
            rpc,
        }
    }

    /// What the SDK exports now, as OTLP protobuf, and each metric's time in it (ms).
    fn export(&self) -> (ExportMetricsServiceRequest, BTreeMap<String, i64>) {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        self.provider.force_flush().expect("the SDK exports");
        let req = self.exports.lock().unwrap().pop().expect("one export");
        let mut times = BTreeMap::new();
        for m in &req.resource_metrics[0].scope_metrics[0].metrics {
            let t = match m.data.as_ref().expect("data") {
                Data::Sum(s) => s.data_points[0].time_unix_nano,
                Data::Histogram(h) => h.data_points[0].time_unix_nano,
                Data::ExponentialHistogram(h) => {
                    // its scale, as a time of its own: the test checks the SDK downscaled
                    let scale = h.data_points.iter().map(|p| p.scale).min().unwrap_or(0);
                    times.insert("scale".into(), i64::from(scale));
                    h.data_points[0].time_unix_nano
                }
                d => panic!("unexpected {d:?}"),
            };
            times.insert(m.name.clone(), (t / 1_000_000) as i64);
        }
        (req, times)
    }
}

/// Per (window start, route): (orders, latency count, latency sum) recorded in it.
type Want = BTreeMap<(i64, String), (f64, u64, f64)>;

/// Per (window start, route): the exponential histogram's values recorded in it.
type Values = BTreeMap<(i64, String), Vec<f64>>;

fn window(ms: i64, size: i64) -> i64 {
    ms.div_euclid(size) * size
}

#[test]
fn cumulative_sdk_exports_count_each_value_once_across_partitions_workers_and_a_restart() {
    sdk_exports_count_what_was_recorded(Temporality::Cumulative);
}

#[test]
fn delta_sdk_exports_count_what_was_recorded_the_same_way() {
    sdk_exports_count_what_was_recorded(Temporality::Delta);
}

/// Twelve exports of a counter and a histogram on two routes, 350 ms apart, the process
/// restarted after the sixth, in `temporality`: every 1 s window of each route (a series of
/// its own, with the resource's host.name) holds exactly what was recorded before the exports
/// in it and after the ones before, and its quantiles are its own.
fn sdk_exports_count_what_was_recorded(temporality: Temporality) {
    let t = topics("otlp-sdk", 2);
    const W: i64 = 1_000;
    let mut want = Want::new();
    let mut rpc = Values::new();
    let mut scales = Vec::new();
    let mut messages = Vec::new();
    let mut process = Process::start(temporality);
    let mut step = 0u64;
    for round in 0..12u64 {
        if round == 6 {
            // the process restarts: a new provider, a new start time, totals from zero
            process.provider.shutdown().expect("the SDK shuts down");
            std::thread::sleep(Duration::from_millis(20));
            process = Process::start(temporality);
        }
        let mut recorded: BTreeMap<&str, (f64, u64, f64, Vec<f64>)> = BTreeMap::new();
        for _ in 0..(3 + round % 4) {
            step += 1;
            let route = if step.is_multiple_of(3) {
                "/cart"
            } else {
                "/checkout"
            };
            let attrs = [KeyValue::new("http.route", route)];
            let v = 0.02 * (1 + step % 30) as f64;
            process.orders.add(step % 5, &attrs);
            process.latency.record(v, &attrs);
            // from a millisecond up to a second as the rounds go: the SDK downscales
            let r = 0.001 * (1 + step % 7) as f64 * (1 + round * round) as f64;
            process.rpc.record(r, &attrs);
            let e = recorded.entry(route).or_default();
            e.0 += (step % 5) as f64;
            e.1 += 1;
            e.2 += v;
            e.3.push(r);
        }
        let (req, at) = process.export();
        scales.push(at["scale"]);
        for (route, (orders, n, sum, rpc_values)) in recorded {
            let r = route.to_string();
            want.entry((window(at["orders"], W), r.clone()))
                .or_default()
                .0 += orders;
            let e = want
                .entry((window(at["http.server.request.duration"], W), r.clone()))
                .or_default();
            e.1 += n;
            e.2 += sum;
            rpc.entry((window(at["rpc.server.duration"], W), r))
                .or_default()
                .extend(rpc_values);
        }
        // the exporter's partitioner: consecutive exports of a stream on either partition
        messages.push(((round % 2) as i32, req));
        std::thread::sleep(Duration::from_millis(350));
    }
    let run = |t: &Topics, as_json: bool| -> Vec<WindowStats> {
        let encoded: Vec<(i32, Vec<u8>)> = messages
            .iter()
            .map(|(p, req)| {
                let bytes = if as_json {
                    serde_json::to_vec(req).unwrap()
                } else {
                    req.encode_to_vec()
                };
                (*p, bytes)
            })
            .collect();
        produce(&t.metrics, &encoded);
        let dir = tempfile::tempdir().unwrap();
        let out = run_to_end(
            &apo_run_args(
                t,
                dir.path(),
                // a lateness longer than the exports' span: every worker's points enter in order
                &[
                    "--drain",
                    "--windows",
                    "1s",
                    "--lateness",
                    "10s",
                    "--workers",
                    "2",
                ],
            ),
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            consume(&t.dlq, 1, Duration::from_secs(2)).is_empty(),
            "nothing in the dead-letter topic"
        );
        let mut stats = window_stats(&consume(&t.stats, 3 * want.len(), Duration::from_secs(10)));
        stats.sort_by_key(|w| w.key());
        stats
    };
    let stats = run(&t, false);
    if temporality == Temporality::Cumulative {
        // the same exports as OTLP JSON (what the exporter's `encoding: otlp_json` writes):
        // the same windows
        let json = run(&topics("otlp-sdk-json", 2), true);
        assert_eq!(json, stats);
    }
    let mut got = Want::new();
    let mut rpc_windows = 0;
    for w in &stats {
        let route = w.attributes["http.route"].clone();
        assert_eq!(
            w.attributes.keys().collect::<Vec<_>>(),
            ["host.name", "http.route"],
            "the point's route and the resource's host"
        );
        assert_eq!(w.attributes["host.name"], "sdk-host");
        if w.metric == "rpc.server.duration" {
            // exact count and sum; quantiles within the accuracy the row states
            let mut v = rpc[&(w.window_start, route.clone())].clone();
            v.sort_by(f64::total_cmp);
            assert_eq!(w.count, v.len() as u64, "rpc count at {}", w.window_start);
            let s: f64 = v.iter().sum();
            assert!(
                (w.sum - s).abs() < 1e-9,
                "rpc sum at {}: {} vs {s}",
                w.window_start,
                w.sum
            );
            assert!(w.relative_accuracy < 0.1, "{}", w.relative_accuracy);
            for (q, got) in [(0.5, w.p50), (0.9, w.p90), (0.99, w.p99)] {
                let exact = v[(q * (v.len() - 1) as f64).floor() as usize];
                let err = ((got - exact) / exact).abs();
                assert!(
                    err <= w.relative_accuracy + 1e-9,
                    "rpc q={q} at {}: got {got}, exact {exact}, error {err} over {}",
                    w.window_start,
                    w.relative_accuracy
                );
            }
            rpc_windows += 1;
            continue;
        }
        assert_eq!(w.service, "sdk-cart");
        let e = got.entry((w.window_start, route)).or_default();
        match w.metric.as_str() {
            "orders" => e.0 += w.sum,
            "http.server.request.duration" => {
                e.1 += w.count;
                e.2 += w.sum;
            }
            other => panic!("unexpected metric {other}"),
        }
    }
    // every window: exactly what was recorded since the export before (sums to 1e-9)
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{got:?}"
    );
    for (start, w) in &want {
        let g = got[start];
        assert_eq!(g.0, w.0, "orders in the window at {start:?}");
        assert_eq!(g.1, w.1, "latency count in the window at {start:?}");
        assert!(
            (g.2 - w.2).abs() < 1e-9,
            "latency sum at {start:?}: {} vs {}",
            g.2,
            w.2
        );
    }
    assert_eq!(
        rpc_windows,
        rpc.len(),
        "a window of the exponential histogram per export window and route"
    );
}

/// `apo bench`'s OTLP input is what the SDK exports: every export decodes into its 50
/// cumulative data points of its own process, nothing to the dead letters.
#[test]
fn the_benchmark_sdk_exports_decode_as_cumulative_points() {
    use apo_bench::otlp::{sdk_exports, POINTS_PER_EXPORT};
    use apo_ingest::decode::{decode_metric_message, Encoding, FieldLimits, TimeBounds};
    let exports = sdk_exports(2 * 12 * POINTS_PER_EXPORT as u64).unwrap();
    assert_eq!(exports.len(), 2 * 12, "two rounds of twelve processes");
    for (p, b) in &exports {
        let d = decode_metric_message(
            Some(b),
            Encoding::Auto,
            &TimeBounds::default(),
            &FieldLimits::default(),
            now_ms(),
        )
        .unwrap();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.items.len(), POINTS_PER_EXPORT);
        assert!(d.items.iter().all(|m| m.cumulative.is_some()));
        assert_eq!(d.items[0].service, format!("svc-{p:02}"));
    }
}
