//! Kafka plumbing shared by every APO reader and writer: client configuration (brokers plus any
//! librdkafka property passed through, as `kcat -X` does: SASL, TLS, timeouts), topic creation,
//! delivery tracking for producers, and [`KafkaSource`], the partition reader of one worker.
//!
//! Partitions are assigned explicitly, not through group rebalancing: partition `p` of the input
//! topic belongs to global worker `p mod workers`, so a timely cluster spreads the partitions over
//! all its workers deterministically. Offsets are stored in the consumer group (`group.id`), and
//! committed only when the pipeline says the outputs depending on them are durable.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::source::{MessageSource, RawMessage, SourceEvent};
use crate::IngestError;

/// Base client configuration: brokers, then every `key=value` override in order.
pub fn client_config(brokers: &str, overrides: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    // Small produce requests (window results, dead letters) must not wait for Nagle's
    // algorithm; an override below can turn it back on.
    c.set("socket.nagle.disable", "true");
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

/// Waits until every record produced so far is acknowledged (or failed), like
/// `Producer::flush`, but returns within about a millisecond of the last acknowledgement.
///
/// rdkafka's own `flush` polls in steps that each last their full 100 ms, so every flush of a
/// busy producer costs at least 100 ms: that alone would be most of the pipeline's
/// close-to-output latency.
pub fn flush_promptly<C: ProducerContext>(
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> Result<(), IngestError> {
    let deadline = Instant::now() + timeout;
    loop {
        // Serves delivery reports that are ready, without waiting.
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut).into());
        }
        producer.poll(Duration::from_millis(1));
    }
}

/// Sends a record, waiting for room when the producer queue is full (backpressure instead of
/// unbounded memory or an error).
// The closure has the shape of rdkafka's `send`, which returns the record back on error.
#[allow(clippy::result_large_err)]
pub fn send_with_backpressure<C: ProducerContext>(
    producer: &BaseProducer<C>,
    record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), IngestError> {
    retry_while_full(
        record,
        |r| producer.send(r),
        || producer.poll(Duration::from_millis(5)),
    )
}

/// The same for a producer whose own thread serves delivery reports: waiting is sleeping.
// The closure has the shape of rdkafka's `send`, which returns the record back on error.
#[allow(clippy::result_large_err)]
pub fn send_threaded_with_backpressure<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), IngestError> {
    retry_while_full(
        record,
        |r| producer.send(r),
        || std::thread::sleep(Duration::from_millis(1)),
    )
}

/// Sends `record`, calling `wait` and retrying while the producer queue is full.
fn retry_while_full<R>(
    mut record: R,
    mut send: impl FnMut(R) -> Result<(), (KafkaError, R)>,
    wait: impl Fn(),
) -> Result<(), IngestError> {
    loop {
        match send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                wait();
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Consumer context of the source: end of partition is an expected event (it drives idleness
/// and drain mode), not the error librdkafka's default context logs it as. It also keeps the
/// consumer lag from librdkafka's statistics (`statistics.interval.ms`), so reading the lag
/// never costs a broker round trip on the worker thread.
#[derive(Default)]
pub struct SourceContext {
    topic: String,
    partitions: Vec<i32>,
    lag: Mutex<Option<i64>>,
}

impl SourceContext {
    /// A context for a consumer of `partitions` of `topic`.
    pub fn new(topic: &str, partitions: &[i32]) -> Self {
        SourceContext {
            topic: topic.to_string(),
            partitions: partitions.to_vec(),
            lag: Mutex::new(None),
        }
    }

    /// Messages between the position of the application and the end of each partition,
    /// summed over the partitions this consumer reads, as of the last statistics.
    pub fn lag(&self) -> Option<i64> {
        self.lag.lock().ok().and_then(|l| *l)
    }
}

/// Lag of one partition from librdkafka's statistics: end offset minus the next offset the
/// application reads (or, before it read any, the committed offset, else the log start).
fn partition_lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    let end = if p.ls_offset >= 0 {
        p.ls_offset
    } else {
        p.hi_offset
    };
    if end < 0 {
        return None;
    }
    let from = [p.app_offset, p.committed_offset, p.lo_offset]
        .into_iter()
        .find(|o| *o >= 0)
        .unwrap_or(0);
    Some((end - from).max(0))
}

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
                tracing::debug!(%error, reason, "end of partition")
            }
            _ => tracing::error!(%error, reason, "librdkafka"),
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let lag = self
            .partitions
            .iter()
            .map(|p| topic.partitions.get(p).and_then(partition_lag))
            .try_fold(0i64, |acc, l| l.map(|l| acc + l));
        if let Ok(mut l) = self.lag.lock() {
            *l = lag;
        }
    }
}

impl ConsumerContext for SourceContext {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            // The next commit supersedes this one; a crash before it replays a little more.
            tracing::warn!(error = %e, ?offsets, topic = %self.topic, "offset commit failed");
        }
    }
}

/// Reads the partitions of one topic that belong to one worker.
pub struct KafkaSource {
    consumer: BaseConsumer<SourceContext>,
    topic: String,
    partitions: Vec<i32>,
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
        if c.get("statistics.interval.ms").is_none() {
            // The consumer lag shown in progress comes from these statistics.
            c.set("statistics.interval.ms", "2000");
        }
        let partitions: Vec<i32> = (0..count)
            .filter(|p| *p as usize % peers == index)
            .collect();
        let consumer: BaseConsumer<SourceContext> =
            c.create_with_context(SourceContext::new(topic, &partitions))?;
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition_offset(topic, p, Offset::Stored)?;
        }
        consumer.assign(&tpl)?;
        Ok(KafkaSource {
            consumer,
            topic: topic.to_string(),
            partitions,
        })
    }
}

impl MessageSource for KafkaSource {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(SourceEvent<'_>) -> ControlFlow<()>,
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
                    n += 1;
                    let flow = f(SourceEvent::Message(RawMessage {
                        topic: m.topic(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key(),
                        payload: m.payload(),
                    }));
                    if flow.is_break() {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    tracing::debug!(partition = p, "end of partition");
                    let _ = f(SourceEvent::Eof(p));
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

    fn commit(&mut self, offsets: &[(i32, i64)], wait: bool) -> Result<(), IngestError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in offsets {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o + 1))?;
        }
        let mode = if wait {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        self.consumer.commit(&tpl, mode)?;
        Ok(())
    }

    fn lag(&mut self) -> Option<i64> {
        if self.partitions.is_empty() {
            return Some(0);
        }
        self.consumer.context().lag()
    }
}
