//! Windowed output rows (window statistics, RED, …) to a Kafka topic as JSON, keyed by the row's
//! dimensions and window, so a compacted topic keeps the latest revision of each window. A write is durable when the broker
//! acknowledged all its records; the sink never waits for that on the worker thread. Delivery
//! reports are served on the producer's own polling thread as they arrive, so the moment a write
//! became durable is known even while the worker is busy reading.
//!
//! A row the broker will never take (larger than its message limit, or refused as invalid) is not
//! an outage: with a dead-letter topic set, the row goes there instead (headers below; its JSON
//! cut to [`DEAD_LETTER_PAYLOAD_BYTES`] with `apo.dlq.truncated` saying so), the write is durable
//! once that copy is, and the sink counts it ([`RowSink::dead_lettered`]). A broker that is
//! away is an outage, not a failure: unless the settings give a `message.timeout.ms`, records
//! wait for it as long as it takes (`0`, librdkafka's "infinite"), the writes stay not durable,
//! the worker stops reading (backpressure) and commits nothing, and a drain is bounded by its
//! stall timeout. Any other delivery failure (one the settings' own `message.timeout.ms` ends)
//! stops the pipeline without committing, so that a restart replays: nothing is lost.
//!
//! Such a dead letter has the row's key (its dimensions and window, cut like the payload) and
//! the headers `apo.dlq.reason` = `output_refused`, `apo.dlq.detail` (the broker's or the
//! client's error), `apo.dlq.topic` (the output topic), `apo.dlq.window_start`,
//! `apo.dlq.window_end` and `apo.dlq.revision` (which window of which inputs it was), and
//! `apo.dlq.size` (the row's JSON length).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use apo_core::kafka::{refused_for_good, send_threaded_with_backpressure};
use apo_core::{RowSink, SinkError};
use apo_schemas::OutputRow;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use serde::Serialize;

/// How much of a refused row's JSON its dead letter carries, bytes: far below any broker's
/// message limit, enough to see what the row was.
pub const DEAD_LETTER_PAYLOAD_BYTES: usize = 64 * 1024;

/// Counts unacknowledged records per write (the delivery opaque names the write).
#[derive(Default)]
struct AckTracker {
    state: Mutex<Acks>,
    /// Whether refused rows may go to a dead-letter topic.
    dead_letters: bool,
    /// How much of a refused row's key and JSON its dead letter keeps, bytes each.
    copy_cap: usize,
}

/// What a delivery report is about.
struct Delivery {
    /// The write the record belongs to.
    write: u64,
    /// The record is the dead-letter copy of a refused row.
    copy: bool,
    /// The row's window and revision.
    window: Window,
}

/// A row's window and revision, for its dead letter.
#[derive(Clone, Copy, Default)]
struct Window {
    start: i64,
    end: i64,
    revision: u32,
}

#[derive(Default)]
struct Acks {
    /// Write number → records not yet acknowledged.
    outstanding: BTreeMap<u64, usize>,
    /// When the last write was completely acknowledged.
    completed_at: Option<Instant>,
    failed: u64,
    last_error: String,
    /// Rows refused for good, whose dead letters are still to be sent (by the worker, at its
    /// next poll); their writes stay outstanding until the copies are acknowledged.
    refused: Vec<Refused>,
}

/// A row the broker refused for good.
struct Refused {
    write: u64,
    window: Window,
    /// The row's key, cut to `cap`.
    key: Vec<u8>,
    /// The row's JSON, cut to `cap`.
    payload: Vec<u8>,
    size: usize,
    error: String,
}

impl Refused {
    fn new(d: &Delivery, key: &[u8], payload: &[u8], error: &KafkaError, cap: usize) -> Self {
        Refused {
            write: d.write,
            window: d.window,
            key: key[..key.len().min(cap)].to_vec(),
            payload: payload[..payload.len().min(cap)].to_vec(),
            size: payload.len(),
            error: error.to_string(),
        }
    }
}

impl ClientContext for AckTracker {}

impl ProducerContext for AckTracker {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, d: Box<Delivery>) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if let Err((e, msg)) = result {
            if self.dead_letters && !d.copy && refused_for_good(e) {
                let r = Refused::new(
                    &d,
                    msg.key().unwrap_or_default(),
                    msg.payload().unwrap_or_default(),
                    e,
                    self.copy_cap,
                );
                s.refused.push(r);
                return;
            }
            s.failed += 1;
            s.last_error = e.to_string();
            // Leave the write outstanding: it never becomes durable.
            return;
        }
        let write = d.write;
        if let Some(n) = s.outstanding.get_mut(&write) {
            *n -= 1;
            if *n == 0 {
                s.outstanding.remove(&write);
                s.completed_at = Some(Instant::now());
            }
        }
    }
}

/// Output rows of one table to its Kafka topic as JSON, keyed by the row's dimensions and window; durable when the broker acknowledged every record of a write.
pub struct KafkaStatsSink {
    producer: ThreadedProducer<AckTracker>,
    topic: String,
    name: String,
    writes: u64,
    /// Where rows the broker refuses for good go; `None`: such a row stops the pipeline.
    dead_letters: Option<String>,
    dead_lettered: u64,
}

/// Client settings for the trace pipeline's output producers, unless given otherwise:
/// `compression.type=lz4` and `linger.ms=5`. Its output is large (a critical path of about
/// 1.3 KB of JSON per trace) and comes in many small writes; compressed and batched for 5 ms,
/// the broker stores and serves a fraction of the bytes and requests, and those bound the trace
/// pipeline's throughput (measured on the embedded broker: 41 % of raw consumption without,
/// 56 % with compression, one worker). The metrics sink keeps `linger.ms=0`: its latency is the
/// point.
pub fn batched(config: &ClientConfig) -> ClientConfig {
    let mut c = config.clone();
    if c.get("linger.ms").is_none() {
        c.set("linger.ms", "5");
    }
    if c.get("compression.type").is_none() && c.get("compression.codec").is_none() {
        c.set("compression.type", "lz4");
    }
    c
}

impl KafkaStatsSink {
    /// A sink producing to `topic` with `config` (`linger.ms=0` unless the settings say
    /// otherwise); a row the broker refuses for good stops the pipeline (see
    /// [`KafkaStatsSink::with_dead_letters`]).
    pub fn new(config: &ClientConfig, topic: &str) -> Result<Self, SinkError> {
        Self::build(config, topic, None)
    }

    /// The same sink, sending rows the broker refuses for good (too large, invalid) to
    /// `dead_letter_topic` instead of stopping.
    pub fn with_dead_letters(
        config: &ClientConfig,
        topic: &str,
        dead_letter_topic: &str,
    ) -> Result<Self, SinkError> {
        Self::build(config, topic, Some(dead_letter_topic.to_string()))
    }

    fn build(
        config: &ClientConfig,
        topic: &str,
        dead_letters: Option<String>,
    ) -> Result<Self, SinkError> {
        let mut c = config.clone();
        if c.get("linger.ms").is_none() {
            c.set("linger.ms", "0");
        }
        if c.get("message.timeout.ms").is_none() {
            c.set("message.timeout.ms", "0");
        }
        // The dead letter's key and payload together stay far below the producer's limit.
        let max_bytes =
            apo_core::kafka::max_message_bytes(&c).map_err(|e| SinkError(e.to_string()))?;
        let context = AckTracker {
            dead_letters: dead_letters.is_some(),
            copy_cap: DEAD_LETTER_PAYLOAD_BYTES.min(max_bytes.saturating_sub(4096) / 4),
            ..Default::default()
        };
        let producer = c
            .create_with_context(context)
            .map_err(|e| SinkError(format!("creating producer for `{topic}`: {e}")))?;
        Ok(KafkaStatsSink {
            producer,
            topic: topic.to_string(),
            name: format!("kafka:{topic}"),
            writes: 0,
            dead_letters,
            dead_lettered: 0,
        })
    }

    /// Sends the dead letters of rows refused since the last call (each with its write's
    /// number, so the write is durable once its copy is).
    fn send_dead_letters(&mut self) -> Result<(), SinkError> {
        let Some(dlq) = self.dead_letters.as_deref() else {
            return Ok(());
        };
        let refused = match self.producer.context().state.lock() {
            Ok(mut s) => std::mem::take(&mut s.refused),
            Err(_) => return Err(SinkError("delivery state poisoned".into())),
        };
        for r in refused {
            let size = r.size.to_string();
            let (start, end, revision) = (
                r.window.start.to_string(),
                r.window.end.to_string(),
                r.window.revision.to_string(),
            );
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: "apo.dlq.reason",
                    value: Some("output_refused"),
                })
                .insert(Header {
                    key: "apo.dlq.detail",
                    value: Some(&r.error),
                })
                .insert(Header {
                    key: "apo.dlq.topic",
                    value: Some(&self.topic),
                })
                .insert(Header {
                    key: "apo.dlq.window_start",
                    value: Some(&start),
                })
                .insert(Header {
                    key: "apo.dlq.window_end",
                    value: Some(&end),
                })
                .insert(Header {
                    key: "apo.dlq.revision",
                    value: Some(&revision),
                })
                .insert(Header {
                    key: "apo.dlq.size",
                    value: Some(&size),
                });
            if r.payload.len() < r.size {
                headers = headers.insert(Header {
                    key: "apo.dlq.truncated",
                    value: Some(&size),
                });
            }
            tracing::warn!(
                topic = %self.topic,
                window_start = r.window.start,
                revision = r.window.revision,
                bytes = r.size,
                error = %r.error,
                "output row refused by the broker; sent to the dead-letter topic"
            );
            send_threaded_with_backpressure(
                &self.producer,
                BaseRecord::with_opaque_to(
                    dlq,
                    Box::new(Delivery {
                        write: r.write,
                        copy: true,
                        window: r.window,
                    }),
                )
                .key(&r.key[..])
                .payload(&r.payload[..])
                .headers(headers),
            )
            .map_err(|e| SinkError(format!("dead letter of a row of `{}`: {e}", self.topic)))?;
            self.dead_lettered += 1;
        }
        Ok(())
    }
}

impl<R: OutputRow + Serialize> RowSink<R> for KafkaStatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, rows: &[R]) -> Result<(), SinkError> {
        self.writes += 1;
        let write = self.writes;
        if !rows.is_empty() {
            if let Ok(mut s) = self.producer.context().state.lock() {
                s.outstanding.insert(write, rows.len());
            }
        }
        for r in rows {
            let payload = serde_json::to_vec(r).map_err(|e| SinkError(e.to_string()))?;
            let key = r.key();
            let delivery = Delivery {
                write,
                copy: false,
                window: Window {
                    start: r.window_start(),
                    end: r.window_end(),
                    revision: r.revision(),
                },
            };
            let window = delivery.window;
            let sent = send_threaded_with_backpressure(
                &self.producer,
                BaseRecord::with_opaque_to(&self.topic, Box::new(delivery))
                    .key(key.as_bytes())
                    .payload(&payload[..]),
            );
            match sent {
                Ok(()) => {}
                // Refused before it left (the client's own size check): a dead letter.
                Err(apo_core::IngestError::Kafka(e))
                    if self.dead_letters.is_some() && refused_for_good(&e) =>
                {
                    let d = Delivery {
                        write,
                        copy: false,
                        window,
                    };
                    let cap = self.producer.context().copy_cap;
                    let r = Refused::new(&d, key.as_bytes(), &payload, &e, cap);
                    if let Ok(mut s) = self.producer.context().state.lock() {
                        s.refused.push(r);
                    }
                }
                Err(e) => return Err(SinkError(e.to_string())),
            }
        }
        self.send_dead_letters()
    }

    fn poll_durable(&mut self, _finish: bool) -> Result<u64, SinkError> {
        self.send_dead_letters()?;
        // Delivery reports are served by the producer's polling thread.
        let s = self
            .producer
            .context()
            .state
            .lock()
            .map_err(|_| SinkError("delivery state poisoned".into()))?;
        if s.failed > 0 {
            return Err(SinkError(format!(
                "{} record(s) to `{}` were not delivered: {}",
                s.failed, self.topic, s.last_error
            )));
        }
        Ok(s.outstanding
            .keys()
            .next()
            .map_or(self.writes, |first| first - 1))
    }

    fn next_poll(&self) -> Option<Duration> {
        (self.producer.in_flight_count() > 0).then_some(Duration::from_millis(1))
    }

    fn backpressure_after(&self) -> Option<Duration> {
        Some(apo_core::OUTPUT_DELAY_BOUND)
    }

    fn durable_at(&self) -> Option<Instant> {
        self.producer.context().state.lock().ok()?.completed_at
    }

    fn dead_lettered(&self) -> u64 {
        self.dead_lettered
    }
}
