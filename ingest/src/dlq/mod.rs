//! Dead-letter routing: every input that could not be used goes to `apo.dlq` unchanged (same
//! key, same payload) with headers saying why and where it came from:
//!
//! | header | value |
//! |---|---|
//! | `apo.dlq.reason` | `empty`, `invalid_json`, `invalid_protobuf`, `invalid_field`, `too_large`, `unsupported`, `late` (and `output_refused` from the output sinks) |
//! | `apo.dlq.detail` | a human-readable explanation |
//! | `apo.dlq.topic`, `apo.dlq.partition`, `apo.dlq.offset` | the origin of the message |
//! | `apo.dlq.points` | for a message only partly unusable: the positions of the unusable points |
//! | `apo.dlq.truncated` | only when the copy had to be cut to fit the producer's message limit: the original payload's length in bytes |
//! | `apo.dlq.kept` | only for a cut JSON array with unusable points: the original positions of the elements in the copy, in its order (`30000,0-14998`) |
//! | `apo.dlq.points_truncated` | only when the list of positions was cut: how many positions there were |
//!
//! A message whose points fail for different reasons is written once per reason.
//!
//! A dead letter always fits the producer's limit (`message.max.bytes`, librdkafka's default
//! 1 000 000 bytes): the detail is cut to [`MAX_DETAIL_BYTES`], the list of positions to
//! [`MAX_POINTS_BYTES`] and the payload to what is left, each cut said in a header. A message
//! too large to copy is never a reason to stop. A JSON array whose unusable points are known is
//! cut so as to keep the evidence: its unusable elements first, whole, then its good ones from
//! the start while they fit, as a JSON array of their own ([`evidence_first`]); any other
//! payload keeps its first bytes.
//!
//! A letter the broker refuses for good is logged and counted (`refused.rs`), and the pipeline
//! goes on. After a restart from a checkpoint, `written.rs` keeps the replay from writing a message's
//! letters a second time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use crate::IngestError;

pub use apo_core::{DeadLetter, DeadLetterSink};

mod refused;
mod written;
pub use refused::LetterDeliveries;
pub use written::{already_written, LetterKey, SkipWritten, CLOCK_MARGIN_MS};

/// The value of header `name` of a dead letter `m`, when it has one in UTF-8.
fn header<'a>(m: &'a impl rdkafka::message::Message, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers;
    let h = m.headers()?.iter().find(|x| x.key == name)?;
    std::str::from_utf8(h.value?).ok()
}

/// Longest `apo.dlq.detail` header, bytes.
pub const MAX_DETAIL_BYTES: usize = 4096;
/// Longest `apo.dlq.points` header, bytes.
pub const MAX_POINTS_BYTES: usize = 64 * 1024;
/// Room kept in a dead letter for the record's framing and the headers' names, bytes.
const FRAMING_BYTES: usize = 4096;

/// Writes dead letters to a Kafka topic.
pub struct KafkaDeadLetters {
    producer: BaseProducer<LetterDeliveries>,
    topic: String,
    /// `topic at bootstrap.servers`.
    destination: String,
    /// The producer's message limit.
    max_bytes: usize,
}

impl KafkaDeadLetters {
    /// A producer of dead letters to `topic`. Unless `config` sets `message.timeout.ms`, a
    /// letter waits for the broker as long as it takes (`0`, librdkafka's "infinite"): during
    /// an outage letters stay queued and the offsets they came from uncommitted, and a drain
    /// is bounded by its stall timeout instead.
    pub fn new(config: &ClientConfig, topic: &str) -> Result<Self, IngestError> {
        let max_bytes = apo_core::kafka::max_message_bytes(config)?;
        let mut c = config.clone();
        if c.get("message.timeout.ms").is_none() {
            c.set("message.timeout.ms", "0");
        }
        Ok(KafkaDeadLetters {
            producer: c.create_with_context(LetterDeliveries::default())?,
            topic: topic.to_string(),
            destination: format!(
                "{topic} at {}",
                config.get("bootstrap.servers").unwrap_or("?")
            ),
            max_bytes,
        })
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The list of positions cut to at most `max` bytes at a comma, so that each position in it is
/// whole; and how many positions there were when it was cut.
fn cut_points(points: &str, max: usize) -> (&str, Option<usize>) {
    if points.len() <= max {
        return (points, None);
    }
    let head = cut(points, max);
    let head = head.rfind(',').map_or("", |i| &head[..i]);
    (head, Some(points.split(',').count()))
}

/// A JSON array `payload` cut to at most `room` bytes keeping the elements at `positions` (the
/// unusable points, comma-separated indices) first, each whole, then the others in order from
/// the first while they fit; with the original positions of what it kept, as ranges in the
/// copy's order. `None` when the payload is not a JSON array, a position is not one of its
/// indices, or not even the first unusable element fits: the caller keeps the first bytes.
pub fn evidence_first(payload: &[u8], positions: &str, room: usize) -> Option<(Vec<u8>, String)> {
    let elements: Vec<&serde_json::value::RawValue> = serde_json::from_slice(payload).ok()?;
    let mut bad: Vec<usize> = positions
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<usize>()
                .ok()
                .filter(|&i| i < elements.len())
        })
        .collect::<Option<_>>()?;
    bad.sort_unstable();
    bad.dedup();
    /// Appends element `i` with its comma when it fits with the closing bracket.
    fn take(
        elements: &[&serde_json::value::RawValue],
        i: usize,
        room: usize,
        out: &mut Vec<u8>,
        kept: &mut Vec<usize>,
    ) -> bool {
        let raw = elements[i].get().as_bytes();
        let comma = usize::from(!kept.is_empty());
        if out.len() + comma + raw.len() + 1 > room {
            return false;
        }
        if comma == 1 {
            out.push(b',');
        }
        out.extend_from_slice(raw);
        kept.push(i);
        true
    }
    let mut out = Vec::with_capacity(room.min(payload.len()));
    out.push(b'[');
    let mut kept: Vec<usize> = Vec::new();
    for &i in &bad {
        if !take(&elements, i, room, &mut out, &mut kept) {
            break;
        }
    }
    if kept.is_empty() {
        return None;
    }
    let mut next = bad.iter().peekable();
    for i in 0..elements.len() {
        if next.peek() == Some(&&i) {
            next.next();
            continue;
        }
        if !take(&elements, i, room, &mut out, &mut kept) {
            break;
        }
    }
    out.push(b']');
    Some((out, ranges(&kept)))
}

/// Indices as comma-separated runs, `a-b` for consecutive ones, in the given order.
fn ranges(indices: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        parts.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

impl DeadLetterSink for KafkaDeadLetters {
    fn send(&mut self, d: DeadLetter<'_>) -> Result<(), IngestError> {
        let partition = d.origin.partition.to_string();
        let offset = d.origin.offset.to_string();
        let detail = cut(d.detail, MAX_DETAIL_BYTES);
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "apo.dlq.reason",
                value: Some(d.reason),
            })
            .insert(Header {
                key: "apo.dlq.detail",
                value: Some(detail),
            })
            .insert(Header {
                key: "apo.dlq.topic",
                value: Some(d.origin.topic),
            })
            .insert(Header {
                key: "apo.dlq.partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "apo.dlq.offset",
                value: Some(&offset),
            });
        let mut used = FRAMING_BYTES + d.reason.len() + detail.len() + d.origin.topic.len();
        if let Some(points) = d.points {
            let (listed, all) = cut_points(points, MAX_POINTS_BYTES);
            used += listed.len();
            headers = headers.insert(Header {
                key: "apo.dlq.points",
                value: Some(listed),
            });
            if let Some(all) = all {
                headers = headers.insert(Header {
                    key: "apo.dlq.points_truncated",
                    value: Some(&all.to_string()),
                });
            }
        }
        let key = d.origin.key.map(|k| &k[..k.len().min(MAX_POINTS_BYTES)]);
        used += key.map_or(0, <[u8]>::len);
        let payload = d.origin.payload.unwrap_or_default();
        let room = self.max_bytes.saturating_sub(used);
        // the unusable points first when the payload is a JSON array that names them
        // Cut to fit: a JSON array that names its unusable points keeps them first (its
        // `apo.dlq.kept` header counted in the room), any other payload its first bytes.
        let mut cut_copy = None;
        let payload: &[u8] = if payload.len() > room {
            let evidence = d.points.and_then(|p| {
                let (copy, kept) = evidence_first(payload, p, room)?;
                let listed = cut_points(&kept, MAX_POINTS_BYTES).0.len();
                if copy.len() + listed <= room {
                    Some((copy, kept))
                } else {
                    // fewer elements, so a list no longer than this one
                    evidence_first(payload, p, room.saturating_sub(listed))
                }
            });
            tracing::warn!(
                topic = d.origin.topic,
                partition = d.origin.partition,
                offset = d.origin.offset,
                bytes = payload.len(),
                evidence_first = evidence.is_some(),
                "dead letter cut to fit the producer's message limit"
            );
            headers = headers.insert(Header {
                key: "apo.dlq.truncated",
                value: Some(&payload.len().to_string()),
            });
            match evidence {
                Some((copy, kept)) => {
                    headers = headers.insert(Header {
                        key: "apo.dlq.kept",
                        value: Some(cut_points(&kept, MAX_POINTS_BYTES).0),
                    });
                    &cut_copy.insert(copy)[..]
                }
                None => &payload[..room],
            }
        } else {
            payload
        };
        let mut record = BaseRecord::to(&self.topic)
            .payload(payload)
            .headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        crate::kafka::send_with_backpressure(&self.producer, record)
    }

    fn flush(&mut self, wait: Duration) -> Result<bool, IngestError> {
        let flushed = crate::kafka::flush_within(&self.producer, wait);
        self.producer.context().check(&self.topic)?;
        Ok(flushed)
    }

    fn waiting(&self) -> usize {
        self.producer.in_flight_count().max(0) as usize
    }

    fn refused(&self) -> u64 {
        self.producer.context().refused()
    }

    fn destination(&self) -> String {
        self.destination.clone()
    }
}

/// An owned copy of a dead letter, kept in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLetter {
    /// Why the message was unusable.
    pub reason: String,
    /// The details.
    pub detail: String,
    /// The message's partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Positions of the unusable points, when the rest was used.
    pub points: Option<String>,
    /// The message's value, unchanged.
    pub payload: Vec<u8>,
}

/// Keeps dead letters in memory (benchmarks without a broker, tests of the dataflow).
#[derive(Clone, Default)]
pub struct MemoryDeadLetters {
    /// Every letter sent, in order.
    pub letters: Arc<Mutex<Vec<StoredLetter>>>,
    /// How many were sent.
    pub count: Arc<AtomicU64>,
}

impl DeadLetterSink for MemoryDeadLetters {
    fn send(&mut self, d: DeadLetter<'_>) -> Result<(), IngestError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = self.letters.lock() {
            l.push(StoredLetter {
                reason: d.reason.to_string(),
                detail: d.detail.to_string(),
                partition: d.origin.partition,
                offset: d.origin.offset,
                points: d.points.map(str::to_string),
                payload: d.origin.payload.unwrap_or_default().to_vec(),
            });
        }
        Ok(())
    }

    fn flush(&mut self, _wait: Duration) -> Result<bool, IngestError> {
        Ok(true)
    }

    fn destination(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_keep_whole_characters_and_whole_positions() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcé", 4), "abc");
        assert_eq!(cut("abcé", 5), "abcé");
        assert_eq!(cut_points("1,2,3", 5), ("1,2,3", None));
        assert_eq!(cut_points("1,22,333", 6), ("1,22", Some(3)));
        assert_eq!(cut_points("12345", 3), ("", Some(1)));
    }

    #[test]
    fn a_cut_array_keeps_its_unusable_points_first_then_the_good_ones_from_the_start() {
        let payload = br#"[{"a":0},{"a":1},{"bad":2},{"a":3},{"bad":4},{"a":5}]"#;
        // room for the brackets, the two bad ones and two good ones (each 7 bytes, 9 and 9 for
        // the bad ones, a comma between each)
        let (copy, kept) = evidence_first(payload, "4,2", 2 + 9 + 1 + 9 + 1 + 7 + 1 + 7).unwrap();
        assert_eq!(
            std::str::from_utf8(&copy).unwrap(),
            r#"[{"bad":2},{"bad":4},{"a":0},{"a":1}]"#
        );
        assert_eq!(kept, "2,4,0-1");
        // everything fits: every element, the bad ones first
        let (all, kept) = evidence_first(payload, "2,4", 1000).unwrap();
        assert_eq!(all.len(), payload.len());
        assert_eq!(kept, "2,4,0-1,3,5");
        // a copy is valid JSON of the same elements
        let v: Vec<serde_json::Value> = serde_json::from_slice(&all).unwrap();
        assert_eq!(v[0], serde_json::json!({"bad": 2}));
        // not an array, a position outside it, or no room for one bad element: None
        assert_eq!(evidence_first(br#"{"a":1}"#, "0", 100), None);
        assert_eq!(evidence_first(payload, "6", 100), None);
        assert_eq!(evidence_first(payload, "x", 100), None);
        assert_eq!(evidence_first(payload, "2", 5), None);
        assert_eq!(ranges(&[30000, 0, 1, 2, 7]), "30000,0-2,7");
    }
}
