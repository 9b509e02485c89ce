//! Closed windows batched for a model thread, and the batches out on it.

use timely::dataflow::operators::Capability;
use timely::progress::frontier::AntichainRef;

use crate::models::series::{Scorable, SeriesKey};
use crate::ops::stash::{next_passed, Stash};

/// Closed windows with their series, in window order.
pub(crate) type Closed<T> = Vec<(SeriesKey, T)>;

/// The next batch of windows whose timestamp the frontier has passed: first emissions only
/// (revisions are not rescored), in window order, each with its series.
pub(crate) fn next_closed<T: Scorable>(
    stash: &mut Stash<T>,
    frontier: AntichainRef<'_, u64>,
) -> Option<(Capability<u64>, Closed<T>)> {
    let (cap, batch) = next_passed(stash, frontier)?;
    let mut batch: Vec<(SeriesKey, T)> = batch
        .into_iter()
        .filter(|w| w.revision() == 1)
        .map(|w| (w.series(), w))
        .collect();
    batch.sort_by(|(ka, a), (kb, b)| (a.window_end(), ka).cmp(&(b.window_end(), kb)));
    Some((cap, batch))
}

/// A batch handed to a model thread, waiting for its results; `work` says what in `batch`
/// went (scored windows with their features, or forecast windows).
pub(crate) struct Pending<T, W> {
    pub(crate) cap: Capability<u64>,
    pub(crate) batch: Closed<T>,
    pub(crate) work: W,
}
