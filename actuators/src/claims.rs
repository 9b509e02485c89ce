//! Claims: which decisions this actuator has started, done and audited, in a file under
//! `--state-dir` (`claims.jsonl`, one JSON line per step, each written and synced to disk
//! before the step it records goes on). It is what makes a decision execute at most once:
//!
//! - `started` is durable before the executor is called;
//! - `done` (with the audit record to write) once the executor answered;
//! - `audited` once the broker acknowledged that record.
//!
//! After a crash the decision's message is read again: `audited` → nothing more; `done` →
//! its audit record is written (the one it would have had); `started` → it may or may not have
//! been carried out, so it is not tried again and is audited `failed` (fail safe). Another
//! message with an id already claimed is a replay and is refused. A torn last line (a crash
//! mid-write) is ignored. The file grows with the decisions; nothing prunes it yet.
//!
//! The verification of an action's effect is claimed as `ID/verify` with the same steps,
//! after a first one, `watching`, written once the action succeeded (before its own `done`):
//! it holds what the verdict and the inverse need, so a restart goes on watching.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use apo_schemas::action::ActionRecord;
use serde::{Deserialize, Serialize};

use crate::effect::Watching;
use crate::ActuateError;

/// How far a decision got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// A verification: the action succeeded, its effect is being watched.
    Watching,
    /// About to be executed.
    Started,
    /// Executed (or refused, or a dry run): its audit record is known.
    Done,
    /// Its audit record is acknowledged by the broker.
    Audited,
}

/// One line of the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    id: String,
    partition: i32,
    offset: i64,
    step: Step,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<ActionRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    watching: Option<Watching>,
}

/// What is known of one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Where its message was read.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// How far it got.
    pub step: Step,
    /// Its audit record, once done.
    pub record: Option<ActionRecord>,
    /// A verification: the action watched.
    pub watching: Option<Watching>,
}

/// The claim id of `decision_id`'s verification.
pub fn verify_id(decision_id: &str) -> String {
    format!("{decision_id}/verify")
}

/// The claims file, read at start and appended to.
pub struct Claims {
    path: PathBuf,
    file: File,
    claims: HashMap<String, Claim>,
}

impl Claims {
    /// Opens (or creates) the claims of `dir`.
    pub fn open(dir: &Path) -> Result<Self, ActuateError> {
        let path = dir.join("claims.jsonl");
        let err = |e: std::io::Error| ActuateError::Claims {
            path: path.display().to_string(),
            error: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut claims = HashMap::new();
        if path.exists() {
            let lines: Vec<String> = BufReader::new(File::open(&path).map_err(err)?)
                .lines()
                .collect::<Result<_, _>>()
                .map_err(err)?;
            let n = lines.len();
            for (i, text) in lines.into_iter().enumerate() {
                match serde_json::from_str::<Line>(&text) {
                    Ok(l) => fold(&mut claims, l),
                    Err(e) if i + 1 == n => {
                        tracing::warn!(path = %path.display(), error = %e, "ignoring a torn last line of the claims file");
                    }
                    Err(e) => {
                        return Err(ActuateError::Claims {
                            path: path.display().to_string(),
                            error: format!("line {}: {e}", i + 1),
                        })
                    }
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        Ok(Claims { path, file, claims })
    }

    /// The audit records of every decision done.
    pub fn records(&self) -> impl Iterator<Item = &ActionRecord> {
        self.claims.values().filter_map(|c| c.record.as_ref())
    }

    /// What is known of decision `id`.
    pub fn get(&self, id: &str) -> Option<&Claim> {
        self.claims.get(id)
    }

    /// Every claim, by id.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Claim)> {
        self.claims.iter()
    }

    /// Records, durably, that the effect of `w`'s decision (read at `partition`/`offset`) is
    /// watched.
    pub fn watch(&mut self, partition: i32, offset: i64, w: &Watching) -> Result<(), ActuateError> {
        let line = Line {
            id: verify_id(&w.decision.id),
            partition,
            offset,
            step: Step::Watching,
            record: None,
            watching: Some(w.clone()),
        };
        self.append(line)
    }

    /// Records that `id` (read at `partition`/`offset`) reached `step`, durably.
    pub fn mark(
        &mut self,
        id: &str,
        partition: i32,
        offset: i64,
        step: Step,
        record: Option<&ActionRecord>,
    ) -> Result<(), ActuateError> {
        let line = Line {
            id: id.to_string(),
            partition,
            offset,
            step,
            record: record.cloned(),
            watching: None,
        };
        self.append(line)
    }

    fn append(&mut self, line: Line) -> Result<(), ActuateError> {
        let mut text = serde_json::to_string(&line).map_err(|e| ActuateError::Claims {
            path: self.path.display().to_string(),
            error: e.to_string(),
        })?;
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| ActuateError::Claims {
                path: self.path.display().to_string(),
                error: e.to_string(),
            })?;
        fold(&mut self.claims, line);
        Ok(())
    }
}

/// What `line` adds to what is known: the furthest step, the latest record and watch.
fn fold(claims: &mut HashMap<String, Claim>, line: Line) {
    let c = claims.entry(line.id).or_insert(Claim {
        partition: line.partition,
        offset: line.offset,
        step: line.step,
        record: None,
        watching: None,
    });
    c.step = c.step.max(line.step);
    if line.record.is_some() {
        c.record = line.record;
    }
    if line.watching.is_some() {
        c.watching = line.watching;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apo_schemas::action::ActionOutcome;

    #[test]
    fn claims_survive_a_reopen_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let record = ActionRecord {
            decision_id: "a".into(),
            target: "t".into(),
            action: "scale".into(),
            executed_at: 1,
            actor: "log".into(),
            outcome: ActionOutcome::Succeeded,
            detail: None,
        };
        {
            let mut c = Claims::open(dir.path()).unwrap();
            c.mark("a", 0, 7, Step::Started, None).unwrap();
            c.mark("a", 0, 7, Step::Done, Some(&record)).unwrap();
            c.mark("b", 1, 3, Step::Started, None).unwrap();
            let w = Watching {
                decision: crate::testing::scale("a", "t", 2, 4),
                applied_replicas: Some(4),
                applied_value: None,
                executed_at: 5,
            };
            c.watch(0, 7, &w).unwrap();
            c.mark(&verify_id("a"), 0, 7, Step::Started, None).unwrap();
        }
        let path = dir.path().join("claims.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"id\":\"c\",\"parti").unwrap();
        drop(f);
        let c = Claims::open(dir.path()).unwrap();
        let a = c.get("a").unwrap();
        assert_eq!((a.offset, a.step), (7, Step::Done));
        assert_eq!(a.record.as_ref(), Some(&record));
        assert_eq!(c.get("b").unwrap().step, Step::Started);
        assert!(c.get("c").is_none());
        let v = c.get("a/verify").unwrap();
        assert_eq!(v.step, Step::Started);
        assert_eq!(v.watching.as_ref().map(|w| w.executed_at), Some(5));
        // a bad line in the middle is an error, not a silent loss
        std::fs::write(
            &path,
            "garbage\n{\"id\":\"a\",\"partition\":0,\"offset\":1,\"step\":\"started\"}\n",
        )
        .unwrap();
        assert!(Claims::open(dir.path()).is_err());
    }
}
