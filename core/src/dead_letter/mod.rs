//! The dead-letter contract: every input that could not be used is sent, unchanged, with the
//! reason and its origin ([`DeadLetter`]); `apo-ingest` writes them to `apo.dlq` (headers
//! documented there) or keeps them in memory.

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
    /// Sends one dead letter; it must be durable before the next `flush` returns.
    fn send(&mut self, letter: DeadLetter<'_>) -> Result<(), IngestError>;
    /// Returns once everything sent so far is durable.
    fn flush(&mut self) -> Result<(), IngestError>;
}
