//! `apo-dataflow`: the timely dataflow jobs.
pub mod sketch;
