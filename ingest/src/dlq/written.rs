//! Dead letters a restart must not write again (issue 30, item 4). A run restored from a
//! checkpoint re-reads the messages between the checkpoint's positions and where the run before
//! it stopped, and would write the dead letters of the bad ones a second time.
//! [`already_written`] reads, from the dead-letter topic, the letters written since the lane was
//! at the checkpoint's positions for the messages it will re-read; [`SkipWritten`] passes every
//! other letter on to the real sink and skips each of those once.
//!
//! A letter is known by its origin (topic, partition, offset) and its reason: a message whose
//! points fail for two reasons has two letters. The topic is read from the first letter stamped
//! at or after the time the lane was at its positions, less [`CLOCK_MARGIN_MS`] for clocks that
//! differ between the processes that wrote letters; letters stamped earlier are ignored (they
//! came from messages read before). When the topic cannot be read the set is what was read,
//! and the rest is written again: a letter twice rather than none.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use apo_core::kafka::{QuietConsumer, QuietEof};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::dlq::{header, DeadLetter, DeadLetterSink};
use crate::IngestError;

/// How far before the lane's time the dead-letter topic is read, ms: for the clocks of the
/// processes that wrote letters, which may differ from this one's.
pub const CLOCK_MARGIN_MS: i64 = 60_000;

/// A dead letter by its origin: (partition, offset, reason) of a message of the source topic.
pub type LetterKey = (i32, i64, String);

/// The letters `dlq_topic` holds for messages of `origin_topic` at or after the positions
/// `from` ((partition, next offset)); only partitions in `from` count. Reads the letters stamped
/// at or after `since_ms` (wall clock, ms) up to the topic's end as it is when called, for at
/// most `wait`: what is not read by then is left out (and its letters written again).
pub fn already_written(
    config: &ClientConfig,
    dlq_topic: &str,
    origin_topic: &str,
    from: &[(i32, i64)],
    since_ms: i64,
    wait: Duration,
) -> Result<HashSet<LetterKey>, IngestError> {
    let mut found = HashSet::new();
    if from.is_empty() {
        return Ok(found);
    }
    let from: BTreeMap<i32, i64> = from.iter().copied().collect();
    let deadline = Instant::now() + wait;
    let left = || deadline.saturating_duration_since(Instant::now());
    let count = apo_core::kafka::partition_count(config, dlq_topic)?;
    let mut c = config.clone();
    // Assigned, never committed.
    c.set("group.id", "apo-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: QuietConsumer = c.create_with_context(QuietEof)?;
    let mut at = TopicPartitionList::new();
    for p in 0..count {
        at.add_partition_offset(dlq_topic, p, Offset::Offset(since_ms.max(0)))?;
    }
    let starts = consumer.offsets_for_times(at, left())?;
    // Each partition from its first letter at or after `since_ms` to its end now.
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    let mut assign = TopicPartitionList::new();
    for e in starts.elements() {
        let (low, high) = consumer.fetch_watermarks(dlq_topic, e.partition(), left())?;
        let start = match e.offset() {
            Offset::Offset(o) => o.max(low),
            // no letter that recent
            _ => continue,
        };
        if start < high {
            ends.insert(e.partition(), high);
            assign.add_partition_offset(dlq_topic, e.partition(), Offset::Offset(start))?;
        }
    }
    if ends.is_empty() {
        return Ok(found);
    }
    consumer.assign(&assign)?;
    let mut read = 0u64;
    while !ends.is_empty() {
        let Some(m) = consumer.poll(left().min(Duration::from_millis(200))) else {
            if left().is_zero() {
                tracing::warn!(
                    topic = dlq_topic,
                    read,
                    partitions_unread = ends.len(),
                    "the dead-letter topic was not read to its end in time: dead letters of \
                     the messages the restart re-reads that are not found are written again"
                );
                break;
            }
            continue;
        };
        let m = m?;
        read += 1;
        if ends
            .get(&m.partition())
            .is_some_and(|&end| m.offset() + 1 >= end)
        {
            ends.remove(&m.partition());
        }
        // (a broker that finds no letter that recent may answer with the topic's start)
        if m.timestamp().to_millis().is_some_and(|t| t < since_ms) {
            continue;
        }
        if let Some(key) =
            origin(&m, origin_topic).filter(|(p, o, _)| from.get(p).is_some_and(|&next| *o >= next))
        {
            found.insert(key);
        }
    }
    tracing::debug!(
        topic = dlq_topic,
        read,
        found = found.len(),
        "dead letters read back"
    );
    Ok(found)
}

/// The origin and reason a dead letter's headers name, when its origin is `topic`.
fn origin(m: &impl Message, topic: &str) -> Option<LetterKey> {
    if header(m, "apo.dlq.topic")? != topic {
        return None;
    }
    Some((
        header(m, "apo.dlq.partition")?.parse().ok()?,
        header(m, "apo.dlq.offset")?.parse().ok()?,
        header(m, "apo.dlq.reason")?.to_string(),
    ))
}

/// A dead-letter sink that skips, once each, the letters already written for messages a
/// restart re-reads, and sends every other letter to the sink it wraps.
pub struct SkipWritten {
    inner: Box<dyn DeadLetterSink>,
    topic: String,
    written: HashSet<LetterKey>,
    skipped: u64,
}

impl SkipWritten {
    /// `inner`, skipping the letters in `written` of messages of `topic`.
    pub fn new(inner: Box<dyn DeadLetterSink>, topic: &str, written: HashSet<LetterKey>) -> Self {
        SkipWritten {
            inner,
            topic: topic.to_string(),
            written,
            skipped: 0,
        }
    }

    /// Letters skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl DeadLetterSink for SkipWritten {
    fn send(&mut self, d: DeadLetter<'_>) -> Result<(), IngestError> {
        if !self.written.is_empty() && d.origin.topic == self.topic {
            let key = (d.origin.partition, d.origin.offset, d.reason.to_string());
            if self.written.remove(&key) {
                self.skipped += 1;
                if self.written.is_empty() {
                    tracing::info!(
                        topic = self.topic,
                        skipped = self.skipped,
                        "the replay after the restart reached every dead letter the run before \
                         it had written; none was written twice"
                    );
                }
                return Ok(());
            }
        }
        self.inner.send(d)
    }

    fn flush(&mut self, wait: Duration) -> Result<bool, IngestError> {
        self.inner.flush(wait)
    }

    fn waiting(&self) -> usize {
        self.inner.waiting()
    }

    fn destination(&self) -> String {
        self.inner.destination()
    }

    fn refused(&self) -> u64 {
        self.inner.refused()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::MemoryDeadLetters;
    use crate::source::RawMessage;

    fn letter<'a>(m: RawMessage<'a>, reason: &'a str) -> DeadLetter<'a> {
        DeadLetter {
            origin: m,
            reason,
            detail: "bad",
            points: None,
        }
    }

    #[test]
    fn each_letter_already_written_is_skipped_once_and_every_other_one_sent() {
        let memory = MemoryDeadLetters::default();
        let written: HashSet<LetterKey> = [(0, 5, "invalid_json".to_string())].into();
        let mut sink = SkipWritten::new(Box::new(memory.clone()), "m", written);
        let msg = |topic, partition, offset| RawMessage {
            topic,
            partition,
            offset,
            key: None,
            payload: Some(b"x"),
        };
        // the written one, once
        sink.send(letter(msg("m", 0, 5), "invalid_json")).unwrap();
        // same message, another reason; another partition; another topic; the same again
        sink.send(letter(msg("m", 0, 5), "late")).unwrap();
        sink.send(letter(msg("m", 1, 5), "invalid_json")).unwrap();
        sink.send(letter(msg("t", 0, 5), "invalid_json")).unwrap();
        sink.send(letter(msg("m", 0, 5), "invalid_json")).unwrap();
        assert_eq!(sink.skipped(), 1);
        let sent: Vec<(i32, i64, String)> = memory
            .letters
            .lock()
            .unwrap()
            .iter()
            .map(|l| (l.partition, l.offset, l.reason.clone()))
            .collect();
        assert_eq!(
            sent,
            vec![
                (0, 5, "late".to_string()),
                (1, 5, "invalid_json".to_string()),
                (0, 5, "invalid_json".to_string()),
                (0, 5, "invalid_json".to_string()),
            ]
        );
    }
}
