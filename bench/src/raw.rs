//! The baselines a pipeline is measured against on the same broker: raw consumption of a topic
//! (rdkafka consumers that only count) and the broker's acknowledgement time of a lone record.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Result;
use apo_ingest::kafka::SourceContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Reads `topic` from the beginning with as many plain rdkafka consumers as the pipeline has
/// workers (each on the partitions a worker would read), only counting: the limit any pipeline
/// on this broker can reach. Returns (messages, payload bytes, seconds).
pub fn raw_consume(
    client: &rdkafka::ClientConfig,
    topic: &str,
    partitions: i32,
    workers: usize,
    stamp: i64,
) -> Result<(u64, u64, f64)> {
    let t0 = Instant::now();
    let readers: Vec<_> = (0..workers.max(1))
        .map(|i| {
            let (client, topic, n) = (client.clone(), topic.to_string(), workers.max(1));
            std::thread::spawn(move || -> Result<(u64, u64)> {
                let mut c = client;
                c.set("group.id", format!("apo-bench-raw-{stamp}-{i}"))
                    .set("enable.auto.commit", "false")
                    .set("enable.partition.eof", "true");
                let mine: Vec<i32> = (0..partitions).filter(|p| *p as usize % n == i).collect();
                let consumer: BaseConsumer<SourceContext> =
                    c.create_with_context(SourceContext::new(&topic, &mine))?;
                let mut tpl = TopicPartitionList::new();
                for p in &mine {
                    tpl.add_partition_offset(&topic, *p, Offset::Beginning)?;
                }
                consumer.assign(&tpl)?;
                let (mut msgs, mut bytes, mut eofs) = (0u64, 0u64, 0usize);
                let mut last = Instant::now();
                while eofs < mine.len() && last.elapsed() < Duration::from_secs(30) {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => {
                            msgs += 1;
                            bytes += m.payload_len() as u64;
                            last = Instant::now();
                        }
                        Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => eofs += 1,
                        _ => {}
                    }
                }
                Ok((msgs, bytes))
            })
        })
        .collect();
    let (mut msgs, mut bytes) = (0u64, 0u64);
    for r in readers {
        let (m, b) = r
            .join()
            .map_err(|_| anyhow::anyhow!("raw reader panicked"))??;
        msgs += m;
        bytes += b;
    }
    Ok((msgs, bytes, t0.elapsed().as_secs_f64()))
}

/// Sends a 100-byte record every 20 ms until `stop`, each waited for alone; returns the
/// send-to-acknowledgement times in ms.
pub fn probe_acks(
    client: &rdkafka::ClientConfig,
    topic: &str,
    stop: &AtomicBool,
) -> Result<Vec<f64>> {
    use rdkafka::producer::{BaseProducer, BaseRecord};
    let mut c = client.clone();
    c.set("linger.ms", "0");
    let producer: BaseProducer = c.create()?;
    let payload = [b'x'; 100];
    let mut out = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = Instant::now();
        producer
            .send(BaseRecord::<[u8], [u8]>::to(topic).payload(&payload[..]))
            .map_err(|(e, _)| e)?;
        apo_ingest::kafka::flush_promptly(&producer, Duration::from_secs(30))?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(out)
}
