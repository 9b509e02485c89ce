//! The audit trail: one [`ActionRecord`] on `apo.actions` (key = target) per decision
//! received, acknowledged by the broker before the decision's offset is committed.

use std::time::{Duration, Instant};

use apo_core::kafka::{flush_within, send_with_backpressure, DeliveryTracker};
use apo_schemas::action::ActionRecord;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::ActuateError;

/// How long an audit record may wait for the broker before the actuator stops (it commits
/// nothing meanwhile, so a restart writes it again).
pub const AUDIT_WAIT: Duration = Duration::from_secs(60);

/// Writes audit records.
pub struct AuditWriter {
    producer: BaseProducer<DeliveryTracker>,
    topic: String,
    brokers: String,
}

impl AuditWriter {
    /// A writer to `topic`.
    pub fn new(client: &ClientConfig, topic: &str) -> Result<Self, ActuateError> {
        let mut c = client.clone();
        c.set("linger.ms", "0");
        let producer = c
            .create_with_context(DeliveryTracker::default())
            .map_err(|e| ActuateError::kafka(format!("a producer for {topic}"), e))?;
        Ok(AuditWriter {
            producer,
            topic: topic.to_string(),
            brokers: client.get("bootstrap.servers").unwrap_or("?").to_string(),
        })
    }

    /// Writes `r` and waits until the broker has it.
    pub fn write(&mut self, r: &ActionRecord) -> Result<(), ActuateError> {
        let payload = serde_json::to_vec(r)
            .map_err(|e| ActuateError::kafka("encoding an audit record", e))?;
        let record = BaseRecord::to(&self.topic)
            .key(r.target.as_bytes())
            .payload(payload.as_slice());
        send_with_backpressure(&self.producer, record)
            .map_err(|e| ActuateError::kafka(format!("sending to {}", self.topic), e))?;
        let started = Instant::now();
        while !flush_within(&self.producer, Duration::from_secs(5)) {
            if started.elapsed() >= AUDIT_WAIT {
                return Err(ActuateError::kafka(
                    format!(
                        "writing the audit record of {} to {}",
                        r.decision_id, self.topic
                    ),
                    format!(
                        "the broker at {} acknowledged nothing for {:.0?}; nothing was committed",
                        self.brokers,
                        started.elapsed()
                    ),
                ));
            }
            tracing::warn!(
                topic = %self.topic,
                brokers = %self.brokers,
                decision = %r.decision_id,
                "the audit record waits for the broker ({:.0?}); nothing is committed meanwhile",
                started.elapsed()
            );
        }
        self.producer
            .context()
            .check(&self.topic)
            .map_err(|e| ActuateError::kafka(format!("writing to {}", self.topic), e))?;
        Ok(())
    }
}
