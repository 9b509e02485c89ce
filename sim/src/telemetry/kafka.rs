//! The fleet's metric points to a Kafka topic: one APO JSON array per service and scrape,
//! keyed by the service (so one service's points stay in order on one partition), sent with
//! backpressure and tracked until the broker acknowledges them.

use std::time::Duration;

use apo_core::kafka::{flush_promptly, send_with_backpressure, DeliveryTracker};
use apo_core::IngestError;
use apo_schemas::MetricPoint;
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
        if points.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(points)
            .map_err(|e| IngestError::Config(format!("encoding the sim's points: {e}")))?;
        send_with_backpressure(
            &self.producer,
            BaseRecord::to(&self.topic)
                .key(service.as_bytes())
                .payload(body.as_slice()),
        )?;
        self.producer.poll(Duration::ZERO);
        self.sent.0 += points.len() as u64;
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
