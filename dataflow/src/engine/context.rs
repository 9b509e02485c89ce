//! What a job's dataflow gets from the worker loop when it is built.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::engine::checkpoint::{Checkpoints, OperatorCheckpoint, Wakers};
use crate::engine::progress::Progress;
use crate::ops::held::Held;

/// What a job's dataflow gets from the loop.
pub struct BuildContext {
    /// How far behind the watermark a record may still revise a closed window, ms.
    pub horizon_ms: i64,
    /// The lane's live counters and gauges.
    pub progress: Arc<Progress>,
    /// One cell per stateful operator on this worker (see [`BuildContext::held`]).
    held: RefCell<Vec<Rc<Held>>>,
    /// The job's checkpoints, when it takes them, and this worker's index.
    checkpoints: Option<(Arc<Checkpoints>, usize)>,
    /// Operators registered for checkpoints, per name (`Windows#0`, `Windows#1`, …).
    named: RefCell<std::collections::BTreeMap<&'static str, usize>>,
    /// Their activators, woken when a checkpoint is announced.
    wakers: Wakers,
}

impl BuildContext {
    /// A context for a dataflow built on one worker.
    pub fn new(horizon_ms: i64, progress: Arc<Progress>) -> Self {
        BuildContext {
            horizon_ms,
            progress,
            held: RefCell::default(),
            checkpoints: None,
            named: RefCell::default(),
            wakers: Wakers::default(),
        }
    }

    /// The same, for a job whose state goes into `checkpoints` (this being `worker`).
    pub fn with_checkpoints(mut self, checkpoints: Arc<Checkpoints>, worker: usize) -> Self {
        self.checkpoints = Some((checkpoints, worker));
        self
    }

    /// A stateful operator's checkpoint handle (`None` when the job takes none). Operators are
    /// named by kind and order of construction, the same on every worker and in every run of
    /// one configuration.
    pub fn checkpoint(&self, kind: &'static str) -> Option<OperatorCheckpoint> {
        let (c, worker) = self.checkpoints.as_ref()?;
        let mut named = self.named.borrow_mut();
        let n = named.entry(kind).or_default();
        let name = format!("{kind}#{n}");
        *n += 1;
        Some(c.operator(*worker, name, self.wakers.clone()))
    }

    /// Schedules every checkpointed operator of this worker (an epoch was announced).
    pub fn wake_checkpointed(&self) {
        for a in self.wakers.borrow().iter() {
            a.activate();
        }
    }

    /// A new cell for one operator to report the windows (or other state) it holds and their
    /// bytes; the worker's total is the sum over every cell handed out
    /// ([`BuildContext::held_total`]).
    pub fn held(&self) -> Rc<Held> {
        let cell = Rc::new(Held::default());
        self.held.borrow_mut().push(cell.clone());
        cell
    }

    /// What every operator built with this context holds now: items and estimated bytes.
    pub fn held_total(&self) -> (usize, usize) {
        self.held
            .borrow()
            .iter()
            .fold((0, 0), |(n, b), c| (n + c.items(), b + c.bytes()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::BuildContext;
    use crate::engine::progress::Progress;

    #[test]
    fn each_operator_has_its_own_held_cell() {
        let ctx = BuildContext::new(0, Arc::new(Progress::default()));
        let (a, b) = (ctx.held(), ctx.held());
        a.set(3, 30);
        b.set(4, 40);
        a.set(5, 50);
        assert_eq!(
            ctx.held_total(),
            (9, 90),
            "cells are summed, not overwritten"
        );
    }
}
