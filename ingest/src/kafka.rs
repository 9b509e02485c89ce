//! Kafka plumbing shared by every APO reader and writer: client configuration (brokers plus any
//! librdkafka property passed through, as `kcat -X` does: SASL, TLS, timeouts), topic creation,
//! delivery tracking for producers, and [`KafkaSource`], the partition reader of one worker.
//!
//! Partitions are assigned explicitly, not through group rebalancing: partition `p` of the input
//! topic belongs to global worker `p mod workers`, so a timely cluster spreads the partitions over
//! all its workers deterministically. Offsets are stored in the consumer group (`group.id`), and
//! committed only when the pipeline says the outputs depending on them are durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::source::{MessageSource, RawMessage, SourceEvent};
use crate::IngestError;

/// Base client configuration: brokers, then every `key=value` override in order.
pub fn client_config(brokers: &str, overrides: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in overrides {
        c.set(k, v);
    }
    c
}

/// Parses one `-X key=value` argument.
pub fn parse_override(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "expected key=value (a librdkafka property), got `{s}`"
        )),
    }
}

/// Creates every topic in `topics` that does not exist yet (`partitions` each).
pub fn ensure_topics(
    config: &ClientConfig,
    topics: &[&str],
    partitions: i32,
) -> Result<(), IngestError> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(admin.create_topics(new.iter(), &opts))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(IngestError::Config(format!(
                    "creating topic `{topic}`: {code}"
                )))
            }
        }
    }
    Ok(())
}

/// Number of partitions of `topic`, or an error naming the topic when it does not exist.
pub fn partition_count(config: &ClientConfig, topic: &str) -> Result<i32, IngestError> {
    let consumer: BaseConsumer = config.create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let brokers = config.get("bootstrap.servers").unwrap_or("?").to_string();
    match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().len() as i32)
        }
        _ => Err(IngestError::NoTopic {
            topic: topic.to_string(),
            brokers,
        }),
    }
}

/// Producer context that counts failed deliveries, so a flush can tell whether everything
/// produced is durable.
#[derive(Default)]
pub struct DeliveryTracker {
    failed: AtomicU64,
    last_error: Mutex<String>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut l) = self.last_error.lock() {
                *l = e.to_string();
            }
        }
    }
}

impl DeliveryTracker {
    /// Errors if any delivery failed since the last check.
    pub fn check(&self, topic: &str) -> Result<(), IngestError> {
        let failed = self.failed.swap(0, Ordering::Relaxed);
        if failed == 0 {
            return Ok(());
        }
        let last_error = self
            .last_error
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        Err(IngestError::Delivery {
            topic: topic.to_string(),
            failed,
            last_error,
        })
    }
}

/// Sends a record, waiting for room when the producer queue is full (backpressure instead of
/// unbounded memory or an error).
pub fn send_with_backpressure<C: ProducerContext>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), IngestError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(50));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Consumer context of the source: end of partition is an expected event (it drives idleness
/// and drain mode), not the error librdkafka's default context logs it as.
pub struct SourceContext;

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) => tracing::debug!(%error, reason, "end of partition"),
            _ => tracing::error!(%error, reason, "librdkafka"),
        }
    }
}

impl ConsumerContext for SourceContext {}

/// Reads the partitions of one topic that belong to one worker.
pub struct KafkaSource {
    consumer: BaseConsumer<SourceContext>,
    topic: String,
    partitions: Vec<i32>,
    lag_cache: Option<(Instant, i64)>,
}

impl KafkaSource {
    /// Assigns partitions `p` with `p mod peers == index`, starting at the group's committed
    /// offsets (or `auto.offset.reset`, earliest unless overridden).
    pub fn new(
        config: &ClientConfig,
        group: &str,
        topic: &str,
        index: usize,
        peers: usize,
    ) -> Result<Self, IngestError> {
        let count = partition_count(config, topic)?;
        let mut c = config.clone();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true");
        if c.get("auto.offset.reset").is_none() {
            c.set("auto.offset.reset", "earliest");
        }
        let consumer: BaseConsumer<SourceContext> = c.create_with_context(SourceContext)?;
        let partitions: Vec<i32> = (0..count)
            .filter(|p| *p as usize % peers == index)
            .collect();
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition_offset(topic, p, Offset::Stored)?;
        }
        consumer.assign(&tpl)?;
        Ok(KafkaSource {
            consumer,
            topic: topic.to_string(),
            partitions,
            lag_cache: None,
        })
    }
}

impl MessageSource for KafkaSource {
    fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(SourceEvent<'_>),
    ) -> Result<usize, IngestError> {
        if self.partitions.is_empty() {
            std::thread::sleep(timeout);
            return Ok(0);
        }
        let mut n = 0;
        let mut wait = timeout;
        while n < max {
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(m)) => {
                    f(SourceEvent::Message(RawMessage {
                        topic: m.topic(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key(),
                        payload: m.payload(),
                    }));
                    n += 1;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    tracing::debug!(partition = p, "end of partition");
                    f(SourceEvent::Eof(p))
                }
                Some(Err(e)) => {
                    // Transient broker errors are retried by librdkafka; report and go on.
                    tracing::warn!(error = %e, topic = %self.topic, "consumer error");
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        Ok(n)
    }

    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<(), IngestError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in offsets {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o + 1))?;
        }
        self.consumer.commit(&tpl, CommitMode::Sync)?;
        Ok(())
    }

    fn lag(&mut self) -> Option<i64> {
        if let Some((at, lag)) = self.lag_cache {
            if at.elapsed() < Duration::from_secs(5) {
                return Some(lag);
            }
        }
        let positions = self.consumer.position().ok()?;
        let mut lag = 0;
        for &p in &self.partitions {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.topic, p, Duration::from_secs(2))
                .ok()?;
            let pos = positions
                .find_partition(&self.topic, p)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            lag += pos.map_or(high, |o| (high - o).max(0));
        }
        self.lag_cache = Some((Instant::now(), lag));
        Some(lag)
    }
}
