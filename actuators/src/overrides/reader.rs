//! An actuator's copy of `apo.overrides`: every partition read from its start, without a
//! consumer group; before each decision it reads up to the end the broker reports, within a
//! limit (past it, the decision is refused: the actuator does not act on overrides it may
//! not know).
//! The ends are asked of the broker by a client of their own that fetches nothing
//! ([`Follower`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use apo_core::kafka::QuietConsumer;
use apo_schemas::overrides::Override;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::ClientConfig;

use super::Overrides;
use crate::follow::Follower;
use crate::ActuateError;

/// Follows the overrides topic.
pub struct OverridesReader {
    consumer: QuietConsumer,
    /// Asks the broker for the partitions' ends; assigned nothing, so never fetching.
    ends: QuietConsumer,
    topic: String,
    partitions: i32,
    /// The next offset to read, per partition.
    next: HashMap<i32, i64>,
    /// The state the topic folds into.
    pub view: Overrides,
}

impl OverridesReader {
    /// A reader of `topic` (which must exist).
    pub fn open(client: &ClientConfig, topic: &str) -> Result<Self, ActuateError> {
        let follow = Follower::open(
            client,
            topic,
            &[("group.id", "apo-overrides-reader")],
            "the overrides",
        )?;
        Ok(OverridesReader {
            consumer: follow.consumer,
            ends: follow.ends,
            topic: topic.to_string(),
            partitions: follow.partitions,
            next: HashMap::new(),
            view: Overrides::default(),
        })
    }

    /// Reads every message written before now, within `limit`.
    pub fn catch_up(&mut self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        let mut ends = HashMap::new();
        for p in 0..self.partitions {
            let (low, high) = self
                .ends
                .fetch_watermarks(&self.topic, p, limit)
                .map_err(|e| format!("the end of {} partition {p}: {e}", self.topic))?;
            let next = self.next.entry(p).or_insert(low);
            *next = (*next).max(low);
            ends.insert(p, high);
        }
        while ends.iter().any(|(p, end)| self.next[p] < *end) {
            if started.elapsed() > limit {
                return Err(format!(
                    "could not read {} to its end within {limit:?}",
                    self.topic
                ));
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(e)) => return Err(format!("reading {}: {e}", self.topic)),
                Some(Ok(m)) => {
                    self.next.insert(m.partition(), m.offset() + 1);
                    let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
                    match (Override::decode(m.payload()), key) {
                        (Ok(o), Some(k)) => self.view.apply(&k, o),
                        (Ok(Some(o)), None) => {
                            let k = o.target.clone();
                            self.view.apply(&k, Some(o))
                        }
                        (Ok(None), None) => {}
                        (Err(e), k) => {
                            tracing::warn!(
                                topic = %self.topic,
                                partition = m.partition(),
                                offset = m.offset(),
                                key = k.as_deref().unwrap_or(""),
                                "an unreadable override pauses its target: {e}"
                            );
                            self.view.apply_unreadable(
                                k.as_deref(),
                                &e.to_string(),
                                m.timestamp().to_millis().unwrap_or_default(),
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
