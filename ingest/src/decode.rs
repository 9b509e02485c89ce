//! Per-message decoding and validation of metric input.
//!
//! The encoding is detected per message where the bytes allow it (APO JSON starts with `{` or
//! `[`; anything else is tried as OTLP protobuf), or fixed per topic by configuration. Every
//! point is validated, including its timestamp against the clock.

use std::str::FromStr;

use apo_schemas::metric::{decode_json, Decoded};
use apo_schemas::otlp::decode_metrics;
use apo_schemas::SchemaError;

/// How the bytes of a topic are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Detect per message.
    #[default]
    Auto,
    Json,
    Otlp,
}

impl FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Encoding::Auto),
            "json" => Ok(Encoding::Json),
            "otlp" | "otlp_proto" => Ok(Encoding::Otlp),
            _ => Err(format!("unknown encoding `{s}` (auto, json, otlp)")),
        }
    }
}

/// The accepted event-time range relative to the clock.
#[derive(Debug, Clone, Copy)]
pub struct TimeBounds {
    pub max_age_ms: i64,
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

/// Decodes one message and validates its points. `Err` means nothing in it is usable.
pub fn decode_message(
    payload: Option<&[u8]>,
    encoding: Encoding,
    bounds: &TimeBounds,
    now_ms: i64,
) -> Result<Decoded, SchemaError> {
    let bytes = payload.unwrap_or_default();
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(SchemaError::Empty);
    }
    let json = match encoding {
        Encoding::Json => true,
        Encoding::Otlp => false,
        Encoding::Auto => matches!(
            bytes.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{') | Some(b'[')
        ),
    };
    let decoded = if json {
        decode_json(bytes)?
    } else {
        decode_metrics(bytes)?
    };
    if decoded.points.is_empty() && decoded.errors.is_empty() {
        return Err(SchemaError::Invalid {
            field: "points",
            reason: "the message holds no data points".into(),
        });
    }
    let Decoded { points, mut errors } = decoded;
    // Points keep their position in the message for the dead-letter headers: `errors` already
    // holds the indexes of undecodable elements; valid points take the remaining indexes.
    let mut kept = Vec::with_capacity(points.len());
    let mut idx = 0usize;
    let mut taken: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
    taken.sort_unstable();
    let mut next_taken = taken.into_iter().peekable();
    for p in points {
        while next_taken.peek() == Some(&idx) {
            next_taken.next();
            idx += 1;
        }
        match validate_time(&p, bounds, now_ms).and_then(|_| p.validate()) {
            Ok(()) => kept.push(p),
            Err(e) => errors.push((idx, e)),
        }
        idx += 1;
    }
    errors.sort_by_key(|(i, _)| *i);
    Ok(Decoded {
        points: kept,
        errors,
    })
}

fn validate_time(
    p: &apo_schemas::MetricPoint,
    b: &TimeBounds,
    now_ms: i64,
) -> Result<(), SchemaError> {
    if p.timestamp <= 0
        || p.timestamp < now_ms - b.max_age_ms
        || p.timestamp > now_ms + b.max_future_ms
    {
        return Err(SchemaError::Invalid {
            field: "timestamp",
            reason: format!(
                "{} ms is outside [now - {} s, now + {} s]",
                p.timestamp,
                b.max_age_ms / 1000,
                b.max_future_ms / 1000
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn bad_points_are_reported_by_position() {
        let msg = format!(
            r#"[{{"timestamp":{NOW},"service":"a","name":"m","value":1}},
                {{"timestamp":{NOW},"service":"","name":"m","value":1}},
                {{"timestamp":"x","service":"a","name":"m","value":1}},
                {{"timestamp":1,"service":"a","name":"m","value":1}},
                {{"timestamp":{NOW},"service":"a","name":"m","value":2}}]"#
        );
        let d = decode_message(
            Some(msg.as_bytes()),
            Encoding::Auto,
            &TimeBounds::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.points.len(), 2);
        let idx: Vec<usize> = d.errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![1, 2, 3]);
    }

    #[test]
    fn empty_and_pointless_messages_are_errors() {
        let b = TimeBounds::default();
        assert_eq!(
            decode_message(None, Encoding::Auto, &b, NOW).unwrap_err(),
            SchemaError::Empty
        );
        assert!(decode_message(Some(b"[]"), Encoding::Auto, &b, NOW).is_err());
        assert!(decode_message(Some(b"\x01\x02garbage"), Encoding::Auto, &b, NOW).is_err());
    }
}
