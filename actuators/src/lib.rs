//! `apo-actuators`: `apo actuate`, the consumer of `apo.decisions` that carries decisions out
//! safely and audits every one on `apo.actions` (DESIGN.md §1–§2).
//!
//! - [`args`]: the command's flags;
//! - [`verify`]: signature, key id and expiry;
//! - [`claims`]: the durable record of which decisions were started, done and audited, so a
//!   decision is executed at most once across restarts and a replayed one is refused;
//! - [`policy`]: the per-target policy file (executor, dry run, allowed actions, bounds);
//! - [`executors`]: what carries a decision out, one module per executor (`log`, `webhook`, `kubernetes`);
//! - [`overrides`]: manual pause / pin / resume from `apo.overrides`, and `apo override`;
//! - [`audit`]: the `apo.actions` writer (one record per decision received);
//! - [`effect`]: the verification of a scale's effect on the target's latency and SLOs, and
//!   its revert;
//! - [`consume`]: the loop that ties them together.

pub mod args;
pub mod audit;
pub mod claims;
pub mod consume;
pub mod effect;
pub mod error;
pub mod executors;
pub mod follow;
pub mod overrides;
pub mod policy;
pub mod testing;
pub mod verify;

pub use args::ActuateArgs;
pub use consume::{actuate, actuate_until, ActuateReport};
pub use error::ActuateError;
pub use overrides::command::OverrideArgs;
