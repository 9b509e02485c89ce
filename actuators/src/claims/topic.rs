//! Claims on a topic of the broker (`--claims-topic`, default `apo.claims`), shared by every
//! actuator of a consumer group: when a partition of the decisions topic moves from one
//! actuator to another (a rebalance, a crash), the next one reads what the last one claimed.
//!
//! Each line is a message keyed by its claim id, sent to a partition chosen from the id (so
//! every line of a claim is in one partition, in one order) and acknowledged by the broker
//! before the step it records goes on. Its writer then reads the partition up to its own line,
//! folding every line before it, to learn whether its line applied (see [`super`]): that read
//! back is what makes a step conditional without a lock. Every actuator reads the whole topic
//! at start. Compaction keeps a claim's latest line, which is its furthest step.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use apo_core::kafka::ensure_topics_with;
use apo_core::kafka::QuietConsumer;
use apo_pipeline::Broker;
use rdkafka::consumer::Consumer;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

use super::{fold, Claim, Line};
use crate::follow::Follower;
use crate::ActuateError;

/// How long a line may wait for the broker's acknowledgement, or for being read back, before
/// the actuator stops (without the claim it must not act).
pub const CLAIM_WAIT: Duration = Duration::from_secs(60);

/// The reading consumer's `fetch.wait.max.ms`: a step waits for its own line to be read back
/// (a broker that holds a fetch for all of it, as the test broker does, adds it to every
/// step). Pausing the partitions between reads, to fetch only then, made every read back wait
/// about a second for the resumed fetch (`apo bench`: 1 decision/s).
const FETCH_WAIT_MS: &str = "10";

/// Where the broker put the last line sent, or why it did not.
#[derive(Default)]
struct Acks {
    last: Mutex<Option<Result<(i32, i64), String>>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let got = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        if let Ok(mut l) = self.last.lock() {
            *l = Some(got);
        }
    }
}

/// The claims topic.
pub struct ClaimsTopic {
    topic: String,
    partitions: i32,
    brokers: String,
    producer: BaseProducer<Acks>,
    consumer: QuietConsumer,
    /// Asks the broker for the partitions' ends; assigned nothing, so never fetching.
    ends: QuietConsumer,
    /// The next offset to read, per partition.
    next: HashMap<i32, i64>,
}

/// Creates the claims topic (compacted, `partitions` of them) when asked to, else checks it.
pub fn prepare(
    broker: &Broker,
    topic: &str,
    create: bool,
    partitions: i32,
) -> Result<(), ActuateError> {
    if create {
        ensure_topics_with(
            broker.client(),
            &[topic],
            partitions,
            &[("cleanup.policy", "compact")],
        )
        .map_err(|e| ActuateError::kafka(format!("creating {topic}"), e))?;
    }
    apo_core::kafka::partition_count(broker.client(), topic)
        .map_err(|e| ActuateError::kafka(format!("checking {topic}"), e))?;
    Ok(())
}

/// The partition of claim `id` among `partitions`: FNV-1a of its bytes (the same in every
/// actuator, whatever its client's partitioner).
pub fn partition_of(id: &str, partitions: i32) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % partitions.max(1) as u64) as i32
}

impl ClaimsTopic {
    /// A reader and writer of `topic` (which must exist), reading from its start.
    pub fn open(client: &ClientConfig, topic: &str) -> Result<Self, ActuateError> {
        let ctx = || format!("the claims in {topic}");
        let mut p = client.clone();
        p.set("linger.ms", "0");
        let producer = p
            .create_with_context(Acks::default())
            .map_err(|e| ActuateError::kafka(ctx(), e))?;
        let follow = Follower::open(
            client,
            topic,
            &[
                ("group.id", "apo-claims-reader"),
                ("fetch.wait.max.ms", FETCH_WAIT_MS),
            ],
            "the claims",
        )?;
        Ok(ClaimsTopic {
            topic: topic.to_string(),
            partitions: follow.partitions,
            brokers: client.get("bootstrap.servers").unwrap_or("?").to_string(),
            producer,
            consumer: follow.consumer,
            ends: follow.ends,
            next: HashMap::new(),
        })
    }

    fn error(&self, what: String) -> ActuateError {
        ActuateError::Claims {
            path: format!("topic {} at {}", self.topic, self.brokers),
            error: what,
        }
    }

    /// Reads every line written before now into `claims`.
    pub fn catch_up(&mut self, claims: &mut HashMap<String, Claim>) -> Result<(), ActuateError> {
        let mut ends = HashMap::new();
        for p in 0..self.partitions {
            let (low, high) = self
                .ends
                .fetch_watermarks(&self.topic, p, CLAIM_WAIT)
                .map_err(|e| self.error(format!("the end of partition {p}: {e}")))?;
            let next = self.next.entry(p).or_insert(low);
            *next = (*next).max(low);
            ends.insert(p, high);
        }
        let started = Instant::now();
        while ends.iter().any(|(p, end)| self.next[p] < *end) {
            self.read_one(claims, started, None)?;
        }
        Ok(())
    }

    /// Reads at most one line into `claims` (waiting a little for it); whether it was the
    /// line at `mine` and applied.
    fn read_one(
        &mut self,
        claims: &mut HashMap<String, Claim>,
        started: Instant,
        mine: Option<(i32, i64)>,
    ) -> Result<Option<bool>, ActuateError> {
        if started.elapsed() > CLAIM_WAIT {
            return Err(self.error(format!("could not read it within {CLAIM_WAIT:?}")));
        }
        match self.consumer.poll(Duration::from_millis(100)) {
            None => Ok(None),
            Some(Err(e)) => Err(self.error(format!("reading: {e}"))),
            Some(Ok(m)) => {
                let at = (m.partition(), m.offset());
                self.next.insert(at.0, at.1 + 1);
                let line = m
                    .payload()
                    .map(serde_json::from_slice::<Line>)
                    .transpose()
                    .map_err(|e| e.to_string());
                let applied = match line {
                    Ok(Some(l)) => fold(claims, l),
                    Ok(None) => false,
                    Err(e) => {
                        tracing::warn!(
                            topic = %self.topic,
                            partition = at.0,
                            offset = at.1,
                            "a message of the claims topic that is not a claim, skipped: {e}"
                        );
                        false
                    }
                };
                Ok((Some(at) == mine).then_some(applied))
            }
        }
    }

    /// Writes `line`, waits for the broker's acknowledgement, then reads its partition up to
    /// it: whether it applied.
    pub fn append(
        &mut self,
        claims: &mut HashMap<String, Claim>,
        line: &Line,
    ) -> Result<bool, ActuateError> {
        let at = self.send(line)?;
        self.read_back(claims, line, at)
    }

    fn read_back(
        &mut self,
        claims: &mut HashMap<String, Claim>,
        line: &Line,
        at: (i32, i64),
    ) -> Result<bool, ActuateError> {
        let started = Instant::now();
        loop {
            if let Some(applied) = self.read_one(claims, started, Some(at))? {
                return Ok(applied);
            }
            if self.next.get(&at.0).is_some_and(|n| *n > at.1) {
                // read past it without seeing it: compacted away already, or not a claim
                return Err(self.error(format!(
                    "the claim of {} at partition {} offset {} was not read back",
                    line.id, at.0, at.1
                )));
            }
        }
    }

    /// Writes `line` and waits for the broker's acknowledgement (not reading it back: it is
    /// folded when a later read reaches it); where it was written.
    pub fn send(&mut self, line: &Line) -> Result<(i32, i64), ActuateError> {
        let payload = serde_json::to_vec(line).map_err(|e| self.error(e.to_string()))?;
        let partition = partition_of(&line.id, self.partitions);
        if let Ok(mut l) = self.producer.context().last.lock() {
            *l = None;
        }
        let record = BaseRecord::to(&self.topic)
            .key(line.id.as_bytes())
            .partition(partition)
            .payload(payload.as_slice());
        self.producer
            .send(record)
            .map_err(|(e, _)| self.error(format!("sending the claim of {}: {e}", line.id)))?;
        let started = Instant::now();
        let at = loop {
            self.producer.poll(Duration::from_millis(1));
            let got = self
                .producer
                .context()
                .last
                .lock()
                .ok()
                .and_then(|mut l| l.take());
            match got {
                Some(Ok(at)) => break at,
                Some(Err(e)) => {
                    return Err(self.error(format!("writing the claim of {}: {e}", line.id)))
                }
                None if started.elapsed() > CLAIM_WAIT => {
                    return Err(self.error(format!(
                        "the broker acknowledged the claim of {} in none of {CLAIM_WAIT:?}",
                        line.id
                    )))
                }
                None => {}
            }
        };
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_has_one_partition_everywhere() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (the published test vector)
        assert_eq!(
            partition_of("a", i32::MAX),
            (0xaf63dc4c8601ec8c_u64 % i32::MAX as u64) as i32
        );
        assert_eq!(partition_of("d-001", 1), 0);
        let spread: std::collections::BTreeSet<i32> = (0..100)
            .map(|i| partition_of(&format!("d-{i}"), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
