//! Which targets had a decision carried out, and when: the [`ActionLog`], filled from
//! `apo.actions` by [`follow_actions`]. The anomaly stage asks it, per closed window, for the
//! last action on the window's service before the window's end, and suppresses the alert that
//! action explains.
//!
//! The log is read from the topic's beginning and caught up before the pipeline starts, so a
//! replay of old telemetry sees every action recorded so far; after that a thread follows the
//! topic. An action recorded after the windows it would explain were scored does not reach back
//! to them. Actions that did not change their target (rejected, dry run) are not kept;
//! undecodable records go to the dead-letter topic with the reason.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apo_core::kafka::{QuietConsumer, QuietEof};
use apo_schemas::action::ActionRecord;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::dlq::{DeadLetter, DeadLetterSink, KafkaDeadLetters};
use crate::kafka::partition_count;
use crate::source::RawMessage;
use crate::IngestError;

/// Times kept per target; older ones are forgotten first.
pub const MAX_PER_TARGET: usize = 10_000;

/// Execution times (ms) of actions that changed their target, per target. Cheap to clone;
/// clones share the log.
#[derive(Debug, Clone, Default)]
pub struct ActionLog {
    times: Arc<RwLock<HashMap<String, Vec<i64>>>>,
}

impl ActionLog {
    /// Notes an action on `target` at `at_ms`.
    pub fn record(&self, target: &str, at_ms: i64) {
        let mut map = self.times.write().unwrap_or_else(PoisonError::into_inner);
        let times = map.entry(target.to_string()).or_default();
        if let Err(i) = times.binary_search(&at_ms) {
            times.insert(i, at_ms);
            if times.len() > MAX_PER_TARGET {
                times.remove(0);
            }
        }
    }

    /// The last action on `target` strictly before `before_ms`.
    pub fn latest_before(&self, target: &str, before_ms: i64) -> Option<i64> {
        let map = self.times.read().unwrap_or_else(PoisonError::into_inner);
        let times = map.get(target)?;
        let i = times.partition_point(|t| *t < before_ms);
        i.checked_sub(1).map(|i| times[i])
    }

    /// Actions held, over all targets.
    pub fn len(&self) -> usize {
        let map = self.times.read().unwrap_or_else(PoisonError::into_inner);
        map.values().map(Vec::len).sum()
    }

    /// Whether no action has been read yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads `topic` from its beginning into a new [`ActionLog`] until caught up (at most
/// `catch_up`; then a warning, and the rest arrives as it is read), then follows it on a
/// thread until `stop` is set. Bad records go to `dlq_topic`.
pub fn follow_actions(
    config: &ClientConfig,
    topic: &str,
    dlq_topic: &str,
    catch_up: Duration,
    stop: Arc<AtomicBool>,
) -> Result<(ActionLog, JoinHandle<()>), IngestError> {
    let count = partition_count(config, topic)?;
    let mut c = config.clone();
    // Assigned, never committed: the log is rebuilt from the topic at every start.
    c.set("group.id", "apo-actions-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let consumer: QuietConsumer = c.create_with_context(QuietEof)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..count {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut reader = Reader {
        log: ActionLog::default(),
        dlq: KafkaDeadLetters::new(config, dlq_topic)?,
        read: 0,
        dead: 0,
        pending: false,
    };
    let mut at_end: HashSet<i32> = HashSet::new();
    let deadline = Instant::now() + catch_up;
    while at_end.len() < count as usize {
        if Instant::now() >= deadline {
            tracing::warn!(
                topic,
                read = reader.read,
                "actions not caught up after {catch_up:?}; the rest is read while running"
            );
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => reader.take(&m),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => tracing::warn!(error = %e, topic, "reading actions"),
            None => {}
        }
    }
    reader.flush();
    tracing::info!(
        topic,
        actions = reader.read,
        dead_letters = reader.dead,
        "actions read; alerts they explain are suppressed"
    );
    let log = reader.log.clone();
    let topic = topic.to_string();
    let handle = std::thread::Builder::new()
        .name("apo-actions".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        reader.take(&m);
                        reader.flush();
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) | None => reader.flush(),
                    Some(Err(e)) => tracing::warn!(error = %e, topic, "reading actions"),
                }
            }
        })
        .map_err(|e| IngestError::Config(format!("starting the actions reader: {e}")))?;
    Ok((log, handle))
}

struct Reader {
    log: ActionLog,
    dlq: KafkaDeadLetters,
    read: u64,
    dead: u64,
    /// Dead letters sent and not yet flushed.
    pending: bool,
}

impl Reader {
    fn take<M: Message>(&mut self, m: &M) {
        match ActionRecord::decode(m.payload()) {
            Ok(a) => {
                self.read += 1;
                if a.outcome.changed_target() {
                    self.log.record(&a.target, a.executed_at);
                }
            }
            Err(e) => {
                self.dead += 1;
                let detail = e.to_string();
                let letter = DeadLetter {
                    origin: RawMessage {
                        topic: m.topic(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key(),
                        payload: m.payload(),
                    },
                    reason: e.reason(),
                    detail: &detail,
                    points: None,
                };
                match self.dlq.send(letter) {
                    Ok(()) => self.pending = true,
                    Err(e) => {
                        tracing::error!(error = %e, "an undecodable action could not be dead-lettered")
                    }
                }
            }
        }
    }

    /// Waits a moment for the dead letters sent so far; while the broker does not answer they
    /// stay queued and the next call waits again (this reader commits no offsets, so waiting
    /// longer would only stop it from reading).
    fn flush(&mut self) {
        if !self.pending {
            return;
        }
        match self.dlq.flush(Duration::from_millis(100)) {
            Ok(true) => self.pending = false,
            Ok(false) => {}
            Err(e) => {
                self.pending = false;
                tracing::error!(error = %e, "dead letters of apo.actions not delivered");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_action_strictly_before_a_time() {
        let log = ActionLog::default();
        for t in [300, 100, 200, 200] {
            log.record("checkout", t);
        }
        log.record("cart", 150);
        assert_eq!(log.len(), 4, "duplicates kept once");
        assert_eq!(log.latest_before("checkout", 100), None);
        assert_eq!(log.latest_before("checkout", 101), Some(100));
        assert_eq!(log.latest_before("checkout", 250), Some(200));
        assert_eq!(log.latest_before("checkout", i64::MAX), Some(300));
        assert_eq!(log.latest_before("cart", 1000), Some(150));
        assert_eq!(log.latest_before("unknown", 1000), None);
    }

    #[test]
    fn keeps_the_newest_times_of_a_target() {
        let log = ActionLog::default();
        for t in 0..(MAX_PER_TARGET as i64 + 5) {
            log.record("x", t);
        }
        assert_eq!(log.len(), MAX_PER_TARGET);
        assert_eq!(log.latest_before("x", 5), None, "the oldest five forgotten");
        assert_eq!(log.latest_before("x", 6), Some(5));
    }
}
