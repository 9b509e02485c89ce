//! `apo broker`: the embedded Kafka-protocol broker run on its own until SIGINT or SIGTERM,
//! with the topics asked for created, its address printed on stdout
//! (`apo broker listening on 127.0.0.1:PORT`) for scripts and tests to read.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::args::{BrokerArgs, KafkaArgs};
use crate::broker::Broker;
use crate::signals::stop_on_signals;
use crate::RunError;

/// Serves the broker of `a` until a signal; its topics are created before the address is
/// printed, so a reader of the line can use them at once.
pub fn broker(a: BrokerArgs) -> Result<(), RunError> {
    if a.topic_partitions < 1 {
        return Err(RunError::Config(format!(
            "--topic-partitions must be at least 1 (got {})",
            a.topic_partitions
        )));
    }
    if let Some(bad) = a.topics.iter().find(|t| t.trim().is_empty()) {
        return Err(RunError::Config(format!(
            "--topics holds an empty name ({bad:?})"
        )));
    }
    let stop = stop_on_signals()?;
    let kafka = KafkaArgs {
        brokers: None,
        kafka: Vec::new(),
        create_topics: true,
        partitions: a.topic_partitions,
    };
    let broker = Broker::connect_with_schemas(&kafka, &a.data_dir, a.port, a.schemas.as_deref())?;
    let topics: Vec<&str> = a.topics.iter().map(String::as_str).collect();
    if !topics.is_empty() {
        broker.prepare_topics(&topics, true, a.topic_partitions)?;
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "apo broker listening on {}", broker.address());
    let _ = out.flush();
    tracing::info!(
        address = broker.address(),
        data_dir = %a.data_dir.display(),
        topics = topics.len(),
        "broker up; SIGINT or SIGTERM stops it"
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    tracing::info!("stopping the broker");
    drop(broker);
    Ok(())
}
