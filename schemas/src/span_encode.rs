//! Encoding of [`Span`]s as the other producers write them: OTLP protobuf
//! `ExportTraceServiceRequest` (the Collector's Kafka exporter, `otlp_proto`) and Zipkin v2 JSON
//! (Zipkin's Kafka reporter). `apo produce --spans --format …` uses them to load APO with what a
//! real deployment sends; [`crate::span_decode`] reads them back.
//!
//! What each format cannot carry: Zipkin times are whole microseconds (nanoseconds are
//! truncated), Zipkin has no INTERNAL kind (written as the tag `span.kind=internal`, which the
//! OpenTelemetry Zipkin translator also reads) and no status besides the tags
//! `otel.status_code` (`OK`/`ERROR`); neither format has APO's `follows_from` (OTLP would need a
//! link; a consumer under a producer is non-blocking without it).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{self as otlp, ResourceSpans, ScopeSpans};
use prost::Message;
use serde::Serialize;

use crate::span::{Span, SpanKind, SpanStatus};

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn otlp_kind(k: SpanKind) -> i32 {
    match k {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// One `ExportTraceServiceRequest` with a resource (`service.name`) per service, spans in their
/// given order within each.
pub fn spans_to_otlp(spans: &[Span]) -> ExportTraceServiceRequest {
    let mut by_service: BTreeMap<&str, Vec<otlp::Span>> = BTreeMap::new();
    for s in spans {
        let status = match s.status {
            SpanStatus::Unset => None,
            SpanStatus::Ok => Some(1),
            SpanStatus::Error => Some(2),
        };
        by_service
            .entry(s.service.as_str())
            .or_default()
            .push(otlp::Span {
                trace_id: s.trace_id.0.to_be_bytes().to_vec(),
                span_id: s.span_id.0.to_be_bytes().to_vec(),
                parent_span_id: s
                    .parent_span_id
                    .map_or_else(Vec::new, |p| p.0.to_be_bytes().to_vec()),
                name: s.name.clone(),
                kind: otlp_kind(s.kind),
                start_time_unix_nano: s.start_ns.max(0) as u64,
                end_time_unix_nano: s.end_ns.max(0) as u64,
                attributes: s.attributes.iter().map(|(k, v)| string_kv(k, v)).collect(),
                status: status.map(|code| otlp::Status {
                    code,
                    message: String::new(),
                }),
                trace_state: trace_state(s.adjusted_count),
                links: s
                    .links
                    .iter()
                    .map(|l| otlp::span::Link {
                        trace_id: l.trace_id.0.to_be_bytes().to_vec(),
                        span_id: l.span_id.0.to_be_bytes().to_vec(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string_kv("service.name", service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// The W3C tracestate of a span sampled with probability 1 / `adjusted_count`: OpenTelemetry's
/// rejection threshold `ot=th:…` (2^56 · (1 − probability), 14 hex digits, trailing zeros
/// trimmed); empty for a span that was not sampled (a count of 1).
pub fn trace_state(adjusted_count: u64) -> String {
    if adjusted_count <= 1 {
        return String::new();
    }
    let full: u128 = 1 << 56;
    let t = full - full / u128::from(adjusted_count);
    let hex = format!("{t:014x}");
    format!("ot=th:{}", hex.trim_end_matches('0'))
}

/// OTLP protobuf bytes of [`spans_to_otlp`].
pub fn encode_spans_otlp(spans: &[Span]) -> Vec<u8> {
    spans_to_otlp(spans).encode_to_vec()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinEndpoint<'a> {
    service_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan<'a> {
    trace_id: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<String>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    timestamp: i64,
    duration: i64,
    local_endpoint: ZipkinEndpoint<'a>,
    tags: BTreeMap<&'a str, &'a str>,
}

/// A span as Zipkin v2 has it: the status and an internal kind as the OpenTelemetry
/// translator's tags.
fn zipkin_view(s: &Span) -> ZipkinSpan<'_> {
    let mut tags: BTreeMap<&str, &str> = s
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match s.status {
        SpanStatus::Unset => {}
        SpanStatus::Ok => {
            tags.insert("otel.status_code", "OK");
        }
        SpanStatus::Error => {
            tags.insert("otel.status_code", "ERROR");
        }
    }
    let kind = match s.kind {
        SpanKind::Server => Some("SERVER"),
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => {
            tags.insert("span.kind", "internal");
            None
        }
        SpanKind::Unspecified => None,
    };
    let start_us = s.start_ns.div_euclid(1000);
    ZipkinSpan {
        trace_id: s.trace_id.to_string(),
        id: s.span_id.to_string(),
        parent_id: s.parent_span_id.map(|p| p.to_string()),
        name: &s.name,
        kind,
        timestamp: start_us,
        duration: s.end_ns.div_euclid(1000) - start_us,
        local_endpoint: ZipkinEndpoint {
            service_name: &s.service,
        },
        tags,
    }
}

/// A Zipkin v2 JSON array of the spans.
pub fn encode_spans_zipkin(spans: &[Span]) -> Vec<u8> {
    let out: Vec<ZipkinSpan<'_>> = spans.iter().map(zipkin_view).collect();
    // Serialising plain strings and integers cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

/// A Zipkin v2 protobuf `ListOfSpans` of the spans (what the Collector's `zipkin_proto`
/// encoding writes), with the JSON encoding's fields.
pub fn encode_spans_zipkin_proto(spans: &[Span]) -> Vec<u8> {
    use crate::span_proto::{ListOfSpans, ZipkinProtoEndpoint, ZipkinProtoSpan};
    let list = ListOfSpans {
        spans: spans
            .iter()
            .map(|s| {
                let v = zipkin_view(s);
                ZipkinProtoSpan {
                    trace_id: s.trace_id.0.to_be_bytes().to_vec(),
                    parent_id: s
                        .parent_span_id
                        .map(|p| p.0.to_be_bytes().to_vec())
                        .unwrap_or_default(),
                    id: s.span_id.0.to_be_bytes().to_vec(),
                    kind: match v.kind {
                        Some("CLIENT") => 1,
                        Some("SERVER") => 2,
                        Some("PRODUCER") => 3,
                        Some("CONSUMER") => 4,
                        _ => 0,
                    },
                    name: s.name.clone(),
                    timestamp: u64::try_from(v.timestamp).unwrap_or(0),
                    duration: u64::try_from(v.duration).unwrap_or(0),
                    local_endpoint: Some(ZipkinProtoEndpoint {
                        service_name: s.service.clone(),
                    }),
                    remote_endpoint: None,
                    tags: v
                        .tags
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    shared: false,
                }
            })
            .collect(),
    };
    list.encode_to_vec()
}

/// OTLP JSON `ExportTraceServiceRequest` of the spans (the Collector's `otlp_json`).
pub fn encode_spans_otlp_json(spans: &[Span]) -> Vec<u8> {
    // The mapping of strings, integers and byte ids cannot fail.
    serde_json::to_vec(&spans_to_otlp(spans)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{SpanId, TraceId};
    use crate::span_decode::{decode_spans_json, decode_spans_otlp};

    fn spans() -> Vec<Span> {
        let base = Span {
            links: Vec::new(),
            trace_id: TraceId(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            span_id: SpanId(1),
            parent_span_id: None,
            service: "frontend".into(),
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_ns: 1_764_194_400_123_000_000,
            end_ns: 1_764_194_400_175_000_000,
            status: SpanStatus::Ok,
            attributes: BTreeMap::from([("http.route".into(), "/".into())]),
            follows_from: false,
            adjusted_count: 1,
        };
        let mut v = vec![base.clone()];
        for (i, (kind, status, svc)) in [
            (SpanKind::Client, SpanStatus::Error, "frontend"),
            (SpanKind::Internal, SpanStatus::Unset, "cart"),
            (SpanKind::Unspecified, SpanStatus::Unset, "cart"),
            (SpanKind::Producer, SpanStatus::Unset, "cart"),
            (SpanKind::Consumer, SpanStatus::Ok, "email"),
        ]
        .into_iter()
        .enumerate()
        {
            v.push(Span {
                span_id: SpanId(i as u64 + 2),
                parent_span_id: Some(SpanId(1)),
                service: svc.into(),
                kind,
                status,
                start_ns: base.start_ns + 1_000 * i as i64,
                attributes: BTreeMap::from([("peer.service".into(), "redis".into())]),
                ..base.clone()
            });
        }
        v
    }

    fn sorted(mut v: Vec<Span>) -> Vec<Span> {
        v.sort_by_key(|s| s.span_id);
        v
    }

    #[test]
    fn otlp_round_trip() {
        let d = decode_spans_otlp(&encode_spans_otlp(&spans())).unwrap();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(sorted(d.items), spans());
    }

    #[test]
    fn otlp_json_and_zipkin_protobuf_round_trip() {
        let d =
            crate::span_decode::decode_spans_otlp_json(&encode_spans_otlp_json(&spans())).unwrap();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(sorted(d.items), spans());
        let z = crate::span_decode::decode_spans_protobuf(&encode_spans_zipkin_proto(&spans()))
            .unwrap();
        assert!(z.errors.is_empty(), "{:?}", z.errors);
        assert_eq!(z.items, spans());
    }

    #[test]
    fn zipkin_round_trip_at_microseconds() {
        let d = decode_spans_json(&encode_spans_zipkin(&spans())).unwrap();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.items, spans());
        // Nanoseconds below a microsecond are lost, as in Zipkin itself.
        let mut fine = spans();
        fine[0].end_ns += 999;
        let d = decode_spans_json(&encode_spans_zipkin(&fine)).unwrap();
        assert_eq!(d.items[0].end_ns, spans()[0].end_ns);
    }

    /// The threshold a count encodes decodes back to the count (OpenTelemetry's examples:
    /// `th:8` is a probability of 1/2, `th:c` of 1/4), and links and counts go through OTLP.
    #[test]
    fn adjusted_counts_and_links_go_through_otlp() {
        assert_eq!(trace_state(1), "");
        assert_eq!(trace_state(2), "ot=th:8");
        assert_eq!(trace_state(4), "ot=th:c");
        for n in [2u64, 3, 4, 10, 1000] {
            assert_eq!(crate::span::adjusted_count(&trace_state(n)), Some(n), "{n}");
        }
        let mut s = spans();
        s[0].adjusted_count = 4;
        s[1].links.push(crate::span::SpanLink {
            trace_id: TraceId(5),
            span_id: SpanId(6),
        });
        let back = decode_spans_otlp(&encode_spans_otlp(&s)).unwrap();
        let mut got = back.items.clone();
        got.sort_by_key(|x| x.span_id);
        let mut want = s.clone();
        want.sort_by_key(|x| x.span_id);
        assert_eq!(got, want);
    }
}
