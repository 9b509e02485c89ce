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
    /// Condition 2 holds for a cut right after `last_offset`. Decided for good when the next
    /// message is read; until then (last run only) it may still turn true.
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
    /// Windows up to `closed_upto` are closed now. Only the cut after the last message read can
    /// profit: the next message will be read at a watermark at least this high. Earlier cuts
    /// were decided when the message after them was read.
    pub fn closed_until(&mut self, closed_upto: i64) {
        if let Some(last) = self.runs.back_mut() {
            if !last.clean && last.end <= closed_upto {
                last.clean = true;
            }
        }
    }

    /// Records a message at `offset` (offsets arrive increasing) read when windows up to
    /// `closed_upto` were closed, with the release time and latest window end of its points
    /// (`i64::MIN` for a message that went to the dead-letter topic entirely).
    pub fn push(&mut self, offset: i64, release: i64, end: i64, closed_upto: i64) {
        // This message is the one after the last run: that cut is decided now.
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
            // A dirty cut is never committed: move it forward instead of keeping it.
            Some(back) if !back.clean => {
                back.last_offset = offset;
                back.release = self.max_release;
                back.end = self.max_end;
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
        // Release times are prefix maxima, so the durable runs are a prefix; the last clean
        // one among them is the cut to commit.
        let durable_prefix = self
            .runs
            .iter()
            .take_while(|r| r.release <= durable)
            .count();
        let cut = self
            .runs
            .iter()
            .take(durable_prefix)
            .rposition(|r| r.clean)?;
        let last = self.runs[cut].last_offset;
        self.runs.drain(..=cut);
        Some(last)
    }

    /// At the end of input (drain): every message read is committable once durable.
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
        assert_eq!(
            c.take_committable(1000),
            None,
            "no window closed yet: no clean cut"
        );
        // Read with windows up to 20 closed: the cut after 3 is clean (its windows end by 20).
        c.push(4, 400, 30, 20);
        assert_eq!(c.take_committable(299), None, "not durable yet");
        assert_eq!(c.take_committable(300), Some(3));
        c.closed_until(30);
        assert_eq!(c.take_committable(400), Some(4));
        assert_eq!(c.take_committable(i64::MAX), None);
    }

    #[test]
    fn a_cut_decided_dirty_stays_dirty_but_later_cuts_commit() {
        let mut c = PartitionCommits::default();
        c.push(0, 100, 10, 0);
        c.push(1, 200, 20, 0); // read before window 10 closed: the cut after 0 is dirty
        c.closed_until(15); // too late for the cut after 0; not enough for the cut after 1
        assert_eq!(c.take_committable(i64::MAX), None);
        c.push(2, 200, 20, 20); // the cut after 1 is clean
        assert_eq!(c.take_committable(i64::MAX), Some(1));
        c.finish();
        assert_eq!(c.take_committable(i64::MAX), Some(2));
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
