//! A station: `servers` servers and a FIFO line. A job that arrives while a server is free
//! starts at once; otherwise it waits in line and starts when one frees. The station knows
//! nothing of time: the caller schedules the ends of service on its clock.

use std::collections::VecDeque;

/// A multi-server FIFO queue of jobs `J`.
#[derive(Debug)]
pub struct Station<J> {
    servers: usize,
    busy: usize,
    line: VecDeque<J>,
}

impl<J> Station<J> {
    /// A station with `servers` servers (at least one).
    pub fn new(servers: usize) -> Self {
        Station {
            servers: servers.max(1),
            busy: 0,
            line: VecDeque::new(),
        }
    }

    /// A job arrives: `Some(job)` when it starts at once (a server was free), `None` when it
    /// waits in line.
    pub fn arrive(&mut self, job: J) -> Option<J> {
        if self.busy < self.servers {
            self.busy += 1;
            Some(job)
        } else {
            self.line.push_back(job);
            None
        }
    }

    /// A service ended: the next job in line, which starts now on the server freed.
    pub fn finish(&mut self) -> Option<J> {
        match self.line.pop_front() {
            Some(j) => Some(j),
            None => {
                self.busy = self.busy.saturating_sub(1);
                None
            }
        }
    }

    /// Servers busy.
    pub fn busy(&self) -> usize {
        self.busy
    }

    /// Jobs waiting.
    pub fn waiting(&self) -> usize {
        self.line.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_start_while_servers_are_free_then_wait_in_order() {
        let mut s = Station::new(2);
        assert_eq!(s.arrive(1), Some(1));
        assert_eq!(s.arrive(2), Some(2));
        assert_eq!(s.arrive(3), None);
        assert_eq!(s.arrive(4), None);
        assert_eq!((s.busy(), s.waiting()), (2, 2));
        assert_eq!(s.finish(), Some(3), "first in line first");
        assert_eq!(s.finish(), Some(4));
        assert_eq!(s.finish(), None);
        assert_eq!((s.busy(), s.waiting()), (1, 0));
        assert_eq!(s.finish(), None);
        assert_eq!(s.busy(), 0);
        assert_eq!(s.finish(), None, "nothing to finish stays at 0");
        assert_eq!(s.busy(), 0);
    }
}
