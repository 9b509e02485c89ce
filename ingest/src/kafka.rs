//! The Kafka source: [`KafkaSource`], the partition reader of one worker, and its consumer
//! context. The client settings, topic creation and producer helpers it shares with every other
//! reader and writer live in `apo_core::kafka` and are re-exported here.
//!
//! Partitions are assigned explicitly, not through group rebalancing: partition `p` of the input
//! topic belongs to global worker `p mod workers`, so a timely cluster spreads the partitions over
//! all its workers deterministically. Offsets are stored in the consumer group (`group.id`), and
//! committed only when the pipeline says the outputs depending on them are durable.

use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

pub use apo_core::kafka::{
    client_config, ensure_topics, flush_promptly, flush_within, parse_override, partition_count,
    send_threaded_with_backpressure, send_with_backpressure, DeliveryTracker,
};

use crate::source::{MessageSource, RawMessage, SourceEvent};
use crate::IngestError;

/// Consumer context of the source: end of partition is an expected event (it drives idleness
/// and drain mode), not the error librdkafka's default context logs it as. It also keeps the
/// consumer lag from librdkafka's statistics (`statistics.interval.ms`), so reading the lag
/// never costs a broker round trip on the worker thread.
#[derive(Default)]
pub struct SourceContext {
    topic: String,
    partitions: Vec<i32>,
    lag: Mutex<Option<i64>>,
    /// Each partition's lag, as of the last statistics.
    lags: Mutex<std::collections::BTreeMap<i32, i64>>,
}

impl SourceContext {
    /// A context for a consumer of `partitions` of `topic`.
    pub fn new(topic: &str, partitions: &[i32]) -> Self {
        SourceContext {
            topic: topic.to_string(),
            partitions: partitions.to_vec(),
            lag: Mutex::new(None),
            lags: Mutex::default(),
        }
    }

    /// Each partition's lag, as of the last statistics (partitions without one left out).
    pub fn partition_lags(&self) -> std::collections::BTreeMap<i32, i64> {
        self.lags.lock().map(|l| l.clone()).unwrap_or_default()
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
        apo_core::kafka::log_client_error(error, reason)
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
        let lags = self
            .partitions
            .iter()
            .filter_map(|p| Some((*p, topic.partitions.get(p).and_then(partition_lag)?)))
            .collect();
        if let Ok(mut l) = self.lags.lock() {
            *l = lags;
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
    /// `bootstrap.servers`.
    brokers: String,
}

/// The input consumers' `fetch.wait.max.ms` unless the client properties set it.
pub const FETCH_WAIT_MS: &str = "50";

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
        if c.get("fetch.wait.max.ms").is_none() {
            // How long a fetch may wait at the broker for data. librdkafka's 500 ms is what a
            // window waits for its last points when a broker answers a fetch only at its
            // deadline (the embedded broker does): the planner's decisions came 0.6 s late,
            // more than a window at the report's 120x. Idle, this costs 20 fetches a second.
            c.set("fetch.wait.max.ms", FETCH_WAIT_MS);
        }
        if c.get("queued.max.messages.kbytes").is_none() {
            // librdkafka prefetches up to 64 MiB per consumer by default: memory outside the
            // memory budget's view, and more than a worker reads in a second. 16 MiB keeps
            // the fetches ahead of the worker.
            c.set("queued.max.messages.kbytes", "16384");
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
            brokers: config
                .get("bootstrap.servers")
                .unwrap_or_default()
                .to_string(),
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

    fn seek(&mut self, positions: &[(i32, i64)]) -> Result<(), IngestError> {
        let mut tpl = TopicPartitionList::new();
        for &p in &self.partitions {
            let offset = match positions.iter().find(|(q, _)| *q == p) {
                Some(&(_, o)) => Offset::Offset(o),
                None => Offset::Stored,
            };
            tpl.add_partition_offset(&self.topic, p, offset)?;
        }
        self.consumer.assign(&tpl)?;
        Ok(())
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

    fn commit(
        &mut self,
        offsets: &[(i32, i64)],
        wait: Option<Duration>,
    ) -> Result<(), IngestError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for &(p, o) in offsets {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o + 1))?;
        }
        // Always asynchronous: librdkafka's synchronous commit waits as long as it likes for
        // a coordinator that is gone. Waiting is asking the broker for the committed offsets,
        // each question bounded, until they are there or the limit has passed.
        self.consumer.commit(&tpl, CommitMode::Async)?;
        let Some(limit) = wait else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let mut detail = "no answer".to_string();
        while started.elapsed() < limit {
            let ask = limit
                .saturating_sub(started.elapsed())
                .clamp(Duration::from_millis(100), Duration::from_secs(1));
            match self.consumer.committed_offsets(tpl.clone(), ask) {
                Ok(stored) => {
                    let all = offsets.iter().all(|&(p, o)| {
                        matches!(
                            stored.find_partition(&self.topic, p).map(|e| e.offset()),
                            Some(Offset::Offset(s)) if s > o
                        )
                    });
                    if all {
                        return Ok(());
                    }
                    detail = "not stored yet".into();
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => detail = e.to_string(),
            }
        }
        Err(IngestError::CommitNotAcknowledged {
            topic: self.topic.clone(),
            brokers: self.brokers.clone(),
            waited: limit,
            detail,
        })
    }

    fn partition_lags(&mut self) -> std::collections::BTreeMap<i32, i64> {
        self.consumer.context().partition_lags()
    }

    fn lag(&mut self) -> Option<i64> {
        if self.partitions.is_empty() {
            return Some(0);
        }
        self.consumer.context().lag()
    }

    fn brokers(&self) -> Option<&str> {
        Some(&self.brokers)
    }
}
