//! Span messages: APO JSON, Zipkin v2 JSON (told apart by their keys), OTLP protobuf or OTLP
//! JSON, Zipkin v2 protobuf (Jaeger protobuf refused as such), each span validated by its decoder and its event time (its end) checked against the
//! clock.

use apo_schemas::span_decode::{decode_spans_json, decode_spans_otlp_json, decode_spans_protobuf};
use apo_schemas::{SchemaError, Span};

use super::{decode_message, Decoded, Encoding, FieldLimits, Kind, TimeBounds};

const SPANS: Kind<Span> = Kind {
    json: decode_spans_json,
    protobuf: decode_spans_protobuf,
    otlp_json: decode_spans_otlp_json,
    none: ("spans", "the message holds no spans"),
};

/// Decodes one message of spans, the format detected per message, and checks each span: its
/// start and end against `now_ms`, its service, name and attributes against `limits`. `Err`
/// means nothing in it is usable.
pub fn decode_span_message(
    payload: Option<&[u8]>,
    bounds: &TimeBounds,
    limits: &FieldLimits,
    now_ms: i64,
) -> Result<Decoded<Span>, SchemaError> {
    decode_message(payload, Encoding::Auto, &SPANS, |s| {
        bounds.check(s.event_time_ms(), now_ms, "end_ns")?;
        bounds.check(s.start_ns.div_euclid(1_000_000), now_ms, "start_ns")?;
        limits.check_name("service", &s.service)?;
        limits.check_name("name", &s.name)?;
        limits.check_attributes("attributes", &s.attributes)?;
        // The SDKs keep at most 128 links a span, as they keep attributes.
        limits.check_count("links", s.links.len())
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
        let d = decode_span_message(
            Some(msg.as_bytes()),
            &TimeBounds::default(),
            &FieldLimits::default(),
            NOW,
        )
        .unwrap();
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
    fn a_start_outside_the_bounds_and_oversize_names_are_unusable() {
        let end = NOW * 1_000_000;
        let from_min = format!(
            r#"{{"trace_id":"{:032x}","span_id":"{:016x}","service":"a","name":"op","kind":"server","start_ns":{},"end_ns":{end}}}"#,
            1,
            1,
            i64::MIN
        );
        let long = format!(
            r#"{{"trace_id":"{:032x}","span_id":"{:016x}","service":"{}","name":"op","kind":"server","start_ns":{end},"end_ns":{end}}}"#,
            2,
            2,
            "s".repeat(1 << 20)
        );
        let attrs = format!(
            r#"{{"trace_id":"{:032x}","span_id":"{:016x}","service":"a","name":"op","start_ns":{end},"end_ns":{end},"attributes":{{"k":"{}"}}}}"#,
            3,
            3,
            "v".repeat(5000)
        );
        let msg = format!("[{from_min},{long},{},{attrs}]", span(3, NOW));
        let d = decode_span_message(
            Some(msg.as_bytes()),
            &TimeBounds::default(),
            &FieldLimits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.items.len(), 1);
        let got: Vec<(usize, &'static str, &'static str)> =
            d.errors
                .iter()
                .map(|(i, e)| {
                    let field = match e {
                        SchemaError::Invalid { field, .. }
                        | SchemaError::TooLarge { field, .. } => *field,
                        _ => "other",
                    };
                    (*i, field, e.reason())
                })
                .collect();
        assert_eq!(
            got,
            vec![
                (0, "start_ns", "invalid_field"),
                (1, "service", "too_large"),
                (3, "attribute value", "too_large"),
            ]
        );
    }

    #[test]
    fn empty_and_spanless_messages_are_errors() {
        let b = TimeBounds::default();
        assert_eq!(
            decode_span_message(Some(b"  "), &b, &FieldLimits::default(), NOW).unwrap_err(),
            SchemaError::Empty
        );
        assert!(matches!(
            decode_span_message(Some(b"[]"), &b, &FieldLimits::default(), NOW).unwrap_err(),
            SchemaError::Invalid { field: "spans", .. }
        ));
    }
}
