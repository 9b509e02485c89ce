//! Topics: creating the missing ones, and the partition count of one that must exist.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::IngestError;

/// Creates every topic in `topics` that does not exist yet (`partitions` each).
pub fn ensure_topics(
    config: &ClientConfig,
    topics: &[&str],
    partitions: i32,
) -> Result<(), IngestError> {
    ensure_topics_with(config, topics, partitions, &[])
}

/// [`ensure_topics`], creating them with the topic configs `settings`
/// (`("cleanup.policy", "compact")`, say); a topic that exists is left as it is.
pub fn ensure_topics_with(
    config: &ClientConfig,
    topics: &[&str],
    partitions: i32,
    settings: &[(&str, &str)],
) -> Result<(), IngestError> {
    // Ask only for the missing ones: asking for one that exists is harmless to the client,
    // but some brokers (the embedded one) log every such request as an error.
    let existing: std::collections::HashSet<String> = {
        let consumer: BaseConsumer = config.create()?;
        let md = consumer.fetch_metadata(None, Duration::from_secs(30))?;
        md.topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.name().to_string())
            .collect()
    };
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|t| !existing.contains(**t))
        .map(|t| {
            settings.iter().fold(
                NewTopic::new(t, partitions, TopicReplication::Fixed(1)),
                |n, (k, v)| n.set(k, v),
            )
        })
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = config.create()?;
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
