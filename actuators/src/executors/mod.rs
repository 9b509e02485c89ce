//! Executors: what carries a decision out, one module each behind [`Executor`] (as KEDA's
//! scalers are one file each behind one interface). Adding one is a module, a name in
//! [`KNOWN`] and an arm in [`build`].

pub mod kubernetes;
pub mod log;
pub mod webhook;

use std::collections::BTreeMap;

use apo_schemas::decision::Decision;

use crate::policy::{Allowed, Policy, TargetPolicy};

/// The executors a policy may name.
pub const KNOWN: &[&str] = &["log", "webhook", "kubernetes"];

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

/// The executor a target's policy names, built from its settings.
pub fn build(p: &TargetPolicy) -> Result<Box<dyn Executor>, String> {
    match p.executor.as_str() {
        "log" => Ok(Box::new(log::LogExecutor::stdout())),
        "webhook" => match &p.webhook {
            Some(c) => Ok(Box::new(webhook::WebhookExecutor::new(c)?)),
            None => Err(
                "executor `webhook` needs a [targets.NAME.webhook] table with url and \
                         secret_file"
                    .into(),
            ),
        },
        "kubernetes" => Ok(Box::new(kubernetes::KubernetesExecutor::new(
            &p.kubernetes.clone().unwrap_or_default(),
        )?)),
        other => Err(format!(
            "unknown executor `{other}` (known: {})",
            KNOWN.join(", ")
        )),
    }
}

/// Every target's executor, built once at start (a bad URL or an unreadable secret stops the
/// actuator before it reads a decision).
pub struct Executors {
    by_target: BTreeMap<String, Box<dyn Executor>>,
    default: Box<dyn Executor>,
}

impl Executors {
    /// The executors of every target `policy` names, and of its `[default]`.
    pub fn for_policy(policy: &Policy) -> Result<Self, String> {
        let default = build(&policy.default).map_err(|e| format!("[default]: {e}"))?;
        let mut by_target = BTreeMap::new();
        for (name, p) in &policy.targets {
            by_target.insert(
                name.clone(),
                build(p).map_err(|e| format!("[targets.{name}]: {e}"))?,
            );
        }
        Ok(Executors { by_target, default })
    }

    /// The executor of `target`.
    pub fn of(&mut self, target: &str) -> &mut dyn Executor {
        match self.by_target.get_mut(target) {
            Some(e) => e.as_mut(),
            None => self.default.as_mut(),
        }
    }
}
