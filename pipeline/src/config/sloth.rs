//! Sloth's SLO specs (YAML, `version: prometheus/v1`, or the Kubernetes `PrometheusServiceLevel`
//! resource that wraps one in `spec:`) as the SLO file, beside APO's own TOML.
//!
//! ```yaml
//! version: "prometheus/v1"
//! service: "checkout"
//! labels:
//!   owner: "shop-team"
//! slos:
//!   - name: "requests-availability"
//!     objective: 99.9
//!     description: "Checkout's server spans succeed."
//!     sli:
//!       events:
//!         error_query: sum(rate(traces_span_metrics_calls_total{service_name="checkout",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR"}[{{.window}}]))
//!         total_query: sum(rate(traces_span_metrics_calls_total{service_name="checkout",span_kind="SPAN_KIND_SERVER"}[{{.window}}]))
//!     alerting:
//!       name: CheckoutHighErrorRate
//!       page_alert:
//!         labels:
//!           severity: pageteam
//!   - name: "pay-latency"
//!     objective: 99
//!     sli:
//!       plugin:
//!         id: "apo/latency"
//!         options:
//!           threshold: "800ms"
//!           operations: "POST /pay"
//!           kinds: "server"
//! ```
//!
//! Sloth's SLIs are PromQL; APO evaluates SLOs on the spans themselves, so an SLI is taken as
//! what it means when it can be read that way, and refused with a reason when it cannot:
//!
//! - `events` over the OpenTelemetry Collector's spanmetrics connector (`…calls…` counters with
//!   `status_code="STATUS_CODE_ERROR"` in the error query: availability; `…duration…_bucket` with
//!   `le` subtracted from `…duration…_count`: latency at that bound, in the unit the metric's
//!   name says, milliseconds by default as the connector's). Their `service_name`, `span_name`
//!   and `span_kind` matchers (`=`, or `=~` over an alternation of names) select the spans.
//! - `plugin` with id `apo/availability` or `apo/latency` (option `threshold`, a duration), and
//!   the options `kinds`, `operations` (comma-separated) and `database_only`.
//!
//! The objective (a percentage) is the share of good events, as in Sloth; the service is the
//! spec's. Alert windows are the SRE workbook's, which are also Sloth's defaults for a 30-day
//! period; an SLO whose `page_alert` or `ticket_alert` is disabled still has every burn rate on
//! its records (a warning says so).

use std::collections::BTreeMap;

use apo_dataflow::{Indicator, Objective};
use apo_schemas::SpanKind;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::RunError;

type Result<T, E = RunError> = std::result::Result<T, E>;

/// Whether `text` looks like a Sloth spec rather than APO's TOML.
pub fn is_sloth(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(8)
        .any(|l| {
            l.starts_with("version:") && l.contains("prometheus/v1")
                || l.starts_with("apiVersion:") && l.contains("sloth.slok.dev")
        })
}

#[derive(Deserialize)]
struct Resource {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    spec: Spec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    version: Option<String>,
    service: String,
    /// Accepted, not used (APO's records carry no Prometheus labels).
    #[serde(default, rename = "labels")]
    _labels: IgnoredAny,
    slos: Vec<Slo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Slo {
    name: String,
    objective: f64,
    /// Accepted, not used (the objective's own description says what it measures).
    #[serde(default, rename = "description")]
    _description: IgnoredAny,
    #[serde(default, rename = "labels")]
    _labels: IgnoredAny,
    sli: Sli,
    #[serde(default)]
    alerting: Option<Alerting>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sli {
    events: Option<Events>,
    raw: Option<Raw>,
    plugin: Option<Plugin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Events {
    error_query: String,
    total_query: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    error_ratio_query: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plugin {
    id: String,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

/// Sloth's alerting block: only whether an alert is disabled matters here.
#[derive(Deserialize)]
struct Alerting {
    #[serde(default)]
    page_alert: Option<AlertToggle>,
    #[serde(default)]
    ticket_alert: Option<AlertToggle>,
}

#[derive(Deserialize)]
struct AlertToggle {
    #[serde(default)]
    disable: bool,
}

/// The objectives of the Sloth spec `text`.
pub fn parse(text: &str) -> Result<Vec<Objective>> {
    let yaml = |e: &dyn std::fmt::Display| RunError::Config(format!("Sloth spec: {e}"));
    let spec: Spec = if text
        .lines()
        .any(|l| l.trim_start().starts_with("apiVersion:"))
    {
        let r: Resource = serde_saphyr::from_str(text).map_err(|e| yaml(&e))?;
        if !r.api_version.starts_with("sloth.slok.dev/") || r.kind != "PrometheusServiceLevel" {
            return Err(RunError::Config(format!(
                "Sloth spec: a `{}` of `{}` is not a PrometheusServiceLevel of sloth.slok.dev",
                r.kind, r.api_version
            )));
        }
        r.spec
    } else {
        serde_saphyr::from_str(text).map_err(|e| yaml(&e))?
    };
    if let Some(v) = spec.version.as_deref() {
        if v != "prometheus/v1" {
            return Err(RunError::Config(format!(
                "Sloth spec version `{v}`: only prometheus/v1 is read"
            )));
        }
    }
    if spec.service.trim().is_empty() {
        return Err(RunError::Config("Sloth spec: `service` is empty".into()));
    }
    spec.slos
        .into_iter()
        .map(|s| objective(&spec.service, s))
        .collect()
}

fn objective(service: &str, s: Slo) -> Result<Objective> {
    let what = format!("Sloth SLO `{}`", s.name);
    let bad = |m: String| RunError::Config(format!("{what}: {m}"));
    if s.name.trim().is_empty() {
        return Err(RunError::Config("a Sloth SLO has an empty name".into()));
    }
    if !(s.objective > 0.0 && s.objective < 100.0) {
        return Err(bad(format!(
            "objective {} is not a percentage in (0, 100)",
            s.objective
        )));
    }
    if let Some(a) = &s.alerting {
        let off = |t: &Option<AlertToggle>| t.as_ref().is_some_and(|t| t.disable);
        if off(&a.page_alert) || off(&a.ticket_alert) {
            tracing::warn!(slo = %s.name, "a Sloth alert is disabled: APO still computes every burn rate and names the alert level on each SLO record");
        }
    }
    // A percentage as a share, without the binary fraction 99.9 / 100 leaves (0.9990000000000001).
    let good = (s.objective * 1e10).round() / 1e12;
    let sel = match (&s.sli.events, &s.sli.raw, &s.sli.plugin) {
        (Some(e), None, None) => from_events(e, good).map_err(bad)?,
        (None, None, Some(p)) => from_plugin(p, good).map_err(bad)?,
        (None, Some(r), None) => {
            return Err(bad(format!(
                "its raw SLI `{}` is a ratio APO cannot evaluate on spans: give `events` over \
                 the spanmetrics connector's metrics, or the SLI plugin `apo/availability` or \
                 `apo/latency`",
                r.error_ratio_query
            )))
        }
        _ => {
            return Err(bad(
                "give exactly one of sli.events, sli.raw and sli.plugin".into(),
            ))
        }
    };
    let services = if sel.services.is_empty() {
        vec![service.to_string()]
    } else {
        sel.services
    };
    Ok(Objective {
        name: s.name,
        kinds: sel.kinds,
        operation_prefixes: sel.operations,
        database_only: sel.database_only,
        services,
        indicator: sel.indicator,
    })
}

/// What an SLI selects and what the spans must meet.
struct Selection {
    services: Vec<String>,
    kinds: Vec<SpanKind>,
    operations: Vec<String>,
    database_only: bool,
    indicator: Indicator,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn kinds(names: &[String]) -> Result<Vec<SpanKind>, String> {
    names
        .iter()
        .map(|k| {
            let k = k.trim_start_matches("SPAN_KIND_").to_ascii_lowercase();
            SpanKind::parse(&k).ok_or_else(|| {
                format!("unknown span kind `{k}` (internal, server, client, producer, consumer)")
            })
        })
        .collect()
}

fn from_plugin(p: &Plugin, good: f64) -> Result<Selection, String> {
    for k in p.options.keys() {
        if ![
            "threshold",
            "kinds",
            "operations",
            "database_only",
            "services",
        ]
        .contains(&k.as_str())
        {
            return Err(format!(
                "plugin option `{k}` is not one of threshold, kinds, operations, services, database_only"
            ));
        }
    }
    let opt = |k: &str| p.options.get(k).map(String::as_str).unwrap_or("");
    let indicator = match p.id.as_str() {
        "apo/availability" => Indicator::ErrorRate {
            max_ratio: 1.0 - good,
        },
        "apo/latency" => {
            let t = opt("threshold");
            let d = humantime::parse_duration(t).map_err(|e| {
                format!("apo/latency needs option `threshold`, a duration (e.g. 300ms): `{t}`: {e}")
            })?;
            let threshold_ms = d.as_secs_f64() * 1000.0;
            if threshold_ms <= 0.0 {
                return Err("apo/latency's threshold must be positive".into());
            }
            Indicator::Latency {
                quantile: good,
                threshold_ms,
            }
        }
        other => {
            return Err(format!(
                "SLI plugin `{other}` is not one APO has (apo/availability, apo/latency)"
            ))
        }
    };
    Ok(Selection {
        services: list(opt("services")),
        kinds: kinds(&list(opt("kinds")))?,
        operations: list(opt("operations")),
        database_only: opt("database_only") == "true",
        indicator,
    })
}

/// A metric selector of a query: its name and its label matchers.
#[derive(Debug, PartialEq)]
struct Selector {
    metric: String,
    matchers: BTreeMap<String, (String, String)>,
}

/// Every `name{…}` selector of a PromQL expression (Sloth's `{{.window}}` left alone: it is in
/// a range, not a selector).
fn selectors(q: &str) -> Result<Vec<Selector>, String> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'{' || (i + 1 < b.len() && b[i + 1] == b'{') || (i > 0 && b[i - 1] == b'{') {
            i += 1;
            continue;
        }
        let name_start = q[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |p| p + 1);
        let metric = q[name_start..i].to_string();
        let end = q[i..]
            .find('}')
            .map(|e| i + e)
            .ok_or_else(|| format!("unclosed selector in `{q}`"))?;
        let mut matchers = BTreeMap::new();
        for m in split_matchers(&q[i + 1..end]) {
            let m = m.trim();
            if m.is_empty() {
                continue;
            }
            // The operator is where the label name ends: the first `=` or `!`.
            let at = m
                .find(['=', '!'])
                .ok_or_else(|| format!("matcher `{m}` has no operator"))?;
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| m[at..].starts_with(op))
                .ok_or_else(|| format!("matcher `{m}` has no operator"))?;
            let key = m[..at].trim().to_string();
            let value = m[at + op.len()..].trim().trim_matches('"').to_string();
            matchers.insert(key, (op.to_string(), value));
        }
        out.push(Selector { metric, matchers });
        i = end + 1;
    }
    Ok(out)
}

/// Matchers split at commas outside quotes.
fn split_matchers(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The values a matcher admits: `=` one, `=~` an alternation of literal names.
fn values(key: &str, m: &(String, String)) -> Result<Vec<String>, String> {
    match m.0.as_str() {
        "=" => Ok(vec![m.1.clone()]),
        "=~" if !m.1.chars().any(|c| "()[]*+?.\\^$".contains(c)) => {
            Ok(m.1.split('|').map(str::to_string).collect())
        }
        op => Err(format!(
            "matcher {key}{op}\"{}\" selects what APO cannot say of spans (= or =~ over names only)",
            m.1
        )),
    }
}

fn from_events(e: &Events, good: f64) -> Result<Selection, String> {
    let errs = selectors(&e.error_query)?;
    let totals = selectors(&e.total_query)?;
    let unknown = || {
        format!(
            "its SLI is PromQL over metrics APO does not have (`{}`): APO evaluates SLOs on \
             spans; give events over the spanmetrics connector's calls or duration metrics, or \
             the SLI plugin `apo/availability` or `apo/latency`",
            e.total_query
        )
    };
    let Some(total) = totals.first() else {
        return Err(unknown());
    };
    let is_calls = |m: &str| m.contains("calls");
    let is_duration = |m: &str| m.contains("duration");
    let indicator = if is_calls(&total.metric)
        && errs.iter().any(|s| {
            is_calls(&s.metric)
                && s.matchers.get("status_code").map(|m| m.1.as_str()) == Some("STATUS_CODE_ERROR")
        }) {
        Indicator::ErrorRate {
            max_ratio: 1.0 - good,
        }
    } else if is_duration(&total.metric) && total.metric.ends_with("_count") {
        let bucket = errs
            .iter()
            .find(|s| s.metric.ends_with("_bucket") && s.matchers.contains_key("le"))
            .ok_or_else(unknown)?;
        let le: f64 = bucket.matchers["le"]
            .1
            .parse()
            .map_err(|_| format!("le=\"{}\" is not a number", bucket.matchers["le"].1))?;
        let scale = if bucket.metric.contains("_seconds") {
            1000.0
        } else {
            1.0
        };
        Indicator::Latency {
            quantile: good,
            threshold_ms: le * scale,
        }
    } else {
        return Err(unknown());
    };
    let mut sel = Selection {
        services: Vec::new(),
        kinds: Vec::new(),
        operations: Vec::new(),
        database_only: false,
        indicator,
    };
    for (k, m) in &total.matchers {
        match k.as_str() {
            "service_name" | "service" => sel.services = values(k, m)?,
            "span_name" | "operation" => sel.operations = values(k, m)?,
            "span_kind" => sel.kinds = kinds(&values(k, m)?)?,
            // what the SLO's events are, not which spans
            "le" | "status_code" => {}
            // labels the connector or Prometheus adds, which every span of the service has
            "job" | "instance" | "namespace" => {}
            other => {
                return Err(format!(
                    "label `{other}` selects what APO cannot say of spans (service_name, \
                     span_name, span_kind)"
                ))
            }
        }
    }
    Ok(sel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> String {
        include_str!("sloth.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
                    .to_string()
                    + "\n"
            })
            .collect()
    }

    /// The documented example: availability from spanmetrics events, latency from the plugin.
    #[test]
    fn the_documented_example_reads_as_two_objectives() {
        let text = doc();
        assert!(is_sloth(&text));
        let o = parse(&text).unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].name, "requests-availability");
        assert_eq!(o[0].services, vec!["checkout".to_string()]);
        assert_eq!(o[0].kinds, vec![SpanKind::Server]);
        match o[0].indicator {
            Indicator::ErrorRate { max_ratio } => assert!((max_ratio - 0.001).abs() < 1e-12),
            ref i => panic!("{i:?}"),
        }
        assert_eq!(
            o[1].indicator,
            Indicator::Latency {
                quantile: 0.99,
                threshold_ms: 800.0
            }
        );
        assert_eq!(o[1].operation_prefixes, vec!["POST /pay".to_string()]);
    }

    /// Sloth's own latency example shape over the connector's histogram (seconds), and the
    /// Kubernetes resource form.
    #[test]
    fn latency_events_and_the_kubernetes_resource_read() {
        let text = r#"
apiVersion: sloth.slok.dev/v1
kind: PrometheusServiceLevel
metadata:
  name: cart
spec:
  service: "cart"
  slos:
    - name: "latency"
      objective: 95
      sli:
        events:
          error_query: |
            sum(rate(traces_span_metrics_duration_seconds_count{service_name="cart",span_name=~"GET /cart|POST /cart"}[{{.window}}]))
            -
            sum(rate(traces_span_metrics_duration_seconds_bucket{service_name="cart",span_name=~"GET /cart|POST /cart",le="0.25"}[{{.window}}]))
          total_query: sum(rate(traces_span_metrics_duration_seconds_count{service_name="cart",span_name=~"GET /cart|POST /cart"}[{{.window}}]))
"#;
        assert!(is_sloth(text));
        let o = parse(text).unwrap();
        assert_eq!(o[0].services, vec!["cart".to_string()]);
        assert_eq!(
            o[0].operation_prefixes,
            vec!["GET /cart".to_string(), "POST /cart".to_string()]
        );
        assert_eq!(
            o[0].indicator,
            Indicator::Latency {
                quantile: 0.95,
                threshold_ms: 250.0
            }
        );
    }

    #[test]
    fn what_cannot_be_read_on_spans_is_refused_with_the_reason() {
        let err = |sli: &str| {
            let text = format!(
                "version: prometheus/v1\nservice: s\nslos:\n  - name: x\n    objective: 99\n    sli:\n{sli}"
            );
            parse(&text).unwrap_err().to_string()
        };
        let e = err("      raw:\n        error_ratio_query: sum(rate(x[5m]))\n");
        assert!(e.contains("raw SLI"), "{e}");
        let e = err("      events:\n        error_query: sum(rate(http_requests_total{code=~\"5..\"}[{{.window}}]))\n        total_query: sum(rate(http_requests_total[{{.window}}]))\n");
        assert!(e.contains("metrics APO does not have"), "{e}");
        let e = err("      events:\n        error_query: sum(rate(calls_total{status_code=\"STATUS_CODE_ERROR\",k8s_pod=\"a\"}[{{.window}}]))\n        total_query: sum(rate(calls_total{k8s_pod=\"a\"}[{{.window}}]))\n");
        assert!(e.contains("label `k8s_pod`"), "{e}");
        let e = err("      plugin:\n        id: sloth-common/kubernetes/apiserver/availability\n");
        assert!(e.contains("not one APO has"), "{e}");
        let e = err("      plugin:\n        id: apo/latency\n");
        assert!(e.contains("threshold"), "{e}");
        assert!(!is_sloth("[[objective]]\nname = \"a\"\n"));
    }

    #[test]
    fn selectors_are_read_with_their_matchers() {
        let s = selectors(r#"sum(rate(m_total{a="x,=~y", b=~"p|q"}[{{.window}}])) / n{c!="z"}"#)
            .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].metric, "m_total");
        assert_eq!(s[0].matchers["a"], ("=".to_string(), "x,=~y".to_string()));
        assert_eq!(s[0].matchers["b"], ("=~".to_string(), "p|q".to_string()));
        assert_eq!(s[1].matchers["c"].0, "!=");
    }
}
