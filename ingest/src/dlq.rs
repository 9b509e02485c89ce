//! Dead-letter routing: every input that could not be used goes to `apo.dlq` unchanged (same
//! key, same payload) with headers saying why and where it came from:
//!
//! | header | value |
//! |---|---|
//! | `apo.dlq.reason` | `empty`, `invalid_json`, `invalid_protobuf`, `invalid_field`, `unsupported`, `late` |
//! | `apo.dlq.detail` | a human-readable explanation |
//! | `apo.dlq.topic`, `apo.dlq.partition`, `apo.dlq.offset` | the origin of the message |
//! | `apo.dlq.points` | for a message only partly unusable: the positions of the unusable points |
//!
//! A message whose points fail for different reasons is written once per reason.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::kafka::DeliveryTracker;
use crate::IngestError;

pub use apo_core::{DeadLetter, DeadLetterSink};

/// Writes dead letters to a Kafka topic.
pub struct KafkaDeadLetters {
    producer: BaseProducer<DeliveryTracker>,
    topic: String,
}

impl KafkaDeadLetters {
    /// A producer of dead letters to `topic`.
    pub fn new(config: &ClientConfig, topic: &str) -> Result<Self, IngestError> {
        Ok(KafkaDeadLetters {
            producer: config.create_with_context(DeliveryTracker::default())?,
            topic: topic.to_string(),
        })
    }
}

impl DeadLetterSink for KafkaDeadLetters {
    fn send(&mut self, d: DeadLetter<'_>) -> Result<(), IngestError> {
        let partition = d.origin.partition.to_string();
        let offset = d.origin.offset.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "apo.dlq.reason",
                value: Some(d.reason),
            })
            .insert(Header {
                key: "apo.dlq.detail",
                value: Some(d.detail),
            })
            .insert(Header {
                key: "apo.dlq.topic",
                value: Some(d.origin.topic),
            })
            .insert(Header {
                key: "apo.dlq.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "apo.dlq.offset",
                value: Some(&offset),
            });
        if let Some(points) = d.points {
            headers = headers.insert(Header {
                key: "apo.dlq.points",
                value: Some(points),
            });
        }
        let payload = d.origin.payload.unwrap_or_default();
        let mut record = BaseRecord::to(&self.topic)
            .payload(payload)
            .headers(headers);
        if let Some(k) = d.origin.key {
            record = record.key(k);
        }
        crate::kafka::send_with_backpressure(&self.producer, record)
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        crate::kafka::flush_promptly(&self.producer, Duration::from_secs(60))?;
        self.producer.context().check(&self.topic)
    }
}

/// An owned copy of a dead letter, kept in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLetter {
    /// Why the message was unusable.
    pub reason: String,
    /// The details.
    pub detail: String,
    /// The message's partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Positions of the unusable points, when the rest was used.
    pub points: Option<String>,
    /// The message's value, unchanged.
    pub payload: Vec<u8>,
}

/// Keeps dead letters in memory (benchmarks without a broker, tests of the dataflow).
#[derive(Clone, Default)]
pub struct MemoryDeadLetters {
    /// Every letter sent, in order.
    pub letters: Arc<Mutex<Vec<StoredLetter>>>,
    /// How many were sent.
    pub count: Arc<AtomicU64>,
}

impl DeadLetterSink for MemoryDeadLetters {
    fn send(&mut self, d: DeadLetter<'_>) -> Result<(), IngestError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = self.letters.lock() {
            l.push(StoredLetter {
                reason: d.reason.to_string(),
                detail: d.detail.to_string(),
                partition: d.origin.partition,
                offset: d.origin.offset,
                points: d.points.map(str::to_string),
                payload: d.origin.payload.unwrap_or_default().to_vec(),
            });
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        Ok(())
    }
}
