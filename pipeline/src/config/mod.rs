//! The run's typed configuration: [`RunConfig`] checked and built from the flags
//! ([`crate::args::RunArgs`]), the timely cluster's settings, and the SLO file.

pub mod cluster;
mod run;
pub mod slo_file;
pub mod sloth;

pub use run::{RunConfig, Topics};
