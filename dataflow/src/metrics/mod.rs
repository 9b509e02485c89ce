//! The metrics pipeline: points pre-aggregated per (series, window) on the worker that read
//! them (cumulative ones made deltas per stream first), windows, window statistics, and the
//! models' stage on every closed window.

pub(crate) mod config;
pub mod cumulative;
pub(crate) mod job;
pub(crate) mod preaggregate;
pub(crate) mod series_limit;
