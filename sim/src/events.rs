//! The discrete-event core: a simulated clock and the events scheduled on it, taken in time
//! order; events at the same time are taken in the order they were scheduled, so a run is
//! one history for a seed, whatever the heap does with ties.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Simulated time, nanoseconds since the start of the run.
pub type Nanos = u64;

/// Events of type `E` in time order.
#[derive(Debug)]
pub struct Events<E> {
    heap: BinaryHeap<Reverse<(Nanos, u64, usize)>>,
    /// The events' payloads, by the slot the heap entry names (reused when taken).
    slots: Vec<Option<E>>,
    free: Vec<usize>,
    seq: u64,
    now: Nanos,
}

impl<E> Default for Events<E> {
    fn default() -> Self {
        Events {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            now: 0,
        }
    }
}

impl<E> Events<E> {
    /// The time of the event taken last (0 before the first).
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// Schedules `e` at `at` (not before now: an event in the past is scheduled now).
    pub fn at(&mut self, at: Nanos, e: E) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(e);
                i
            }
            None => {
                self.slots.push(Some(e));
                self.slots.len() - 1
            }
        };
        self.heap.push(Reverse((at.max(self.now), self.seq, slot)));
        self.seq += 1;
    }

    /// Schedules `e` after `delay`.
    pub fn after(&mut self, delay: Nanos, e: E) {
        self.at(self.now.saturating_add(delay), e);
    }

    /// The next event, the clock moved to its time.
    pub fn pop(&mut self) -> Option<(Nanos, E)> {
        let Reverse((t, _, slot)) = self.heap.pop()?;
        let e = self.slots[slot].take()?;
        self.free.push(slot);
        self.now = t;
        Some((t, e))
    }

    /// Events scheduled and not yet taken.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_in_time_order_and_ties_in_the_order_scheduled() {
        let mut q = Events::default();
        q.at(30, "c");
        q.at(10, "a1");
        q.at(20, "b");
        q.at(10, "a2");
        let (t, e) = q.pop().unwrap();
        assert_eq!((t, e, q.now()), (10, "a1", 10));
        q.after(5, "a1+5");
        q.at(0, "late: now");
        let order: Vec<(Nanos, &str)> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            [
                (10, "a2"),
                (10, "late: now"),
                (15, "a1+5"),
                (20, "b"),
                (30, "c")
            ]
        );
        assert!(q.is_empty());
    }
}
