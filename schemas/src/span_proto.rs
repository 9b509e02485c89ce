//! Span protobufs that are not OTLP, as the Collector's Kafka exporter can also write them:
//! Zipkin v2 protobuf (`encoding: zipkin_proto`, Zipkin's `ListOfSpans` from
//! `zipkin-api/zipkin.proto`), decoded as Zipkin v2 JSON is; and Jaeger protobuf
//! (`encoding: jaeger_proto`, one `jaeger.api_v2.Span` per message), recognised and refused
//! by name rather than reported as invalid OTLP.

use std::collections::BTreeMap;

use prost::Message;

use crate::decoded::Decoded;
use crate::span::Span;
use crate::span_decode::{ZipkinEndpoint, ZipkinSpan};

/// `zipkin.proto3.ListOfSpans`.
#[derive(Clone, PartialEq, Message)]
pub struct ListOfSpans {
    /// The spans, of any traces.
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<ZipkinProtoSpan>,
}

/// `zipkin.proto3.Span` (annotations and the debug flag are not read).
#[derive(Clone, PartialEq, Message)]
pub struct ZipkinProtoSpan {
    /// 8 or 16 bytes, big endian.
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    /// 8 bytes, or none for a root span.
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    /// 0 unspecified, 1 client, 2 server, 3 producer, 4 consumer.
    #[prost(int32, tag = "4")]
    pub kind: i32,
    /// The operation.
    #[prost(string, tag = "5")]
    pub name: String,
    /// Epoch microseconds.
    #[prost(fixed64, tag = "6")]
    pub timestamp: u64,
    /// Microseconds.
    #[prost(uint64, tag = "7")]
    pub duration: u64,
    /// The host that recorded it (its service).
    #[prost(message, optional, tag = "8")]
    pub local_endpoint: Option<ZipkinProtoEndpoint>,
    /// The other side of an RPC or messaging span.
    #[prost(message, optional, tag = "9")]
    pub remote_endpoint: Option<ZipkinProtoEndpoint>,
    /// Its tags.
    #[prost(map = "string, string", tag = "11")]
    pub tags: std::collections::HashMap<String, String>,
    /// A server span sharing its id with its client span (B3).
    #[prost(bool, tag = "13")]
    pub shared: bool,
}

/// `zipkin.proto3.Endpoint` (the addresses and port are not read).
#[derive(Clone, PartialEq, Message)]
pub struct ZipkinProtoEndpoint {
    /// Its service.
    #[prost(string, tag = "1")]
    pub service_name: String,
}

/// The fields of `jaeger.api_v2.Span` that tell one apart.
#[derive(Clone, PartialEq, Message)]
struct JaegerSpan {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    operation_name: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` has the length of a trace id (8 or 16 bytes).
fn trace_id_like(id: &[u8]) -> bool {
    id.len() == 16 || id.len() == 8
}

/// Zipkin v2 protobuf spans, when `bytes` is a `ListOfSpans` of at least one span with a
/// trace id and a span id of their lengths; `None` when it is not one.
pub fn decode_zipkin_proto(bytes: &[u8]) -> Option<Decoded<Span>> {
    let list = ListOfSpans::decode(bytes).ok()?;
    let looks = !list.spans.is_empty()
        && list
            .spans
            .iter()
            .all(|s| trace_id_like(&s.trace_id) && s.id.len() == 8);
    if !looks {
        return None;
    }
    let mut out = Decoded::default();
    for (i, s) in list.spans.into_iter().enumerate() {
        let kind = match s.kind {
            0 => None,
            1 => Some("CLIENT"),
            2 => Some("SERVER"),
            3 => Some("PRODUCER"),
            4 => Some("CONSUMER"),
            _ => Some("?"),
        };
        let endpoint = |e: Option<ZipkinProtoEndpoint>| {
            e.map(|e| ZipkinEndpoint {
                service_name: (!e.service_name.is_empty()).then_some(e.service_name),
            })
        };
        let span = ZipkinSpan {
            trace_id: hex(&s.trace_id),
            id: hex(&s.id),
            parent_id: (!s.parent_id.is_empty()).then(|| hex(&s.parent_id)),
            name: (!s.name.is_empty()).then_some(s.name),
            kind: kind.map(str::to_string),
            timestamp: (s.timestamp > 0).then(|| i64::try_from(s.timestamp).unwrap_or(i64::MAX)),
            duration: Some(i64::try_from(s.duration).unwrap_or(i64::MAX)),
            local_endpoint: endpoint(s.local_endpoint),
            remote_endpoint: endpoint(s.remote_endpoint),
            tags: s.tags.into_iter().collect::<BTreeMap<_, _>>(),
            shared: s.shared,
        };
        crate::span_decode::push(&mut out, i, span.into_span());
    }
    Some(out)
}

/// Whether `bytes` is a Jaeger protobuf span (a 16- or 8-byte trace id, an 8-byte span id, an
/// operation name).
pub fn is_jaeger_proto(bytes: &[u8]) -> bool {
    JaegerSpan::decode(bytes).is_ok_and(|s| {
        trace_id_like(&s.trace_id) && s.span_id.len() == 8 && !s.operation_name.is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span_decode::{decode_spans_json, decode_spans_protobuf};

    fn id(n: u8, len: usize) -> Vec<u8> {
        (0..len as u8).map(|i| n.wrapping_add(i)).collect()
    }

    #[test]
    fn zipkin_protobuf_spans_decode_as_the_same_zipkin_json_does() {
        let endpoint = |s: &str| {
            Some(ZipkinProtoEndpoint {
                service_name: s.into(),
            })
        };
        let list = ListOfSpans {
            spans: vec![
                ZipkinProtoSpan {
                    trace_id: id(1, 16),
                    parent_id: id(40, 8),
                    id: id(20, 8),
                    kind: 1,
                    name: "get /cart".into(),
                    timestamp: 1_700_000_000_000_000,
                    duration: 2_500,
                    local_endpoint: endpoint("frontend"),
                    remote_endpoint: endpoint("cart"),
                    tags: [("http.status_code".to_string(), "200".to_string())].into(),
                    shared: false,
                },
                ZipkinProtoSpan {
                    trace_id: id(1, 16),
                    parent_id: id(40, 8),
                    id: id(20, 8),
                    kind: 2,
                    name: "get /cart".into(),
                    timestamp: 1_700_000_000_000_500,
                    duration: 1_500,
                    local_endpoint: endpoint("cart"),
                    remote_endpoint: None,
                    tags: [("error".to_string(), "timeout".to_string())].into(),
                    shared: true,
                },
            ],
        };
        let hex = |v: &[u8]| super::hex(v);
        let json = format!(
            r#"[{{"traceId":"{t}","parentId":"{p}","id":"{i}","kind":"CLIENT","name":"get /cart",
                 "timestamp":1700000000000000,"duration":2500,
                 "localEndpoint":{{"serviceName":"frontend"}},"remoteEndpoint":{{"serviceName":"cart"}},
                 "tags":{{"http.status_code":"200"}}}},
                {{"traceId":"{t}","parentId":"{p}","id":"{i}","kind":"SERVER","name":"get /cart",
                 "timestamp":1700000000000500,"duration":1500,
                 "localEndpoint":{{"serviceName":"cart"}},"tags":{{"error":"timeout"}},"shared":true}}]"#,
            t = hex(&id(1, 16)),
            p = hex(&id(40, 8)),
            i = hex(&id(20, 8)),
        );
        let from_json = decode_spans_json(json.as_bytes()).unwrap();
        let from_proto = decode_spans_protobuf(&list.encode_to_vec()).unwrap();
        assert!(from_proto.errors.is_empty(), "{:?}", from_proto.errors);
        assert_eq!(from_proto.items.len(), 2);
        assert_eq!(from_proto.items, from_json.items);
    }

    #[test]
    fn a_jaeger_span_is_refused_as_what_it_is_and_garbage_stays_invalid() {
        let jaeger = JaegerSpan {
            trace_id: id(7, 16),
            span_id: id(9, 8),
            operation_name: "HTTP GET".into(),
        };
        let e = decode_spans_protobuf(&jaeger.encode_to_vec()).unwrap_err();
        assert_eq!(e.reason(), "unsupported");
        assert!(e.to_string().contains("jaeger_proto"), "{e}");
        let e = decode_spans_protobuf(b"\x00\xffgarbage\x13").unwrap_err();
        assert_eq!(e.reason(), "invalid_protobuf");
    }
}
