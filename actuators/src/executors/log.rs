//! The `log` executor: changes nothing, writes one line per execution to its output (stdout
//! for `apo actuate`), so a team can watch what APO would do with the effect of a real
//! executor on the audit trail (`succeeded`, unlike a dry run). Each line:
//! `EXECUTE <action> <target> <from> -> <to> decision=<id>` (a circuit:
//! `EXECUTE circuit <client> <server> <state> decision=<id>`; a tune:
//! `EXECUTE tune <target> <setting> <from> -> <to> decision=<id>`).

use std::io::Write;

use apo_schemas::decision::Decision;

use super::{ExecError, Executor};
use crate::policy::Allowed;

/// Writes a line per execution.
pub struct LogExecutor {
    out: Box<dyn Write + Send>,
}

impl LogExecutor {
    /// Writing to standard output.
    pub fn stdout() -> Self {
        LogExecutor {
            out: Box::new(std::io::stdout()),
        }
    }

    /// Writing to `out`.
    pub fn to(out: Box<dyn Write + Send>) -> Self {
        LogExecutor { out }
    }
}

impl Executor for LogExecutor {
    fn name(&self) -> &'static str {
        "log"
    }

    fn execute(&mut self, d: &Decision, allowed: &Allowed) -> Result<String, ExecError> {
        let change = allowed.change(d).unwrap_or_else(|| "-".into());
        let line = format!(
            "EXECUTE {} {} {change} decision={}",
            d.action.as_str(),
            d.target,
            d.id
        );
        writeln!(self.out, "{line}")
            .and_then(|_| self.out.flush())
            .map_err(|e| ExecError(format!("writing the log line: {e}")))?;
        Ok(format!(
            "logged: {} {} {change}",
            d.action.as_str(),
            d.target
        ))
    }
}
