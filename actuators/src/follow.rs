//! Following a whole topic without a consumer group (the overrides, the claims): a consumer
//! assigned every partition from its start, and a second client that only asks the broker
//! for the partitions' ends. Asked on the reading consumer's connection, that question waits
//! behind the fetch the broker holds open (up to `fetch.wait.max.ms`), as `apo bench` showed.

use apo_core::kafka::{QuietConsumer, QuietEof};
use rdkafka::consumer::Consumer;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::ActuateError;

/// A reader of every partition of a topic from its start.
pub struct Follower {
    /// Reads the topic.
    pub consumer: QuietConsumer,
    /// Asks the broker for the partitions' ends; assigned nothing, so never fetching.
    pub ends: QuietConsumer,
    /// How many partitions the topic has.
    pub partitions: i32,
}

impl Follower {
    /// Follows `topic` (which must exist) with `client`'s settings and `settings`; `what` says
    /// what is read, for errors.
    pub fn open(
        client: &ClientConfig,
        topic: &str,
        settings: &[(&str, &str)],
        what: &str,
    ) -> Result<Self, ActuateError> {
        let ctx = || format!("reading {what} in {topic}");
        let partitions = apo_core::kafka::partition_count(client, topic)
            .map_err(|e| ActuateError::kafka(ctx(), e))?;
        let mut c = client.clone();
        c.set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        for (k, v) in settings {
            c.set(*k, *v);
        }
        let consumer: QuietConsumer = c
            .create_with_context(QuietEof)
            .map_err(|e| ActuateError::kafka(ctx(), e))?;
        let ends: QuietConsumer = c
            .create_with_context(QuietEof)
            .map_err(|e| ActuateError::kafka(ctx(), e))?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| ActuateError::kafka(ctx(), e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| ActuateError::kafka(ctx(), e))?;
        Ok(Follower {
            consumer,
            ends,
            partitions,
        })
    }
}
