//! Which input offsets are safe to commit.
//!
//! Every message gets a release time: the latest time at which an output depending on it can
//! still be emitted (the end of the latest window its points fall in, plus the revision
//! horizon). An offset may be committed once the durability frontier has reached the release
//! time of it and of every offset before it. Runs of offsets with the same prefix maximum are
//! kept as one entry, so memory is per window boundary, not per message.

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct PartitionCommits {
    /// (last offset of the run, prefix-maximum release time).
    runs: VecDeque<(i64, i64)>,
    max_release: Option<i64>,
}

impl PartitionCommits {
    /// Records a message at `offset` (offsets arrive increasing).
    pub fn push(&mut self, offset: i64, release: i64) {
        let r = self.max_release.map_or(release, |m| m.max(release));
        self.max_release = Some(r);
        match self.runs.back_mut() {
            Some(back) if back.1 == r => back.0 = offset,
            _ => self.runs.push_back((offset, r)),
        }
    }

    /// The highest offset whose outputs are all durable at `durable` (and forgets up to it).
    pub fn take_committable(&mut self, durable: i64) -> Option<i64> {
        let mut last = None;
        while let Some(&(offset, release)) = self.runs.front() {
            if release > durable {
                break;
            }
            last = Some(offset);
            self.runs.pop_front();
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_follow_the_prefix_maximum() {
        let mut c = PartitionCommits::default();
        c.push(0, 100);
        c.push(1, 100);
        c.push(2, 300);
        c.push(3, 50); // an early record after a later one waits for the later one
        c.push(4, 400);
        assert_eq!(c.take_committable(99), None);
        assert_eq!(c.take_committable(100), Some(1));
        assert_eq!(c.take_committable(350), Some(3));
        assert_eq!(c.take_committable(i64::MAX), Some(4));
        assert_eq!(c.take_committable(i64::MAX), None);
    }
}
