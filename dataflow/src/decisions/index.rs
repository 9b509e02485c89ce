//! The planner's series index, built once when its operator is made: whether any rule reads a
//! window row's series, whether a predictive rule takes a forecast, which worker a service's
//! rows go to and which scale target a forecast feeds — each a hash lookup per row, where the
//! [`PlannerConfig`] methods it stands for scan every configured target (200 + 200 + 200 + 20
//! targets made the metrics pipeline 4 % slower with the planner on).

use std::collections::{HashMap, HashSet};

use super::config::{PlannerConfig, ScaleTarget};

/// The lookups of one planner file.
#[derive(Debug, Clone, Default)]
pub struct SeriesIndex {
    /// Per service, the metrics some rule reads.
    read: HashMap<String, HashSet<String>>,
    /// Per scale target, its first entry in the file.
    scale: HashMap<String, usize>,
    /// Per scale target, its entries with a predictive rule.
    predictive: HashMap<String, Vec<usize>>,
    /// Per canary or baseline service, its rollback's target (the first that names it).
    route: HashMap<String, String>,
}

impl SeriesIndex {
    /// The index of `c`.
    pub fn new(c: &PlannerConfig) -> Self {
        let mut read: HashMap<String, HashSet<String>> = HashMap::new();
        let mut add = |service: &str, metric: &str| {
            read.entry(service.to_string())
                .or_default()
                .insert(metric.to_string());
        };
        for t in &c.scale {
            add(&t.target, &t.replicas_metric);
            add(&t.target, &t.desired_replicas_metric);
            for m in &t.metrics {
                add(&t.target, &m.name);
            }
        }
        for p in &c.pool {
            add(&p.target, &p.use_time_metric);
            add(&p.target, &p.size_metric);
        }
        for k in &c.cache {
            for m in [&k.hits_metric, &k.misses_metric, &k.size_metric] {
                add(&k.target, m);
            }
        }
        for g in &c.gc {
            for m in [&g.pause_metric, &g.limit_metric, &g.used_metric] {
                add(&g.target, m);
            }
        }
        for r in &c.rollback {
            for m in &r.metrics {
                for s in r.services() {
                    add(s, &m.name);
                }
            }
        }
        let mut scale = HashMap::new();
        let mut predictive: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in c.scale.iter().enumerate() {
            scale.entry(t.target.clone()).or_insert(i);
            if t.predictive.is_some() {
                predictive.entry(t.target.clone()).or_default().push(i);
            }
        }
        let mut route = HashMap::new();
        for r in &c.rollback {
            for s in r.services() {
                route
                    .entry(s.to_string())
                    .or_insert_with(|| r.target().to_string());
            }
        }
        SeriesIndex {
            read,
            scale,
            predictive,
            route,
        }
    }

    /// [`PlannerConfig::reads`].
    pub fn reads(&self, service: &str, metric: &str) -> bool {
        self.read.get(service).is_some_and(|m| m.contains(metric))
    }

    /// The first scale target of `service` in `c` (the file this index was made of).
    pub fn scale_target<'c>(&self, c: &'c PlannerConfig, service: &str) -> Option<&'c ScaleTarget> {
        self.scale.get(service).and_then(|i| c.scale.get(*i))
    }

    /// [`PlannerConfig::predicts`], for `c` (the file this index was made of).
    pub fn predicts(
        &self,
        c: &PlannerConfig,
        service: &str,
        metric: &str,
        window_seconds: u32,
        signal: &str,
    ) -> bool {
        window_seconds == c.window_seconds
            && self.predictive.get(service).is_some_and(|entries| {
                entries.iter().any(|i| {
                    c.scale[*i]
                        .predictive
                        .as_ref()
                        .is_some_and(|p| p.metric == metric && p.takes(signal))
                })
            })
    }

    /// [`PlannerConfig::route_key`].
    pub fn route_key<'a>(&'a self, service: &'a str) -> &'a str {
        self.route.get(service).map_or(service, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule, a target named twice (the first entry wins), a canary, and services and
    /// metrics no rule reads.
    /// (after the predictive example's `checkout`)
    const REST: &str = r#"
        [[scale]]
        target = "cart"
        max_replicas = 10
        replicas_metric = "cart.ready"
        metrics = [{ name = "queue.depth", average_value = 30 }]
        [[pool]]
        target = "orders"
        max_size = 50
        [[cache]]
        target = "catalog"
        hits_metric = "cache.hits"
        misses_metric = "cache.misses"
        size_metric = "cache.max_size"
        max_size = 10000
        [[gc]]
        target = "search"
        max_heap = 4294967296
        [[rollback]]
        target = "checkout"
        canary = "checkout-canary"
        baseline = "checkout"
        [[rollback.metrics]]
        name = "http.server.errors"
    "#;

    #[test]
    fn the_index_answers_as_the_scans_of_the_file() {
        let all = format!("{}{REST}", crate::decisions::PREDICTIVE_EXAMPLE);
        let c = PlannerConfig::from_toml(&all).unwrap();
        let ix = SeriesIndex::new(&c);
        let services = [
            "checkout",
            "cart",
            "orders",
            "catalog",
            "checkout-canary",
            "search",
            "",
        ];
        let mut metrics: Vec<String> = [
            "cpu.utilization",
            "http.server.request.duration",
            "cart.ready",
            "queue.depth",
            "db.client.connection.use_time",
            "db.client.connection.max",
            "cache.hits",
            "cache.misses",
            "cache.max_size",
            "http.server.errors",
            "jvm.gc.duration",
            "jvm.memory.limit",
            "jvm.memory.used",
            "other",
        ]
        .map(String::from)
        .to_vec();
        metrics.push(c.scale[0].replicas_metric.clone());
        metrics.push(c.pool[0].use_time_metric.clone());
        metrics.push(c.pool[0].size_metric.clone());
        let mut read = 0;
        for s in services {
            assert_eq!(ix.route_key(s), c.route_key(s), "{s}");
            assert_eq!(
                ix.scale_target(&c, s).map(|t| &t.target),
                c.scale.iter().find(|t| t.target == s).map(|t| &t.target),
                "{s}"
            );
            for m in &metrics {
                assert_eq!(ix.reads(s, m), c.reads(s, m), "{s} {m}");
                read += usize::from(c.reads(s, m));
                for w in [60, 10] {
                    for signal in ["mean", "rate", "count"] {
                        assert_eq!(
                            ix.predicts(&c, s, m, w, signal),
                            c.predicts(s, m, w, signal),
                            "{s} {m} {w} {signal}"
                        );
                    }
                }
            }
        }
        assert!(read >= 15, "the cases cover what the rules read: {read}");
        assert!(ix.predicts(&c, "checkout", "http.server.request.duration", 60, "mean"));
        assert_eq!(ix.route_key("checkout-canary"), "checkout");
    }
}
