//! The metric point record and its APO JSON encoding.
//!
//! APO JSON is either one object or an array of objects:
//!
//! ```json
//! {"timestamp": 1764194400123, "service": "checkout", "name": "http.server.duration",
//!  "value": 12.5, "unit": "ms", "tags": {"route": "/pay"}}
//! ```
//!
//! `timestamp` is milliseconds since the Unix epoch (an integer) or an RFC 3339 string.

use crate::decoded::Decoded;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cumulative::Cumulative;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

/// Why a message or a point could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SchemaError {
    #[error("empty message")]
    /// The message is empty.
    Empty,
    #[error("invalid JSON: {0}")]
    /// The JSON is malformed.
    Json(String),
    #[error("invalid protobuf: {0}")]
    /// The protobuf is malformed.
    Protobuf(String),
    /// A record's field has a value that cannot be used.
    #[error("invalid field `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    #[error("unsupported: {0}")]
    /// A well-formed record this build cannot use.
    Unsupported(String),
    /// A record's field is larger than the configured limit (its value is not repeated here).
    #[error("field `{field}` is {size} {unit}, more than the limit of {limit}")]
    TooLarge {
        /// The field (`service`, `name`, `tags`, an attribute's key or value, …).
        field: &'static str,
        /// Its size.
        size: usize,
        /// The limit it breaks.
        limit: usize,
        /// What is counted: `bytes` or `entries`.
        unit: &'static str,
    },
}

impl SchemaError {
    /// The short machine-readable reason written to the dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            SchemaError::Empty => "empty",
            SchemaError::Json(_) => "invalid_json",
            SchemaError::Protobuf(_) => "invalid_protobuf",
            SchemaError::Invalid { .. } => "invalid_field",
            SchemaError::Unsupported(_) => "unsupported",
            SchemaError::TooLarge { .. } => "too_large",
        }
    }
}

/// Pre-aggregated values from an OTLP histogram data point: they feed the window's count, sum,
/// min and max exactly and its sketch as weighted values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Histogram {
    /// Observations in the histogram.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// (representative value, count) per non-empty bucket.
    pub buckets: Vec<(f64, u64)>,
    /// The largest relative error of a bucket's representative value against any value its
    /// bucket can hold ([`bucket_bound`]); 0 (the default) when the values are exact.
    /// `f64::MAX` when a bucket spans zero: then there is no relative bound.
    #[serde(default)]
    pub bucket_bound: f64,
}

/// The largest relative error of `v` standing for any value in `[lo, hi]`: the larger of its
/// distances to the ends relative to them, since |v − x| / |x| is largest at an end when the
/// bucket does not hold zero; `f64::MAX` when it does (no relative bound); 0 for a point.
pub fn bucket_bound(lo: f64, v: f64, hi: f64) -> f64 {
    if lo >= hi {
        return 0.0;
    }
    if lo <= 0.0 && hi >= 0.0 {
        return f64::MAX;
    }
    ((v - lo).abs() / lo.abs()).max((hi - v).abs() / hi.abs())
}

/// One observation of one metric of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricPoint {
    /// Event time, milliseconds since the Unix epoch (an RFC 3339 string is accepted too).
    #[serde(deserialize_with = "de_timestamp")]
    #[schemars(with = "TimestampSchema")]
    pub timestamp: i64,
    /// The emitting service (OpenTelemetry `service.name`).
    pub service: String,
    /// The metric name.
    pub name: String,
    /// The observed value; must be finite.
    pub value: f64,
    /// Unit of the value (UCUM, as OpenTelemetry uses), empty when unknown.
    #[serde(default)]
    pub unit: String,
    /// Dimensions: those whose keys are series attributes (`--series-attributes`, see
    /// [`crate::attributes`]) split the series; the others do not.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Present when the point is an OTLP histogram data point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    /// Present when the point is a cumulative OTLP point: its stream's running totals, which
    /// the pipeline turns into a delta against the stream's previous point (its `value` and
    /// `histogram` are unset until then). Not part of APO JSON.
    #[serde(skip)]
    #[schemars(skip)]
    pub cumulative: Option<Box<Cumulative>>,
    /// The attributes of the resource that sent the point (OTLP), shared by its points: the
    /// series attributes a point's tags lack are taken from them. Not part of APO JSON.
    #[serde(skip)]
    #[schemars(skip)]
    pub resource: Option<Arc<[(String, String)]>>,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum TimestampSchema {
    Millis(i64),
    Rfc3339(String),
}

fn de_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ts {
        Int(i64),
        Float(f64),
        Text(String),
    }
    match Ts::deserialize(d)? {
        Ts::Int(v) => Ok(v),
        Ts::Float(v) if v.is_finite() && v.fract() == 0.0 => Ok(v as i64),
        Ts::Float(v) => Err(serde::de::Error::custom(format!(
            "timestamp {v} is not a whole number of milliseconds"
        ))),
        Ts::Text(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| serde::de::Error::custom(format!("timestamp `{s}`: {e}"))),
    }
}

impl MetricPoint {
    /// Checks the fields every consumer relies on. The time bound lives in ingest, which knows
    /// the clock and the configured skew.
    pub fn validate(&self) -> Result<(), SchemaError> {
        if self.service.trim().is_empty() {
            return Err(SchemaError::Invalid {
                field: "service",
                reason: "missing or empty".into(),
            });
        }
        if self.name.trim().is_empty() {
            return Err(SchemaError::Invalid {
                field: "name",
                reason: "missing or empty".into(),
            });
        }
        if !self.value.is_finite() {
            return Err(SchemaError::Invalid {
                field: "value",
                reason: format!("{} is not finite", self.value),
            });
        }
        if let Some(h) = &self.histogram {
            if !(h.sum.is_finite() && h.min.is_finite() && h.max.is_finite()) {
                return Err(SchemaError::Invalid {
                    field: "histogram",
                    reason: "non-finite sum, min or max".into(),
                });
            }
            if h.buckets.iter().any(|(v, _)| !v.is_finite()) {
                return Err(SchemaError::Invalid {
                    field: "histogram",
                    reason: "non-finite bucket value".into(),
                });
            }
        }
        if let Some(c) = &self.cumulative {
            use crate::cumulative::Running;
            let (sum, min, max) = match &c.running {
                Running::Sum(v) => (*v, None, None),
                Running::Histogram(b) => (b.sum, b.min, b.max),
                Running::Exponential(e) => (e.sum, e.min, e.max),
                Running::Summary { sum, .. } => (*sum, None, None),
            };
            let finite =
                sum.is_finite() && min.is_none_or(f64::is_finite) && max.is_none_or(f64::is_finite);
            if !finite {
                return Err(SchemaError::Invalid {
                    field: "value",
                    reason: "a cumulative total, min or max is not finite".into(),
                });
            }
        }
        Ok(())
    }
}

/// Decodes APO JSON: one object, or an array of objects. A malformed document is an error as a
/// whole; in a well-formed array, each element that is not a valid point is reported by index.
pub fn decode_json(bytes: &[u8]) -> Result<Decoded<MetricPoint>, SchemaError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(SchemaError::Empty),
        Some(b'[') => {
            // Fast path: the whole array at once. Only when it fails is it parsed element by
            // element, to tell the good points from the bad.
            if let Ok(points) = serde_json::from_slice::<Vec<MetricPoint>>(bytes) {
                return Ok(Decoded::all(points));
            }
            let items: Vec<&serde_json::value::RawValue> =
                serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(e.to_string()))?;
            let mut out = Decoded::default();
            out.items.reserve(items.len());
            for (i, raw) in items.into_iter().enumerate() {
                let p = serde_json::from_str::<MetricPoint>(raw.get())
                    .map_err(|e| SchemaError::Json(e.to_string()));
                out.push(i, p);
            }
            Ok(out)
        }
        Some(_) => {
            let p: MetricPoint =
                serde_json::from_slice(bytes).map_err(|e| SchemaError::Json(e.to_string()))?;
            Ok(Decoded::all(vec![p]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_object_and_array_and_rfc3339() {
        let one = br#"{"timestamp":1000,"service":"a","name":"m","value":1.5}"#;
        let d = decode_json(one).unwrap();
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].timestamp, 1000);
        assert_eq!(d.items[0].unit, "");

        let arr = br#"[{"timestamp":"1970-01-01T00:00:02Z","service":"a","name":"m","value":2},
                       {"timestamp":3,"service":"a","name":"m","value":"x"}]"#;
        let d = decode_json(arr).unwrap();
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].timestamp, 2000);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].0, 1);
    }

    #[test]
    fn rejects_garbage_truncation_and_empty() {
        assert_eq!(decode_json(b"  ").unwrap_err(), SchemaError::Empty);
        assert!(matches!(
            decode_json(br#"{"timestamp":1,"serv"#),
            Err(SchemaError::Json(_))
        ));
        assert!(matches!(
            decode_json(b"\x00\x01"),
            Err(SchemaError::Json(_))
        ));
    }

    #[test]
    fn validation_catches_missing_service_and_non_finite() {
        let mut p = MetricPoint {
            timestamp: 1,
            service: "s".into(),
            name: "n".into(),
            value: 1.0,
            unit: String::new(),
            tags: Default::default(),
            histogram: None,
            cumulative: None,
            resource: None,
        };
        assert!(p.validate().is_ok());
        p.value = f64::NAN;
        assert_eq!(p.validate().unwrap_err().reason(), "invalid_field");
        p.value = 1.0;
        p.service = " ".into();
        assert!(p.validate().is_err());
    }
}
