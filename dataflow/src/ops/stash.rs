//! Stashing: batches an operator keeps, by time, until the frontier passes them.

use std::collections::BTreeMap;

use timely::dataflow::operators::generic::InputHandleCore;
use timely::dataflow::operators::Capability;
use timely::progress::frontier::AntichainRef;

/// Batches an operator holds until the frontier passes their time, each with a capability.
pub(crate) type Stash<D> = BTreeMap<u64, (Capability<u64>, Vec<D>)>;

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
