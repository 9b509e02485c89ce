//! Property tests of every input decoder (proptest): arbitrary bytes, and structured mutations
//! of valid messages (bit flips, inserted, deleted and duplicated runs, truncation, numbers
//! replaced by extreme ones), through the message-level paths the lanes call. None may panic,
//! and what a decoder keeps must hold the promises the pipeline relies on: positions of errors
//! within the message and each reported once, every kept record valid, within the time
//! bounds and the field limits. A failure proptest finds is saved to `proptest-regressions/`
//! beside this file and replayed first on every later run: commit it.
//!
//! Targets: metric APO JSON and OTLP protobuf (`decode_metric_message`), span APO JSON, Zipkin
//! v2 JSON and OTLP protobuf (`decode_span_message`), and `apo.actions` records. There is no
//! OTLP JSON decoder yet, nor a decision record (issues 15 and 16 add them, with their targets).

use std::collections::BTreeSet;

use apo_schemas::action::ActionRecord;
use apo_schemas::{Decoded, MetricPoint, Span};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;

use super::{decode_metric_message, decode_span_message, Encoding, FieldLimits, TimeBounds};
use crate::trace_generator::{TraceGenerator, TraceGeneratorConfig};
use crate::trace_produce::SpanFormat;

const NOW: i64 = 1_800_000_000_000;

/// Small limits, so that mutations cross them.
const LIMITS: FieldLimits = FieldLimits {
    max_name_bytes: 48,
    max_attributes: 8,
    max_attribute_key_bytes: 48,
    max_attribute_value_bytes: 96,
};

fn bounds() -> TimeBounds {
    TimeBounds {
        max_age_ms: 3_600_000,
        max_future_ms: 60_000,
    }
}

/// One change to a message; positions are taken modulo its length.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize, usize),
    /// Replaces the run of digits at or after the position with an extreme number.
    Number(usize, usize),
}

const EXTREMES: [&str; 8] = [
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551616",
    "1e309",
    "-0",
    "0.0000000000000000000001",
    "-1",
    "99999999999999999999999999999999",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(p, v)| Mutation::Insert(p, v)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..64, any::<usize>())
            .prop_map(|(p, n, a)| Mutation::Duplicate(p, n, a)),
        (any::<usize>(), 0..EXTREMES.len()).prop_map(|(p, e)| Mutation::Number(p, e)),
    ]
}

fn apply(mut m: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for x in mutations {
        let len = m.len().max(1);
        match x {
            Mutation::Flip(p, b) => {
                if let Some(c) = m.get_mut(p % len) {
                    *c ^= 1 << b;
                }
            }
            Mutation::Insert(p, v) => {
                let at = (p % (m.len() + 1)).min(m.len());
                m.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(p, n) => {
                let at = (p % len).min(m.len());
                let end = (at + n).min(m.len());
                m.drain(at..end);
            }
            Mutation::Truncate(p) => m.truncate(p % len),
            Mutation::Duplicate(p, n, a) => {
                let at = (p % len).min(m.len());
                let run: Vec<u8> = m[at..(at + n).min(m.len())].to_vec();
                let to = (a % (m.len() + 1)).min(m.len());
                m.splice(to..to, run);
            }
            Mutation::Number(p, e) => {
                let from = p % len;
                if let Some(start) = m.iter().skip(from).position(u8::is_ascii_digit) {
                    let start = from + start;
                    let end = m[start..]
                        .iter()
                        .position(|c| !c.is_ascii_digit())
                        .map_or(m.len(), |n| start + n);
                    m.splice(start..end, EXTREMES[*e].bytes());
                }
            }
        }
    }
    m
}

/// Positions are within the message and each reported once; kept and failed add up to at
/// most the message's elements (a message may also fail as a whole).
fn check_positions<T>(d: &Decoded<T>) {
    let positions: BTreeSet<usize> = d.errors.iter().map(|(i, _)| *i).collect();
    assert_eq!(positions.len(), d.errors.len(), "a position reported twice");
    let total = d.items.len() + d.errors.len();
    assert!(
        positions.iter().all(|&i| i < total),
        "an error position beyond the message's {total} elements: {positions:?}"
    );
    assert!(total > 0, "an empty result must be an error");
}

fn check_point(p: &MetricPoint) {
    assert!(p.validate().is_ok(), "{p:?}");
    assert!(bounds().check(p.timestamp, NOW, "timestamp").is_ok());
    assert!(LIMITS.check_name("service", &p.service).is_ok());
    assert!(LIMITS.check_name("name", &p.name).is_ok());
    assert!(LIMITS.check_name("unit", &p.unit).is_ok());
    assert!(LIMITS.check_attributes("tags", &p.tags).is_ok());
}

fn check_span(s: &Span) {
    assert!(s.validate().is_ok(), "{s:?}");
    assert!(s.end_ns >= s.start_ns);
    assert!(bounds()
        .check(s.start_ns.div_euclid(1_000_000), NOW, "start_ns")
        .is_ok());
    assert!(bounds().check(s.event_time_ms(), NOW, "end_ns").is_ok());
    assert!(LIMITS.check_name("service", &s.service).is_ok());
    assert!(LIMITS.check_name("name", &s.name).is_ok());
    assert!(LIMITS.check_attributes("attributes", &s.attributes).is_ok());
}

fn metrics(bytes: &[u8], encoding: Encoding) {
    if let Ok(d) = decode_metric_message(Some(bytes), encoding, &bounds(), &LIMITS, NOW) {
        check_positions(&d);
        d.items.iter().for_each(check_point);
    }
}

fn spans(bytes: &[u8]) {
    if let Ok(d) = decode_span_message(Some(bytes), &bounds(), &LIMITS, NOW) {
        check_positions(&d);
        d.items.iter().for_each(check_span);
    }
}

fn action(bytes: &[u8]) {
    if let Ok(a) = ActionRecord::decode(Some(bytes)) {
        assert!(!a.target.trim().is_empty() && a.executed_at > 0, "{a:?}");
    }
}

fn metric_json_seeds() -> Vec<Vec<u8>> {
    let t = NOW - 1_000;
    vec![
        format!(r#"{{"timestamp":{t},"service":"cart","name":"latency","value":12.5,"unit":"ms","tags":{{"route":"/pay"}}}}"#).into_bytes(),
        format!(r#"[{{"timestamp":{t},"service":"a","name":"m","value":1}},{{"timestamp":"2027-01-15T08:00:00Z","service":"b","name":"m","value":-2.5e3}},{{"timestamp":{t},"service":"c","name":"m","value":3,"histogram":{{"count":3,"sum":6,"min":1,"max":3,"buckets":[[1,1],[2,1],[3,1]]}}}}]"#).into_bytes(),
    ]
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// The OTLP seed in OTLP JSON.
fn metric_otlp_json_seed() -> Vec<u8> {
    use prost::Message;
    let req = ExportMetricsServiceRequest::decode(metric_otlp_seed().as_slice()).unwrap();
    serde_json::to_vec(&req).unwrap()
}

fn metric_otlp_seed() -> Vec<u8> {
    use prost::Message;
    let ns = (NOW as u64 - 1_000) * 1_000_000;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "cart")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "cpu".into(),
                        unit: "1".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: ns,
                                attributes: vec![kv("host", "h1")],
                                value: Some(number_data_point::Value::AsDouble(0.5)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "latency".into(),
                        unit: "ms".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                time_unix_nano: ns,
                                count: 6,
                                sum: Some(61.0),
                                min: Some(1.0),
                                max: Some(30.0),
                                explicit_bounds: vec![5.0, 10.0],
                                bucket_counts: vec![2, 3, 1],
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn span_seeds() -> Vec<Vec<u8>> {
    let mut g = TraceGenerator::new(&TraceGeneratorConfig {
        rate: 20.0,
        start_ms: NOW - 60_000,
        incidents_per_hour: 30.0,
        seed: 3,
    });
    let trace = g.next_trace();
    [SpanFormat::Json, SpanFormat::Zipkin, SpanFormat::Otlp]
        .iter()
        .map(|f| f.encode(&trace))
        .collect()
}

const ACTION_SEED: &str = r#"{"decision_id":"d-1","target":"checkout","action":"scale","executed_at":1799999999000,"actor":"kubernetes","outcome":"succeeded","detail":"3 -> 5 replicas"}"#;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 400,
        ..ProptestConfig::default()
    }
}

#[test]
fn the_seeds_decode_as_valid_messages() {
    for m in metric_json_seeds() {
        let d = decode_metric_message(Some(&m), Encoding::Auto, &bounds(), &LIMITS, NOW).unwrap();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
    }
    let d = decode_metric_message(
        Some(&metric_otlp_seed()),
        Encoding::Auto,
        &bounds(),
        &LIMITS,
        NOW,
    )
    .unwrap();
    assert!(d.errors.is_empty() && d.items.len() == 2, "{:?}", d.errors);
    // the same as OTLP JSON: the same points
    let j = decode_metric_message(
        Some(&metric_otlp_json_seed()),
        Encoding::Auto,
        &bounds(),
        &LIMITS,
        NOW,
    )
    .unwrap();
    assert_eq!((j.items, j.errors.len()), (d.items, d.errors.len()));
    for m in span_seeds() {
        let d = decode_span_message(Some(&m), &bounds(), &LIMITS, NOW).unwrap();
        assert!(d.errors.is_empty() && !d.items.is_empty(), "{:?}", d.errors);
    }
    assert!(ActionRecord::decode(Some(ACTION_SEED.as_bytes())).is_ok());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_break_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        metrics(&bytes, Encoding::Auto);
        metrics(&bytes, Encoding::Json);
        metrics(&bytes, Encoding::Otlp);
        metrics(&bytes, Encoding::OtlpJson);
        spans(&bytes);
        action(&bytes);
    }

    #[test]
    fn mutated_metric_json_never_breaks_the_decoder(
        seed in 0usize..2,
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        metrics(&apply(metric_json_seeds()[seed].clone(), &mutations), Encoding::Auto);
    }

    #[test]
    fn mutated_metric_otlp_never_breaks_the_decoder(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        metrics(&apply(metric_otlp_seed(), &mutations), Encoding::Otlp);
    }

    #[test]
    fn mutated_metric_otlp_json_never_breaks_the_decoder(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        metrics(&apply(metric_otlp_json_seed(), &mutations), Encoding::Auto);
    }

    #[test]
    fn mutated_spans_never_break_the_decoders(
        seed in 0usize..3,
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        spans(&apply(span_seeds()[seed].clone(), &mutations));
    }

    #[test]
    fn mutated_actions_never_break_the_decoder(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        action(&apply(ACTION_SEED.as_bytes().to_vec(), &mutations));
    }
}
