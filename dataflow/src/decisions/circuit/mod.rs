//! The circuit rule: a breaker per service-map edge (client → server), after Envoy's outlier
//! detection and resilience4j's circuit breaker, over closed edge windows in event time
//! (`breaker.rs`), and the operator that feeds it the trace pipeline's edges and signs what
//! it decides (`operator.rs`).

pub mod breaker;
pub mod operator;
