//! Work offloaded from a timely worker onto a thread of its own: jobs in order, results back
//! in order, the operator woken for each, and a bound on what is outstanding (a backlog slows
//! reading instead of growing memory).

use std::collections::VecDeque;
use std::sync::mpsc;

use timely::scheduling::SyncActivator;

/// Batches handed to a model thread and not back yet, at most (after each activation).
pub(crate) const MAX_PENDING: usize = 16;

/// Runs `work` on a thread of its own: jobs in order, results back in order, `activator`
/// woken for each (the operator then emits). Ends when the operator, the only sender, is
/// dropped.
pub(crate) fn spawn_model_thread<J: Send + 'static, R: Send + 'static>(
    name: &str,
    activator: SyncActivator,
    mut work: impl FnMut(J) -> R + Send + 'static,
) -> (mpsc::Sender<J>, mpsc::Receiver<R>) {
    let (jobs_tx, jobs) = mpsc::channel::<J>();
    let (results_tx, results) = mpsc::channel::<R>();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for job in jobs {
                if results_tx.send(work(job)).is_err() {
                    return;
                }
                let _ = activator.activate();
            }
        });
    if let Err(e) = spawned {
        // Without the thread every batch is reported as not done: loud, not silent.
        tracing::error!(error = %e, thread = name, "starting a model thread failed");
    }
    (jobs_tx, results)
}

/// The oldest pending batch with its result: waits when `pending` batches are more than
/// [`MAX_PENDING`] (a backlog slows reading instead of growing), else only if one is ready.
/// `None`: nothing ready, or the thread is gone (logged; the pending batches are dropped).
pub(crate) fn next_result<R, P>(
    pending: &mut VecDeque<P>,
    results: &mpsc::Receiver<R>,
    what: &str,
) -> Option<(P, R)> {
    if pending.is_empty() {
        return None;
    }
    let next = if pending.len() > MAX_PENDING {
        results.recv().map_err(|_| mpsc::TryRecvError::Disconnected)
    } else {
        results.try_recv()
    };
    match next {
        Ok(r) => pending.pop_front().map(|p| (p, r)),
        Err(mpsc::TryRecvError::Empty) => None,
        Err(mpsc::TryRecvError::Disconnected) => {
            tracing::error!(
                batches = pending.len(),
                "the {what} thread is gone; windows not done"
            );
            pending.clear();
            None
        }
    }
}
