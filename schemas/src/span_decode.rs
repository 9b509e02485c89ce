//! Decoding of span messages from `apo.spans` into [`Span`]s: APO JSON, Zipkin v2 JSON (an array
//! of spans, as Zipkin's Kafka collector and the Collector's `zipkin` encoding write it), OTLP
//! `ExportTraceServiceRequest` in protobuf or JSON (the Collector's Kafka exporter, `otlp_proto`,
//! `otlp_json`) and Zipkin v2 protobuf (`zipkin_proto`, [`crate::span_proto`]).
//!
//! JSON elements are told apart by their keys: Zipkin spans have `traceId`, APO spans
//! `trace_id`. Every span is validated ([`Span::validate`]); one that fails is reported by its
//! position in the message, the others are kept.
//!
//! Zipkin mapping: `timestamp`/`duration` are microseconds; `localEndpoint.serviceName` is the
//! service; `remoteEndpoint.serviceName` becomes the `peer.service` attribute; a tag `error`
//! (Zipkin's convention) or `otel.status_code=ERROR` makes the status an error,
//! `otel.status_code=OK` ok; without `kind`, a `span.kind` tag gives it (the OpenTelemetry
//! translator's way of sending INTERNAL). Both tags are consumed, not kept as attributes. A `shared`
//! server span (B3's single span id for client and server) gets an id of its own derived from
//! the shared one, with the client span as its parent, so both halves stay in the trace.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::decoded::Decoded;
use crate::otlp::{any_to_string, service_name};
use crate::span::{Span, SpanId, SpanKind, SpanLink, SpanStatus, TraceId};
use crate::SchemaError;

/// Keeps the span at `index` of a message when it decoded and is valid, else records why not.
pub(crate) fn push(out: &mut Decoded<Span>, index: usize, span: Result<Span, SchemaError>) {
    out.push(index, span.and_then(|s| s.validate().map(|_| s)));
}

/// A Zipkin v2 endpoint (JSON; the protobuf's maps to it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ZipkinEndpoint {
    pub(crate) service_name: Option<String>,
}

/// A Zipkin v2 span (JSON; the protobuf's maps to it, its ids in hex).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ZipkinSpan {
    pub(crate) trace_id: String,
    pub(crate) id: String,
    pub(crate) parent_id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) duration: Option<i64>,
    pub(crate) local_endpoint: Option<ZipkinEndpoint>,
    pub(crate) remote_endpoint: Option<ZipkinEndpoint>,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) shared: bool,
}

impl ZipkinSpan {
    pub(crate) fn into_span(self) -> Result<Span, SchemaError> {
        let invalid = |field: &'static str, reason: &str| SchemaError::Invalid {
            field,
            reason: reason.to_string(),
        };
        let trace_id = TraceId::parse(&self.trace_id.to_ascii_lowercase())?;
        let mut span_id = SpanId::parse(&self.id.to_ascii_lowercase())?;
        let mut parent_span_id = match self.parent_id.as_deref() {
            None | Some("") => None,
            Some(p) => Some(SpanId::parse(&p.to_ascii_lowercase())?),
        };
        let mut tags = self.tags;
        // Without `kind`, the OpenTelemetry translator's `span.kind` tag (how INTERNAL is sent).
        let kind = match self.kind.as_deref() {
            None => match tags.remove("span.kind") {
                None => SpanKind::Unspecified,
                Some(k) => SpanKind::parse(&k).ok_or_else(|| invalid("span.kind", &k))?,
            },
            Some(k) => SpanKind::parse(k).ok_or_else(|| invalid("kind", k))?,
        };
        if self.shared && kind == SpanKind::Server {
            parent_span_id = Some(span_id);
            span_id = SpanId(shared_server_id(span_id.0));
        }
        let ts = self
            .timestamp
            .ok_or_else(|| invalid("timestamp", "missing"))?;
        let duration = self.duration.unwrap_or(0);
        if duration < 0 {
            return Err(invalid("duration", "negative"));
        }
        let start_ns = ts
            .checked_mul(1000)
            .ok_or_else(|| invalid("timestamp", "out of range"))?;
        let end_ns = start_ns
            .checked_add(duration.saturating_mul(1000))
            .ok_or_else(|| invalid("duration", "out of range"))?;
        // `otel.status_code` is the status (and is not kept as an attribute); Zipkin's own
        // `error` tag (kept: it holds the message) marks an error too.
        let code = tags.remove("otel.status_code");
        let status = match code.as_deref() {
            _ if tags.contains_key("error") => SpanStatus::Error,
            Some(c) if c.eq_ignore_ascii_case("error") => SpanStatus::Error,
            Some(c) if c.eq_ignore_ascii_case("ok") => SpanStatus::Ok,
            _ => SpanStatus::Unset,
        };
        let mut attributes = tags;
        if let Some(peer) = self.remote_endpoint.and_then(|e| e.service_name) {
            if !peer.is_empty() {
                attributes.entry("peer.service".into()).or_insert(peer);
            }
        }
        Ok(Span {
            links: Vec::new(),
            trace_id,
            span_id,
            parent_span_id,
            service: self
                .local_endpoint
                .and_then(|e| e.service_name)
                .unwrap_or_default(),
            name: self.name.unwrap_or_default(),
            kind,
            start_ns,
            end_ns,
            status,
            attributes,
            follows_from: false,
            adjusted_count: 1,
        })
    }
}

/// The id given to the server half of a Zipkin shared span: a fixed bijection of the shared id
/// (never equal to it), so replays derive the same id.
fn shared_server_id(id: u64) -> u64 {
    let d = id.rotate_left(17) ^ 0x5bd1_e995_9e37_79b9;
    if d == id || d == 0 {
        id ^ 1
    } else {
        d
    }
}

fn decode_element(raw: &RawValue) -> Result<Span, SchemaError> {
    let text = raw.get();
    // The element is well-formed JSON (the document parsed): a value of the wrong type or
    // form (a bad id, an unknown kind) is an invalid field.
    let json = |e: serde_json::Error| match e.classify() {
        serde_json::error::Category::Data => SchemaError::Invalid {
            field: "span",
            reason: e.to_string(),
        },
        _ => SchemaError::Json(e.to_string()),
    };
    // Zipkin spans carry `traceId`; APO spans `trace_id`.
    if text.contains("\"traceId\"") {
        serde_json::from_str::<ZipkinSpan>(text)
            .map_err(json)?
            .into_span()
    } else {
        serde_json::from_str::<Span>(text).map_err(json)
    }
}

/// Decodes APO JSON or Zipkin v2 JSON: one object or an array. A malformed document is an
/// error as a whole; in a well-formed array each bad element is reported by index.
pub fn decode_spans_json(bytes: &[u8]) -> Result<Decoded<Span>, SchemaError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let mut out = Decoded::default();
    match first {
        None => return Err(SchemaError::Empty),
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(e.to_string()))?;
            out.items.reserve(items.len());
            for (i, raw) in items.into_iter().enumerate() {
                push(&mut out, i, decode_element(raw));
            }
        }
        Some(_) => {
            let raw: &RawValue =
                serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(e.to_string()))?;
            push(&mut out, 0, decode_element(raw));
        }
    }
    Ok(out)
}

/// Decodes a protobuf message of spans: OTLP `ExportTraceServiceRequest`, or, when it is not
/// one with spans in it, a Zipkin v2 `ListOfSpans`; a Jaeger protobuf span is refused as what
/// it is ([`crate::span_proto`]).
pub fn decode_spans_protobuf(bytes: &[u8]) -> Result<Decoded<Span>, SchemaError> {
    let otlp = decode_spans_otlp(bytes);
    if otlp.as_ref().is_ok_and(|d| !d.items.is_empty()) {
        return otlp;
    }
    if let Some(zipkin) = crate::span_proto::decode_zipkin_proto(bytes) {
        return Ok(zipkin);
    }
    if crate::span_proto::is_jaeger_proto(bytes) {
        return Err(SchemaError::Unsupported(
            "a Jaeger protobuf span (the Collector's Kafka exporter's `jaeger_proto` encoding): \
             APO reads OTLP (`otlp_proto`, `otlp_json`), Zipkin (`zipkin_proto`, `zipkin_json`) \
             and APO JSON spans"
                .into(),
        ));
    }
    otlp
}

/// Decodes OTLP protobuf `ExportTraceServiceRequest`; spans are indexed in message order.
pub fn decode_spans_otlp(bytes: &[u8]) -> Result<Decoded<Span>, SchemaError> {
    if bytes.is_empty() {
        return Err(SchemaError::Empty);
    }
    let req = ExportTraceServiceRequest::decode(bytes)
        .map_err(|e| SchemaError::Protobuf(e.to_string()))?;
    Ok(decode_trace_request(&req))
}

/// Decodes OTLP JSON `ExportTraceServiceRequest` (hex trace and span ids, 64-bit integers as
/// strings), as [`decode_spans_otlp`] decodes its protobuf.
pub fn decode_spans_otlp_json(bytes: &[u8]) -> Result<Decoded<Span>, SchemaError> {
    let req: ExportTraceServiceRequest =
        serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(format!("OTLP JSON: {e}")))?;
    Ok(decode_trace_request(&req))
}

/// The spans of one request; indexed in message order.
fn decode_trace_request(req: &ExportTraceServiceRequest) -> Decoded<Span> {
    let mut out = Decoded::default();
    let mut index = 0usize;
    for rs in &req.resource_spans {
        let service = service_name(rs.resource.as_ref());
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let span = (|| {
                    let time = |t: u64, field: &'static str| {
                        i64::try_from(t).map_err(|_| SchemaError::Invalid {
                            field,
                            reason: format!("{t} ns is out of range"),
                        })
                    };
                    Ok(Span {
                        trace_id: TraceId::from_bytes(&s.trace_id)?,
                        span_id: SpanId::from_bytes(&s.span_id)?,
                        parent_span_id: if s.parent_span_id.is_empty() {
                            None
                        } else {
                            Some(SpanId::from_bytes(&s.parent_span_id)?)
                        },
                        service: service.clone(),
                        name: s.name.clone(),
                        kind: SpanKind::from_otlp(s.kind),
                        start_ns: time(s.start_time_unix_nano, "start_time_unix_nano")?,
                        end_ns: time(s.end_time_unix_nano, "end_time_unix_nano")?,
                        status: match s.status.as_ref().map(|st| st.code) {
                            Some(1) => SpanStatus::Ok,
                            Some(2) => SpanStatus::Error,
                            _ => SpanStatus::Unset,
                        },
                        attributes: s
                            .attributes
                            .iter()
                            .filter_map(|kv| {
                                kv.value
                                    .as_ref()
                                    .map(|v| (kv.key.clone(), any_to_string(v)))
                            })
                            .collect(),
                        follows_from: false,
                        links: s
                            .links
                            .iter()
                            .map(|l| {
                                Ok(SpanLink {
                                    trace_id: TraceId::from_bytes(&l.trace_id)?,
                                    span_id: SpanId::from_bytes(&l.span_id)?,
                                })
                            })
                            .collect::<Result<Vec<_>, SchemaError>>()?,
                        adjusted_count: crate::span::adjusted_count(&s.trace_state).ok_or_else(
                            || SchemaError::Invalid {
                                field: "trace_state",
                                reason: format!(
                                    "`{}` has an OpenTelemetry threshold that is not 1 to 14 hex \
                                     digits",
                                    s.trace_state
                                ),
                            },
                        )?,
                    })
                })();
                push(&mut out, index, span);
                index += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_json_example_span_decodes() {
        // opentelemetry-proto's `examples/trace.json` (upper-case hex ids), scope attributes
        // left out
        let json = r#"{"resourceSpans": [{
          "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
          "scopeSpans": [{"scope": {"name": "my.library", "version": "1.0.0"},
            "spans": [{"traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174", "parentSpanId": "EEE19B7EC3C1B173",
              "name": "I'm a server span",
              "startTimeUnixNano": 1544712660000000000, "endTimeUnixNano": 1544712661000000000,
              "kind": 2,
              "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]}]}]}]}"#;
        let d = decode_spans_otlp_json(json.as_bytes()).unwrap();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let s = &d.items[0];
        assert_eq!(s.trace_id.to_string(), "5b8efff798038103d269b633813fc60c");
        assert_eq!(
            s.span_id,
            SpanId::from_bytes(&[0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]).unwrap()
        );
        assert_eq!(
            s.parent_span_id,
            Some(SpanId::from_bytes(&[0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73]).unwrap())
        );
        assert_eq!(
            (s.service.as_str(), s.name.as_str()),
            ("my.service", "I'm a server span")
        );
        assert_eq!(s.kind, crate::span::SpanKind::Server);
        assert_eq!(
            (s.start_ns, s.end_ns),
            (1_544_712_660_000_000_000, 1_544_712_661_000_000_000)
        );
        assert_eq!(s.attributes["my.span.attr"], "some value");
        assert_eq!(s.adjusted_count, 1, "no tracestate: not sampled");
        // a span sampled at 1/4 (OpenTelemetry threshold c) stands for 4; a threshold that is
        // not one is an invalid field
        let sampled = json.replace("\"kind\": 2,", "\"kind\": 2, \"traceState\": \"ot=th:c\",");
        let d4 = decode_spans_otlp_json(sampled.as_bytes()).unwrap();
        assert_eq!(d4.items[0].adjusted_count, 4);
        let bad = json.replace(
            "\"kind\": 2,",
            "\"kind\": 2, \"traceState\": \"ot=th:xyz\",",
        );
        let e = decode_spans_otlp_json(bad.as_bytes()).unwrap();
        assert!(e.items.is_empty());
        assert!(
            e.errors[0].1.to_string().contains("trace_state"),
            "{}",
            e.errors[0].1
        );
        // the same as protobuf
        let req: ExportTraceServiceRequest = serde_json::from_str(json).unwrap();
        let p = decode_spans_otlp(&prost::Message::encode_to_vec(&req)).unwrap();
        assert_eq!(p.items, d.items);
    }
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{span, status, ResourceSpans, ScopeSpans, Status};

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn apo(span_id: &str, parent: Option<&str>, service: &str) -> String {
        let parent = parent.map_or(String::new(), |p| format!(r#""parent_span_id":"{p}","#));
        format!(
            r#"{{"trace_id":"{TRACE}","span_id":"{span_id}",{parent}"service":"{service}","name":"GET /","kind":"client","start_ns":1000000,"end_ns":3000000,"status":"error","attributes":{{"peer.service":"db"}}}}"#
        )
    }

    #[test]
    fn zipkin_and_apo_json_give_the_same_span() {
        let a =
            decode_spans_json(apo("00f067aa0ba902b7", Some("53995c3f42cd8ad8"), "shop").as_bytes())
                .unwrap();
        let z = decode_spans_json(
            format!(
                r#"[{{"traceId":"{TRACE}","id":"00F067AA0BA902B7","parentId":"53995c3f42cd8ad8","name":"GET /","kind":"CLIENT","timestamp":1000,"duration":2000,"localEndpoint":{{"serviceName":"shop"}},"remoteEndpoint":{{"serviceName":"db"}},"tags":{{"error":"timeout"}}}}]"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert!(
            a.errors.is_empty() && z.errors.is_empty(),
            "{:?} {:?}",
            a.errors,
            z.errors
        );
        let mut zs = z.items[0].clone();
        assert_eq!(zs.attributes.remove("error").as_deref(), Some("timeout"));
        assert_eq!(a.items[0], zs);
    }

    #[test]
    fn zipkin_shared_server_span_becomes_a_child_of_the_client() {
        let z = decode_spans_json(
            r#"[{"traceId":"a3ce929d0e0e4736","id":"1","name":"get","kind":"CLIENT","timestamp":10,"duration":50,"localEndpoint":{"serviceName":"a"}},
                    {"traceId":"a3ce929d0e0e4736","id":"1","name":"get","kind":"SERVER","shared":true,"timestamp":20,"duration":30,"localEndpoint":{"serviceName":"b"}}]"#
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(z.items.len(), 2);
        assert_eq!(z.items[1].parent_span_id, Some(z.items[0].span_id));
        assert_ne!(z.items[1].span_id, z.items[0].span_id);
        assert_eq!(
            z.items[0].trace_id.to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
    }

    #[test]
    fn bad_spans_are_reported_by_position() {
        let end_before_start = format!(
            r#"{{"trace_id":"{TRACE}","span_id":"1","service":"a","name":"x","start_ns":5,"end_ns":4}}"#
        );
        let msg = format!(
            "[{}, {}, {{\"trace_id\":\"zz\"}}, {end_before_start}, {}]",
            apo("1", None, "a"),
            apo("2", Some("1"), ""),
            apo("3", Some("1"), "a")
        );
        let d = decode_spans_json(msg.as_bytes()).unwrap();
        assert_eq!(d.items.len(), 2);
        let idx: Vec<(usize, &str)> = d.errors.iter().map(|(i, e)| (*i, e.reason())).collect();
        assert_eq!(
            idx,
            vec![
                (1, "invalid_field"),
                (2, "invalid_field"),
                (3, "invalid_field")
            ]
        );
        assert!(decode_spans_json(b"[{").is_err());
        assert_eq!(decode_spans_json(b"  ").unwrap_err(), SchemaError::Empty);
    }

    #[test]
    fn otlp_spans() {
        let sv = |s: &str| AnyValue {
            value: Some(any_value::Value::StringValue(s.into())),
        };
        let good = opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: u128::from_str_radix(TRACE, 16)
                .unwrap()
                .to_be_bytes()
                .to_vec(),
            span_id: 0x00f0_67aa_0ba9_02b7u64.to_be_bytes().to_vec(),
            parent_span_id: 0x5399_5c3f_42cd_8ad8u64.to_be_bytes().to_vec(),
            name: "GET /".into(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: 1_000_000,
            end_time_unix_nano: 3_000_000,
            attributes: vec![KeyValue {
                key: "peer.service".into(),
                value: Some(sv("db")),
                ..Default::default()
            }],
            status: Some(Status {
                code: status::StatusCode::Error as i32,
                message: String::new(),
            }),
            ..Default::default()
        };
        let mut bad_id = good.clone();
        bad_id.span_id = vec![0; 8];
        let mut backwards = good.clone();
        backwards.end_time_unix_nano = 1;
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(sv("shop")),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![good.clone(), bad_id, backwards],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let d = decode_spans_otlp(&req.encode_to_vec()).unwrap();
        let a =
            decode_spans_json(apo("00f067aa0ba902b7", Some("53995c3f42cd8ad8"), "shop").as_bytes())
                .unwrap();
        assert_eq!(
            d.items, a.items,
            "OTLP and APO JSON decode to the same span"
        );
        let idx: Vec<usize> = d.errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![1, 2]);
        assert!(decode_spans_otlp(b"\xff\xff garbage").is_err());
    }

    /// A span's links decode from OTLP protobuf and OTLP JSON alike, and APO JSON carries
    /// them as `links: [{trace_id, span_id}]`.
    #[test]
    fn otlp_span_links_decode() {
        let link = span::Link {
            trace_id: 7u128.to_be_bytes().to_vec(),
            span_id: 9u64.to_be_bytes().to_vec(),
            ..Default::default()
        };
        let s = opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: 1u128.to_be_bytes().to_vec(),
            span_id: 2u64.to_be_bytes().to_vec(),
            name: "receive".into(),
            kind: span::SpanKind::Consumer as i32,
            start_time_unix_nano: 1_000_000,
            end_time_unix_nano: 3_000_000,
            links: vec![link],
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("billing".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![s],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let d = decode_spans_otlp(&req.encode_to_vec()).unwrap();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let want = vec![SpanLink {
            trace_id: TraceId(7),
            span_id: SpanId(9),
        }];
        assert_eq!(d.items[0].links, want);
        let j = decode_spans_otlp_json(&serde_json::to_vec(&req).unwrap()).unwrap();
        assert_eq!(j.items, d.items);
        let apo = serde_json::to_string(&d.items[0]).unwrap();
        assert!(
            apo.contains(r#""links":[{"trace_id":"00000000000000000000000000000007","span_id":"0000000000000009"}]"#),
            "{apo}"
        );
        assert_eq!(decode_spans_json(apo.as_bytes()).unwrap().items, d.items);
    }
}
