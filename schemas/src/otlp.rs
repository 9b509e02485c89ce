//! Decoding of OTLP `ExportMetricsServiceRequest`, protobuf or JSON (what the OpenTelemetry
//! Collector's Kafka exporter writes with `encoding: otlp_proto` or `otlp_json`), into
//! [`MetricPoint`]s.
//!
//! - gauge and sum data points become one point each;
//! - histogram data points keep their exact count, sum, min and max and feed their buckets to the
//!   sketch as weighted values (each bucket's midpoint; the open outer buckets use min/max);
//! - cumulative histograms and cumulative monotonic sums (the OpenTelemetry SDKs' default
//!   temporality) carry their stream's running totals ([`Cumulative`]): the metrics job turns
//!   consecutive points of a stream into deltas before they are counted. Cumulative
//!   non-monotonic sums (up-down counters) are sampled values, decoded as gauges;
//! - exponential histograms as [`crate::exponential`] reads them, cumulative ones as running
//!   totals like the explicit ones;
//! - summaries (cumulative by definition) as running totals of their count and sum; their
//!   quantiles are the producer's own (of its own window) and cannot be merged: not used.
//!
//! The service is the resource attribute `service.name`; data point attributes become tags;
//! the resource's attributes go with each point (series attributes a point lacks are taken
//! from them, see [`crate::attributes`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point, metric, number_data_point, ExponentialHistogramDataPoint,
    HistogramDataPoint, NumberDataPoint, SummaryDataPoint,
};
use prost::Message;

use crate::cumulative::{Buckets, Counted, Cumulative, Running, StreamPrefix};
use crate::decoded::Decoded;
use crate::exponential::{Exponential, Range as ExpRange};
use crate::metric::{Histogram, MetricPoint, SchemaError};

/// OTLP's `AGGREGATION_TEMPORALITY_CUMULATIVE`.
const CUMULATIVE: i32 = 2;

/// Nanoseconds since the epoch to milliseconds.
fn ms(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

/// Decodes one OTLP protobuf message. Points that cannot be represented are reported by their
/// position (counting data points in message order).
pub fn decode_metrics(bytes: &[u8]) -> Result<Decoded<MetricPoint>, SchemaError> {
    if bytes.is_empty() {
        return Err(SchemaError::Empty);
    }
    let req = ExportMetricsServiceRequest::decode(bytes)
        .map_err(|e| SchemaError::Protobuf(e.to_string()))?;
    Ok(decode_request(req))
}

/// Decodes one OTLP JSON message (the protobuf JSON mapping the Collector's Kafka exporter
/// writes with `encoding: otlp_json`: lowerCamelCase keys, 64-bit integers as strings, enums
/// as integers), as [`decode_metrics`] decodes its protobuf.
pub fn decode_metrics_json(bytes: &[u8]) -> Result<Decoded<MetricPoint>, SchemaError> {
    let req: ExportMetricsServiceRequest =
        serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(format!("OTLP JSON: {e}")))?;
    Ok(decode_request(req))
}

/// One data point's attributes, time, start time and values.
type Values = (Vec<KeyValue>, u64, u64, Result<Running, SchemaError>);

/// The [`Values`] of the data points of `$data`, each read by `$read` (taking the point, so
/// that its vectors move rather than copy) and made values by `$into` (any kind of data point:
/// they share their attribute and time fields).
macro_rules! values {
    ($data:expr, $read:expr, $into:expr) => {
        $data
            .data_points
            .into_iter()
            .map(|mut dp| {
                let attrs = std::mem::take(&mut dp.attributes);
                let times = (dp.time_unix_nano, dp.start_time_unix_nano);
                (attrs, times.0, times.1, $read(dp).map($into))
            })
            .collect::<Vec<Values>>()
    };
}

/// The points of one request, taken apart: its strings and vectors move into the points.
fn decode_request(req: ExportMetricsServiceRequest) -> Decoded<MetricPoint> {
    let mut out = Decoded::default();
    let mut index = 0usize;
    for rm in req.resource_metrics {
        let service = service_name(rm.resource.as_ref());
        let resource: Arc<[(String, String)]> = rm
            .resource
            .map(|r| tags(r.attributes).into_iter().collect())
            .unwrap_or_default();
        let shared = (!resource.is_empty()).then(|| resource.clone());
        // The resource's part of its streams' ids, hashed once.
        let resource_prefix = StreamPrefix::of_resource(&resource);
        for sm in rm.scope_metrics {
            let scope = sm
                .scope
                .as_ref()
                .map(|s| (s.name.as_str(), s.version.as_str()))
                .unwrap_or(("", ""));
            for m in sm.metrics {
                let Some(data) = m.data else {
                    out.errors.push((
                        index,
                        SchemaError::Invalid {
                            field: "data",
                            reason: format!("metric `{}` has no data", m.name),
                        },
                    ));
                    index += 1;
                    continue;
                };
                let prefix = resource_prefix.with_metric(scope, &m.name);
                let base = |attrs: Vec<KeyValue>, t: u64| MetricPoint {
                    timestamp: ms(t),
                    service: service.clone(),
                    name: m.name.clone(),
                    value: 0.0,
                    unit: m.unit.clone(),
                    tags: tags(attrs),
                    histogram: None,
                    cumulative: None,
                    resource: shared.clone(),
                };
                // A cumulative point: its stream's totals, made a delta downstream.
                let running = |attrs: Vec<KeyValue>, t: u64, start: u64, running: Running| {
                    let mut p = base(attrs, t);
                    p.cumulative = Some(Box::new(Cumulative {
                        // the tags in key order, as stream_id sorts them
                        stream: prefix.id(p.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                        start_ms: ms(start),
                        running,
                    }));
                    p
                };
                // Each data point's values (a number, or a histogram's counts), and whether
                // they are its stream's totals since its start.
                let (totals, points): (bool, Vec<Values>) = match data {
                    metric::Data::Gauge(g) => (false, values!(g, number, Running::Sum)),
                    metric::Data::Sum(s) => (
                        s.aggregation_temporality == CUMULATIVE && s.is_monotonic,
                        values!(s, number, Running::Sum),
                    ),
                    metric::Data::Histogram(h) => (
                        h.aggregation_temporality == CUMULATIVE,
                        values!(h, buckets, Running::Histogram),
                    ),
                    metric::Data::ExponentialHistogram(h) => (
                        h.aggregation_temporality == CUMULATIVE,
                        values!(h, exponential, Running::Exponential),
                    ),
                    // A summary's count and sum total its stream since its start, whatever
                    // the point says of its temporality.
                    metric::Data::Summary(s) => (true, values!(s, summary, |r| r)),
                };
                for (attrs, t, start, r) in points {
                    match r {
                        Ok(r) if totals => out.items.push(running(attrs, t, start, r)),
                        Ok(r) => match r.counted() {
                            Counted::Value(v) => out.items.push(MetricPoint {
                                value: v,
                                ..base(attrs, t)
                            }),
                            Counted::Histogram(Some(h)) => {
                                let mut p = base(attrs, t);
                                p.value = h.sum / h.count as f64;
                                p.histogram = Some(h);
                                out.items.push(p);
                            }
                            // An empty histogram carries no observation: nothing to count.
                            Counted::Histogram(None) => {}
                        },
                        Err(e) => out.errors.push((index, e)),
                    }
                    index += 1;
                }
            }
        }
    }
    out
}

/// A summary data point's count and sum, its sum finite.
fn summary(dp: SummaryDataPoint) -> Result<Running, SchemaError> {
    if !dp.sum.is_finite() {
        return Err(SchemaError::Invalid {
            field: "summary",
            reason: format!("sum {} is not finite", dp.sum),
        });
    }
    Ok(Running::Summary {
        count: dp.count,
        sum: dp.sum,
    })
}

/// A number data point's value.
fn number(dp: NumberDataPoint) -> Result<f64, SchemaError> {
    match dp.value {
        Some(number_data_point::Value::AsDouble(v)) => Ok(v),
        Some(number_data_point::Value::AsInt(v)) => Ok(v as f64),
        None => Err(SchemaError::Invalid {
            field: "value",
            reason: "number data point without a value".into(),
        }),
    }
}

/// An explicit-bucket histogram data point's counts, checked: as many counts as buckets (or
/// none), finite increasing bounds, counts that add up to the count, a sum when it has values.
fn buckets(dp: HistogramDataPoint) -> Result<Buckets, SchemaError> {
    let invalid = |reason: String| SchemaError::Invalid {
        field: "histogram",
        reason,
    };
    let bounds = &dp.explicit_bounds;
    if !dp.bucket_counts.is_empty() && dp.bucket_counts.len() != bounds.len() + 1 {
        return Err(invalid(format!(
            "{} bucket counts for {} bounds",
            dp.bucket_counts.len(),
            bounds.len()
        )));
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) || bounds.iter().any(|b| !b.is_finite()) {
        return Err(invalid(
            "explicit bounds are not finite and increasing".into(),
        ));
    }
    let total: u64 = dp.bucket_counts.iter().sum();
    if total != dp.count {
        return Err(invalid(format!(
            "bucket counts sum to {total}, count is {}",
            dp.count
        )));
    }
    let sum = match dp.sum {
        Some(s) => s,
        None if dp.count == 0 => 0.0,
        None => return Err(invalid("histogram without sum".into())),
    };
    Ok(Buckets {
        bounds: dp.explicit_bounds,
        counts: dp.bucket_counts,
        count: dp.count,
        sum,
        min: dp.min,
        max: dp.max,
    })
}

/// An exponential histogram data point's counts, checked ([`Exponential::check`]; a sum
/// when it has values).
fn exponential(dp: ExponentialHistogramDataPoint) -> Result<Exponential, SchemaError> {
    let range = |b: Option<exponential_histogram_data_point::Buckets>| {
        b.map(|b| ExpRange {
            offset: b.offset,
            counts: b.bucket_counts,
        })
        .unwrap_or_default()
    };
    let invalid = |reason: String| SchemaError::Invalid {
        field: "exponential_histogram",
        reason,
    };
    let sum = match dp.sum {
        Some(s) => s,
        None if dp.count == 0 => 0.0,
        None => return Err(invalid("exponential histogram without sum".into())),
    };
    let e = Exponential {
        scale: dp.scale,
        zero_count: dp.zero_count,
        zero_threshold: dp.zero_threshold,
        positive: range(dp.positive),
        negative: range(dp.negative),
        count: dp.count,
        sum,
        min: dp.min,
        max: dp.max,
    };
    e.check().map_err(invalid)?;
    Ok(e)
}

/// What a window counts of explicit buckets (checked as [`buckets`] checks them): bucket i
/// covers (bounds[i-1], bounds[i]]; its representative value is the midpoint, clamped into
/// [min, max] when those are known; the open ends are the observed min/max or the nearest
/// bound. `None` when they hold no value.
pub fn histogram_of(b: &Buckets) -> Option<Histogram> {
    if b.count == 0 {
        return None;
    }
    let first = b.counts.iter().position(|&c| c > 0)?;
    let last = b.counts.iter().rposition(|&c| c > 0)?;
    let bounds = &b.bounds;
    let lower = |i: usize| if i == 0 { None } else { Some(bounds[i - 1]) };
    let upper = |i: usize| bounds.get(i).copied();
    let mean = b.sum / b.count as f64;
    let min = b
        .min
        .or_else(|| lower(first))
        .or_else(|| upper(first))
        .unwrap_or(mean);
    let max = b
        .max
        .or_else(|| upper(last))
        .or_else(|| lower(last))
        .unwrap_or(mean);
    let mut bound = 0.0f64;
    let buckets = b
        .counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(i, &c)| {
            let lo = lower(i).unwrap_or(min).max(min);
            let hi = upper(i).unwrap_or(max).min(max);
            let v = if lo <= hi { (lo + hi) / 2.0 } else { hi };
            bound = bound.max(crate::metric::bucket_bound(lo, v, hi));
            (v, c)
        })
        .collect();
    Some(Histogram {
        count: b.count,
        sum: b.sum,
        min,
        max,
        buckets,
        bucket_bound: bound,
    })
}

/// Attributes as tags, their keys and string values moved, not copied.
fn tags(attrs: Vec<KeyValue>) -> BTreeMap<String, String> {
    attrs
        .into_iter()
        .filter_map(|kv| kv.value.map(|v| (kv.key, into_string(v))))
        .collect()
}

/// A value as text, a string value moved.
fn into_string(v: AnyValue) -> String {
    match v.value {
        Some(any_value::Value::StringValue(s)) => s,
        other => any_to_string(&AnyValue { value: other }),
    }
}

/// The resource attribute `service.name` (empty when absent).
pub(crate) fn service_name(
    resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .map(any_to_string)
        .unwrap_or_default()
}

pub(crate) fn any_to_string(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram as OtlpHistogram, Metric, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn request(metrics: Vec<Metric>) -> Vec<u8> {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "cart")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn gauge_and_histogram_decode() {
        let bytes = request(vec![
            Metric {
                name: "cpu".into(),
                unit: "1".into(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: 5_000_000_000,
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
                data: Some(metric::Data::Histogram(OtlpHistogram {
                    data_points: vec![HistogramDataPoint {
                        time_unix_nano: 6_000_000_000,
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
        ]);
        let d = decode_metrics(&bytes).unwrap();
        assert!(d.errors.is_empty());
        assert_eq!(d.items.len(), 2);
        assert_eq!(d.items[0].service, "cart");
        assert_eq!(d.items[0].timestamp, 5000);
        assert_eq!(d.items[0].value, 0.5);
        assert_eq!(d.items[0].tags["host"], "h1");
        let h = d.items[1].histogram.as_ref().unwrap();
        assert_eq!((h.count, h.sum, h.min, h.max), (6, 61.0, 1.0, 30.0));
        assert_eq!(h.buckets, vec![(3.0, 2), (7.5, 3), (20.0, 1)]);
        // [1, 5] by 3: 3 is 200 % above 1; [5, 10] by 7.5: 50 %; [10, 30] by 20: 100 %.
        assert_eq!(h.bucket_bound, 2.0);
    }

    #[test]
    fn inconsistent_histogram_is_reported() {
        let bytes = request(vec![Metric {
            name: "latency".into(),
            data: Some(metric::Data::Histogram(OtlpHistogram {
                data_points: vec![HistogramDataPoint {
                    count: 9,
                    sum: Some(1.0),
                    explicit_bounds: vec![5.0],
                    bucket_counts: vec![2, 3],
                    ..Default::default()
                }],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        }]);
        let d = decode_metrics(&bytes).unwrap();
        assert!(d.items.is_empty());
        assert_eq!(d.errors[0].1.reason(), "invalid_field");
    }

    #[test]
    fn cumulative_histograms_and_counters_carry_their_streams_running_totals() {
        use opentelemetry_proto::tonic::metrics::v1::Sum;
        let number = |v: f64| NumberDataPoint {
            time_unix_nano: 5_000_000_000,
            start_time_unix_nano: 1_000_000_000,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        let sum = |name: &str, temporality: i32, monotonic: bool, v: f64| Metric {
            name: name.into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![number(v)],
                aggregation_temporality: temporality,
                is_monotonic: monotonic,
            })),
            ..Default::default()
        };
        let histogram = |temporality: i32| Metric {
            name: "latency".into(),
            data: Some(metric::Data::Histogram(OtlpHistogram {
                data_points: vec![HistogramDataPoint {
                    count: 2,
                    sum: Some(3.0),
                    explicit_bounds: vec![5.0],
                    bucket_counts: vec![2, 0],
                    ..Default::default()
                }],
                aggregation_temporality: temporality,
            })),
            ..Default::default()
        };
        let d = decode_metrics(&request(vec![
            sum("requests", 2, true, 1200.0),
            histogram(2),
            sum("queue.size", 2, false, 7.0),
            sum("requests", 1, true, 30.0),
            histogram(1),
        ]))
        .unwrap();
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let got: Vec<(&str, f64, bool)> = d
            .items
            .iter()
            .map(|p| (p.name.as_str(), p.value, p.cumulative.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("requests", 0.0, true),
                ("latency", 0.0, true),
                // the up-down counter is a sampled value; deltas as before
                ("queue.size", 7.0, false),
                ("requests", 30.0, false),
                ("latency", 1.5, false),
            ]
        );
        // the cumulative points carry their stream's totals and start, for the job to
        // difference
        let c = d.items[0].cumulative.as_deref().unwrap();
        assert_eq!(
            (c.start_ms, &c.running),
            (1_000, &crate::cumulative::Running::Sum(1200.0))
        );
        let resource = vec![("service.name".to_string(), "cart".to_string())];
        assert_eq!(
            c.stream,
            crate::cumulative::stream_id(&resource, ("", ""), "requests", &[])
        );
        let h = d.items[1].cumulative.as_deref().unwrap();
        assert_eq!(
            h.running,
            crate::cumulative::Running::Histogram(Buckets {
                bounds: vec![5.0],
                counts: vec![2, 0],
                count: 2,
                sum: 3.0,
                min: None,
                max: None,
            })
        );
        assert_ne!(h.stream, c.stream);
        assert!(d.items[1].histogram.is_none(), "no histogram until a delta");
    }

    #[test]
    fn exponential_histograms_and_summaries_decode() {
        use opentelemetry_proto::tonic::metrics::v1::{
            exponential_histogram_data_point::Buckets as ExpBuckets, ExponentialHistogram, Summary,
            SummaryDataPoint,
        };
        let exp = |temporality: i32, count: u64| Metric {
            name: "latency".into(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    time_unix_nano: 5_000_000_000,
                    start_time_unix_nano: 1_000_000_000,
                    count,
                    sum: Some(5.5),
                    scale: 1,
                    zero_count: 0,
                    positive: Some(ExpBuckets {
                        offset: 0,
                        bucket_counts: vec![2, 0, 0, 1],
                    }),
                    min: Some(1.2),
                    max: Some(3.0),
                    ..Default::default()
                }],
                aggregation_temporality: temporality,
            })),
            ..Default::default()
        };
        let summary = Metric {
            name: "gc".into(),
            data: Some(metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: 5_000_000_000,
                    start_time_unix_nano: 1_000_000_000,
                    count: 4,
                    sum: 10.0,
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        let d = decode_metrics(&request(vec![
            exp(1, 3),
            exp(2, 3),
            exp(1, 4), // counts add up to 3
            summary,
        ]))
        .unwrap();
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].0, 2);
        assert!(
            d.errors[0].1.to_string().contains("count is 4"),
            "{}",
            d.errors[0].1
        );
        // delta: a window's histogram at once
        let h = d.items[0].histogram.as_ref().unwrap();
        assert_eq!((h.count, h.sum, h.min, h.max), (3, 5.5, 1.2, 3.0));
        assert_eq!(d.items[0].value, 5.5 / 3.0);
        // cumulative, and the summary: running totals
        assert!(matches!(
            d.items[1].cumulative.as_deref().map(|c| &c.running),
            Some(crate::cumulative::Running::Exponential(e)) if e.count == 3 && e.scale == 1
        ));
        assert_eq!(
            d.items[2].cumulative.as_deref().map(|c| &c.running),
            Some(&crate::cumulative::Running::Summary {
                count: 4,
                sum: 10.0
            })
        );
    }

    /// The OTLP specification's own JSON example of metrics
    /// (opentelemetry-proto, `examples/metrics.json`), its scope attributes left out.
    const SPEC_METRICS_JSON: &str = r#"{"resourceMetrics": [{
      "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
      "scopeMetrics": [{
        "scope": {"name": "my.library", "version": "1.0.0"},
        "metrics": [
          {"name": "my.counter", "unit": "1", "description": "I`m a Counter",
           "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [
             {"asDouble": 5, "startTimeUnixNano": 1544712660300000000,
              "timeUnixNano": 1544712660300000000,
              "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "some value"}}]}]}},
          {"name": "my.gauge", "unit": "1", "description": "I`m a Gauge",
           "gauge": {"dataPoints": [
             {"asDouble": 10, "timeUnixNano": 1544712660300000000,
              "attributes": [{"key": "my.gauge.attr", "value": {"stringValue": "some value"}}]}]}},
          {"name": "my.histogram", "unit": "1", "description": "I`m a Histogram",
           "histogram": {"aggregationTemporality": 1, "dataPoints": [
             {"startTimeUnixNano": 1544712660300000000, "timeUnixNano": 1544712660300000000,
              "count": 3, "sum": 3, "bucketCounts": [1,1,1], "explicitBounds": [1],
              "min": 1, "max": 1,
              "attributes": [{"key": "my.histogram.attr", "value": {"stringValue": "some value"}}]}]}}
        ]}]}]}"#;

    #[test]
    fn the_specifications_json_example_decodes_as_its_protobuf_does() {
        let d = decode_metrics_json(SPEC_METRICS_JSON.as_bytes()).unwrap();
        let got: Vec<(&str, &str, f64, i64)> = d
            .items
            .iter()
            .map(|p| (p.service.as_str(), p.name.as_str(), p.value, p.timestamp))
            .collect();
        assert_eq!(
            got,
            [
                ("my.service", "my.counter", 5.0, 1_544_712_660_300),
                ("my.service", "my.gauge", 10.0, 1_544_712_660_300)
            ]
        );
        assert_eq!(d.items[0].tags["my.counter.attr"], "some value");
        // the example's histogram has three counts for one bound: not a histogram OTLP allows
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].0, 2);
        assert!(d.errors[0]
            .1
            .to_string()
            .contains("3 bucket counts for 1 bounds"));
        // the same request as protobuf: the same points and errors
        let req: ExportMetricsServiceRequest = serde_json::from_str(SPEC_METRICS_JSON).unwrap();
        let p = decode_metrics(&req.encode_to_vec()).unwrap();
        assert_eq!(p.items, d.items);
        assert_eq!(p.errors.len(), 1);
        // 64-bit integers as strings, as the mapping writes them
        let as_strings = SPEC_METRICS_JSON.replace(
            "\"timeUnixNano\": 1544712660300000000",
            "\"timeUnixNano\": \"1544712660300000000\"",
        );
        assert_eq!(
            decode_metrics_json(as_strings.as_bytes()).unwrap().items,
            d.items
        );
        // not OTLP JSON: an error that says so
        let e = decode_metrics_json(br#"{"resourceMetrics": 5}"#).unwrap_err();
        assert!(e.to_string().contains("OTLP JSON"), "{e}");
    }

    #[test]
    fn garbage_is_a_protobuf_error() {
        assert!(matches!(
            decode_metrics(b"\xff\xff\xff\xff"),
            Err(SchemaError::Protobuf(_))
        ));
    }
}
