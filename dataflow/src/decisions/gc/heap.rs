//! What a window of a JVM service's GC metrics calls for (a pure function): nothing while its
//! pauses keep to the limit; else a heap that holds the live set at the target share (grown
//! at most `max_growth` times, at most `max_heap`, whole MiB), or, when the heap is not that
//! full or cannot grow, a shorter pause goal.

use super::{GcTarget, G1_PAUSE_GOAL_MS};

/// What one window showed of the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seen {
    /// The window's p95 pause, seconds.
    pub pause_s: f64,
    /// The heap's limit, bytes.
    pub limit: f64,
    /// The heap in use, its mean, bytes.
    pub used: f64,
}

/// A change the rule asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// A larger heap: `to` bytes, for a live set of `live` bytes (`share` of the heap now).
    Heap {
        /// The heap asked for, bytes.
        to: f64,
        /// The live set estimated, bytes.
        live: f64,
        /// Its share of the heap now.
        share: f64,
    },
    /// A pause goal of `to_ms` (from G1's default), the live set `share` of the heap.
    PauseGoal {
        /// The goal asked for, ms.
        to_ms: f64,
        /// The live set's share of the heap.
        share: f64,
    },
}

const MIB: f64 = 1024.0 * 1024.0;

/// The live set a heap of `limit` whose use averaged `used` holds: a sawtooth from the live
/// set to the limit averages half way, so 2 x used - limit (within 0 and the limit).
pub fn live_set(used: f64, limit: f64) -> f64 {
    (2.0 * used - limit).clamp(0.0, limit.max(0.0))
}

/// What `seen` calls for under `t` (`goal_set`: the rule already asked for the pause goal).
pub fn change(t: &GcTarget, seen: &Seen, goal_set: bool) -> Option<Change> {
    let max_pause_s = t.max_pause.as_secs_f64();
    if !(seen.pause_s.is_finite() && seen.limit.is_finite() && seen.used.is_finite())
        || seen.limit <= 0.0
        || seen.pause_s <= max_pause_s
    {
        return None;
    }
    let live = live_set(seen.used, seen.limit);
    let share = live / seen.limit;
    if share > t.occupancy {
        let want = (live / t.occupancy)
            .min(seen.limit * t.max_growth)
            .min(t.max_heap);
        let to = (want / MIB).ceil() * MIB;
        if to > seen.limit {
            return Some(Change::Heap { to, live, share });
        }
    }
    let to_ms = max_pause_s * 1000.0;
    (!goal_set && to_ms < G1_PAUSE_GOAL_MS).then_some(Change::PauseGoal { to_ms, share })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> GcTarget {
        toml::from_str("target = \"checkout\"\nmax_heap = 2147483648\n").unwrap()
    }

    #[test]
    fn a_full_heap_grows_to_hold_its_live_set_at_g1s_occupancy_and_a_roomy_one_gets_a_goal() {
        let t = target();
        assert_eq!(t.check(), Ok(()));
        let (limit, live) = (480.0 * MIB, 400.0 * MIB);
        // used averages half way from the live set to the limit
        let seen = Seen {
            pause_s: 0.12,
            limit,
            used: (limit + live) / 2.0,
        };
        assert_eq!(live_set(seen.used, limit), live);
        // 400 MiB at 45 %: 888.9 MiB, whole MiB up: 889; under 2 x 480 and 2 GiB
        assert_eq!(
            change(&t, &seen, false),
            Some(Change::Heap {
                to: 889.0 * MIB,
                live,
                share: 400.0 / 480.0
            })
        );
        // pauses within 100 ms: nothing, however full
        let short = Seen {
            pause_s: 0.1,
            ..seen
        };
        assert_eq!(change(&t, &short, false), None);
        // growth bounded by max_growth, then by max_heap
        let huge = Seen {
            used: (limit + 470.0 * MIB) / 2.0,
            ..seen
        };
        assert!(
            matches!(change(&t, &huge, false), Some(Change::Heap { to, .. }) if to == 960.0 * MIB)
        );
        let capped = GcTarget {
            max_heap: 600.0 * MIB,
            ..t.clone()
        };
        assert!(
            matches!(change(&capped, &seen, false), Some(Change::Heap { to, .. }) if to == 600.0 * MIB)
        );
        // at max_heap already: the heap cannot help; the pause goal, once
        let at_cap = GcTarget {
            max_heap: limit,
            ..t.clone()
        };
        assert_eq!(
            change(&at_cap, &seen, false),
            Some(Change::PauseGoal {
                to_ms: 100.0,
                share: 400.0 / 480.0
            })
        );
        assert_eq!(change(&at_cap, &seen, true), None);
        // a roomy heap (live 100 of 480 MiB) pausing long: not short of room: the goal
        let roomy = Seen {
            used: (limit + 100.0 * MIB) / 2.0,
            ..seen
        };
        assert!(matches!(
            change(&t, &roomy, false),
            Some(Change::PauseGoal { to_ms, .. }) if to_ms == 100.0
        ));
        // a limit of 300 ms is looser than G1's goal: nothing to ask of it
        let loose = GcTarget {
            max_pause: std::time::Duration::from_millis(300),
            ..t
        };
        let slow = Seen {
            pause_s: 0.4,
            ..roomy
        };
        assert_eq!(change(&loose, &slow, false), None);
        // the live set stays within the heap
        assert_eq!(
            (live_set(10.0, 100.0), live_set(150.0, 100.0)),
            (0.0, 100.0)
        );
    }
}
