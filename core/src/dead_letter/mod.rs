//! The dead-letter contract: every input that could not be used is sent, unchanged, with the
//! reason and its origin ([`DeadLetter`]); `apo-ingest` writes them to `apo.dlq` (headers
//! documented there) or keeps them in memory.

use crate::source::RawMessage;
use crate::IngestError;

/// One dead letter.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub origin: RawMessage<'a>,
    pub reason: &'a str,
    pub detail: &'a str,
    /// Positions of the unusable points, when the rest of the message was used.
    pub points: Option<&'a str>,
}

pub trait DeadLetterSink {
    fn send(&mut self, letter: DeadLetter<'_>) -> Result<(), IngestError>;
    /// Returns once everything sent so far is durable.
    fn flush(&mut self) -> Result<(), IngestError>;
}
