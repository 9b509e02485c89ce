//! Window statistics to a Kafka topic as APO JSON, keyed by series and window, so a compacted
//! topic keeps the latest revision of each window. Durable when the broker acknowledged.

use std::time::Duration;

use apo_dataflow::sink::{SinkError, StatsSink};
use apo_ingest::kafka::{send_with_backpressure, DeliveryTracker};
use apo_schemas::WindowStats;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

pub struct KafkaStatsSink {
    producer: BaseProducer<DeliveryTracker>,
    topic: String,
    name: String,
}

impl KafkaStatsSink {
    pub fn new(config: &ClientConfig, topic: &str) -> Result<Self, SinkError> {
        let mut c = config.clone();
        if c.get("linger.ms").is_none() {
            c.set("linger.ms", "0");
        }
        let producer = c
            .create_with_context(DeliveryTracker::default())
            .map_err(|e| SinkError(format!("creating producer for `{topic}`: {e}")))?;
        Ok(KafkaStatsSink {
            producer,
            topic: topic.to_string(),
            name: format!("kafka:{topic}"),
        })
    }
}

impl StatsSink for KafkaStatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, rows: &[WindowStats]) -> Result<(), SinkError> {
        for r in rows {
            let payload = serde_json::to_vec(r).map_err(|e| SinkError(e.to_string()))?;
            let key = r.key();
            send_with_backpressure(
                &self.producer,
                BaseRecord::to(&self.topic)
                    .key(key.as_bytes())
                    .payload(&payload[..]),
            )
            .map_err(|e| SinkError(e.to_string()))?;
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn commit_due(&self) -> bool {
        true
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| SinkError(format!("flushing `{}`: {e}", self.topic)))?;
        self.producer
            .context()
            .check(&self.topic)
            .map_err(|e| SinkError(e.to_string()))
    }
}
