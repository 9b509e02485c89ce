//! The broker a command talks to: the one named by `--brokers`, or (without it) an embedded
//! Kafka-protocol broker started in this process (feature `embedded-broker`). Also the topics a
//! command needs, created or checked.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use apo_ingest::kafka::{client_config, ensure_topics, partition_count};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::args::KafkaArgs;
use crate::RunError;

/// A reachable broker and the client settings to use it with.
pub struct Broker {
    address: String,
    client: ClientConfig,
    #[cfg(feature = "embedded-broker")]
    _embedded: Option<apo_ingest::embedded::EmbeddedBroker>,
}

impl Broker {
    /// The broker of `--brokers`; without it, an embedded one on `embedded_port` (0: a free
    /// port) storing its log under `data_dir`. The client carries every `-X` property.
    pub fn connect(
        kafka: &KafkaArgs,
        data_dir: &Path,
        embedded_port: u16,
    ) -> Result<Self, RunError> {
        Self::connect_with_schemas(kafka, data_dir, embedded_port, None)
    }

    /// [`Broker::connect`]; an embedded broker validates records against the schemas in
    /// `schemas` (`TOPIC.json`, `TOPIC.avsc`, `TOPIC.proto`), refusing those that do not match.
    pub fn connect_with_schemas(
        kafka: &KafkaArgs,
        data_dir: &Path,
        embedded_port: u16,
        schemas: Option<&Path>,
    ) -> Result<Self, RunError> {
        if let Some(address) = &kafka.brokers {
            return Ok(Self::given(address, kafka));
        }
        #[cfg(feature = "embedded-broker")]
        {
            let b = apo_ingest::embedded::EmbeddedBroker::start_with_schemas(
                data_dir,
                embedded_port,
                schemas,
            )
            .map_err(|e| RunError::kafka("starting the embedded broker", e))?;
            let address = b.address().to_string();
            Ok(Broker {
                client: client_config(&address, &kafka.kafka),
                address,
                _embedded: Some(b),
            })
        }
        #[cfg(not(feature = "embedded-broker"))]
        {
            let _ = (data_dir, embedded_port, schemas);
            Err(RunError::Config(
                "no --brokers given, and this build has no embedded broker (feature `embedded-broker`)"
                    .into(),
            ))
        }
    }

    /// The broker of `--brokers`, which this command requires (`what` says why).
    pub fn required(kafka: &KafkaArgs, what: &str) -> Result<Self, RunError> {
        match &kafka.brokers {
            Some(address) => Ok(Self::given(address, kafka)),
            None => Err(RunError::Config(format!("--brokers is required {what}"))),
        }
    }

    fn given(address: &str, kafka: &KafkaArgs) -> Self {
        Broker {
            address: address.to_string(),
            client: client_config(address, &kafka.kafka),
            #[cfg(feature = "embedded-broker")]
            _embedded: None,
        }
    }

    /// The bootstrap address (`host:port,…`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Client settings for producers and consumers of this broker.
    pub fn client(&self) -> &ClientConfig {
        &self.client
    }

    /// Whether the broker runs in this process (and stops with it).
    pub fn is_embedded(&self) -> bool {
        #[cfg(feature = "embedded-broker")]
        {
            self._embedded.is_some()
        }
        #[cfg(not(feature = "embedded-broker"))]
        false
    }

    /// Returns once the broker answers a metadata request. While it does not, says so within
    /// `every` (naming the address) and keeps asking, until it answers or `stop` is set (then
    /// an error saying nothing answered).
    pub fn wait_until_reachable(&self, stop: &AtomicBool, every: Duration) -> Result<(), RunError> {
        let probe: BaseConsumer = self.client.create().map_err(|e| {
            RunError::kafka(
                format!("a client for {}", self.address),
                apo_ingest::IngestError::Kafka(e),
            )
        })?;
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            let answer = probe.fetch_metadata(None, every);
            match answer {
                Ok(md) if !md.brokers().is_empty() => {
                    if attempts > 0 {
                        tracing::info!(
                            brokers = %self.address,
                            "the broker answers, after {:.0?}",
                            started.elapsed()
                        );
                    }
                    return Ok(());
                }
                Ok(_) => {
                    attempts += 1;
                    tracing::warn!(
                        brokers = %self.address,
                        "something answers at {} but names no broker in its metadata (asked for \
                         {:.0?}); still trying, Ctrl-C stops",
                        self.address,
                        started.elapsed()
                    );
                }
                Err(e) => {
                    attempts += 1;
                    tracing::warn!(
                        brokers = %self.address,
                        error = %e,
                        "no Kafka broker answers at {} (asked for {:.0?}); still trying, Ctrl-C stops",
                        self.address,
                        started.elapsed()
                    );
                }
            }
            let pause = Instant::now();
            while pause.elapsed() < Duration::from_secs(1) {
                if stop.load(Ordering::Relaxed) {
                    return Err(RunError::Config(format!(
                        "stopped: no Kafka broker answered at {} in {:.0?} (is --brokers right, and the broker up?)",
                        self.address,
                        started.elapsed()
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Creates the `topics` that are missing (`partitions` each) when `create`; otherwise
    /// checks that each exists, since a missing output topic would only show as deliveries
    /// timing out minutes later.
    pub fn prepare_topics(
        &self,
        topics: &[&str],
        create: bool,
        partitions: i32,
    ) -> Result<(), RunError> {
        if create {
            return ensure_topics(&self.client, topics, partitions)
                .map_err(|e| RunError::kafka(format!("creating topics on {}", self.address), e));
        }
        for topic in topics {
            partition_count(&self.client, topic)
                .map_err(|e| RunError::kafka(format!("checking topics on {}", self.address), e))?;
        }
        Ok(())
    }
}
