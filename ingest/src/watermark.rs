//! Event-time watermarks (DESIGN.md §3).
//!
//! Each partition has its own watermark: the highest event time seen on it less the allowed
//! lateness. A worker's watermark is the least of its partitions' and never goes backwards.
//!
//! What a silent partition does is the [`IdlePolicy`]:
//!
//! - [`IdlePolicy::Hold`] (the default): a partition holds the watermark until it delivers, however
//!   long it is silent, and one that has delivered nothing yet holds it at the beginning of time.
//!   The watermark then only moves on the input itself, so a partition's backlog that arrives
//!   late (an empty partition at start, a producer catching up on an hour of data) lands in its
//!   windows, and whether a record is late depends on its partition's earlier records alone
//!   ([`WatermarkTracker::partition_watermark`]), so a replay decides as the first run did.
//! - [`IdlePolicy::Advance`] (for live dashboards): a partition that is caught up with its log end
//!   and delivered nothing for the idle timeout stops holding the watermark back (one still
//!   fetching a backlog is never idle); when every partition is idle, the watermark follows the
//!   wall clock (less lateness and the idle timeout), so the last windows of a quiet stream
//!   close. Records that arrive behind such a watermark can be late, and that depends on timing.
//!
//! Either way, [`WatermarkTracker::silent`] names the partitions that have been silent for the
//! idle timeout, so the lane can say which partition holds things up.
//!
//! A partition whose log end is past its position yet delivers nothing is *behind*
//! ([`WatermarkTracker::set_behind`], from the consumer's statistics): it is never idle, under
//! either policy. One stuck that way for the stuck timeout can be [released]
//! (`WatermarkTracker::release`): it stops holding the watermark until it delivers again, and
//! its records, when they come, are judged late by its own partition's rule.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What a partition that delivers nothing does to the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdlePolicy {
    /// A silent partition holds the watermark: it moves on event times only.
    #[default]
    Hold,
    /// A partition silent for the idle timeout stops holding it; all silent: the wall clock.
    Advance,
}

#[derive(Debug, Clone)]
struct Partition {
    max_ts: Option<i64>,
    last_active: Instant,
    caught_up: bool,
    idle: bool,
    /// Messages wait behind the partition's position (the consumer's statistics).
    behind: bool,
    /// Stuck for the stuck timeout: it does not hold the watermark until it delivers.
    released: bool,
}

#[derive(Debug, Clone)]
/// The event-time watermark of a worker's partitions: the least of the partitions' (highest
/// event time less lateness), silent ones counted as the [`IdlePolicy`] says; it never goes back.
pub struct WatermarkTracker {
    lateness_ms: i64,
    idle_timeout: Duration,
    policy: IdlePolicy,
    parts: BTreeMap<i32, Partition>,
    current: i64,
}

impl WatermarkTracker {
    /// A tracker of `partitions` with `lateness`, a partition idle after `idle_timeout` of silence.
    pub fn new(
        partitions: &[i32],
        lateness: Duration,
        idle_timeout: Duration,
        policy: IdlePolicy,
        now: Instant,
    ) -> Self {
        WatermarkTracker {
            lateness_ms: lateness.as_millis() as i64,
            idle_timeout,
            policy,
            parts: partitions
                .iter()
                .map(|&p| {
                    (
                        p,
                        Partition {
                            max_ts: None,
                            last_active: now,
                            caught_up: false,
                            idle: false,
                            behind: false,
                            released: false,
                        },
                    )
                })
                .collect(),
            current: i64::MIN,
        }
    }

    /// The current watermark (`i64::MIN` before any progress).
    pub fn watermark(&self) -> i64 {
        self.current
    }

    /// What silent partitions do.
    pub fn policy(&self) -> IdlePolicy {
        self.policy
    }

    /// The watermark of `partition` alone: its highest event time so far less lateness
    /// (`i64::MIN` before its first record). It depends only on what the partition delivered.
    pub fn partition_watermark(&self, partition: i32) -> i64 {
        self.parts
            .get(&partition)
            .and_then(|p| p.max_ts)
            .map_or(i64::MIN, |m| m.saturating_sub(self.lateness_ms))
    }

    /// Notes activity on a partition (any message, usable or not).
    pub fn touch(&mut self, partition: i32, now: Instant) {
        if let Some(p) = self.parts.get_mut(&partition) {
            p.last_active = now;
            p.caught_up = false;
            p.idle = false;
            p.released = false;
        }
    }

    /// Notes whether messages wait behind `partition`'s position (its lag, from the consumer's
    /// statistics): a partition behind is never idle, whatever its last end-of-partition said.
    pub fn set_behind(&mut self, partition: i32, behind: bool) {
        if let Some(p) = self.parts.get_mut(&partition) {
            p.behind = behind;
        }
    }

    /// Stops `partition` holding the watermark until it delivers again (it is stuck: its next
    /// record cannot be fetched). Returns the watermark, moved on the other partitions alone.
    pub fn release(&mut self, partition: i32) -> i64 {
        if let Some(p) = self.parts.get_mut(&partition) {
            p.released = true;
            self.recompute(None);
        }
        self.current
    }

    /// True while `partition` is released ([`Self::release`]) and has not delivered since.
    pub fn released(&self, partition: i32) -> bool {
        self.parts.get(&partition).is_some_and(|p| p.released)
    }

    /// How long `partition` has delivered nothing, as of `now`.
    pub fn quiet_for(&self, partition: i32, now: Instant) -> Option<Duration> {
        self.parts
            .get(&partition)
            .map(|p| now.saturating_duration_since(p.last_active))
    }

    /// Notes that `partition` reached its log end.
    pub fn caught_up(&mut self, partition: i32) {
        if let Some(p) = self.parts.get_mut(&partition) {
            p.caught_up = true;
        }
    }

    /// Notes an event time seen on `partition` and returns the (possibly advanced) watermark.
    /// The partition must have been [`touch`](Self::touch)ed in this batch.
    pub fn observe(&mut self, partition: i32, ts: i64) -> i64 {
        if let Some(p) = self.parts.get_mut(&partition) {
            if p.max_ts.is_none_or(|m| ts > m) {
                p.max_ts = Some(ts);
                self.recompute(None);
            }
        }
        self.current
    }

    /// Re-evaluates idleness at `now` (and, under [`IdlePolicy::Advance`], the wall clock
    /// `wall_ms`, used when all are idle).
    pub fn refresh(&mut self, now: Instant, wall_ms: i64) -> i64 {
        for p in self.parts.values_mut() {
            p.idle =
                p.caught_up && !p.behind && now.duration_since(p.last_active) >= self.idle_timeout;
        }
        self.recompute(Some(wall_ms));
        self.current
    }

    /// Partitions that delivered nothing for the idle timeout as of `now`, each with whether it
    /// is at its log end (`false`: it is behind yet delivers nothing) and its watermark.
    pub fn silent(&self, now: Instant) -> Vec<(i32, bool, i64)> {
        self.parts
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_active) >= self.idle_timeout)
            .map(|(&i, p)| (i, p.caught_up && !p.behind, self.partition_watermark(i)))
            .collect()
    }

    /// (partition, highest event time seen) of every partition, for a checkpoint.
    pub fn event_times(&self) -> Vec<(i32, Option<i64>)> {
        self.parts.iter().map(|(&p, s)| (p, s.max_ts)).collect()
    }

    /// Takes up the event times and watermark of a checkpoint ([`Self::event_times`],
    /// [`Self::watermark`]) for the partitions it tracks; others are ignored.
    pub fn restore(&mut self, event_times: &[(i32, Option<i64>)], watermark: i64) {
        for &(p, ts) in event_times {
            if let Some(s) = self.parts.get_mut(&p) {
                s.max_ts = ts;
            }
        }
        self.recompute(None);
        self.current = self.current.max(watermark);
    }

    /// True when every partition has reached its log end since its last message.
    pub fn all_caught_up(&self) -> bool {
        self.parts.values().all(|p| p.caught_up)
    }

    /// True when every partition has been idle for the idle timeout.
    pub fn all_idle(&self) -> bool {
        self.parts.values().all(|p| p.idle)
    }

    fn recompute(&mut self, wall_ms: Option<i64>) {
        let advance = self.policy == IdlePolicy::Advance;
        let holding = self
            .parts
            .values()
            .filter(|p| !(p.released || advance && p.idle));
        let mut any = false;
        let mut min = i64::MAX;
        for p in holding {
            any = true;
            min = min.min(
                p.max_ts
                    .map_or(i64::MIN, |m| m.saturating_sub(self.lateness_ms)),
            );
        }
        let candidate = if any {
            min
        } else if let (true, Some(wall)) = (advance, wall_ms) {
            wall - self.lateness_ms - self.idle_timeout.as_millis() as i64
        } else {
            i64::MIN
        };
        self.current = self.current.max(candidate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_partitions_minus_lateness() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(
            &[0, 1],
            Duration::from_secs(2),
            Duration::from_secs(10),
            IdlePolicy::Hold,
            t0,
        );
        w.touch(0, t0);
        assert_eq!(
            w.observe(0, 10_000),
            i64::MIN,
            "partition 1 has not spoken yet"
        );
        w.touch(1, t0);
        assert_eq!(w.observe(1, 7_000), 5_000);
        assert_eq!(w.observe(1, 20_000), 8_000);
        assert_eq!(
            w.observe(1, 1_000),
            8_000,
            "old records do not move it back"
        );
        assert_eq!(w.partition_watermark(1), 18_000);
        assert_eq!(w.partition_watermark(0), 8_000);
    }

    #[test]
    fn under_hold_a_silent_or_empty_partition_holds_the_watermark_however_long() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(
            &[0, 1],
            Duration::from_secs(1),
            Duration::from_secs(5),
            IdlePolicy::Hold,
            t0,
        );
        w.touch(0, t0);
        w.observe(0, 50_000);
        w.caught_up(0);
        w.caught_up(1);
        let much_later = t0 + Duration::from_secs(3600);
        assert_eq!(
            w.refresh(much_later, 10_000_000),
            i64::MIN,
            "partition 1 never delivered: the watermark waits for it, not for the clock"
        );
        assert!(w.all_idle());
        assert_eq!(
            w.silent(much_later),
            vec![(0, true, 49_000), (1, true, i64::MIN)]
        );
        w.touch(1, much_later);
        assert_eq!(w.observe(1, 30_000), 29_000);
        assert_eq!(w.silent(much_later), vec![(0, true, 49_000)]);
    }

    #[test]
    fn under_advance_an_idle_partition_stops_holding_back_and_all_idle_follows_the_clock() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(
            &[0, 1],
            Duration::from_secs(1),
            Duration::from_secs(5),
            IdlePolicy::Advance,
            t0,
        );
        w.touch(0, t0);
        w.observe(0, 50_000);
        let later = t0 + Duration::from_secs(6);
        assert_eq!(
            w.refresh(later, 0),
            i64::MIN,
            "partition 1 is still fetching: not idle"
        );
        assert_eq!(
            w.silent(later),
            vec![(0, false, 49_000), (1, false, i64::MIN)],
            "both behind their log ends and silent for the timeout"
        );
        w.caught_up(1);
        w.touch(0, later);
        assert_eq!(w.refresh(later, 0), 49_000, "partition 1 idle, 0 active");
        w.caught_up(0);
        let much_later = later + Duration::from_secs(6);
        assert_eq!(w.refresh(much_later, 100_000), 94_000);
        assert!(w.all_idle());
    }

    #[test]
    fn a_partition_behind_is_never_idle_and_a_released_one_holds_nothing_until_it_delivers() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(
            &[0, 1],
            Duration::from_secs(1),
            Duration::from_secs(5),
            IdlePolicy::Advance,
            t0,
        );
        for p in [0, 1] {
            w.touch(p, t0);
            w.observe(p, 10_000);
            w.caught_up(p);
        }
        w.set_behind(0, true);
        let later = t0 + Duration::from_secs(6);
        w.touch(1, later);
        w.observe(1, 40_000);
        assert_eq!(
            w.refresh(later, 0),
            9_000,
            "partition 0 reached its end once, but messages wait behind it: not idle"
        );
        assert_eq!(w.silent(later), vec![(0, false, 9_000)]);
        assert_eq!(w.quiet_for(0, later), Some(Duration::from_secs(6)));
        assert_eq!(w.release(0), 39_000, "released: partition 1 alone");
        assert!(w.released(0));
        w.touch(0, later);
        assert!(!w.released(0), "it delivered: it holds again");
        assert_eq!(
            w.observe(0, 12_000),
            39_000,
            "and the watermark does not go back"
        );
        assert_eq!(w.partition_watermark(0), 11_000);

        let mut h = WatermarkTracker::new(
            &[0, 1],
            Duration::from_secs(1),
            Duration::from_secs(5),
            IdlePolicy::Hold,
            t0,
        );
        h.touch(1, t0);
        h.observe(1, 20_000);
        assert_eq!(h.refresh(later, 0), i64::MIN, "partition 0 holds it");
        assert_eq!(
            h.release(0),
            19_000,
            "under hold too, a released one does not"
        );
    }
}
