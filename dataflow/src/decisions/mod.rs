//! Decisions: the planner turns closed windows into signed decisions for the actuators.
//!
//! - `config.rs`: what the planner decides about (the scale targets, their metrics and
//!   bounds), read from a TOML file;
//! - `hpa/`: the reactive scaling rule, the Kubernetes HPA's arithmetic (`calculator.rs`) and
//!   the state around it (`behavior.rs`: stabilisation, policies, bounds);
//! - `predictive/`: the predictive scaling rule, the replicas a forecast load needs
//!   (`capacity.rs`) and each target's forecasts by the window they are for (`curve.rs`);
//! - `cache/`: the cache rule, a cache's size by its hit ratio's response to earlier
//!   changes (`climb.rs`);
//! - `pool/`: the pool rule, a connection pool's size by Little's law (`littles_law.rs`);
//! - `gc/`: the GC rule, a JVM heap's limit or pause goal from its pauses and its live set
//!   (`heap.rs`);
//! - `canary/`: the rollback rule's judge, after Kayenta's: the Mann-Whitney U test and the
//!   Hodges-Lehmann shift with its confidence interval (`mann_whitney.rs`), the per-metric
//!   classification and the weighted score (`judge.rs`);
//! - `circuit/`: the circuit rule, a breaker per service-map edge (`breaker.rs`) and the
//!   operator on the trace pipeline's edge windows (`operator.rs`);
//! - `planner.rs`: the dataflow operator that feeds the rules with closed windows in event
//!   time, per target on one worker, and signs what they decide.
//!
//! The decision record, its deterministic id and its signature are `apo_schemas::decision`'s.

pub(crate) mod cache;
pub(crate) mod canary;
pub(crate) mod circuit;
pub(crate) mod config;
pub(crate) mod gc;
pub(crate) mod hpa;
pub(crate) mod index;
pub(crate) mod planner;
pub(crate) mod pool;
pub(crate) mod predictive;

/// A seeded sequence of floats in [0, 1) (Knuth's MMIX LCG, top 53 bits): the tests'
/// pseudo-random inputs, the same on every machine.
#[cfg(test)]
pub(crate) fn uniform(mut seed: u64) -> impl FnMut() -> f64 {
    move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A scale target with a predictive rule on the defaults (100 per replica), for the tests.
#[cfg(test)]
pub(crate) const PREDICTIVE_EXAMPLE: &str = r#"
[[scale]]
target = "checkout"
max_replicas = 100
metrics = [{ name = "cpu.utilization", average_value = 0.75 }]
[scale.predictive]
metric = "http.server.request.duration"
capacity_per_replica = 100
"#;
