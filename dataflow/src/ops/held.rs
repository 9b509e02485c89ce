//! What one stateful operator holds, as it last reported it: how many items (windows, spans)
//! and an estimate of their bytes. The lane sums every operator's report for its progress
//! gauges and the memory budget ([`crate::engine::budget`]).

use std::cell::Cell;

/// The smallest heap block counted. Blocks are counted as a general-purpose allocator rounds
/// them (16-byte steps after an 8-byte header, 32 bytes at least); mimalloc, the binary's
/// allocator, has no header but size classes up to an eighth apart, which comes to about the
/// same for the small blocks (names, a sketch's few bins) that state is made of.
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
