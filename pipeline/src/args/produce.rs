//! `apo produce`'s flags: the synthetic generators as a load source for any broker.

use std::time::Duration;

use clap::Args;

use super::{duration, KafkaArgs};

#[derive(Args, Debug, Clone)]
/// The flags of `apo produce`.
pub struct ProduceArgs {
    #[command(flatten)]
    /// The broker to produce to (`--brokers` is required).
    pub kafka: KafkaArgs,
    /// Produce traces (spans of a web shop's services) instead of metric points.
    #[arg(long, env = "APO_SPANS")]
    pub spans: bool,
    /// Span encoding with --spans, as the Collector's Kafka exporter names them: json (APO
    /// JSON), otlp or otlp_proto (protobuf ExportTraceServiceRequest), otlp_json, zipkin or
    /// zipkin_json (v2 JSON), zipkin_proto (v2 protobuf ListOfSpans).
    #[arg(long, env = "APO_SPAN_FORMAT", default_value = "json")]
    pub span_format: apo_ingest::trace_produce::SpanFormat,
    /// Topic to write to (default apo.metrics; with --spans, apo.spans).
    #[arg(long, env = "APO_TOPIC")]
    pub topic: Option<String>,
    /// Number of services.
    #[arg(long, env = "APO_SERVICES", default_value_t = 6)]
    pub services: usize,
    /// Metrics per service.
    #[arg(long, env = "APO_METRICS", default_value_t = 4)]
    pub metrics: usize,
    /// Points per second of event time (with --spans: traces per second, about 7 spans each).
    #[arg(long, env = "APO_RATE", default_value_t = 2000.0)]
    pub rate: f64,
    /// Stop after this many points (with --spans: spans).
    #[arg(long, env = "APO_COUNT")]
    pub count: Option<u64>,
    /// Stop after this much event time (e.g. 10m); without --count or --duration, runs until interrupted.
    #[arg(long, env = "APO_DURATION", value_parser = duration)]
    pub duration: Option<Duration>,
    /// Points per Kafka message (one JSON array each, keyed by service).
    #[arg(long, env = "APO_BATCH", default_value_t = 200)]
    pub batch: usize,
    /// realtime: send each point (span) when its event time (end) comes; flat: as fast as possible.
    #[arg(long, env = "APO_PACE", default_value = "realtime", value_parser = ["realtime", "flat"])]
    pub pace: String,
    /// Event time of the first point: RFC 3339, or now.
    #[arg(long, env = "APO_START", default_value = "now")]
    pub start: String,
    /// Mean latency incidents per hour of event time.
    #[arg(long, env = "APO_INCIDENTS_PER_HOUR", default_value_t = 6.0)]
    pub incidents_per_hour: f64,
    /// Random seed (same seed, same data).
    #[arg(long, env = "APO_SEED", default_value_t = 42)]
    pub seed: u64,
}
