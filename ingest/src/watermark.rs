//! Event-time watermarks (DESIGN.md §3).
//!
//! The watermark of a worker is the minimum, over the partitions it reads, of the highest event
//! time seen minus the allowed lateness. A partition that is caught up with its log end and
//! delivered nothing for longer than the idle timeout stops holding it back (one still fetching a
//! backlog is never idle); when every partition is idle, the watermark follows the
//! wall clock (minus lateness and the idle timeout), so the last windows of a quiet stream close.
//! The watermark never goes backwards.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Partition {
    max_ts: Option<i64>,
    last_active: Instant,
    caught_up: bool,
    idle: bool,
}

#[derive(Debug, Clone)]
/// The event-time watermark of a worker's partitions: the least, over partitions that are not idle, of the highest event time seen less the allowed lateness; it never goes back.
pub struct WatermarkTracker {
    lateness_ms: i64,
    idle_timeout: Duration,
    parts: BTreeMap<i32, Partition>,
    current: i64,
}

impl WatermarkTracker {
    /// A tracker of `partitions` with `lateness`, a partition idle after `idle_timeout` of silence.
    pub fn new(
        partitions: &[i32],
        lateness: Duration,
        idle_timeout: Duration,
        now: Instant,
    ) -> Self {
        WatermarkTracker {
            lateness_ms: lateness.as_millis() as i64,
            idle_timeout,
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

    /// Notes activity on a partition (any message, usable or not).
    pub fn touch(&mut self, partition: i32, now: Instant) {
        if let Some(p) = self.parts.get_mut(&partition) {
            p.last_active = now;
            p.caught_up = false;
            p.idle = false;
        }
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

    /// Re-evaluates idleness at `now` (and the wall clock `wall_ms`, used when all are idle).
    pub fn refresh(&mut self, now: Instant, wall_ms: i64) -> i64 {
        for p in self.parts.values_mut() {
            p.idle = p.caught_up && now.duration_since(p.last_active) >= self.idle_timeout;
        }
        self.recompute(Some(wall_ms));
        self.current
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
        let active = self.parts.values().filter(|p| !p.idle);
        let mut any = false;
        let mut min = i64::MAX;
        for p in active {
            any = true;
            min = min.min(
                p.max_ts
                    .map_or(i64::MIN, |m| m.saturating_sub(self.lateness_ms)),
            );
        }
        let candidate = if any {
            min
        } else if let Some(wall) = wall_ms {
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
        let mut w =
            WatermarkTracker::new(&[0, 1], Duration::from_secs(2), Duration::from_secs(10), t0);
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
    }

    #[test]
    fn idle_partition_stops_holding_back_and_all_idle_follows_the_clock() {
        let t0 = Instant::now();
        let mut w =
            WatermarkTracker::new(&[0, 1], Duration::from_secs(1), Duration::from_secs(5), t0);
        w.touch(0, t0);
        w.observe(0, 50_000);
        let later = t0 + Duration::from_secs(6);
        assert_eq!(
            w.refresh(later, 0),
            i64::MIN,
            "partition 1 is still fetching: not idle"
        );
        w.caught_up(1);
        w.touch(0, later);
        assert_eq!(w.refresh(later, 0), 49_000, "partition 1 idle, 0 active");
        w.caught_up(0);
        let much_later = later + Duration::from_secs(6);
        assert_eq!(w.refresh(much_later, 100_000), 94_000);
        assert!(w.all_idle());
    }
}
