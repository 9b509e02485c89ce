//! Metric messages: APO JSON (one point or an array) or OTLP protobuf, each point checked
//! against the clock and validated.

use apo_schemas::metric::decode_json;
use apo_schemas::otlp::{decode_metrics, decode_metrics_json};
use apo_schemas::{MetricPoint, SchemaError};

use super::{decode_message, Decoded, Encoding, FieldLimits, Kind, TimeBounds};

const METRICS: Kind<MetricPoint> = Kind {
    json: decode_json,
    protobuf: decode_metrics,
    otlp_json: decode_metrics_json,
    none: ("points", "the message holds no data points"),
};

/// Decodes one message of metric points and validates each: its timestamp against `now_ms`,
/// its names and tags against `limits`. `Err` means nothing in it is usable.
pub fn decode_metric_message(
    payload: Option<&[u8]>,
    encoding: Encoding,
    bounds: &TimeBounds,
    limits: &FieldLimits,
    now_ms: i64,
) -> Result<Decoded<MetricPoint>, SchemaError> {
    decode_message(payload, encoding, &METRICS, |p| {
        bounds.check(p.timestamp, now_ms, "timestamp")?;
        limits.check_name("service", &p.service)?;
        limits.check_name("name", &p.name)?;
        limits.check_name("unit", &p.unit)?;
        limits.check_attributes("tags", &p.tags)?;
        p.validate()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn an_otlp_message_whose_length_byte_looks_like_json_is_protobuf() {
        use apo_schemas::otlp::decode_metrics;
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
        use opentelemetry_proto::tonic::metrics::v1::{
            metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics,
            ScopeMetrics,
        };
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use prost::Message;
        let message = |name: String| {
            ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(Resource {
                        attributes: vec![KeyValue {
                            key: "service.name".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("a".into())),
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![Metric {
                            name,
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![NumberDataPoint {
                                    time_unix_nano: NOW as u64 * 1_000_000,
                                    value: Some(number_data_point::Value::AsDouble(1.0)),
                                    ..Default::default()
                                }],
                            })),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        };
        // a 0x0a tag (a newline) then a length of 123 (`{`) or 91 (`[`)
        for opener in [b'{', b'['] {
            let bytes = (1..120)
                .map(|n| message("m".repeat(n)))
                .find(|b| b[1] == opener)
                .expect("a name length that makes the length byte the opener");
            assert!(decode_metrics(&bytes).is_ok());
            let d = decode_metric_message(
                Some(&bytes),
                Encoding::Auto,
                &TimeBounds::default(),
                &FieldLimits::default(),
                NOW,
            )
            .unwrap();
            assert_eq!(
                (d.items.len(), d.errors.len()),
                (1, 0),
                "{}",
                opener as char
            );
        }
    }

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
            &FieldLimits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.items.len(), 2);
        let idx: Vec<usize> = d.errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![1, 2, 3]);
    }

    #[test]
    fn oversize_names_and_tags_are_unusable_and_the_rest_kept() {
        let long = "x".repeat(1 << 20);
        let msg = format!(
            r#"[{{"timestamp":{NOW},"service":"{long}","name":"m","value":1}},
                {{"timestamp":{NOW},"service":"a","name":"{long}","value":1}},
                {{"timestamp":{NOW},"service":"a","name":"m","value":1,"tags":{{"{long}":"v"}}}},
                {{"timestamp":{NOW},"service":"a","name":"m","value":3}}]"#
        );
        let d = decode_metric_message(
            Some(msg.as_bytes()),
            Encoding::Auto,
            &TimeBounds::default(),
            &FieldLimits::default(),
            NOW,
        )
        .unwrap();
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].value, 3.0);
        let got: Vec<(usize, String)> = d.errors.iter().map(|(i, e)| (*i, e.to_string())).collect();
        assert_eq!(
            got,
            vec![
                (
                    0,
                    "field `service` is 1048576 bytes, more than the limit of 255".to_string()
                ),
                (
                    1,
                    "field `name` is 1048576 bytes, more than the limit of 255".to_string()
                ),
                (
                    2,
                    "field `attribute key` is 1048576 bytes, more than the limit of 255"
                        .to_string()
                ),
            ]
        );
    }

    #[test]
    fn empty_and_pointless_messages_are_errors() {
        let b = TimeBounds::default();
        assert_eq!(
            decode_metric_message(None, Encoding::Auto, &b, &FieldLimits::default(), NOW)
                .unwrap_err(),
            SchemaError::Empty
        );
        assert!(decode_metric_message(
            Some(b"[]"),
            Encoding::Auto,
            &b,
            &FieldLimits::default(),
            NOW
        )
        .is_err());
        assert!(decode_metric_message(
            Some(b"\x01\x02garbage"),
            Encoding::Auto,
            &b,
            &FieldLimits::default(),
            NOW
        )
        .is_err());
    }
}
