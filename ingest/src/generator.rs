//! The synthetic telemetry generator: `apo produce` and the embedded `apo run` use it as a load
//! source.
//!
//! Each service emits a latency metric (`http.server.duration`, ms, log-normal around a
//! per-service median), a request-rate gauge, CPU utilisation with a slow daily-like swing, and a
//! database latency for the services that have one. Incidents come at random: one service's
//! latency multiplies (3–10×) and its CPU climbs for a minute or two, as a slow dependency would
//! make it. Seeded, so a run is reproducible.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apo_schemas::MetricPoint;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::kafka::{send_with_backpressure, DeliveryTracker};
use crate::IngestError;

const SERVICE_NAMES: &[&str] = &[
    "frontend",
    "checkout",
    "cart",
    "payment",
    "inventory",
    "search",
    "shipping",
    "auth",
    "recommendation",
    "ads",
    "email",
    "currency",
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Number of services (named after a web shop's, then `service-N`).
    pub services: usize,
    /// Metrics per service (1–4 standard ones, then `custom.metric.N`).
    pub metrics: usize,
    /// Points per second of event time, over all series.
    pub rate: f64,
    /// Event time of the first point, ms since the epoch.
    pub start_ms: i64,
    /// Mean incidents per hour of event time, over all services.
    pub incidents_per_hour: f64,
    /// Random seed: the same seed gives the same points.
    pub seed: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            services: 6,
            metrics: 4,
            rate: 2000.0,
            start_ms: 0,
            incidents_per_hour: 6.0,
            seed: 42,
        }
    }
}

struct Series {
    service: String,
    metric: String,
    unit: &'static str,
    kind: Kind,
    median: f64,
}

#[derive(Clone, Copy)]
enum Kind {
    Latency,
    Rate,
    Cpu,
    DbLatency,
    Custom,
}

/// An endless, seeded stream of metric points in event-time order.
pub struct Generator {
    series: Vec<Series>,
    rng: SmallRng,
    step_ms: f64,
    clock_ms: f64,
    next_series: usize,
    /// (service index, until ms, factor)
    incident: Option<(usize, i64, f64)>,
    incident_chance_per_ms: f64,
    services: usize,
}

impl Generator {
    /// A generator of `cfg`'s series, rate and incidents.
    pub fn new(cfg: &GeneratorConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(cfg.seed);
        let mut series = Vec::new();
        for s in 0..cfg.services.max(1) {
            let service = SERVICE_NAMES
                .get(s)
                .map_or_else(|| format!("service-{s}"), |n| n.to_string());
            let median = 5.0 + rng.random::<f64>() * 60.0;
            for m in 0..cfg.metrics.max(1) {
                let (metric, unit, kind) = match m {
                    0 => ("http.server.duration".to_string(), "ms", Kind::Latency),
                    1 => (
                        "http.server.request.rate".to_string(),
                        "{request}/s",
                        Kind::Rate,
                    ),
                    2 => ("process.cpu.utilization".to_string(), "1", Kind::Cpu),
                    3 => (
                        "db.client.operation.duration".to_string(),
                        "ms",
                        Kind::DbLatency,
                    ),
                    n => (format!("custom.metric.{n}"), "1", Kind::Custom),
                };
                series.push(Series {
                    service: service.clone(),
                    metric,
                    unit,
                    kind,
                    median,
                });
            }
        }
        Generator {
            series,
            rng,
            step_ms: 1000.0 / cfg.rate.max(1e-6),
            clock_ms: cfg.start_ms as f64,
            next_series: 0,
            incident: None,
            incident_chance_per_ms: cfg.incidents_per_hour / 3_600_000.0,
            services: cfg.services.max(1),
        }
    }

    /// Number of distinct (service, metric) series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The event time the next point will carry.
    pub fn clock_ms(&self) -> i64 {
        self.clock_ms as i64
    }

    /// The next point in event-time order.
    pub fn next_point(&mut self) -> MetricPoint {
        let now = self.clock_ms as i64;
        if let Some((_, until, _)) = self.incident {
            if now >= until {
                self.incident = None;
            }
        }
        if self.incident.is_none()
            && self.rng.random::<f64>() < self.incident_chance_per_ms * self.step_ms
        {
            let svc = self.rng.random_range(0..self.services);
            let len = self.rng.random_range(60_000..180_000);
            let factor = self.rng.random_range(3.0..10.0);
            self.incident = Some((svc, now + len, factor));
        }
        let idx = self.next_series;
        self.next_series = (self.next_series + 1) % self.series.len();
        let s = &self.series[idx];
        let svc_idx = idx / (self.series.len() / self.services).max(1);
        let factor = match self.incident {
            Some((i, _, f)) if i == svc_idx => f,
            _ => 1.0,
        };
        let day = (now as f64 / 86_400_000.0 * std::f64::consts::TAU).sin();
        let value = match s.kind {
            Kind::Latency => sample_lognormal(&mut self.rng, s.median * factor, 0.6),
            Kind::DbLatency => sample_lognormal(&mut self.rng, s.median * 0.3 * factor, 0.8),
            Kind::Rate => {
                let base = 200.0 * (1.0 + 0.5 * day);
                (base + Normal::new(0.0, 10.0).map_or(0.0, |n| n.sample(&mut self.rng)))
                    .max(0.0)
                    .round()
            }
            Kind::Cpu => (0.35
                + 0.15 * day
                + 0.05 * self.rng.random::<f64>()
                + 0.08 * (factor - 1.0).min(5.0))
            .clamp(0.0, 1.0),
            Kind::Custom => self.rng.random::<f64>() * 100.0,
        };
        let mut tags = BTreeMap::new();
        tags.insert("host".to_string(), format!("{}-{}", s.service, idx % 3));
        let p = MetricPoint {
            timestamp: now,
            service: s.service.clone(),
            name: s.metric.clone(),
            value,
            unit: s.unit.to_string(),
            tags,
            histogram: None,
            cumulative: None,
            resource: None,
        };
        self.clock_ms += self.step_ms;
        p
    }
}

fn sample_lognormal(rng: &mut SmallRng, median: f64, sigma: f64) -> f64 {
    LogNormal::new(median.max(1e-3).ln(), sigma).map_or(median, |d| d.sample(rng))
}

/// How [`produce`] paces itself.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Event time follows the wall clock: points are sent when their time comes.
    RealTime,
    /// As fast as the broker takes them.
    Flat,
}

/// Progress of a producer run.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProduceStats {
    /// Points (or spans) produced.
    pub points: u64,
    /// Kafka messages produced.
    pub messages: u64,
    /// Bytes of payload produced.
    pub bytes: u64,
}

/// A producer for generated load: batches for 5 ms unless `linger.ms` is set, and tracks
/// failed deliveries.
pub fn load_producer(config: &ClientConfig) -> Result<BaseProducer<DeliveryTracker>, IngestError> {
    let mut c = config.clone();
    if c.get("linger.ms").is_none() {
        c.set("linger.ms", "5");
    }
    Ok(c.create_with_context(DeliveryTracker::default())?)
}

/// Produces generated points to `topic` as APO JSON arrays of up to `batch` points of one
/// service each, keyed by the service (a real-time run also sends partial batches when it waits),
/// until `limit` points or `duration` of event time are reached (whichever is set and first), or
/// `stop` returns true. Calls `progress` about once a second.
#[allow(clippy::too_many_arguments)]
pub fn produce(
    config: &ClientConfig,
    topic: &str,
    generator: &mut Generator,
    batch: usize,
    limit: Option<u64>,
    duration: Option<Duration>,
    pace: Pace,
    stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(&ProduceStats),
) -> Result<ProduceStats, IngestError> {
    let producer = load_producer(config)?;
    let start_ms = generator.clock_ms();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut stats = ProduceStats::default();
    // Points of one batch go per service, so the key (service) is meaningful.
    let mut pending: BTreeMap<String, Vec<MetricPoint>> = BTreeMap::new();
    loop {
        if stop() || limit.is_some_and(|l| stats.points >= l) {
            break;
        }
        let t = generator.clock_ms();
        if duration.is_some_and(|d| (t - start_ms) as u128 >= d.as_millis()) {
            break;
        }
        if let Pace::RealTime = pace {
            let due = Duration::from_millis((t - start_ms).max(0) as u64);
            let elapsed = started.elapsed();
            if due > elapsed {
                flush_pending(&producer, topic, &mut pending, &mut stats)?;
                std::thread::sleep((due - elapsed).min(Duration::from_millis(100)));
                producer.poll(Duration::ZERO);
                continue;
            }
        }
        let p = generator.next_point();
        let service_batch = pending.entry(p.service.clone()).or_default();
        service_batch.push(p);
        stats.points += 1;
        if service_batch.len() >= batch {
            let full = std::mem::take(service_batch);
            send_batch(&producer, topic, &full, &mut stats)?;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            producer.poll(Duration::ZERO);
            progress(&stats);
            last_report = Instant::now();
        }
    }
    flush_pending(&producer, topic, &mut pending, &mut stats)?;
    crate::kafka::flush_promptly(&producer, Duration::from_secs(60))?;
    producer.context().check(topic)?;
    progress(&stats);
    Ok(stats)
}

fn flush_pending(
    producer: &BaseProducer<DeliveryTracker>,
    topic: &str,
    pending: &mut BTreeMap<String, Vec<MetricPoint>>,
    stats: &mut ProduceStats,
) -> Result<(), IngestError> {
    for points in std::mem::take(pending).into_values() {
        send_batch(producer, topic, &points, stats)?;
    }
    producer.poll(Duration::ZERO);
    Ok(())
}

/// Sends the points of one service as one APO JSON array keyed by the service.
fn send_batch(
    producer: &BaseProducer<DeliveryTracker>,
    topic: &str,
    points: &[MetricPoint],
    stats: &mut ProduceStats,
) -> Result<(), IngestError> {
    let Some(first) = points.first() else {
        return Ok(());
    };
    let payload = serde_json::to_vec(points).map_err(|e| IngestError::Config(e.to_string()))?;
    stats.messages += 1;
    stats.bytes += payload.len() as u64;
    send_with_backpressure(
        producer,
        BaseRecord::to(topic)
            .key(first.service.as_bytes())
            .payload(&payload[..]),
    )
}

/// Generated points as a [`MessageSource`](crate::source::MessageSource): APO JSON arrays of
/// `batch` points made on demand, so memory does not grow with the number of points (benchmarks).
pub struct GeneratorSource {
    generator: Generator,
    remaining: u64,
    batch: usize,
    partitions: Vec<i32>,
    offset: i64,
    buf: Vec<u8>,
    points: Vec<MetricPoint>,
}

impl GeneratorSource {
    /// A source serving `points` points of `generator`, `batch` per message, generated as read.
    pub fn new(generator: Generator, points: u64, batch: usize) -> Self {
        GeneratorSource {
            generator,
            remaining: points,
            batch: batch.max(1),
            partitions: vec![0],
            offset: 0,
            buf: Vec::new(),
            points: Vec::new(),
        }
    }
}

impl crate::source::MessageSource for GeneratorSource {
    fn topic(&self) -> &str {
        "generated"
    }

    fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    fn poll(
        &mut self,
        max: usize,
        _timeout: Duration,
        f: &mut dyn FnMut(crate::source::SourceEvent<'_>) -> std::ops::ControlFlow<()>,
    ) -> Result<usize, IngestError> {
        let mut n = 0;
        while n < max && self.remaining > 0 {
            let k = (self.batch as u64).min(self.remaining) as usize;
            self.points.clear();
            self.points
                .extend((0..k).map(|_| self.generator.next_point()));
            self.remaining -= k as u64;
            self.buf.clear();
            serde_json::to_writer(&mut self.buf, &self.points)
                .map_err(|e| IngestError::Config(e.to_string()))?;
            let flow = f(crate::source::SourceEvent::Message(
                crate::source::RawMessage {
                    topic: "generated",
                    partition: 0,
                    offset: self.offset,
                    key: None,
                    payload: Some(&self.buf),
                },
            ));
            self.offset += 1;
            n += 1;
            if flow.is_break() {
                break;
            }
        }
        if n == 0 {
            let _ = f(crate::source::SourceEvent::Eof(0));
        }
        Ok(n)
    }

    fn commit(
        &mut self,
        _offsets: &[(i32, i64)],
        _wait: Option<Duration>,
    ) -> Result<(), IngestError> {
        Ok(())
    }

    fn lag(&mut self) -> Option<i64> {
        Some((self.remaining / self.batch as u64) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_in_event_time_order() {
        let cfg = GeneratorConfig {
            start_ms: 1_000,
            rate: 100.0,
            ..Default::default()
        };
        let mut a = Generator::new(&cfg);
        let mut b = Generator::new(&cfg);
        let mut last = 0;
        for _ in 0..1000 {
            let (x, y) = (a.next_point(), b.next_point());
            assert_eq!(x, y);
            assert!(x.timestamp >= last);
            assert!(x.validate().is_ok());
            last = x.timestamp;
        }
        assert_eq!(a.series_count(), 24);
    }
}
