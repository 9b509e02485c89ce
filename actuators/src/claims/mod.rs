//! Claims: which decisions have been started, done and audited, and by which actuator. They
//! make a decision execute at most once:
//!
//! - `started` is durable before the executor is called;
//! - `done` (with the audit record to write) once the executor answered (or the decision was
//!   refused, or was a dry run);
//! - `audited` once the broker acknowledged that record.
//!
//! After a crash the decision's message is read again: `audited` → nothing more; `done` →
//! its audit record is written (the one it would have had); `started` → it may or may not have
//! been carried out, so it is not tried again and is audited `failed` (fail safe). Another
//! message with an id already claimed is a replay and is refused.
//!
//! The verification of an action's effect is claimed as `ID/verify` with the same steps,
//! after a first one, `watching`, written once the action succeeded (before its own `done`):
//! it holds what the verdict and the inverse need, so a restart goes on watching.
//!
//! Where they live ([`file`] or [`topic`]): a file on the actuator's disk (one actuator per
//! decisions topic), or a topic on the broker shared by every actuator of a consumer group.
//! On a shared topic two actuators can hold the same decision at once (its partition moved
//! while one of them worked on it), so every step is conditional: a line names the version of
//! the claim its writer saw (`prev`), and applies only when that is still the claim's version
//! where it lands in the topic's order. Every reader folds the lines in that order to the same
//! claims, so of two actuators that both start a decision, exactly one does: the other reads
//! back that it lost and leaves the decision to the winner.

pub mod file;
pub mod topic;

use std::collections::HashMap;

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

/// Who writes claims: the actuator's `--actor-id` and this process's run of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The actuator's name, unique among the actuators running at once.
    pub id: String,
    /// This run of it (a restart is another).
    pub incarnation: String,
}

impl Actor {
    /// `id`'s run in this process.
    pub fn new(id: &str) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Actor {
            id: id.to_string(),
            incarnation: format!("{}-{now:x}", std::process::id()),
        }
    }
}

/// One step of one claim, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    /// The claim: a decision id, or a verification's ([`verify_id`]).
    pub id: String,
    /// Where the decision's message was read.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The step reached.
    pub step: Step,
    /// The audit record, once done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<ActionRecord>,
    /// A verification: the action watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watching: Option<Watching>,
    /// Who wrote it (absent in files written before claims were shared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// When it was written, ms since the Unix epoch (the writer's clock).
    #[serde(default)]
    pub at: i64,
    /// The claim's version its writer saw: the line applies only if it still is. Absent: it
    /// applies (a file has one writer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<u64>,
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
    /// Who wrote its latest step.
    pub actor: Option<Actor>,
    /// When its latest step was written.
    pub at: i64,
    /// How many lines applied to it.
    pub version: u64,
}

/// Whose a claim is, from the point of view of the actuator reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// This process wrote its latest step.
    This,
    /// An earlier run of this actuator (which is no longer running), or nobody known.
    Earlier,
    /// Another actuator: it may still be working on it.
    Other,
}

/// The claim id of `decision_id`'s verification.
pub fn verify_id(decision_id: &str) -> String {
    format!("{decision_id}/verify")
}

/// What `line` adds to what is known: the furthest step, the latest record and watch, when it
/// applies (its `prev` is the claim's version, or absent). Whether it applied.
pub fn fold(claims: &mut HashMap<String, Claim>, line: Line) -> bool {
    let version = claims.get(&line.id).map_or(0, |c| c.version);
    if line.prev.is_some_and(|p| p != version) {
        return false;
    }
    let c = claims.entry(line.id).or_insert(Claim {
        partition: line.partition,
        offset: line.offset,
        step: line.step,
        record: None,
        watching: None,
        actor: None,
        at: 0,
        version: 0,
    });
    c.step = c.step.max(line.step);
    c.version += 1;
    c.at = line.at;
    if line.actor.is_some() {
        c.actor = line.actor;
    }
    if line.record.is_some() {
        c.record = line.record;
    }
    if line.watching.is_some() {
        c.watching = line.watching;
    }
    true
}

/// Where claims are written.
enum Store {
    File(file::ClaimsFile),
    Topic(Box<topic::ClaimsTopic>),
}

/// The claims, read at start and written step by step.
pub struct Claims {
    store: Store,
    claims: HashMap<String, Claim>,
    me: Actor,
}

impl Claims {
    /// The claims of the file in `dir` (opened or created), written by `me`.
    pub fn in_file(dir: &std::path::Path, me: Actor) -> Result<Self, ActuateError> {
        let (store, claims) = file::ClaimsFile::open(dir)?;
        Ok(Claims {
            store: Store::File(store),
            claims,
            me,
        })
    }

    /// The claims of a topic, read to its end, written by `me`.
    pub fn on_topic(store: topic::ClaimsTopic, me: Actor) -> Result<Self, ActuateError> {
        let mut claims = HashMap::new();
        let mut store = Box::new(store);
        store.catch_up(&mut claims)?;
        Ok(Claims {
            store: Store::Topic(store),
            claims,
            me,
        })
    }

    /// Whether several actuators share these claims.
    pub fn shared(&self) -> bool {
        matches!(self.store, Store::Topic(_))
    }

    /// Who is writing.
    pub fn me(&self) -> &Actor {
        &self.me
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

    /// Whose `c` is.
    pub fn holder(&self, c: &Claim) -> Holder {
        match &c.actor {
            Some(a) if *a == self.me => Holder::This,
            Some(a) if a.id != self.me.id => Holder::Other,
            _ => Holder::Earlier,
        }
    }

    /// Reads what other actuators wrote since (nothing to read in a file).
    pub fn refresh(&mut self) -> Result<(), ActuateError> {
        match &mut self.store {
            Store::File(_) => Ok(()),
            Store::Topic(t) => t.catch_up(&mut self.claims),
        }
    }

    /// Records, durably, that the effect of `w`'s decision (read at `partition`/`offset`) is
    /// watched. Whether it applied (false: another actuator wrote its claim first).
    pub fn watch(
        &mut self,
        partition: i32,
        offset: i64,
        w: &Watching,
    ) -> Result<bool, ActuateError> {
        let id = verify_id(&w.decision.id);
        let line = self.line(&id, partition, offset, Step::Watching, None);
        self.append(Line {
            watching: Some(w.clone()),
            ..line
        })
    }

    /// Records that `id` (read at `partition`/`offset`) reached `step`, durably. Whether it
    /// applied (false: another actuator wrote a step of this claim first, which this one had
    /// not read).
    pub fn mark(
        &mut self,
        id: &str,
        partition: i32,
        offset: i64,
        step: Step,
        record: Option<&ActionRecord>,
    ) -> Result<bool, ActuateError> {
        let line = self.line(id, partition, offset, step, record.cloned());
        self.append(line)
    }

    fn line(
        &self,
        id: &str,
        partition: i32,
        offset: i64,
        step: Step,
        record: Option<ActionRecord>,
    ) -> Line {
        Line {
            id: id.to_string(),
            partition,
            offset,
            step,
            record,
            watching: None,
            actor: Some(self.me.clone()),
            at: apo_core::clock::now_ms(),
            prev: match self.store {
                Store::File(_) => None,
                Store::Topic(_) => Some(self.claims.get(id).map_or(0, |c| c.version)),
            },
        }
    }

    fn append(&mut self, line: Line) -> Result<bool, ActuateError> {
        match &mut self.store {
            Store::File(f) => {
                f.append(&line)?;
                Ok(fold(&mut self.claims, line))
            }
            // `audited` only saves a restart a look at the audit topic: it is not read back
            Store::Topic(t) if line.step == Step::Audited => t.send(&line).map(|_| true),
            Store::Topic(t) => t.append(&mut self.claims, &line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, step: Step, who: &str, prev: Option<u64>) -> Line {
        Line {
            id: id.into(),
            partition: 0,
            offset: 1,
            step,
            record: None,
            watching: None,
            actor: Some(Actor {
                id: who.into(),
                incarnation: "1".into(),
            }),
            at: 5,
            prev,
        }
    }

    #[test]
    fn a_line_applies_only_on_the_version_its_writer_saw() {
        let mut c = HashMap::new();
        // two actuators saw no claim of d and both start it: the first line in the order wins
        assert!(fold(&mut c, line("d", Step::Started, "a", Some(0))));
        assert!(!fold(&mut c, line("d", Step::Started, "b", Some(0))));
        assert_eq!(c["d"].actor.as_ref().map(|a| a.id.as_str()), Some("a"));
        assert_eq!(c["d"].version, 1);
        // b, having read a's start, takes the claim over once a's lease is out
        assert!(fold(&mut c, line("d", Step::Done, "b", Some(1))));
        // a's done, written on the version it saw, no longer applies
        assert!(!fold(&mut c, line("d", Step::Done, "a", Some(1))));
        assert_eq!(c["d"].actor.as_ref().map(|a| a.id.as_str()), Some("b"));
        assert_eq!((c["d"].step, c["d"].version), (Step::Done, 2));
        // a line without a version (a file's) always applies; steps never go back
        assert!(fold(&mut c, line("d", Step::Started, "a", None)));
        assert_eq!(c["d"].step, Step::Done);
    }

    #[test]
    fn the_holder_of_a_claim() {
        let dir = tempfile::tempdir().unwrap();
        let me = Actor::new("a");
        let mut claims = Claims::in_file(dir.path(), me.clone()).unwrap();
        claims.mark("d", 0, 1, Step::Started, None).unwrap();
        let c = claims.get("d").unwrap().clone();
        assert_eq!(claims.holder(&c), Holder::This);
        let later = Claims::in_file(dir.path(), Actor::new("a")).unwrap();
        assert_eq!(later.holder(&c), Holder::Earlier);
        let other = Claims::in_file(dir.path(), Actor::new("b")).unwrap();
        assert_eq!(other.holder(&c), Holder::Other);
    }
}
