//! Stashing: batches an operator keeps, by time, until the frontier passes them.

use std::collections::{BTreeMap, HashMap};

use timely::dataflow::operators::generic::InputHandleCore;
use timely::dataflow::operators::Capability;
use timely::progress::frontier::AntichainRef;

use crate::ops::window::Windowed;

/// Batches an operator holds until the frontier passes their time, each with a capability.
pub(crate) type Stash<D> = BTreeMap<u64, (Capability<u64>, Vec<D>)>;

/// The time before which an operator that takes its stash in time order as `frontier` passes
/// it has applied everything and nothing after: the earlier of its first stashed time and the
/// frontier (no time at all once both are empty). A checkpoint whose time is at or before it
/// can take the operator's state now.
pub(crate) fn applied_before<D>(stash: &Stash<D>, frontier: AntichainRef<'_, u64>) -> u64 {
    stash
        .keys()
        .next()
        .copied()
        .into_iter()
        .chain(frontier.first().copied())
        .min()
        .unwrap_or(u64::MAX)
}

/// Moves everything `input` holds into `stash`, by time.
pub(crate) fn stash_input<D: 'static, P>(
    input: &mut InputHandleCore<u64, Vec<D>, P>,
    stash: &mut Stash<D>,
) where
    P: timely::communication::Pull<timely::dataflow::channels::Message<u64, Vec<D>>>,
{
    input.for_each_stamp(|cap, data| {
        let Some(cap) = cap.retain_least(0) else {
            return;
        };
        let entry = stash
            .entry(*cap.time())
            .or_insert_with(|| (cap, Vec::new()));
        for batch in data {
            entry.1.append(batch);
        }
    });
}

/// The earliest batch whose time `frontier` has passed, taken out of `stash`.
pub(crate) fn next_passed<D>(
    stash: &mut Stash<D>,
    frontier: AntichainRef<'_, u64>,
) -> Option<(Capability<u64>, Vec<D>)> {
    let entry = stash.first_entry()?;
    if frontier.less_equal(entry.key()) {
        return None;
    }
    Some(entry.remove())
}

/// Partials an operator holds until the frontier passes their time, merged by key within a
/// time: behind a watermark that does not move (a partition that holds it) they take the room of
/// one partial per key and time, not one per batch read, and they are counted
/// ([`MergedStash::bytes`]) where the memory budget sees them. Merging first and applying once
/// gives what applying each would: a partial's merge is exact (counts, exact sums, sketch bins,
/// extremes).
pub(crate) struct MergedStash<P: Windowed> {
    times: BTreeMap<u64, (Capability<u64>, ByKey<P>)>,
    bytes: usize,
    len: usize,
}

impl<P: Windowed> Default for MergedStash<P> {
    fn default() -> Self {
        MergedStash {
            times: BTreeMap::new(),
            bytes: 0,
            len: 0,
        }
    }
}

/// The partials of one time, by key.
type ByKey<P> = HashMap<<P as Windowed>::Key, P>;

/// What one stashed partial takes: itself, its key's copy in the index, their heap blocks.
fn stashed_bytes<P: Windowed>(p: &P) -> usize {
    std::mem::size_of::<(P::Key, P)>() * 3 / 2 + p.heap_bytes() + p.key_heap_bytes()
}

impl<P: Windowed> MergedStash<P> {
    /// Moves everything `input` holds in, by time, merging partials of one key.
    pub(crate) fn take<Pull>(&mut self, input: &mut InputHandleCore<u64, Vec<P>, Pull>)
    where
        Pull: timely::communication::Pull<timely::dataflow::channels::Message<u64, Vec<P>>>,
    {
        input.for_each_stamp(|cap, data| {
            let Some(cap) = cap.retain_least(0) else {
                return;
            };
            let (_, by_key) = self
                .times
                .entry(*cap.time())
                .or_insert_with(|| (cap, HashMap::new()));
            for batch in data {
                for p in batch.drain(..) {
                    match by_key.get_mut(p.key()) {
                        Some(held) => {
                            self.bytes = self.bytes.saturating_sub(stashed_bytes(held));
                            held.merge(&p);
                            self.bytes += stashed_bytes(held);
                        }
                        None => {
                            self.bytes += stashed_bytes(&p);
                            self.len += 1;
                            by_key.insert(p.key().clone(), p);
                        }
                    }
                }
            }
        });
    }

    /// The earliest time held.
    pub(crate) fn first_time(&self) -> Option<u64> {
        self.times.keys().next().copied()
    }

    /// The earliest time's partials, with its capability.
    pub(crate) fn pop_first(&mut self) -> Option<(Capability<u64>, Vec<P>)> {
        let (_, (cap, by_key)) = self.times.pop_first()?;
        let batch: Vec<P> = by_key.into_values().collect();
        self.len -= batch.len();
        let freed: usize = batch.iter().map(stashed_bytes).sum();
        self.bytes = self.bytes.saturating_sub(freed);
        Some((cap, batch))
    }

    /// Partials held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Their estimated bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}
