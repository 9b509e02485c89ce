//! Decisions: the planner turns closed windows into signed decisions for the actuators.
//!
//! - `config.rs`: what the planner decides about (the scale targets, their metrics and
//!   bounds), read from a TOML file;
//! - `hpa/`: the reactive scaling rule, the Kubernetes HPA's arithmetic (`calculator.rs`) and
//!   the state around it (`behavior.rs`: stabilisation, policies, bounds);
//! - `canary/`: the rollback rule's judge, after Kayenta's: the Mann-Whitney U test and the
//!   Hodges-Lehmann shift with its confidence interval (`mann_whitney.rs`), the per-metric
//!   classification and the weighted score (`judge.rs`);
//! - `circuit/`: the circuit rule, a breaker per service-map edge (`breaker.rs`) and the
//!   operator on the trace pipeline's edge windows (`operator.rs`);
//! - `planner.rs`: the dataflow operator that feeds the rules with closed windows in event
//!   time, per target on one worker, and signs what they decide.
//!
//! The decision record, its deterministic id and its signature are `apo_schemas::decision`'s.

pub(crate) mod canary;
pub(crate) mod circuit;
pub(crate) mod config;
pub(crate) mod hpa;
pub(crate) mod planner;
