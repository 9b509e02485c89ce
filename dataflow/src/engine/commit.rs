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
//!    the replay would emit it again with only the records after the cut;
//! 3. the same lateness: the replay classifies every record after `o` as late or not as this
//!    run did. A record is late by its partition's highest event time before it (see
//!    [`apo_ingest::watermark`]), and the replay starts without the records up to `o`. So a
//!    cut is *settled* only once a record after it reached the highest event time before it
//!    (from then on both runs see the same maximum), and no record was found late while it
//!    was unsettled (that record might not be late in the replay). Unsettled cuts are always
//!    the newest ones, since prefix maxima only grow.
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
    /// Highest event time up to `last_offset` (`None`: no record yet in this run).
    prefix_max: Option<i64>,
    /// Condition 3 for a cut right after `last_offset`.
    lateness: Lateness,
}

/// Whether a replay from a cut would classify lateness as this run did (condition 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lateness {
    /// No record after the cut has reached the highest event time before it yet.
    Unsettled,
    /// One has, and no record was late before it: a replay decides the same.
    Same,
    /// A record was late while the cut was unsettled: never commit this cut.
    Differs,
}

#[derive(Debug, Default)]
pub struct PartitionCommits {
    runs: VecDeque<Run>,
    max_release: i64,
    max_end: i64,
    max_ts: Option<i64>,
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
    ///
    /// `ts` is the message's event-time summary: the highest event time of its records
    /// (`None`: it had none) and whether any of them was late.
    pub fn push(
        &mut self,
        offset: i64,
        release: i64,
        end: i64,
        closed_upto: i64,
        ts: MessageTimes,
    ) {
        // This message is the one after the last run: that cut is decided now.
        self.closed_until(closed_upto);
        self.settle(ts);
        if let Some(t) = ts.max {
            self.max_ts = Some(self.max_ts.map_or(t, |m| m.max(t)));
        }
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
                back.prefix_max = self.max_ts;
                back.lateness = Lateness::initial(self.max_ts);
            }
            _ => self.runs.push_back(Run {
                last_offset: offset,
                release: self.max_release,
                end: self.max_end,
                clean: false,
                prefix_max: self.max_ts,
                lateness: Lateness::initial(self.max_ts),
            }),
        }
    }

    /// Condition 3 for the cuts before a message with event times `ts`: a late record spoils
    /// every unsettled cut (conservatively: whatever its place in the message), then the
    /// message's highest event time settles those it reaches.
    fn settle(&mut self, ts: MessageTimes) {
        for r in self.runs.iter_mut().rev() {
            if r.lateness != Lateness::Unsettled {
                break;
            }
            if ts.late {
                r.lateness = Lateness::Differs;
            } else if let (Some(t), Some(m)) = (ts.max, r.prefix_max) {
                if t >= m {
                    r.lateness = Lateness::Same;
                }
            }
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
            .rposition(|r| r.clean && r.lateness == Lateness::Same)?;
        let last = self.runs[cut].last_offset;
        self.runs.drain(..=cut);
        Some(last)
    }

    /// At the end of input (drain): every message read is committable once durable.
    pub fn finish(&mut self) {
        for r in self.runs.iter_mut() {
            r.clean = true;
            if r.lateness == Lateness::Unsettled {
                r.lateness = Lateness::Same;
            }
        }
    }
}

impl Lateness {
    /// A cut with nothing before it in this run is settled from the start.
    fn initial(prefix_max: Option<i64>) -> Self {
        if prefix_max.is_some() {
            Lateness::Unsettled
        } else {
            Lateness::Same
        }
    }
}

/// The event times of one message, as the commit rule needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageTimes {
    /// Highest event time of its records (late ones included), if it had any.
    pub max: Option<i64>,
    /// Some record of it was late.
    pub late: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: MessageTimes = MessageTimes {
        max: None,
        late: false,
    };

    fn at(ts: i64, late: bool) -> MessageTimes {
        MessageTimes {
            max: Some(ts),
            late,
        }
    }

    #[test]
    fn commits_need_durability_and_a_clean_cut() {
        let mut c = PartitionCommits::default();
        // (offset, release, window end, closed up to when read)
        c.push(0, 100, 10, 0, NONE);
        c.push(1, 100, 10, 0, NONE);
        c.push(2, 300, 20, 5, NONE);
        c.push(3, 50, 5, 5, NONE); // an early record after a later one waits for the later one
        assert_eq!(
            c.take_committable(1000),
            None,
            "no window closed yet: no clean cut"
        );
        // Read with windows up to 20 closed: the cut after 3 is clean (its windows end by 20).
        c.push(4, 400, 30, 20, NONE);
        assert_eq!(c.take_committable(299), None, "not durable yet");
        assert_eq!(c.take_committable(300), Some(3));
        c.closed_until(30);
        assert_eq!(c.take_committable(400), Some(4));
        assert_eq!(c.take_committable(i64::MAX), None);
    }

    #[test]
    fn a_cut_decided_dirty_stays_dirty_but_later_cuts_commit() {
        let mut c = PartitionCommits::default();
        c.push(0, 100, 10, 0, NONE);
        c.push(1, 200, 20, 0, NONE); // read before window 10 closed: the cut after 0 is dirty
        c.closed_until(15); // too late for the cut after 0; not enough for the cut after 1
        assert_eq!(c.take_committable(i64::MAX), None);
        c.push(2, 200, 20, 20, NONE); // the cut after 1 is clean
        assert_eq!(c.take_committable(i64::MAX), Some(1));
        c.finish();
        assert_eq!(c.take_committable(i64::MAX), Some(2));
    }

    #[test]
    fn dead_letter_only_messages_commit_with_their_neighbours() {
        let mut c = PartitionCommits::default();
        c.push(0, i64::MIN, i64::MIN, 0, NONE);
        assert_eq!(c.take_committable(0), None);
        c.closed_until(0);
        assert_eq!(c.take_committable(0), Some(0));
    }

    #[test]
    fn a_cut_commits_once_a_later_record_reached_its_highest_event_time() {
        let mut c = PartitionCommits::default();
        // Every window closed at once (closed_upto high), everything durable: only condition
        // 3 decides.
        c.push(0, 0, 0, i64::MAX, at(10_000, false));
        c.push(1, 0, 0, i64::MAX, at(4_000, false)); // behind the cut after 0: unsettled
        assert_eq!(
            c.take_committable(i64::MAX),
            None,
            "a replay from after 0 would not know 10 000 was seen"
        );
        c.push(2, 0, 0, i64::MAX, at(10_000, false)); // reaches it: cuts after 0 and 1 settle
        assert_eq!(c.take_committable(i64::MAX), Some(1));
        c.push(3, 0, 0, i64::MAX, at(12_000, false));
        assert_eq!(c.take_committable(i64::MAX), Some(2));
    }

    #[test]
    fn a_late_record_behind_an_unsettled_cut_spoils_it_for_good() {
        let mut c = PartitionCommits::default();
        c.push(0, 0, 0, i64::MAX, at(900_000, false));
        // Late by what was seen before the cut after 0: a replay from there would accept it.
        c.push(1, 0, 0, i64::MAX, at(1_000, true));
        c.push(2, 0, 0, i64::MAX, at(950_000, false));
        // The cut after 0 differs; the cut after 1 settled with message 2 (1 000 < 950 000
        // and nothing late after it), the cut after 2 waits for a record reaching 950 000.
        assert_eq!(c.take_committable(i64::MAX), Some(1));
        c.push(3, 0, 0, i64::MAX, at(2_000, true));
        assert_eq!(c.take_committable(i64::MAX), None, "cut after 2 spoilt");
        c.push(4, 0, 0, i64::MAX, at(960_000, false));
        assert_eq!(c.take_committable(i64::MAX), Some(3));
        c.finish();
        assert_eq!(
            c.take_committable(i64::MAX),
            Some(4),
            "at the end of input nothing follows the last cut"
        );
    }
}
