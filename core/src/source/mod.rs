//! The message-source contract: what a lane reads from. A [`MessageSource`] yields raw messages
//! with their origin (topic, partition, offset) and end-of-partition events, and commits offsets
//! it is told are safe. `apo-ingest` implements it for Kafka and for memory.

use std::ops::ControlFlow;
use std::time::Duration;

use crate::IngestError;

/// One message as it came off the log.
#[derive(Debug, Clone, Copy)]
pub struct RawMessage<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The record's key, if any.
    pub key: Option<&'a [u8]>,
    /// The record's value, if any.
    pub payload: Option<&'a [u8]>,
}

/// What a poll delivers.
pub enum SourceEvent<'a> {
    /// A message.
    Message(RawMessage<'a>),
    /// The partition has no more messages for now (caught up with the log end).
    Eof(i32),
}

/// What a lane reads: a worker's partitions of one topic, polled for batches of messages, with offsets committed when the outputs depending on them are durable.
pub trait MessageSource {
    /// The topic read.
    fn topic(&self) -> &str;
    /// The partitions this worker reads.
    fn partitions(&self) -> &[i32];
    /// Delivers up to `max` events to `f`, waiting at most `timeout` for the first; stops
    /// early after a message for which `f` answers `Break` (the reader has something to do
    /// first, e.g. hand on a window that message closed). Returns the messages delivered.
    fn poll(
        &mut self,
        max: usize,
        timeout: Duration,
        f: &mut dyn FnMut(SourceEvent<'_>) -> ControlFlow<()>,
    ) -> Result<usize, IngestError>;
    /// Records that every message up to and including `offset` of `partition` is fully processed.
    /// `wait`: `None` lets it complete in the background (a lost commit only means a longer
    /// replay after a crash); `Some(limit)` (at the end of a drain, at a stop) waits at most
    /// that long for the broker to store it, and is [`IngestError::CommitNotAcknowledged`] when
    /// it did not.
    fn commit(&mut self, offsets: &[(i32, i64)], wait: Option<Duration>)
        -> Result<(), IngestError>;
    /// Messages behind the log end over this worker's partitions, when known.
    fn lag(&mut self) -> Option<i64>;
    /// Messages behind the log end of each partition, where known.
    fn partition_lags(&mut self) -> std::collections::BTreeMap<i32, i64> {
        std::collections::BTreeMap::new()
    }
    /// Reads each of `positions`' partitions from its offset next (restoring a checkpoint).
    fn seek(&mut self, positions: &[(i32, i64)]) -> Result<(), IngestError> {
        let _ = positions;
        Err(IngestError::Config(format!(
            "the source of `{}` cannot resume from a checkpoint's offsets",
            self.topic()
        )))
    }
    /// The broker addresses it reads from, for messages about waiting on them (`None`: not a
    /// broker).
    fn brokers(&self) -> Option<&str> {
        None
    }
}
