//! The flags of `apo broker`: the embedded Kafka-protocol broker as a process of its own.

use std::path::PathBuf;

use clap::Args;

/// `apo broker`: a local Kafka-protocol broker (tansu, sqlite storage), the one `apo run`
/// embeds, for other processes: tests, `apo produce`, any Kafka client.
#[derive(Args, Debug, Clone)]
pub struct BrokerArgs {
    /// The loopback port it listens on (0: a free one; the address is printed on stdout).
    #[arg(long, env = "APO_BROKER_PORT", default_value_t = 9092)]
    pub port: u16,
    /// Where it keeps its log (DATA_DIR/broker.db): a restart on the same directory serves
    /// what was written before.
    #[arg(long, env = "APO_BROKER_DATA_DIR", default_value = "apo-data/broker")]
    pub data_dir: PathBuf,
    /// Topics to create at start when missing (comma-separated), each with --topic-partitions.
    #[arg(long = "topics", env = "APO_BROKER_TOPICS", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Partitions of each topic created at start.
    #[arg(long, env = "APO_BROKER_TOPIC_PARTITIONS", default_value_t = 4)]
    pub topic_partitions: i32,
    /// A directory of schemas the broker validates records against, one per topic that has
    /// one: `TOPIC.json` (a JSON schema whose `properties.value` a record's value must match,
    /// `properties.key` its key), `TOPIC.avsc` or `TOPIC.proto`. A record that does not match
    /// is refused (INVALID_RECORD), as by a broker with schema validation. Read when a topic is
    /// first written.
    #[arg(long, env = "APO_BROKER_SCHEMAS")]
    pub schemas: Option<PathBuf>,
}
