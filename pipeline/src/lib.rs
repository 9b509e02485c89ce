//! `apo-pipeline`: APO's topology. From the run's settings ([`args`], checked into a
//! [`RunConfig`]) it builds what each worker runs ([`topology::worker_lanes`]: the metrics and
//! trace lanes and their outputs, each table a Kafka topic plus a Parquet table through
//! [`Outputs::standard`]), connects to the broker or starts the embedded one ([`Broker`]),
//! stops on signals, prints progress, and runs it all ([`run()`]); `apo produce` and `apo
//! broker` ([`standalone`]: the embedded broker as a process of its own) are here too.
//!
//! - [`args`]: the flags of `apo run`, `apo produce` and `apo broker` (clap);
//! - [`config`]: [`RunConfig`], the timely cluster, the SLO file;
//! - [`topology`]: the workers' lanes, jobs and sinks;
//! - [`outputs`]: the standard output of a table;
//! - [`broker`], [`signals`], [`traffic`] (the embedded default's synthetic load),
//!   [`report`] (progress lines), [`warm`] (the models' warm start).

pub mod args;
pub mod broker;
pub mod config;
mod error;
pub mod outputs;
mod produce;
pub mod report;
mod run;
pub mod signals;
pub mod standalone;
pub mod topology;
pub mod traffic;
pub mod warm;

pub use broker::Broker;
pub use config::{RunConfig, Topics};
pub use error::RunError;
pub use outputs::{Delivery, Outputs};
pub use produce::produce;
pub use run::{run, run_with, Embedded, StartTraffic};

/// Checks `APO_NOW` (a bad value is a clear error, not a silent system clock) and says when it
/// moves the clock, since every event time is then judged against that clock.
fn clock_moved() -> Result<(), RunError> {
    let clock = apo_core::clock::check().map_err(|e| RunError::Config(e.to_string()))?;
    let offset = clock.offset_at(apo_core::clock::system_ms());
    if offset != 0 || clock.speed != 1.0 {
        tracing::warn!(
            offset_s = offset / 1000,
            speed = clock.speed,
            "APO_NOW moves the clock event times are judged against by {:.1} days{}",
            offset as f64 / 86_400_000.0,
            if clock.speed == 1.0 {
                String::new()
            } else {
                format!(" and runs it {} times as fast", clock.speed)
            }
        );
    }
    Ok(())
}
