//! The dead-letter contract: every input that could not be used is sent, unchanged, with the
//! reason and its origin ([`DeadLetter`]); `apo-ingest` writes them to `apo.dlq` (headers
//! documented there) or keeps them in memory.

use std::time::Duration;

use crate::source::RawMessage;
use crate::IngestError;

/// One dead letter.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The message as read.
    pub origin: RawMessage<'a>,
    /// Why it is unusable, one word (`schema`, `late`, …): the `apo.dlq.reason` header.
    pub reason: &'a str,
    /// The details: the `apo.dlq.detail` header.
    pub detail: &'a str,
    /// Positions of the unusable points, when the rest of the message was used.
    pub points: Option<&'a str>,
}

/// Where unusable input goes (the dead-letter topic), each message unchanged with its reason.
pub trait DeadLetterSink {
    /// Sends one dead letter; it is durable once a later `flush` returns `Ok(true)`.
    fn send(&mut self, letter: DeadLetter<'_>) -> Result<(), IngestError>;
    /// Waits at most `wait` for everything sent so far to be durable: `Ok(true)` once it is,
    /// `Ok(false)` while some letters still wait for the broker (they stay queued and are
    /// delivered when it answers: nothing is lost, but the offsets of the messages they came
    /// from must not be committed yet), an error when a delivery failed for another reason than
    /// a refusal for good (those are counted by [`DeadLetterSink::refused`]).
    fn flush(&mut self, wait: Duration) -> Result<bool, IngestError>;
    /// Letters sent and not acknowledged yet.
    fn waiting(&self) -> usize {
        0
    }
    /// Where the letters go, for messages about waiting on it (`apo.dlq at 127.0.0.1:9092`).
    fn destination(&self) -> String;
    /// Letters the destination refused for good so far (each logged with its origin): lost,
    /// but no reason to stop.
    fn refused(&self) -> u64 {
        0
    }
}
