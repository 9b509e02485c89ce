//! The span record and its APO JSON encoding.
//!
//! APO JSON is one object or an array of objects:
//!
//! ```json
//! {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
//!  "parent_span_id": "53995c3f42cd8ad8", "service": "checkout", "name": "POST /pay",
//!  "kind": "server", "start_ns": 1764194400123000000, "end_ns": 1764194400175000000,
//!  "status": "ok", "attributes": {"http.route": "/pay"}}
//! ```
//!
//! Ids are lowercase hex (OpenTelemetry / W3C trace context): a trace id of 32 digits (a 16-digit
//! Zipkin id is accepted and left-padded with zeros), span ids of 16. Times are Unix nanoseconds.
//! `kind` is one of `internal`, `server`, `client`, `producer`, `consumer` (OTLP's
//! `SPAN_KIND_SERVER` spelling is accepted too; missing: unspecified); `status` is `unset`, `ok`
//! or `error`. `follows_from: true` says the parent does not wait for this span (Jaeger's
//! FOLLOWS_FROM reference); a consumer span whose parent is a producer span is treated so without
//! it.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::SchemaError;

/// A 128-bit trace id, written as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TraceId(pub u128);

/// A 64-bit span id, written as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SpanId(pub u64);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

fn parse_hex(s: &str, max_digits: usize, what: &'static str) -> Result<u128, SchemaError> {
    let bad = |reason: String| SchemaError::Invalid {
        field: what,
        reason,
    };
    if s.is_empty() || s.len() > max_digits {
        return Err(bad(format!("{s:?} is not 1 to {max_digits} hex digits")));
    }
    let v = u128::from_str_radix(s, 16).map_err(|_| bad(format!("{s:?} is not hex")))?;
    if v == 0 {
        return Err(bad("all zeros is not a valid id".into()));
    }
    Ok(v)
}

impl TraceId {
    /// Parses 1 to 32 hex digits (Zipkin's 16-digit ids are left-padded); zero is invalid.
    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        parse_hex(s, 32, "trace_id").map(TraceId)
    }

    /// From OTLP's 16 big-endian bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, SchemaError> {
        let a: [u8; 16] = b.try_into().map_err(|_| SchemaError::Invalid {
            field: "trace_id",
            reason: format!("{} bytes, 16 expected", b.len()),
        })?;
        match u128::from_be_bytes(a) {
            0 => Err(SchemaError::Invalid {
                field: "trace_id",
                reason: "all zeros is not a valid id".into(),
            }),
            v => Ok(TraceId(v)),
        }
    }
}

impl SpanId {
    /// Parses 1 to 16 hex digits; zero is invalid.
    pub fn parse(s: &str) -> Result<Self, SchemaError> {
        parse_hex(s, 16, "span_id").map(|v| SpanId(v as u64))
    }

    /// From OTLP's 8 big-endian bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, SchemaError> {
        let a: [u8; 8] = b.try_into().map_err(|_| SchemaError::Invalid {
            field: "span_id",
            reason: format!("{} bytes, 8 expected", b.len()),
        })?;
        match u64::from_be_bytes(a) {
            0 => Err(SchemaError::Invalid {
                field: "span_id",
                reason: "all zeros is not a valid id".into(),
            }),
            v => Ok(SpanId(v)),
        }
    }
}

macro_rules! hex_serde {
    ($t:ty, $name:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$t>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
        impl JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let mut s = String::json_schema(g);
                s.insert("pattern".into(), "^[0-9a-f]+$".into());
                s
            }
        }
    };
}
hex_serde!(TraceId, "TraceId");
hex_serde!(SpanId, "SpanId");

/// OpenTelemetry span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    #[default]
    /// Not given.
    Unspecified,
    /// Internal work.
    Internal,
    /// Serving a request.
    Server,
    /// Making a request.
    Client,
    /// Sending a message.
    Producer,
    /// Receiving a message.
    Consumer,
}

impl SpanKind {
    /// The spelling the OpenTelemetry `spanmetrics` connector writes in `span.kind`.
    pub fn otel_name(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
            SpanKind::Internal => "SPAN_KIND_INTERNAL",
            SpanKind::Server => "SPAN_KIND_SERVER",
            SpanKind::Client => "SPAN_KIND_CLIENT",
            SpanKind::Producer => "SPAN_KIND_PRODUCER",
            SpanKind::Consumer => "SPAN_KIND_CONSUMER",
        }
    }

    /// Parses `server`, `SERVER` or `SPAN_KIND_SERVER` (and so on).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        Some(match s.strip_prefix("span_kind_").unwrap_or(&s) {
            "unspecified" | "" => SpanKind::Unspecified,
            "internal" => SpanKind::Internal,
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => return None,
        })
    }

    /// From OTLP's enum value.
    pub fn from_otlp(v: i32) -> Self {
        match v {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
}

impl Serialize for SpanKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        })
    }
}

impl<'de> Deserialize<'de> for SpanKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SpanKind::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown span kind {s:?}")))
    }
}

/// OpenTelemetry status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpanStatus {
    #[default]
    /// Not set.
    Unset,
    /// Marked ok.
    Ok,
    /// Failed.
    Error,
}

impl SpanStatus {
    /// The spelling the `spanmetrics` connector writes in `status.code`.
    pub fn otel_name(self) -> &'static str {
        match self {
            SpanStatus::Unset => "STATUS_CODE_UNSET",
            SpanStatus::Ok => "STATUS_CODE_OK",
            SpanStatus::Error => "STATUS_CODE_ERROR",
        }
    }

    /// Parses `unset`, `ok`, `error` in any case, or `STATUS_CODE_OK` and so on.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.to_ascii_lowercase();
        Some(match s.strip_prefix("status_code_").unwrap_or(&s) {
            "unset" | "" => SpanStatus::Unset,
            "ok" => SpanStatus::Ok,
            "error" => SpanStatus::Error,
            _ => return None,
        })
    }
}

impl Serialize for SpanStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            SpanStatus::Unset => "unset",
            SpanStatus::Ok => "ok",
            SpanStatus::Error => "error",
        })
    }
}

impl<'de> Deserialize<'de> for SpanStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SpanStatus::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown span status {s:?}")))
    }
}

/// One span: a timed operation of one service within a trace.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
pub struct Span {
    /// The trace.
    pub trace_id: TraceId,
    /// The span.
    pub span_id: SpanId,
    /// Absent (or null) for a root span.
    #[serde(default)]
    pub parent_span_id: Option<SpanId>,
    /// The emitting service (OpenTelemetry `service.name`).
    pub service: String,
    /// The operation (OpenTelemetry span name).
    pub name: String,
    #[serde(default)]
    /// Its kind.
    pub kind: SpanKind,
    /// Start, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// End, nanoseconds since the Unix epoch; not before the start.
    pub end_ns: i64,
    #[serde(default)]
    /// Its status.
    pub status: SpanStatus,
    /// Span attributes as strings (`peer.service`, `db.system`, `server.address`, …).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The parent does not wait for this span (asynchronous follow-up work).
    #[serde(default)]
    pub follows_from: bool,
    /// How many spans this one stands for: its sampling's adjusted count (1 / its sampling
    /// probability, from OpenTelemetry's `ot=th:` threshold in the W3C tracestate), rounded to
    /// a whole number; 1 when it was not sampled or says nothing.
    #[serde(default = "one")]
    pub adjusted_count: u64,
    /// Spans this one is linked to (OpenTelemetry span links): a CONSUMER span's links to the
    /// PRODUCER spans of the messages it handled, in other traces, make messaging edges of the
    /// service map.
    #[serde(default)]
    pub links: Vec<SpanLink>,
}

/// As JSON (and any human-readable format) a span leaves out the fields at their defaults; in a
/// binary format (bincode: timely's exchange between processes, checkpoints) it writes every
/// field, since such a format reads fields by position.
impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let all = !s.is_human_readable();
        let mut st = s.serialize_struct("Span", 13)?;
        st.serialize_field("trace_id", &self.trace_id)?;
        st.serialize_field("span_id", &self.span_id)?;
        if all || self.parent_span_id.is_some() {
            st.serialize_field("parent_span_id", &self.parent_span_id)?;
        } else {
            st.skip_field("parent_span_id")?;
        }
        st.serialize_field("service", &self.service)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("start_ns", &self.start_ns)?;
        st.serialize_field("end_ns", &self.end_ns)?;
        st.serialize_field("status", &self.status)?;
        if all || !self.attributes.is_empty() {
            st.serialize_field("attributes", &self.attributes)?;
        } else {
            st.skip_field("attributes")?;
        }
        if all || self.follows_from {
            st.serialize_field("follows_from", &self.follows_from)?;
        } else {
            st.skip_field("follows_from")?;
        }
        if all || self.adjusted_count != 1 {
            st.serialize_field("adjusted_count", &self.adjusted_count)?;
        } else {
            st.skip_field("adjusted_count")?;
        }
        if all || !self.links.is_empty() {
            st.serialize_field("links", &self.links)?;
        } else {
            st.skip_field("links")?;
        }
        st.end()
    }
}

/// A link from a span to a span of this or another trace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct SpanLink {
    /// The linked span's trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
}

fn one() -> u64 {
    1
}

/// The adjusted count of a span whose W3C `tracestate` is `tracestate`: 1 / the sampling
/// probability its OpenTelemetry threshold says (`ot=th:HEX`, the rejection threshold's first
/// 1 to 14 hex digits of 56 bits: probability 1 − T / 2^56), rounded to a whole number; 1
/// without a threshold; `None` for a threshold that is not one.
pub fn adjusted_count(tracestate: &str) -> Option<u64> {
    let ot = tracestate
        .split(',')
        .map(str::trim)
        .find_map(|member| member.strip_prefix("ot="));
    let Some(ot) = ot else { return Some(1) };
    let Some(th) = ot.split(';').find_map(|kv| kv.strip_prefix("th:")) else {
        return Some(1);
    };
    if th.is_empty() || th.len() > 14 || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let t = u64::from_str_radix(th, 16).ok()? << (4 * (14 - th.len()));
    let rejected = t as f64 / (1u64 << 56) as f64;
    let adjusted = 1.0 / (1.0 - rejected);
    adjusted
        .is_finite()
        .then(|| adjusted.round().max(1.0) as u64)
}

impl Span {
    /// End less start, ns.
    pub fn duration_ns(&self) -> i64 {
        self.end_ns - self.start_ns
    }

    /// Event time in milliseconds: when the span ended (it is complete, and reported, then).
    pub fn event_time_ms(&self) -> i64 {
        self.end_ns.div_euclid(1_000_000)
    }

    /// Checks what serde cannot: a service, a name, an end not before the start, and an
    /// adjusted count of at least 1.
    pub fn validate(&self) -> Result<(), SchemaError> {
        let bad = |field: &'static str, reason: &str| SchemaError::Invalid {
            field,
            reason: reason.to_string(),
        };
        if self.service.trim().is_empty() {
            return Err(bad("service", "missing or empty"));
        }
        if self.end_ns < self.start_ns {
            return Err(SchemaError::Invalid {
                field: "end_ns",
                reason: format!(
                    "the span ends {} ns before it starts",
                    i128::from(self.start_ns) - i128::from(self.end_ns)
                ),
            });
        }
        if self.parent_span_id == Some(self.span_id) {
            return Err(bad("parent_span_id", "a span cannot be its own parent"));
        }
        if self.adjusted_count == 0 {
            return Err(bad("adjusted_count", "a span stands for at least itself"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timely sends spans between processes with bincode, which reads fields by position: a
    /// span whose defaults were left out did not read back (the trace job could not run on
    /// several processes). JSON still leaves them out.
    #[test]
    fn a_span_goes_through_bincode_whole_and_through_json_compact() {
        let mut s = Span {
            trace_id: TraceId(7),
            span_id: SpanId(9),
            parent_span_id: None,
            service: "cart".into(),
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_ns: 1,
            end_ns: 2,
            status: SpanStatus::Unset,
            attributes: BTreeMap::new(),
            follows_from: false,
            adjusted_count: 1,
            links: Vec::new(),
        };
        let json = serde_json::to_string(&s).unwrap();
        for absent in [
            "parent_span_id",
            "attributes",
            "follows_from",
            "adjusted_count",
            "links",
        ] {
            assert!(!json.contains(absent), "{json}");
        }
        assert_eq!(serde_json::from_str::<Span>(&json).unwrap(), s);
        let bytes = bincode::serialize(&s).unwrap();
        assert_eq!(bincode::deserialize::<Span>(&bytes).unwrap(), s);
        s.parent_span_id = Some(SpanId(3));
        s.attributes.insert("db.system".into(), "postgres".into());
        s.follows_from = true;
        s.adjusted_count = 4;
        s.links.push(SpanLink {
            trace_id: TraceId(1),
            span_id: SpanId(2),
        });
        let bytes = bincode::serialize(&s).unwrap();
        assert_eq!(bincode::deserialize::<Span>(&bytes).unwrap(), s);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Span>(&json).unwrap(), s);
    }

    #[test]
    fn the_adjusted_count_is_one_over_the_thresholds_probability() {
        // OpenTelemetry's probability sampling: rejection threshold T (56 bits, its first hex
        // digits), probability 1 - T / 2^56.
        assert_eq!(adjusted_count(""), Some(1));
        assert_eq!(adjusted_count("vendor=a"), Some(1));
        assert_eq!(adjusted_count("ot=rv:0123456789abcd"), Some(1));
        assert_eq!(adjusted_count("ot=th:0"), Some(1)); // everything kept
        assert_eq!(adjusted_count("ot=th:8"), Some(2)); // T = 2^55: 1/2
        assert_eq!(adjusted_count("ot=th:c"), Some(4)); // 3/4 rejected: 1/4
                                                        // 0xfd70a4 / 2^24 rejected: 167 772 / 16 777 216 kept, about 1 %
        assert_eq!(adjusted_count("ot=th:fd70a4"), Some(100));
        assert_eq!(
            adjusted_count("vendor=a, ot=rv:0123456789abcd;th:e6"),
            Some(10)
        );
        // 0xe6 / 0x100 rejected = 0.8984: 1 / 0.1016 = 9.85 -> 10
        for bad in ["ot=th:", "ot=th:zz", "ot=th:123456789abcdef"] {
            assert_eq!(adjusted_count(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_round_trip_and_reject_bad_values() {
        let t = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // Zipkin's 64-bit trace ids are left-padded.
        assert_eq!(
            TraceId::parse("a3ce929d0e0e4736").unwrap().to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert!(TraceId::parse("").is_err());
        assert!(TraceId::parse("00000000000000000000000000000000").is_err());
        assert!(TraceId::parse("xyz").is_err());
        assert!(TraceId::parse(&"1".repeat(33)).is_err());
        assert!(SpanId::parse("00f067aa0ba902b7").is_ok());
        assert!(SpanId::parse("00f067aa0ba902b7ff").is_err());
        assert!(SpanId::from_bytes(&[0; 8]).is_err());
        assert!(TraceId::from_bytes(&[1; 15]).is_err());
    }

    #[test]
    fn apo_json_span() {
        let s: Span = serde_json::from_str(
            r#"{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
                "service":"checkout","name":"POST /pay","kind":"SPAN_KIND_SERVER",
                "start_ns":1000,"end_ns":3000,"status":"error"}"#,
        )
        .unwrap();
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.status, SpanStatus::Error);
        assert_eq!(s.parent_span_id, None);
        assert_eq!(s.duration_ns(), 2000);
        s.validate().unwrap();
        let back: Span = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let mut bad = s.clone();
        bad.end_ns = 500;
        assert_eq!(bad.validate().unwrap_err().reason(), "invalid_field");
        bad = s.clone();
        bad.service = " ".into();
        assert!(bad.validate().is_err());
    }
}
