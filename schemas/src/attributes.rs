//! Series attributes: the values of a configured list of attribute keys that, with the service
//! and the metric name, make a metric series (issue 15, item 4). `http.server.request.duration`
//! of two routes is two series, each with its own windows, quantiles, anomaly state and forecast.
//!
//! A point's attributes are its tags (OTLP data point attributes, APO JSON `tags`) and, for a
//! key the point's tags do not have, its resource's attributes (OTLP resource attributes such as
//! `host.name`). Keys not in the list never split a series. The list defaults to the
//! OpenTelemetry semantic conventions' low-cardinality dimensions
//! ([`DEFAULT_SERIES_ATTRIBUTES`]).
//!
//! In text (Kafka keys, the models' series names) a series is written as Prometheus writes one:
//! `metric{key="value",…}`, keys in order, `\`, `"` and a newline escaped; a series without
//! attributes is its metric name alone, as before attributes split series.

use std::collections::BTreeMap;
use std::fmt::Write;

/// A series' attributes: key → value, in key order.
pub type Attributes = BTreeMap<String, String>;

/// The attribute an overflow series carries (`"true"`), as the OpenTelemetry SDKs mark the
/// series they fold attribute sets past their cardinality limit into.
pub const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

/// The attribute keys that split a series unless configured otherwise: the HTTP, RPC,
/// database and messaging dimensions the OpenTelemetry semantic conventions put on their
/// metrics (with the HTTP ones of the conventions before 1.21, which older SDKs and agents
/// still send), the error type, and the host.
pub const DEFAULT_SERIES_ATTRIBUTES: &[&str] = &[
    "http.route",
    "http.request.method",
    "http.response.status_code",
    "http.method",
    "http.status_code",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "rpc.grpc.status_code",
    "db.system",
    "db.system.name",
    "db.operation.name",
    "db.collection.name",
    "messaging.system",
    "messaging.destination.name",
    "messaging.operation.name",
    "error.type",
    "host.name",
];

/// The attributes of an overflow series.
pub fn overflow_attributes() -> Attributes {
    Attributes::from([(OVERFLOW_ATTRIBUTE.to_string(), "true".to_string())])
}

/// Whether `attributes` are those of an overflow series.
pub fn is_overflow(attributes: &Attributes) -> bool {
    attributes
        .get(OVERFLOW_ATTRIBUTE)
        .is_some_and(|v| v == "true")
}

/// The keys that split series (`--series-attributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesAttributeKeys(Vec<String>);

impl Default for SeriesAttributeKeys {
    fn default() -> Self {
        SeriesAttributeKeys::new(DEFAULT_SERIES_ATTRIBUTES.iter().map(|k| k.to_string()))
    }
}

impl SeriesAttributeKeys {
    /// These keys (sorted, without duplicates or empty keys).
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        let mut keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty()).collect();
        keys.sort();
        keys.dedup();
        SeriesAttributeKeys(keys)
    }

    /// No key: series are (service, metric) only.
    pub fn none() -> Self {
        SeriesAttributeKeys(Vec::new())
    }

    /// The keys, sorted.
    pub fn keys(&self) -> &[String] {
        &self.0
    }

    /// Whether `key` splits series.
    pub fn contains(&self, key: &str) -> bool {
        self.0.binary_search_by(|k| k.as_str().cmp(key)).is_ok()
    }

    /// The series attributes of a point with `tags`: the value of every key it has.
    pub fn select(&self, tags: &BTreeMap<String, String>) -> Attributes {
        let mut out = Attributes::new();
        if tags.is_empty() {
            return out;
        }
        // Walk the shorter of the two sorted lists.
        if tags.len() < self.0.len() {
            for (k, v) in tags {
                if self.contains(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
        } else {
            for k in &self.0 {
                if let Some(v) = tags.get(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        out
    }

    /// Copies into `tags` the attributes of `resource` whose keys split series and that `tags`
    /// does not have (a data point's attribute wins over its resource's).
    pub fn adopt(&self, tags: &mut BTreeMap<String, String>, resource: &[(String, String)]) {
        for (k, v) in resource {
            if self.contains(k) && !tags.contains_key(k) {
                tags.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A series in text, as Prometheus writes one: `metric{key="value",…}`; `metric` alone when
/// it has no attributes.
pub fn series_text(metric: &str, attributes: &Attributes) -> String {
    if attributes.is_empty() {
        return metric.to_string();
    }
    let mut s = String::with_capacity(metric.len() + 16 * attributes.len());
    s.push_str(metric);
    s.push('{');
    for (i, (k, v)) in attributes.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_listed_keys_split_a_series() {
        let keys = SeriesAttributeKeys::default();
        let t = tags(&[
            ("http.route", "/pay"),
            ("http.request.method", "POST"),
            ("user.id", "42"),
            ("k8s.pod.name", "checkout-1"),
        ]);
        assert_eq!(
            keys.select(&t),
            tags(&[("http.request.method", "POST"), ("http.route", "/pay")])
        );
        // Both walks (fewer tags than keys, and more) give the same.
        let few = SeriesAttributeKeys::new(["http.route".to_string()]);
        assert_eq!(few.select(&t), tags(&[("http.route", "/pay")]));
        assert!(SeriesAttributeKeys::none().select(&t).is_empty());
        assert!(keys.select(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_point_attribute_wins_over_its_resource() {
        let keys = SeriesAttributeKeys::default();
        let mut t = tags(&[("host.name", "from-point")]);
        let resource = vec![
            ("host.name".to_string(), "from-resource".to_string()),
            ("service.name".to_string(), "cart".to_string()),
            ("http.route".to_string(), "/r".to_string()),
        ];
        keys.adopt(&mut t, &resource);
        assert_eq!(
            t,
            tags(&[("host.name", "from-point"), ("http.route", "/r")])
        );
    }

    /// Prometheus' text exposition escapes `\`, `"` and newlines in label values.
    #[test]
    fn series_text_is_prometheus_style() {
        assert_eq!(series_text("m", &Attributes::new()), "m");
        let a = tags(&[
            ("http.route", "/a\"b\\c\nd"),
            ("http.request.method", "GET"),
        ]);
        assert_eq!(
            series_text("http.server.request.duration", &a),
            r#"http.server.request.duration{http.request.method="GET",http.route="/a\"b\\c\nd"}"#
        );
        assert!(is_overflow(&overflow_attributes()));
        assert!(!is_overflow(&a));
    }
}
