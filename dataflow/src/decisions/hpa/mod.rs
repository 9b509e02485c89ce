//! The reactive scaling rule: the Kubernetes HPA as its controller computes it
//! (`pkg/controller/podautoscaler/` in kubernetes/kubernetes): the replica calculator, a pure
//! function of the pods' metric (`calculator.rs`), apart from the state that makes it
//! stateful, the stabilisation windows and scaling policies over event time (`behavior.rs`).

pub mod behavior;
pub mod calculator;
