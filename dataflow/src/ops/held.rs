//! What one stateful operator holds, as it last reported it: how many items (windows, spans)
//! and an estimate of their bytes. The lane sums every operator's report for its progress
//! gauges and the memory budget ([`crate::engine::budget`]).

use std::cell::Cell;

/// The smallest heap block the allocator hands out (glibc: 32 bytes on 64-bit), and the
/// header and rounding of larger ones.
const MIN_BLOCK: usize = 32;

/// One operator's latest report.
#[derive(Debug, Default)]
pub struct Held {
    items: Cell<usize>,
    bytes: Cell<usize>,
}

impl Held {
    /// The operator now holds `items` taking about `bytes`.
    pub fn set(&self, items: usize, bytes: usize) {
        self.items.set(items);
        self.bytes.set(bytes);
    }

    /// Items held.
    pub fn items(&self) -> usize {
        self.items.get()
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }
}

/// Heap bytes of a block of `capacity` bytes (a string's, a vector's): none when empty.
pub fn block_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        ((capacity + 8 + 15) & !15).max(MIN_BLOCK)
    }
}
