//! Span messages: APO JSON, Zipkin v2 JSON (told apart by their keys) or OTLP protobuf, each
//! span validated by its decoder and its event time (its end) checked against the clock.

use apo_schemas::span_decode::{decode_spans_json, decode_spans_otlp};
use apo_schemas::{SchemaError, Span};

use super::{decode_message, Decoded, Encoding, Kind, TimeBounds};

const SPANS: Kind<Span> = Kind {
    json: decode_spans_json,
    protobuf: decode_spans_otlp,
    none: ("spans", "the message holds no spans"),
};

/// Decodes one message of spans, the format detected per message, and checks each span's end
/// against `now_ms`. `Err` means nothing in it is usable.
pub fn decode_span_message(
    payload: Option<&[u8]>,
    bounds: &TimeBounds,
    now_ms: i64,
) -> Result<Decoded<Span>, SchemaError> {
    decode_message(payload, Encoding::Auto, &SPANS, |s| {
        bounds.check(s.event_time_ms(), now_ms, "end_ns")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn span(i: u32, end_ms: i64) -> String {
        format!(
            r#"{{"trace_id":"{:032x}","span_id":"{:016x}","service":"a","name":"op","kind":"server","start_ns":{},"end_ns":{}}}"#,
            i + 1,
            i + 1,
            (end_ms - 5) * 1_000_000,
            end_ms * 1_000_000
        )
    }

    #[test]
    fn spans_out_of_bounds_are_reported_by_position() {
        let msg = format!(
            "[{},{},{{\"trace_id\":\"zz\"}},{}]",
            span(0, NOW),
            span(1, 1),
            span(3, NOW)
        );
        let d = decode_span_message(Some(msg.as_bytes()), &TimeBounds::default(), NOW).unwrap();
        assert_eq!(d.items.len(), 2);
        let idx: Vec<usize> = d.errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![1, 2]);
        assert!(matches!(
            d.errors[0].1,
            SchemaError::Invalid {
                field: "end_ns",
                ..
            }
        ));
    }

    #[test]
    fn empty_and_spanless_messages_are_errors() {
        let b = TimeBounds::default();
        assert_eq!(
            decode_span_message(Some(b"  "), &b, NOW).unwrap_err(),
            SchemaError::Empty
        );
        assert!(matches!(
            decode_span_message(Some(b"[]"), &b, NOW).unwrap_err(),
            SchemaError::Invalid { field: "spans", .. }
        ));
    }
}
