//! Metric messages: APO JSON (one point or an array) or OTLP protobuf, each point checked
//! against the clock and validated.

use apo_schemas::metric::decode_json;
use apo_schemas::otlp::decode_metrics;
use apo_schemas::{MetricPoint, SchemaError};

use super::{decode_message, Decoded, Encoding, Kind, TimeBounds};

const METRICS: Kind<MetricPoint> = Kind {
    json: decode_json,
    protobuf: decode_metrics,
    none: ("points", "the message holds no data points"),
};

/// Decodes one message of metric points and validates each (its timestamp against `now_ms`).
/// `Err` means nothing in it is usable.
pub fn decode_metric_message(
    payload: Option<&[u8]>,
    encoding: Encoding,
    bounds: &TimeBounds,
    now_ms: i64,
) -> Result<Decoded<MetricPoint>, SchemaError> {
    decode_message(payload, encoding, &METRICS, |p| {
        bounds.check(p.timestamp, now_ms, "timestamp")?;
        p.validate()
    })
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
        let d = decode_metric_message(
            Some(msg.as_bytes()),
            Encoding::Auto,
            &TimeBounds::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.items.len(), 2);
        let idx: Vec<usize> = d.errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![1, 2, 3]);
    }

    #[test]
    fn empty_and_pointless_messages_are_errors() {
        let b = TimeBounds::default();
        assert_eq!(
            decode_metric_message(None, Encoding::Auto, &b, NOW).unwrap_err(),
            SchemaError::Empty
        );
        assert!(decode_metric_message(Some(b"[]"), Encoding::Auto, &b, NOW).is_err());
        assert!(decode_metric_message(Some(b"\x01\x02garbage"), Encoding::Auto, &b, NOW).is_err());
    }
}
