//! Executors: what carries a decision out, one module each behind [`Executor`] (as KEDA's
//! scalers are one file each behind one interface). Adding one is a module, a name in
//! [`KNOWN`] and an arm in [`build`].

pub mod log;

use apo_schemas::decision::Decision;

use crate::policy::Allowed;

/// The executors a policy may name.
pub const KNOWN: &[&str] = &["log"];

/// Why an execution failed (audited as `failed` with this text).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ExecError(pub String);

/// Carries decisions out.
pub trait Executor {
    /// Its name (the audit record's `actor`).
    fn name(&self) -> &'static str;
    /// Carries `d` out as `allowed` says (the replicas after the policy's clamp); returns the
    /// executor's message for the audit record.
    fn execute(&mut self, d: &Decision, allowed: &Allowed) -> Result<String, ExecError>;
}

/// The executor named `name` (one of [`KNOWN`]).
pub fn build(name: &str) -> Option<Box<dyn Executor>> {
    match name {
        "log" => Some(Box::new(log::LogExecutor::stdout())),
        _ => None,
    }
}
