//! The fleet's metric points to a Kafka topic: one APO JSON array per service and scrape,
//! keyed by the service (so one service's points stay in order on one partition), sent with
//! backpressure and tracked until the broker acknowledges them. Its spans to another: one APO
//! JSON array per trace and scrape, keyed by the trace id (as the Collector's Kafka exporter
//! does with `partition_traces_by_id`).

use std::time::Duration;

use apo_core::kafka::{flush_promptly, send_with_backpressure, DeliveryTracker};
use apo_core::IngestError;
use std::collections::BTreeMap;

use apo_schemas::{MetricPoint, Span, TraceId};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// How long [`KafkaTelemetry::flush`] waits for the broker's acknowledgements.
pub const FLUSH_WAIT: Duration = Duration::from_secs(30);

/// A producer of the fleet's points to one topic.
pub struct KafkaTelemetry {
    producer: BaseProducer<DeliveryTracker>,
    topic: String,
    /// Points and messages sent so far.
    pub sent: (u64, u64),
}

impl KafkaTelemetry {
    /// A producer to `topic` with `client`'s settings.
    pub fn new(client: &ClientConfig, topic: &str) -> Result<Self, IngestError> {
        let mut c = client.clone();
        c.set("linger.ms", "5");
        let producer = c.create_with_context(DeliveryTracker::default())?;
        Ok(KafkaTelemetry {
            producer,
            topic: topic.to_string(),
            sent: (0, 0),
        })
    }

    /// Sends `points` of `service` as one message (none when empty); a delivery that failed
    /// since the last call is an error.
    pub fn publish(&mut self, service: &str, points: &[MetricPoint]) -> Result<(), IngestError> {
        self.producer.context().check(&self.topic)?;
        if !points.is_empty() {
            self.send(service, points)?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Sends `spans` (times in ns since the run's start, which was `start_ms` since the Unix
    /// epoch) as one message per trace; a delivery that failed since the last call is an
    /// error.
    pub fn publish_spans(&mut self, start_ms: i64, spans: Vec<Span>) -> Result<(), IngestError> {
        self.producer.context().check(&self.topic)?;
        let mut traces: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
        let offset = start_ms.saturating_mul(1_000_000);
        for mut s in spans {
            s.start_ns = s.start_ns.saturating_add(offset);
            s.end_ns = s.end_ns.saturating_add(offset);
            traces.entry(s.trace_id).or_default().push(s);
        }
        for (trace, spans) in traces {
            self.send(&trace.to_string(), &spans)?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    /// Sends `items` as one APO JSON array keyed by `key`, counted in `sent`.
    fn send<T: serde::Serialize>(&mut self, key: &str, items: &[T]) -> Result<(), IngestError> {
        let body = serde_json::to_vec(items)
            .map_err(|e| IngestError::Config(format!("encoding the sim's telemetry: {e}")))?;
        send_with_backpressure(
            &self.producer,
            BaseRecord::to(&self.topic)
                .key(key.as_bytes())
                .payload(body.as_slice()),
        )?;
        self.sent.0 += items.len() as u64;
        self.sent.1 += 1;
        Ok(())
    }

    /// Waits until everything sent is acknowledged; a failed delivery is an error.
    pub fn flush(&self) -> Result<(), IngestError> {
        flush_promptly(&self.producer, FLUSH_WAIT)?;
        self.producer.context().check(&self.topic)?;
        Ok(())
    }
}
