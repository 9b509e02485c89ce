//! Generated traces to a Kafka topic, the way instrumented services send them: each span when it
//! ends (real-time pace), the spans a trace sends together in one message keyed by the trace id
//! (so a trace stays in one partition, as the Collector's Kafka exporter does with
//! `partition_traces_by_id`), encoded as APO JSON, OTLP protobuf or Zipkin v2 JSON.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::str::FromStr;
use std::time::{Duration, Instant};

use apo_schemas::span_encode::{
    encode_spans_otlp, encode_spans_otlp_json, encode_spans_zipkin, encode_spans_zipkin_proto,
};
use apo_schemas::{Span, TraceId};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::generator::{Pace, ProduceStats};
use crate::kafka::{flush_promptly, send_with_backpressure};
use crate::trace_generator::TraceGenerator;
use crate::IngestError;

/// Wire format of span messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanFormat {
    /// APO JSON (an array of spans).
    Json,
    /// OTLP protobuf `ExportTraceServiceRequest`.
    Otlp,
    /// Zipkin v2 JSON (an array of spans).
    Zipkin,
    /// OTLP JSON `ExportTraceServiceRequest`.
    OtlpJson,
    /// Zipkin v2 protobuf `ListOfSpans`.
    ZipkinProto,
}

impl FromStr for SpanFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(SpanFormat::Json),
            "otlp" | "otlp_proto" => Ok(SpanFormat::Otlp),
            "zipkin" | "zipkin_json" => Ok(SpanFormat::Zipkin),
            "otlp_json" => Ok(SpanFormat::OtlpJson),
            "zipkin_proto" => Ok(SpanFormat::ZipkinProto),
            _ => Err(format!(
                "`{s}`: expected json, otlp (otlp_proto), otlp_json, zipkin (zipkin_json) or \
                 zipkin_proto"
            )),
        }
    }
}

impl SpanFormat {
    /// The message of `spans` in this format.
    pub fn encode(self, spans: &[Span]) -> Vec<u8> {
        match self {
            // Serialising spans (strings, integers, maps of strings) cannot fail.
            SpanFormat::Json => serde_json::to_vec(spans).unwrap_or_default(),
            SpanFormat::Otlp => encode_spans_otlp(spans),
            SpanFormat::Zipkin => encode_spans_zipkin(spans),
            SpanFormat::OtlpJson => encode_spans_otlp_json(spans),
            SpanFormat::ZipkinProto => encode_spans_zipkin_proto(spans),
        }
    }
}

/// Spans generated but not yet due, earliest end first.
struct Pending {
    heap: BinaryHeap<Reverse<(i64, u64)>>,
    spans: BTreeMap<u64, Span>,
    next: u64,
}

impl Pending {
    fn push(&mut self, s: Span) {
        self.heap.push(Reverse((s.end_ns, self.next)));
        self.spans.insert(self.next, s);
        self.next += 1;
    }

    /// Spans ending at or before `until_ns`, grouped by trace.
    fn due(&mut self, until_ns: i64) -> BTreeMap<TraceId, Vec<Span>> {
        let mut out: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
        while let Some(Reverse((end, i))) = self.heap.peek().copied() {
            if end > until_ns {
                break;
            }
            self.heap.pop();
            if let Some(s) = self.spans.remove(&i) {
                out.entry(s.trace_id).or_default().push(s);
            }
        }
        out
    }
}

/// Produces generated traces to `topic` until `limit` spans or `duration` of event time are
/// reached (whichever is set and first), or `stop` returns true. Real-time pace sends each span
/// when it ends; flat sends each trace whole, as fast as the broker takes it. Calls `progress`
/// (spans counted as `points`) about once a second.
#[allow(clippy::too_many_arguments)]
pub fn produce_traces(
    config: &ClientConfig,
    topic: &str,
    generator: &mut TraceGenerator,
    format: SpanFormat,
    limit: Option<u64>,
    duration: Option<Duration>,
    pace: Pace,
    stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(&ProduceStats),
) -> Result<ProduceStats, IngestError> {
    let producer = crate::generator::load_producer(config)?;
    let start_ms = generator.clock_ms();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut stats = ProduceStats::default();
    let mut pending = Pending {
        heap: BinaryHeap::new(),
        spans: BTreeMap::new(),
        next: 0,
    };
    let mut generated = 0u64;
    let send = |trace: TraceId, spans: &[Span], stats: &mut ProduceStats| {
        let payload = format.encode(spans);
        let key = trace.to_string();
        stats.points += spans.len() as u64;
        stats.messages += 1;
        stats.bytes += payload.len() as u64;
        send_with_backpressure(
            &producer,
            BaseRecord::to(topic)
                .key(key.as_bytes())
                .payload(&payload[..]),
        )
    };
    loop {
        let done_generating = stop()
            || limit.is_some_and(|l| generated >= l)
            || duration.is_some_and(|d| (generator.clock_ms() - start_ms) as u128 >= d.as_millis());
        match pace {
            Pace::Flat => {
                if done_generating {
                    break;
                }
                let spans = generator.next_trace();
                generated += spans.len() as u64;
                if let Some(first) = spans.first() {
                    send(first.trace_id, &spans, &mut stats)?;
                }
            }
            Pace::RealTime => {
                let now_ms = start_ms + started.elapsed().as_millis() as i64;
                if !done_generating {
                    while generator.clock_ms() <= now_ms {
                        let spans = generator.next_trace();
                        generated += spans.len() as u64;
                        for s in spans {
                            pending.push(s);
                        }
                    }
                }
                // Once generation stops, what is pending is sent at once.
                let until = if done_generating {
                    i64::MAX
                } else {
                    now_ms.saturating_mul(1_000_000)
                };
                for (trace, spans) in pending.due(until) {
                    send(trace, &spans, &mut stats)?;
                }
                if done_generating {
                    break;
                }
                producer.poll(Duration::ZERO);
                let next_ms = pending
                    .heap
                    .peek()
                    .map_or(i64::MAX, |Reverse((end, _))| end.div_euclid(1_000_000) + 1)
                    .min(generator.clock_ms());
                let wait = (next_ms - now_ms).clamp(1, 100) as u64;
                std::thread::sleep(Duration::from_millis(wait));
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            producer.poll(Duration::ZERO);
            progress(&stats);
            last_report = Instant::now();
        }
    }
    flush_promptly(&producer, Duration::from_secs(60))?;
    producer.context().check(topic)?;
    progress(&stats);
    Ok(stats)
}
