//! Which input offsets are safe to commit.
//!
//! After a crash the pipeline replays from the committed offsets with a fresh watermark, so a
//! committed offset `o` must satisfy two conditions:
//!
//! 1. durability: every output that records up to `o` contribute to is durable. A message's
//!    release time is the end of the latest window its points fall in plus the revision horizon
//!    (the last time a revision caused by it can be emitted); the durability frontier must have
//!    reached the largest release time up to `o`;
//! 2. a clean cut: every window holding a record up to `o` was already closed when the record
//!    after `o` was read. Otherwise a window would hold records on both sides of the cut, and
//!    the replay would emit it again with only the records after the cut.
//!
//! Runs of consecutive offsets with the same prefix maxima are kept as one entry, so memory
//! grows with window boundaries crossed, not with messages.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
struct Run {
    last_offset: i64,
    /// Largest release time of any offset up to `last_offset`.
    release: i64,
    /// Largest window end of any offset up to `last_offset`.
    end: i64,
    /// Condition 2 holds for `last_offset`.
    clean: bool,
}

#[derive(Debug, Default)]
pub struct PartitionCommits {
    runs: VecDeque<Run>,
    max_release: i64,
    max_end: i64,
    seen: bool,
}

impl PartitionCommits {
    /// Marks runs clean whose windows are all closed at watermark `closed_upto`. Valid whenever
    /// every message read so far has been pushed: the next one will be read at a watermark at
    /// least this high.
    pub fn closed_until(&mut self, closed_upto: i64) {
        for r in self.runs.iter_mut().rev() {
            if r.clean {
                break;
            }
            if r.end <= closed_upto {
                r.clean = true;
            }
        }
    }

    /// Records a message at `offset` (offsets arrive increasing) read when windows up to
    /// `closed_upto` were closed, with the release time and latest window end of its points
    /// (`i64::MIN` for a message that went to the dead-letter topic entirely).
    pub fn push(&mut self, offset: i64, release: i64, end: i64, closed_upto: i64) {
        self.closed_until(closed_upto);
        if !self.seen {
            self.max_release = release;
            self.max_end = end;
            self.seen = true;
        } else {
            self.max_release = self.max_release.max(release);
            self.max_end = self.max_end.max(end);
        }
        match self.runs.back_mut() {
            Some(back) if !back.clean && back.release == self.max_release && back.end == self.max_end => {
                back.last_offset = offset;
            }
            _ => self.runs.push_back(Run {
                last_offset: offset,
                release: self.max_release,
                end: self.max_end,
                clean: false,
            }),
        }
    }

    /// The highest offset that may be committed at durability frontier `durable`, if it moved
    /// (and forgets everything up to it).
    pub fn take_committable(&mut self, durable: i64) -> Option<i64> {
        let mut last = None;
        while let Some(r) = self.runs.front() {
            if !r.clean || r.release > durable {
                break;
            }
            last = Some(r.last_offset);
            self.runs.pop_front();
        }
        last
    }

    /// At the end of input (drain): everything read is committable once durable.
    pub fn finish(&mut self) {
        for r in self.runs.iter_mut() {
            r.clean = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_need_durability_and_a_clean_cut() {
        let mut c = PartitionCommits::default();
        // (offset, release, window end, closed up to when read)
        c.push(0, 100, 10, 0);
        c.push(1, 100, 10, 0);
        c.push(2, 300, 20, 5);
        c.push(3, 50, 5, 5); // an early record after a later one waits for the later one
        assert_eq!(c.take_committable(1000), None, "no window closed yet: no clean cut");
        c.push(4, 400, 30, 10); // read with windows up to 10 closed: cut after 1 is clean
        assert_eq!(c.take_committable(99), None, "not durable yet");
        assert_eq!(c.take_committable(100), Some(1));
        c.closed_until(20);
        assert_eq!(c.take_committable(350), Some(3));
        assert_eq!(c.take_committable(i64::MAX), None, "window 30 still open");
        c.finish();
        assert_eq!(c.take_committable(i64::MAX), Some(4));
    }

    #[test]
    fn dead_letter_only_messages_commit_with_their_neighbours() {
        let mut c = PartitionCommits::default();
        c.push(0, i64::MIN, i64::MIN, 0);
        assert_eq!(c.take_committable(0), None);
        c.closed_until(0);
        assert_eq!(c.take_committable(0), Some(0));
    }
}
