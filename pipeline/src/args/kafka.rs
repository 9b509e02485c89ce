//! The Kafka connection flags shared by every command that talks to a broker.

use clap::Args;

fn kafka_prop(s: &str) -> Result<(String, String), String> {
    apo_ingest::kafka::parse_override(s)
}

/// Kafka connection flags shared by the commands that talk to a broker. They are global: a
/// command with subcommands (`apo override`) takes them after its subcommand too.
#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,…).
    #[arg(long, env = "APO_BROKERS", global = true)]
    pub brokers: Option<String>,
    /// A librdkafka property, as kcat's -X (repeatable): security.protocol=SASL_SSL, sasl.mechanism=…, ssl.ca.location=…
    #[arg(short = 'X', long = "kafka", value_name = "KEY=VALUE", value_parser = kafka_prop, global = true)]
    pub kafka: Vec<(String, String)>,
    /// Create missing topics at start (the test broker and some clusters do not auto-create).
    #[arg(long, env = "APO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub create_topics: bool,
    /// Partitions of topics created by --create-topics.
    #[arg(long, env = "APO_PARTITIONS", default_value_t = 4, global = true)]
    pub partitions: i32,
}
