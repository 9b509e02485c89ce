//! Decoding one input message into validated records, one path for every input kind: the
//! encoding is sniffed per message (or fixed per topic), the kind's own decoder reads the bytes,
//! and every record is checked against the clock by one time-bounds check. A record that is
//! not usable is reported by its position in the message (for the dead-letter headers), the
//! others are kept; a message with nothing usable in it is an error as a whole.
//!
//! - [`metrics`]: metric points (APO JSON, OTLP protobuf `ExportMetricsServiceRequest`);
//! - [`spans`]: spans (APO JSON, Zipkin v2 JSON, OTLP protobuf `ExportTraceServiceRequest`);
//! - [`limits`]: the bounds on names and attributes every kind checks.

#[cfg(test)]
mod fuzz;
pub mod limits;
pub mod metrics;
pub mod spans;

use std::str::FromStr;

pub use apo_schemas::Decoded;
use apo_schemas::SchemaError;

pub use limits::FieldLimits;
pub use metrics::decode_metric_message;
pub use spans::decode_span_message;

/// How the bytes of a topic are encoded (in a configuration file: `auto`, `json`, `otlp`,
/// `otlp_json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Encoding {
    /// Detect per message.
    #[default]
    Auto,
    /// JSON (APO's, or Zipkin v2 for spans).
    Json,
    /// OTLP protobuf.
    Otlp,
    /// OTLP JSON (the protobuf JSON mapping).
    OtlpJson,
}

impl FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Encoding::Auto),
            "json" => Ok(Encoding::Json),
            "otlp" | "otlp_proto" => Ok(Encoding::Otlp),
            "otlp_json" => Ok(Encoding::OtlpJson),
            _ => Err(format!(
                "unknown encoding `{s}` (auto, json, otlp or otlp_proto, otlp_json)"
            )),
        }
    }
}

impl TryFrom<String> for Encoding {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// The format of one message's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON document (object or array).
    Json,
    /// Protobuf (OTLP).
    Protobuf,
    /// OTLP JSON: an object whose first key is `resourceMetrics` or `resourceSpans`.
    OtlpJson,
}

/// The format of `bytes` under `encoding`: with [`Encoding::Auto`], OTLP JSON when the first
/// key of an object is OTLP's (`resourceMetrics`, `resourceSpans`), JSON when the first
/// non-blank byte opens another object or an array, protobuf otherwise. Blank or absent bytes
/// are [`SchemaError::Empty`] whatever the encoding.
pub fn sniff(bytes: &[u8], encoding: Encoding) -> Result<Format, SchemaError> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let first = start.map(|i| bytes[i]);
    match (first, encoding) {
        (None, _) => Err(SchemaError::Empty),
        (_, Encoding::Json) => Ok(Format::Json),
        (_, Encoding::Otlp) => Ok(Format::Protobuf),
        (_, Encoding::OtlpJson) => Ok(Format::OtlpJson),
        (Some(b'{'), Encoding::Auto) => {
            let rest = &bytes[start.unwrap_or(0) + 1..];
            let key = rest.iter().position(|b| !b.is_ascii_whitespace());
            let otlp = key.is_some_and(|k| {
                let r = &rest[k..];
                r.starts_with(b"\"resourceMetrics\"") || r.starts_with(b"\"resourceSpans\"")
            });
            Ok(if otlp { Format::OtlpJson } else { Format::Json })
        }
        (Some(b'['), Encoding::Auto) => Ok(Format::Json),
        (Some(_), Encoding::Auto) => Ok(Format::Protobuf),
    }
}

/// The accepted event-time range relative to the clock.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeBounds {
    /// How far in the past a record's event time may lie, ms.
    pub max_age_ms: i64,
    /// How far in the future a record's event time may lie, ms.
    pub max_future_ms: i64,
}

impl Default for TimeBounds {
    fn default() -> Self {
        TimeBounds {
            max_age_ms: 7 * 24 * 3600 * 1000,
            max_future_ms: 3600 * 1000,
        }
    }
}

impl TimeBounds {
    /// Checks an event time `t_ms` (from the record's `field`) against the clock `now_ms`: it
    /// must be positive and within `[now - max age, now + max future]`.
    pub fn check(&self, t_ms: i64, now_ms: i64, field: &'static str) -> Result<(), SchemaError> {
        if t_ms <= 0
            || t_ms < now_ms.saturating_sub(self.max_age_ms)
            || t_ms > now_ms.saturating_add(self.max_future_ms)
        {
            return Err(SchemaError::Invalid {
                field,
                reason: format!(
                    "{t_ms} ms is outside [now - {} s, now + {} s]",
                    self.max_age_ms / 1000,
                    self.max_future_ms / 1000
                ),
            });
        }
        Ok(())
    }
}

/// A kind's decoders and what "nothing in it" is called, for [`decode_message`].
pub(crate) struct Kind<T> {
    /// The JSON decoder.
    pub json: fn(&[u8]) -> Result<Decoded<T>, SchemaError>,
    /// The protobuf decoder.
    pub protobuf: fn(&[u8]) -> Result<Decoded<T>, SchemaError>,
    /// The OTLP JSON decoder.
    pub otlp_json: fn(&[u8]) -> Result<Decoded<T>, SchemaError>,
    /// The field and reason of a message that holds no record at all.
    pub none: (&'static str, &'static str),
}

/// The one decoding path: sniff, decode with the kind's decoder, then check every record with
/// `check` (the time bounds and what else the kind validates here), placing each error at the
/// record's position in the message: decoders report the positions of the elements they could
/// not decode, and the records they kept take the remaining positions in order.
pub(crate) fn decode_message<T>(
    payload: Option<&[u8]>,
    encoding: Encoding,
    kind: &Kind<T>,
    check: impl Fn(&T) -> Result<(), SchemaError>,
) -> Result<Decoded<T>, SchemaError> {
    let bytes = payload.unwrap_or_default();
    let json = |decode: fn(&[u8]) -> Result<Decoded<T>, SchemaError>| match decode(bytes) {
        // A protobuf message opens with its first field's tag, 0x0a for a message field 1
        // (every OTLP request, Zipkin's list), which is a newline: its length byte can then
        // look like `{` or `[`. Detected JSON that is not JSON but such a protobuf is one.
        Err(e) if encoding == Encoding::Auto && bytes.first() == Some(&0x0a) => {
            match (kind.protobuf)(bytes) {
                Ok(d) if !d.is_empty() => Ok(d),
                _ => Err(e),
            }
        }
        r => r,
    };
    let decoded = match sniff(bytes, encoding)? {
        Format::Json => json(kind.json)?,
        Format::Protobuf => (kind.protobuf)(bytes)?,
        Format::OtlpJson => json(kind.otlp_json)?,
    };
    if decoded.is_empty() {
        return Err(SchemaError::Invalid {
            field: kind.none.0,
            reason: kind.none.1.into(),
        });
    }
    let Decoded { items, mut errors } = decoded;
    let mut kept = Vec::with_capacity(items.len());
    let mut taken: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
    taken.sort_unstable();
    let mut next_taken = taken.into_iter().peekable();
    let mut idx = 0usize;
    for item in items {
        while next_taken.peek() == Some(&idx) {
            next_taken.next();
            idx += 1;
        }
        match check(&item) {
            Ok(()) => kept.push(item),
            Err(e) => errors.push((idx, e)),
        }
        idx += 1;
    }
    errors.sort_by_key(|(i, _)| *i);
    Ok(Decoded {
        items: kept,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_follows_the_first_byte_or_the_setting() {
        assert_eq!(sniff(b" [1]", Encoding::Auto), Ok(Format::Json));
        assert_eq!(sniff(b"{}", Encoding::Auto), Ok(Format::Json));
        assert_eq!(sniff(b"\x0a\x02", Encoding::Auto), Ok(Format::Protobuf));
        assert_eq!(sniff(b"\x0a\x02", Encoding::Json), Ok(Format::Json));
        assert_eq!(sniff(b"[", Encoding::Otlp), Ok(Format::Protobuf));
        assert_eq!(sniff(b" \n", Encoding::Json), Err(SchemaError::Empty));
        assert_eq!(sniff(b"", Encoding::Auto), Err(SchemaError::Empty));
        // OTLP JSON: by its first key, or by the setting
        assert_eq!(
            sniff(b" { \"resourceMetrics\": []}", Encoding::Auto),
            Ok(Format::OtlpJson)
        );
        assert_eq!(
            sniff(b"{\"resourceSpans\":[]}", Encoding::Auto),
            Ok(Format::OtlpJson)
        );
        assert_eq!(
            sniff(b"{\"timestamp\":1,\"resourceMetrics\":2}", Encoding::Auto),
            Ok(Format::Json)
        );
        assert_eq!(sniff(b"[]", Encoding::OtlpJson), Ok(Format::OtlpJson));
        assert_eq!("otlp_json".parse(), Ok(Encoding::OtlpJson));
    }

    #[test]
    fn time_bounds_are_inclusive_and_overflow_free() {
        let b = TimeBounds {
            max_age_ms: 1_000,
            max_future_ms: 2_000,
        };
        let now = 10_000;
        assert!(b.check(9_000, now, "t").is_ok());
        assert!(b.check(12_000, now, "t").is_ok());
        assert!(b.check(8_999, now, "t").is_err());
        assert!(b.check(12_001, now, "t").is_err());
        assert!(b.check(0, now, "t").is_err());
        let wide = TimeBounds {
            max_age_ms: i64::MAX,
            max_future_ms: i64::MAX,
        };
        assert!(wide.check(i64::MAX, now, "t").is_ok());
        assert!(wide.check(1, now, "t").is_ok());
    }
}
