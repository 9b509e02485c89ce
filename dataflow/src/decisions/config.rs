//! What the planner decides about, from a TOML file (`apo run --planner FILE`):
//!
//! ```toml
//! window_seconds = 60        # the windows it decides on (one of --windows)
//! decision_ttl = "5m"        # a decision expires this long after its window's end
//!
//! [[scale]]
//! target = "checkout"        # the service (of its metrics) and the scale target's name
//! min_replicas = 2
//! max_replicas = 20
//! metrics = [{ name = "cpu.utilization", average_value = 0.75 }]
//! # or on requests a second, 25 a replica (an External metric's AverageValue):
//! # metrics = [{ name = "http.server.request.duration", signal = "rate", average_value = 25 }]
//! # replicas_metric = "k8s.deployment.available_pods"   # its window mean: the ready replicas
//! # desired_replicas_metric = "k8s.deployment.desired_pods"  # the replicas asked for (spec)
//! # tolerance = 0.1
//! # legacy = true            # the HPA without `behavior` (max(2 × current, 4) up, 300 s down)
//! # [scale.behavior.scale_down]
//! # stabilization_window_seconds = 300
//! # policies = [{ type = "Pods", value = 4, period_seconds = 60 }]
//! # [scale.predictive]       # replicas for the forecast load too (predictive/)
//! # metric = "http.server.request.duration"   # its forecast (--forecast-signal rate)
//! # capacity_per_replica = 100                # load one replica carries at 100 %
//!
//! [[pool]]                   # a connection pool sized by Little's law (pool/)
//! target = "checkout"
//! max_size = 50
//!
//! [[gc]]                     # a JVM's heap or pause goal from its pauses (gc/)
//! target = "checkout"
//! max_heap = 4294967296      # bytes
//!
//! [[cache]]                  # a cache sized by its hit ratio's response (cache/)
//! target = "checkout"
//! hits_metric = "cache.hits"
//! misses_metric = "cache.misses"
//! size_metric = "cache.max_size"
//! max_size = 100000
//!
//! [[circuit]]                # a breaker on frontend's calls to checkout (circuit/breaker.rs)
//! client = "frontend"
//! server = "checkout"
//!
//! [[rollback]]               # a canary judged against its baseline (see canary/rule.rs)
//! canary = "checkout-canary"
//! baseline = "checkout"
//! metrics = [{ name = "http.server.request.duration", statistic = "p99", direction = "increase" }]
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use crate::decisions::cache::CacheTarget;
use crate::decisions::canary::rule::RollbackTarget;
use crate::decisions::circuit::breaker::CircuitEdge;
use crate::decisions::gc::GcTarget;
use crate::decisions::hpa::behavior::Behavior;
use crate::decisions::pool::PoolTarget;
use crate::decisions::predictive::Predictive;
use crate::engine::error::PipelineError;

/// The replicas metric unless a target names another: the OpenTelemetry Collector's
/// `k8sclusterreceiver` reports a Deployment's available (ready) pods under this name.
pub const DEFAULT_REPLICAS_METRIC: &str = "k8s.deployment.available_pods";

/// The replicas asked for unless a target names another: the `k8sclusterreceiver`'s name for a
/// Deployment's `spec.replicas`.
pub const DEFAULT_DESIRED_REPLICAS_METRIC: &str = "k8s.deployment.desired_pods";

/// The HPA controller's default tolerance.
pub const DEFAULT_TOLERANCE: f64 = 0.1;

/// What of a metric's window an HPA metric reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetSignal {
    /// The window's mean is the pods' average (a `Pods` or `Resource` metric of the HPA).
    #[default]
    Mean,
    /// The window's points per second (count / window seconds) are the Deployment's total,
    /// kept at `average_value` a pod: an `External` metric with an `AverageValue` target, as
    /// KEDA's Prometheus scaler sets one up on a request rate. A histogram's count is every
    /// request it recorded, failed ones included, so unlike a utilisation it does not stop
    /// at 100 % when the replicas are saturated.
    Rate,
}

impl TargetSignal {
    /// Its name in decisions' evidence.
    pub fn name(self) -> &'static str {
        match self {
            TargetSignal::Mean => "mean",
            TargetSignal::Rate => "rate",
        }
    }
}

/// One metric an HPA scales on: the pods' average (or the total per pod, `signal = "rate"`)
/// against `average_value`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricTarget {
    /// The metric's name (of the target's service); its window mean is the pods' average.
    pub name: String,
    /// The average per pod to keep (the HPA's `target.averageValue`).
    pub average_value: f64,
    /// What of the window is read: `mean` (the default) or `rate`.
    #[serde(default)]
    pub signal: TargetSignal,
}

/// One target the HPA rule scales.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleTarget {
    /// The service, as its telemetry names it; decisions name it as their target.
    pub target: String,
    /// The metrics it scales on: the largest proposal wins.
    pub metrics: Vec<MetricTarget>,
    /// The metric whose window mean is the number of ready replicas.
    #[serde(default = "default_replicas_metric")]
    pub replicas_metric: String,
    /// The metric of the replicas asked for (the Deployment's `spec.replicas`): the HPA rule's
    /// current count, what a decision scales from. Pods asked for but not ready yet count as
    /// idle when it scales up, as the HPA controller counts them. Without it, the ready
    /// replicas are the current count.
    #[serde(default = "default_desired_replicas_metric")]
    pub desired_replicas_metric: String,
    /// Fewest replicas.
    #[serde(default = "one")]
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// No change while the usage ratio is within this of 1 (inclusive).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// The HPA's `behavior` (absent: Kubernetes' defaults).
    #[serde(default)]
    pub behavior: Option<Behavior>,
    /// The HPA without `behavior` (the legacy rule); `behavior` must then be absent.
    #[serde(default)]
    pub legacy: bool,
    /// Replicas for the load forecast as well (`[scale.predictive]`): the larger of the two
    /// recommendations is taken.
    #[serde(default)]
    pub predictive: Option<Predictive>,
}

fn default_replicas_metric() -> String {
    DEFAULT_REPLICAS_METRIC.to_string()
}

fn default_desired_replicas_metric() -> String {
    DEFAULT_DESIRED_REPLICAS_METRIC.to_string()
}

fn one() -> u32 {
    1
}

fn default_tolerance() -> f64 {
    DEFAULT_TOLERANCE
}

fn default_window() -> u32 {
    60
}

fn default_ttl() -> Duration {
    Duration::from_secs(300)
}

/// The planner's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerConfig {
    /// The size of the windows it decides on, seconds.
    #[serde(default = "default_window")]
    pub window_seconds: u32,
    /// How long after its window's end a decision may be executed.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub decision_ttl: Duration,
    /// The targets the HPA rule scales.
    #[serde(default)]
    pub scale: Vec<ScaleTarget>,
    /// The connection pools the pool rule sizes.
    #[serde(default)]
    pub pool: Vec<PoolTarget>,
    /// The caches the cache rule sizes.
    #[serde(default)]
    pub cache: Vec<CacheTarget>,
    /// The JVM services the GC rule tunes.
    #[serde(default)]
    pub gc: Vec<GcTarget>,
    /// The canaries the rollback rule judges.
    #[serde(default)]
    pub rollback: Vec<RollbackTarget>,
    /// The service-map edges the circuit rule breaks (judged on the trace pipeline's
    /// windows).
    #[serde(default)]
    pub circuit: Vec<CircuitEdge>,
}

impl PlannerConfig {
    /// Reads and checks a planner file's text.
    pub fn from_toml(text: &str) -> Result<Self, PipelineError> {
        let cfg: PlannerConfig = toml::from_str(text)
            .map_err(|e| PipelineError::Config(format!("planner file: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Errors on settings no rule can run with.
    pub fn validate(&self) -> Result<(), PipelineError> {
        let bad = |m: String| Err(PipelineError::Config(format!("planner file: {m}")));
        if self.window_seconds == 0 {
            return bad("window_seconds must be at least 1".into());
        }
        if self.decision_ttl.is_zero() {
            return bad("decision_ttl must be more than 0 s".into());
        }
        let mut seen = BTreeSet::new();
        for t in &self.scale {
            let name = &t.target;
            if name.trim().is_empty() {
                return bad("a [[scale]] entry has an empty target".into());
            }
            if !seen.insert(name.as_str()) {
                return bad(format!("target `{name}` is scaled twice"));
            }
            if t.metrics.is_empty() {
                return bad(format!("target `{name}` has no metrics to scale on"));
            }
            for m in &t.metrics {
                if !(m.average_value.is_finite() && m.average_value > 0.0) {
                    return bad(format!(
                        "target `{name}`: metric `{}` needs a positive average_value",
                        m.name
                    ));
                }
            }
            if t.min_replicas == 0 || t.min_replicas > t.max_replicas {
                return bad(format!(
                    "target `{name}`: need 1 <= min_replicas ({}) <= max_replicas ({})",
                    t.min_replicas, t.max_replicas
                ));
            }
            if !(t.tolerance.is_finite() && (0.0..1.0).contains(&t.tolerance)) {
                return bad(format!("target `{name}`: tolerance must be in [0, 1)"));
            }
            if t.legacy && t.behavior.is_some() {
                return bad(format!(
                    "target `{name}`: legacy = true is the HPA without behavior; drop one"
                ));
            }
            if let Some(p) = &t.predictive {
                p.check().map_err(|e| {
                    PipelineError::Config(format!("planner file: target `{name}`: {e}"))
                })?;
            }
        }
        let mut pools = BTreeSet::new();
        for p in &self.pool {
            p.check()
                .map_err(|e| PipelineError::Config(format!("planner file: {e}")))?;
            if !pools.insert(p.target.as_str()) {
                return bad(format!("pool `{}` is sized twice", p.target));
            }
        }
        let mut heaps = BTreeSet::new();
        for g in &self.gc {
            g.check()
                .map_err(|e| PipelineError::Config(format!("planner file: {e}")))?;
            if !heaps.insert(g.target.as_str()) {
                return bad(format!("gc `{}` is tuned twice", g.target));
            }
        }
        let mut caches = BTreeSet::new();
        for c in &self.cache {
            c.check()
                .map_err(|e| PipelineError::Config(format!("planner file: {e}")))?;
            if !caches.insert(c.target.as_str()) {
                return bad(format!("cache `{}` is sized twice", c.target));
            }
        }
        let mut judged = BTreeSet::new();
        let mut rollback_targets = BTreeSet::new();
        for r in &self.rollback {
            r.check()
                .map_err(|e| PipelineError::Config(format!("planner file: {e}")))?;
            if !rollback_targets.insert(r.target()) {
                return bad(format!("rollback target `{}` is judged twice", r.target()));
            }
            for service in r.services() {
                if !judged.insert(service) {
                    return bad(format!(
                        "service `{service}` is in two [[rollback]] entries (a service is the \
                         canary or the baseline of one)"
                    ));
                }
            }
        }
        let mut edges = BTreeSet::new();
        for c in &self.circuit {
            c.check()
                .map_err(|e| PipelineError::Config(format!("planner file: {e}")))?;
            if !edges.insert((c.client.as_str(), c.server.as_str())) {
                return bad(format!(
                    "circuit `{}` -> `{}` is given twice",
                    c.client, c.server
                ));
            }
        }
        Ok(())
    }

    /// Whether a rule reads this series.
    pub fn reads(&self, service: &str, metric: &str) -> bool {
        self.scale.iter().any(|t| {
            t.target == service
                && (t.replicas_metric == metric
                    || t.desired_replicas_metric == metric
                    || t.metrics.iter().any(|m| m.name == metric))
        }) || self.pool.iter().any(|p| p.reads(service, metric))
            || self.cache.iter().any(|c| c.reads(service, metric))
            || self.gc.iter().any(|g| g.reads(service, metric))
            || self.rollback.iter().any(|r| r.reads(service, metric))
    }

    /// Whether a predictive rule reads the forecasts of this series (of the planner's window
    /// size) and `signal`.
    pub fn predicts(&self, service: &str, metric: &str, window_seconds: u32, signal: &str) -> bool {
        window_seconds == self.window_seconds
            && self.scale.iter().any(|t| {
                t.target == service
                    && t.predictive
                        .as_ref()
                        .is_some_and(|p| p.metric == metric && p.takes(signal))
            })
    }

    /// Whether any target has a predictive rule (which needs the forecasts).
    pub fn predictive(&self) -> bool {
        self.scale.iter().any(|t| t.predictive.is_some())
    }

    /// The key that sends a service's windows to a worker: a canary's and its baseline's
    /// windows go to one worker (that of the rollback's target); any other service's to its own.
    pub fn route_key<'a>(&'a self, service: &'a str) -> &'a str {
        self.rollback
            .iter()
            .find(|r| r.services().contains(&service))
            .map_or(service, |r| r.target())
    }

    /// The attributes the rules tell series apart by (a canary's `service.version`): the
    /// metrics pipeline must keep them as series attributes.
    pub fn series_attributes(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .rollback
            .iter()
            .filter_map(|r| r.attribute().map(str::to_string))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::hpa::behavior::{PolicyKind, SelectPolicy};

    #[test]
    fn a_file_with_defaults_and_a_behavior() {
        let cfg = PlannerConfig::from_toml(
            r#"
            [[scale]]
            target = "checkout"
            max_replicas = 20
            metrics = [{ name = "cpu.utilization", average_value = 0.75 }]
            [scale.behavior.scale_down]
            stabilization_window_seconds = 60
            select_policy = "Min"
            policies = [{ type = "Pods", value = 4, period_seconds = 60 }]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.window_seconds, 60);
        assert_eq!(cfg.decision_ttl, Duration::from_secs(300));
        let t = &cfg.scale[0];
        assert_eq!((t.min_replicas, t.tolerance), (1, 0.1));
        assert_eq!(t.replicas_metric, DEFAULT_REPLICAS_METRIC);
        let b = t.behavior.as_ref().unwrap();
        assert_eq!(b.scale_down.select_policy, SelectPolicy::Min);
        assert_eq!(b.scale_down.policies[0].kind, PolicyKind::Pods);
        // the direction not given keeps Kubernetes' default
        assert_eq!(b.scale_up, Behavior::default().scale_up);
        assert!(cfg.reads("checkout", "cpu.utilization"));
        assert!(cfg.reads("checkout", DEFAULT_REPLICAS_METRIC));
        assert!(!cfg.reads("cart", "cpu.utilization"));
    }

    #[test]
    fn a_predictive_rule_with_its_defaults() {
        let mut cfg = PlannerConfig::from_toml(crate::decisions::PREDICTIVE_EXAMPLE).unwrap();
        let p = cfg.scale[0].predictive.as_ref().unwrap();
        assert_eq!(
            (
                p.target_utilization,
                p.burst_utilization,
                p.burst_for,
                p.scheduling_buffer
            ),
            (0.7, 0.9, Duration::from_secs(300), Duration::from_secs(60))
        );
        assert!(cfg.predictive());
        assert!(cfg.predicts("checkout", "http.server.request.duration", 60, "mean"));
        if let Some(p) = cfg.scale[0].predictive.as_mut() {
            p.signal = Some("rate".into());
        }
        assert!(cfg.predicts("checkout", "http.server.request.duration", 60, "rate"));
        assert!(!cfg.predicts("checkout", "http.server.request.duration", 60, "mean"));
        assert!(!cfg.predicts("checkout", "http.server.request.duration", 10, "rate"));
        assert!(!cfg.predicts("checkout", "cpu.utilization", 60, "rate"));
        assert!(!cfg.predicts("cart", "http.server.request.duration", 60, "rate"));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, says) in [
            ("[[scale]]\ntarget = \"a\"\nmax_replicas = 2\nmetrics = []", "no metrics"),
            (
                "[[scale]]\ntarget = \"a\"\nmax_replicas = 2\nmin_replicas = 3\nmetrics = [{ name = \"m\", average_value = 1 }]",
                "min_replicas",
            ),
            (
                "[[scale]]\ntarget = \"a\"\nmax_replicas = 2\nmetrics = [{ name = \"m\", average_value = 0 }]",
                "positive",
            ),
            ("window_seconds = 0", "window_seconds"),
            ("unknown = 1", "unknown field"),
            (
                "[[rollback]]\ncanary = \"a\"\nbaseline = \"a\"\nmetrics = [{ name = \"m\" }]",
                "the same service",
            ),
            (
                "[[rollback]]\ncanary = \"a\"\nbaseline = \"b\"\nmetrics = [{ name = \"m\", statistic = \"p42\" }]",
                "unknown statistic `p42`",
            ),
            (
                "[[rollback]]\ncanary = \"a\"\nbaseline = \"b\"\nmin_windows = 20\nmetrics = [{ name = \"m\" }]",
                "min_windows",
            ),
            (
                "[[rollback]]\ncanary = \"a\"\nbaseline = \"b\"\ngroup_weights = { x = 80, y = 30 }\nmetrics = [{ name = \"m\" }]",
                "at most 100",
            ),
            (
                "[[rollback]]\ncanary = \"a\"\nbaseline = \"b\"\nmetrics = [{ name = \"m\" }]\n[[rollback]]\ncanary = \"c\"\nbaseline = \"b\"\nmetrics = [{ name = \"m\" }]",
                "service `b` is in two",
            ),
            (
                "[[rollback]]\ncanary = \"a\"\nbaseline = \"b\"\ncomparison = { confidence = 2 }\nmetrics = [{ name = \"m\" }]",
                "confidence 2",
            ),
            (
                "[[scale]]\ntarget = \"a\"\nmax_replicas = 2\nmetrics = [{ name = \"m\", average_value = 1 }]\n[scale.predictive]\nmetric = \"r\"\ncapacity_per_replica = 10\ntarget_utilization = 0.95",
                "target_utilization (0.95) <= burst_utilization (0.9)",
            ),
            (
                "[[scale]]\ntarget = \"a\"\nmax_replicas = 2\nmetrics = [{ name = \"m\", average_value = 1 }]\n[scale.predictive]\nmetric = \"r\"\ncapacity_per_replica = 0",
                "capacity_per_replica must be positive",
            ),
            (
                "[[scale]]\ntarget = \"a\"\nmax_replicas = 2\nmetrics = [{ name = \"m\", average_value = 1 }]\n[[scale]]\ntarget = \"a\"\nmax_replicas = 2\nmetrics = [{ name = \"m\", average_value = 1 }]",
                "twice",
            ),
        ] {
            let e = PlannerConfig::from_toml(text).expect_err(text).to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
