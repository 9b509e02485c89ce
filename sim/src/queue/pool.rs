//! A connection pool: `size` connections and a FIFO line of callers waiting for one. A caller
//! that finds a free connection takes it at once; otherwise it waits, and takes the one the
//! next release frees. Resized, a larger pool hands its new connections to the callers
//! waiting; a smaller one takes no connection back from its holders, but hands none on until
//! fewer are in use than its size (HikariCP's `setMaximumPoolSize` at run time behaves so).
//! Like the station, it knows nothing of time.

use std::collections::VecDeque;

/// A pool of connections for callers `J`.
#[derive(Debug)]
pub struct Pool<J> {
    size: usize,
    used: usize,
    line: VecDeque<J>,
}

impl<J> Pool<J> {
    /// A pool of `size` connections.
    pub fn new(size: usize) -> Self {
        Pool {
            size,
            used: 0,
            line: VecDeque::new(),
        }
    }

    /// A caller asks for a connection: `Some(caller)` when it takes one at once, `None` when
    /// it waits.
    pub fn acquire(&mut self, caller: J) -> Option<J> {
        if self.used < self.size && self.line.is_empty() {
            self.used += 1;
            Some(caller)
        } else {
            self.line.push_back(caller);
            None
        }
    }

    /// A connection is given back: the caller that takes it, if one waits and the pool is not
    /// over its size.
    pub fn release(&mut self) -> Option<J> {
        self.used = self.used.saturating_sub(1);
        self.hand_on().pop()
    }

    /// Sets the size: the callers that take one of the connections a larger pool frees.
    pub fn resize(&mut self, size: usize) -> Vec<J> {
        self.size = size;
        self.hand_on()
    }

    fn hand_on(&mut self) -> Vec<J> {
        let mut out = Vec::new();
        while self.used < self.size {
            match self.line.pop_front() {
                Some(c) => {
                    self.used += 1;
                    out.push(c);
                }
                None => break,
            }
        }
        out
    }

    /// Connections in use, and callers waiting.
    pub fn used(&self) -> usize {
        self.used
    }

    /// (waiting)
    pub fn waiting(&self) -> usize {
        self.line.len()
    }

    /// Its size.
    pub fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_wait_in_order_and_a_resize_hands_on_or_holds_back() {
        let mut p = Pool::new(2);
        assert_eq!(p.acquire(1), Some(1));
        assert_eq!(p.acquire(2), Some(2));
        assert_eq!(p.acquire(3), None);
        assert_eq!(p.acquire(4), None);
        assert_eq!(p.acquire(5), None);
        assert_eq!((p.used(), p.waiting()), (2, 3));
        assert_eq!(p.release(), Some(3), "first in line first");
        // grown to 4: two more connections, to the next two in line
        assert_eq!(p.resize(4), vec![4, 5]);
        assert_eq!((p.used(), p.waiting()), (4, 0));
        // shrunk to 1: nobody loses a connection, but releases hand none on until under 1
        assert_eq!(p.resize(1), Vec::<i32>::new());
        assert_eq!(p.acquire(6), None);
        assert_eq!(p.release(), None);
        assert_eq!(p.release(), None);
        assert_eq!(p.release(), None);
        assert_eq!(p.used(), 1);
        assert_eq!(p.release(), Some(6), "now under its size");
        assert_eq!(p.release(), None);
        assert_eq!((p.used(), p.waiting(), p.size()), (0, 0, 1));
        assert_eq!(p.release(), None, "nothing to release stays at 0");
        assert_eq!(p.used(), 0);
        // a caller never passes one already waiting
        let mut p = Pool::new(0);
        assert_eq!(p.acquire(1), None);
        assert_eq!(p.resize(1), vec![1]);
    }
}
