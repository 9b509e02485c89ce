//! A replica's garbage-collected heap, as a generational collector (G1) behaves under load:
//! each request allocates garbage, and while it is in the replica (in service or in line) it
//! holds live memory on top of the service's own live set. When the garbage fills the heap's
//! free part (its limit less the live set), a collection stops the world: every worker of the
//! replica stands still for its pause. The pause grows with heap pressure, the live share
//! `p` of the limit: `young_pause / (1 - p)` (the collector copies and scans more and
//! reclaims less as the heap fills), and the fuller heap also fills again sooner, so the time
//! lost to collections grows as `1 / (1 - p)^2`. A heap whose live set reaches its limit is
//! taken as [`MAX_OCCUPANCY`] full (a real one would fail with an out-of-memory error).
//!
//! The heap's limit is the setting a GC decision tunes ([`HEAP_SETTING`]: bytes, the name of
//! the metric that reports it).

use crate::events::Nanos;

/// The setting a heap decision tunes: each replica's heap limit, bytes (the OpenTelemetry
/// name of the metric that reports it).
pub const HEAP_SETTING: &str = "jvm.memory.limit";

/// The fullest a heap is taken to be.
pub const MAX_OCCUPANCY: f64 = 0.99;

/// A service's heap, per replica.
#[derive(Debug, Clone, PartialEq)]
pub struct HeapConfig {
    /// The heap's limit at the start, bytes (`-Xmx`).
    pub limit_bytes: f64,
    /// The service's own live set, bytes.
    pub live_bytes: f64,
    /// Live memory each request in the replica holds, bytes.
    pub request_live_bytes: f64,
    /// Garbage each request allocates, bytes.
    pub request_alloc_bytes: f64,
    /// A collection's pause at an empty heap, seconds.
    pub young_pause_s: f64,
}

impl Default for HeapConfig {
    /// A 512 MiB heap, 128 MiB of it live, 2 MiB live and 4 MiB of garbage a request, 20 ms
    /// pauses at an empty heap: at 40 requests a second with 4 in the replica, a 27 ms pause
    /// every 2.4 s (1 % of the time).
    fn default() -> Self {
        const MIB: f64 = 1024.0 * 1024.0;
        HeapConfig {
            limit_bytes: 512.0 * MIB,
            live_bytes: 128.0 * MIB,
            request_live_bytes: 2.0 * MIB,
            request_alloc_bytes: 4.0 * MIB,
            young_pause_s: 0.02,
        }
    }
}

impl HeapConfig {
    /// What is wrong with it, if anything.
    pub fn check(&self) -> Result<(), String> {
        let all = [
            self.limit_bytes,
            self.live_bytes,
            self.request_live_bytes,
            self.request_alloc_bytes,
            self.young_pause_s,
        ];
        if all.iter().any(|v| !(v.is_finite() && *v >= 0.0)) || self.limit_bytes <= 0.0 {
            return Err(format!(
                "a heap needs a positive limit and sizes and a pause of at least 0 (got {self:?})"
            ));
        }
        Ok(())
    }

    /// The live set with `in_flight` requests in the replica, bytes.
    pub fn live(&self, in_flight: usize) -> f64 {
        self.live_bytes + self.request_live_bytes * in_flight as f64
    }
}

/// The heap pressure of `live` bytes in a heap of `limit`: its live share, at most
/// [`MAX_OCCUPANCY`].
pub fn occupancy(live: f64, limit: f64) -> f64 {
    if limit <= 0.0 {
        return MAX_OCCUPANCY;
    }
    (live / limit).clamp(0.0, MAX_OCCUPANCY)
}

/// A collection's pause at heap pressure `p`, seconds.
pub fn pause_s(young_pause_s: f64, p: f64) -> f64 {
    young_pause_s / (1.0 - p.min(MAX_OCCUPANCY))
}

/// One replica's heap: garbage since the last collection, and the world stopped so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heap {
    /// Garbage allocated since the last collection, bytes.
    garbage: f64,
    /// The end of the last pause, ns.
    paused_until: Nanos,
    /// All pauses so far, ns.
    paused_total: Nanos,
}

impl Heap {
    /// A request starts its work at `now`, `in_flight` requests in the replica (it among
    /// them), the heap's limit `limit`: its garbage, and when the free part is full, a
    /// collection, whose pause (ns) is returned. It begins at `now`, or when a pause still
    /// going ends.
    pub fn allocate(
        &mut self,
        cfg: &HeapConfig,
        limit: f64,
        in_flight: usize,
        now: Nanos,
    ) -> Option<Nanos> {
        let live = cfg.live(in_flight);
        let p = occupancy(live, limit);
        self.garbage += cfg.request_alloc_bytes;
        let free = (limit - live).max(limit * (1.0 - MAX_OCCUPANCY));
        if self.garbage < free {
            return None;
        }
        self.garbage = 0.0;
        let pause = (pause_s(cfg.young_pause_s, p) * 1e9).round() as Nanos;
        self.paused_until = self.paused_until.max(now).saturating_add(pause);
        self.paused_total = self.paused_total.saturating_add(pause);
        Some(pause)
    }

    /// Garbage allocated since the last collection, bytes.
    pub fn garbage(&self) -> f64 {
        self.garbage
    }

    /// When the world runs again (at or before `now`: it runs).
    pub fn paused_until(&self) -> Nanos {
        self.paused_until
    }

    /// All the pauses so far, ns: work that began when this read `t` and ends now was stopped
    /// for the difference.
    pub fn paused_total(&self) -> Nanos {
        self.paused_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn collections_come_when_the_free_heap_fills_and_pause_longer_as_it_fills() {
        let cfg = HeapConfig::default();
        // 4 requests in: 136 MiB live of 512, p = 0.265625; 376 MiB free, 4 MiB a request:
        // the 94th request's garbage fills it; its pause 20 ms / (1 - p) = 27.23 ms
        let limit = 512.0 * MIB;
        let p: f64 = 136.0 / 512.0;
        let mut h = Heap::default();
        let mut pauses = Vec::new();
        for i in 0..400u64 {
            if let Some(ns) = h.allocate(&cfg, limit, 4, i * 25_000_000) {
                pauses.push((i, ns));
            }
        }
        let want = (0.02 / (1.0 - p) * 1e9).round() as Nanos;
        assert_eq!(pauses, [(93, want), (187, want), (281, want), (375, want)]);
        assert_eq!(h.paused_total(), 4 * want);
        assert_eq!(h.paused_until(), 375 * 25_000_000 + want);
        // a 192 MiB heap with the same load: p = 0.708, 56 MiB free: one every 14 requests,
        // each 68.6 ms
        let mut small = Heap::default();
        let n = (0..400u64)
            .filter_map(|i| small.allocate(&cfg, 192.0 * MIB, 4, i * 25_000_000))
            .inspect(|ns| {
                assert_eq!(
                    *ns,
                    (0.02f64 / (1.0 - 136.0 / 192.0) * 1e9).round() as Nanos
                )
            })
            .count();
        assert_eq!(n, 400 / 14);
        // the time lost per request, (pause / requests between collections), grows as
        // 1 / (1 - p)^2: 27.2 ms / 94 = 0.29 ms at 512 MiB, 68.6 ms / 14 = 4.9 ms at 192
        assert!(small.paused_total() > 15 * h.paused_total());
    }

    #[test]
    fn a_pause_that_comes_while_one_is_going_begins_when_it_ends_and_a_full_heap_is_bounded() {
        let cfg = HeapConfig {
            request_alloc_bytes: 400.0 * MIB,
            ..HeapConfig::default()
        };
        let mut h = Heap::default();
        let limit = 512.0 * MIB;
        let first = h.allocate(&cfg, limit, 0, 1_000).unwrap();
        let second = h.allocate(&cfg, limit, 0, 2_000).unwrap();
        assert_eq!(h.paused_until(), 1_000 + first + second);
        // live over the limit: taken as 99 % full, a pause of 100 x the young one
        assert_eq!(occupancy(600.0 * MIB, limit), MAX_OCCUPANCY);
        assert!((pause_s(0.02, occupancy(600.0 * MIB, limit)) - 2.0).abs() < 1e-9);
        assert!(HeapConfig {
            limit_bytes: 0.0,
            ..cfg.clone()
        }
        .check()
        .is_err());
        assert!(HeapConfig {
            young_pause_s: f64::NAN,
            ..cfg
        }
        .check()
        .is_err());
    }
}
