//! The audit trail: one [`ActionRecord`] on `apo.actions` (key = target) per decision
//! received, acknowledged by the broker before the decision's offset is committed, and the
//! same record as a row of the `actions` Parquet table.
//!
//! A crash between the broker's acknowledgement and the claim that records it leaves a
//! decision `done` but not `audited`; the restart asks the topic ([`AuditWriter::already_written`])
//! before writing its record again, so it is written once. The table's row is a file of its
//! own named after the record's bytes ([`AuditWriter::table`]): written again, it replaces
//! itself, so the restart writes it whether or not the topic had the record.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use apo_core::kafka::{flush_within, send_with_backpressure, DeliveryTracker};
use apo_core::kafka::{QuietConsumer, QuietEof};
use apo_schemas::action::ActionRecord;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};

use crate::ActuateError;

/// How long an audit record may wait for the broker before the actuator stops (it commits
/// nothing meanwhile, so a restart writes it again).
pub const AUDIT_WAIT: Duration = Duration::from_secs(60);

/// The action of a verification's record.
pub const VERIFY_ACTION: &str = "verify";

/// How many of the latest records of each partition [`AuditWriter::already_written`] reads.
/// One actuator audits one decision at a time, so the record it looks for, if written, is
/// among the very last ones.
pub const LOOKBACK: i64 = 1_000;

/// How long [`AuditWriter::already_written`] may take.
const LOOKBACK_WAIT: Duration = Duration::from_secs(20);

/// Writes audit records.
pub struct AuditWriter {
    producer: BaseProducer<DeliveryTracker>,
    topic: String,
    brokers: String,
    client: ClientConfig,
    data_dir: PathBuf,
}

impl AuditWriter {
    /// A writer to `topic` and to the `actions` table under `data_dir`.
    pub fn new(client: &ClientConfig, topic: &str, data_dir: &Path) -> Result<Self, ActuateError> {
        let mut c = client.clone();
        c.set("linger.ms", "0");
        let producer = c
            .create_with_context(DeliveryTracker::default())
            .map_err(|e| ActuateError::kafka(format!("a producer for {topic}"), e))?;
        Ok(AuditWriter {
            producer,
            topic: topic.to_string(),
            brokers: client.get("bootstrap.servers").unwrap_or("?").to_string(),
            client: client.clone(),
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// Writes `r` to the topic, waits until the broker has it, then writes its row to the
    /// table.
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
        self.table(r)
    }

    /// Writes `r`'s row to the `actions` table, durably: a file of its own in the day of its
    /// execution, named after the record's bytes, so the same record written again (after a
    /// restart) replaces its own file and stays one row.
    pub fn table(&self, r: &ActionRecord) -> Result<(), ActuateError> {
        let bytes = serde_json::to_vec(r).map_err(|e| ActuateError::Table(e.to_string()))?;
        let digest = Sha256::digest(&bytes);
        let hash: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("audit-{}-{hash}", r.executed_at);
        apo_sinks::parquet::write_one(&self.data_dir, &name, r)
            .map(|_| ())
            .map_err(|e| ActuateError::Table(e.to_string()))
    }

    /// Whether the latest [`LOOKBACK`] records of each partition of the topic hold a record of
    /// `decision_id` (read without a consumer group, committing nothing): its verification's
    /// record (action `verify`) when `verification`, else its first.
    pub fn already_written(
        &self,
        decision_id: &str,
        verification: bool,
    ) -> Result<bool, ActuateError> {
        let ctx = || {
            format!(
                "looking for the audit record of {decision_id} in {}",
                self.topic
            )
        };
        let mut c = self.client.clone();
        c.set("group.id", "apo-actuate-lookback")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true");
        let consumer: QuietConsumer = c
            .create_with_context(QuietEof)
            .map_err(|e| ActuateError::kafka(ctx(), e))?;
        let count = apo_core::kafka::partition_count(&self.client, &self.topic)
            .map_err(|e| ActuateError::kafka(ctx(), e))?;
        let mut tpl = TopicPartitionList::new();
        let mut open = 0usize;
        for p in 0..count {
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, p, Duration::from_secs(5))
                .map_err(|e| ActuateError::kafka(ctx(), e))?;
            if high > low {
                tpl.add_partition_offset(&self.topic, p, Offset::Offset(low.max(high - LOOKBACK)))
                    .map_err(|e| ActuateError::kafka(ctx(), e))?;
                open += 1;
            }
        }
        if open == 0 {
            return Ok(false);
        }
        consumer
            .assign(&tpl)
            .map_err(|e| ActuateError::kafka(ctx(), e))?;
        let started = Instant::now();
        let mut ended = std::collections::HashSet::new();
        while ended.len() < open {
            if started.elapsed() > LOOKBACK_WAIT {
                return Err(ActuateError::kafka(
                    ctx(),
                    format!(
                        "the broker at {} did not serve it in {LOOKBACK_WAIT:?}",
                        self.brokers
                    ),
                ));
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    ended.insert(p);
                }
                Some(Err(e)) => return Err(ActuateError::kafka(ctx(), e)),
                Some(Ok(m)) => {
                    if let Ok(r) = ActionRecord::decode(m.payload()) {
                        if r.decision_id == decision_id
                            && (r.action == VERIFY_ACTION) == verification
                        {
                            return Ok(true);
                        }
                    }
                }
            }
        }
        Ok(false)
    }
}
