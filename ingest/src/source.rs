//! What the pipeline reads from: a [`MessageSource`] yields raw messages with their origin
//! (topic, partition, offset) and end-of-partition events, and commits offsets it is told are
//! safe. [`MemorySource`] serves pre-built payloads, for benchmarks and tests of the dataflow
//! without a broker.

use std::ops::ControlFlow;
use std::time::Duration;

use crate::IngestError;

pub use apo_core::{MessageSource, RawMessage, SourceEvent};

/// Serves a fixed list of payloads as partition 0 of a topic, then reports end of partition.
pub struct MemorySource {
    topic: String,
    partitions: Vec<i32>,
    payloads: Vec<Vec<u8>>,
    next: usize,
    /// The offset last committed, if any.
    pub committed: Option<i64>,
}

impl MemorySource {
    /// A source of `payloads` as one partition of `topic`, offsets 0, 1, …
    pub fn new(topic: &str, payloads: Vec<Vec<u8>>) -> Self {
        MemorySource {
            topic: topic.to_string(),
            partitions: vec![0],
            payloads,
            next: 0,
            committed: None,
        }
    }
}

impl MessageSource for MemorySource {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    fn poll(
        &mut self,
        max: usize,
        _timeout: Duration,
        f: &mut dyn FnMut(SourceEvent<'_>) -> ControlFlow<()>,
    ) -> Result<usize, IngestError> {
        let end = (self.next + max).min(self.payloads.len());
        let start = self.next;
        while self.next < end {
            let i = self.next;
            self.next += 1;
            let flow = f(SourceEvent::Message(RawMessage {
                topic: &self.topic,
                partition: 0,
                offset: i as i64,
                key: None,
                payload: Some(&self.payloads[i]),
            }));
            if flow.is_break() {
                break;
            }
        }
        let n = self.next - start;
        if n == 0 {
            let _ = f(SourceEvent::Eof(0));
        }
        Ok(n)
    }

    fn commit(
        &mut self,
        offsets: &[(i32, i64)],
        _wait: Option<Duration>,
    ) -> Result<(), IngestError> {
        if let Some(&(_, o)) = offsets.iter().find(|(p, _)| *p == 0) {
            self.committed = Some(o);
        }
        Ok(())
    }

    fn lag(&mut self) -> Option<i64> {
        Some((self.payloads.len() - self.next) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_source_stops_where_the_reader_says_and_goes_on_from_there() {
        let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i]).collect();
        let mut src = MemorySource::new("t", payloads);
        let mut seen = Vec::new();
        let mut read = |src: &mut MemorySource, stop_at: u8| {
            src.poll(10, Duration::ZERO, &mut |e| match e {
                SourceEvent::Message(m) => {
                    let v = m.payload.unwrap_or_default()[0];
                    seen.push(v);
                    if v == stop_at {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                }
                SourceEvent::Eof(_) => ControlFlow::Continue(()),
            })
            .unwrap()
        };
        assert_eq!(read(&mut src, 1), 2);
        assert_eq!(read(&mut src, 99), 3);
        assert_eq!(read(&mut src, 99), 0);
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
    }
}
