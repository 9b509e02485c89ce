//! A pool's size from Little's law: connections in use on average = the rate at which they
//! are taken x how long each is held (L = λW). The size asked for keeps the busiest of the
//! last windows at `max_utilization` of the pool, within `min_size` and the cap (`max_size`,
//! HikariCP's cores x 2 + spindles); a busy share within `tolerance` of the aim changes
//! nothing, unless the size now is outside the bounds.

use super::PoolTarget;

/// The seconds in one unit of a duration metric (UCUM, as OpenTelemetry writes them); an
/// empty unit is seconds (the semantic conventions' unit); `None` for another unit.
pub fn seconds_per(unit: &str) -> Option<f64> {
    match unit {
        "" | "s" => Some(1.0),
        "ms" => Some(1e-3),
        "us" | "µs" => Some(1e-6),
        "ns" => Some(1e-9),
        "min" => Some(60.0),
        _ => None,
    }
}

/// Connections busy on average in a window: uses per second x mean hold time (s).
pub fn busy(uses: u64, window_seconds: u32, mean_hold_s: f64) -> f64 {
    uses as f64 / f64::from(window_seconds.max(1)) * mean_hold_s
}

/// What the rule asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizing {
    /// The size to set.
    pub size: u32,
    /// The busiest window's connections in use.
    pub peak: f64,
    /// The size Little's law asks for before the bounds.
    pub unbounded: u64,
}

/// Floating-point slack: 8 busy at 80 % is 10, not 11.
const SLACK: f64 = 1e-9;

/// The size for the busy connections of the last windows (`recent`, the newest last, at
/// most `lookback` of them) when the pool has `current`; `None` when it should stay.
pub fn size_for(p: &PoolTarget, recent: &[f64], current: u32) -> Option<Sizing> {
    let peak = recent.iter().copied().fold(f64::NAN, f64::max);
    if !peak.is_finite() || peak < 0.0 {
        return None;
    }
    let unbounded = (peak / p.max_utilization * (1.0 - SLACK)).ceil().max(0.0) as u64;
    let cap = p.cap();
    let size = unbounded.clamp(u64::from(p.min_size), u64::from(cap)) as u32;
    let in_bounds = (p.min_size..=cap).contains(&current);
    let usage = peak / (f64::from(current.max(1)) * p.max_utilization);
    if size == current || (in_bounds && (usage - 1.0).abs() <= p.tolerance + SLACK) {
        return None;
    }
    Some(Sizing {
        size,
        peak,
        unbounded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(toml: &str) -> PoolTarget {
        let p: PoolTarget = toml::from_str(&format!("target = \"checkout\"\n{toml}")).unwrap();
        p.check().unwrap();
        p
    }

    #[test]
    fn littles_law_in_use_is_rate_times_hold_time() {
        // 1 200 uses in a 60 s window, held 400 ms on average: 20/s x 0.4 s = 8 in use
        assert_eq!(busy(1_200, 60, 0.4), 8.0);
        assert_eq!(busy(0, 60, 0.4), 0.0);
        assert_eq!(seconds_per("ms"), Some(0.001));
        assert_eq!(seconds_per(""), Some(1.0));
        assert_eq!(seconds_per("By"), None);
    }

    #[test]
    fn the_size_keeps_the_busiest_window_at_80_percent() {
        let p = pool("max_size = 50");
        // 8 in use at 80 %: 10 (exactly, not 11); from 5: grow to 10
        let s = size_for(&p, &[8.0], 5).unwrap();
        assert_eq!((s.size, s.peak, s.unbounded), (10, 8.0, 10));
        // the busiest of the windows counts: shrinking waits for all of them
        assert_eq!(size_for(&p, &[2.0, 8.0, 1.0], 20).unwrap().size, 10);
        assert_eq!(size_for(&p, &[2.0, 1.0, 1.0], 20).unwrap().size, 3);
        // within the tolerance: 8.5 busy of 10 is 85 % (106 % of the aim): no change; 9 is
        // 112.5 %: 12 (9 / 0.8 = 11.25)
        assert_eq!(size_for(&p, &[8.5], 10), None);
        assert_eq!(size_for(&p, &[9.0], 10).unwrap().size, 12);
        // nothing in use: the minimum
        assert_eq!(size_for(&p, &[0.0], 10).unwrap().size, 1);
        assert_eq!(size_for(&p, &[f64::NAN], 10), None);
    }

    #[test]
    fn hikaricps_formula_and_max_size_cap_it() {
        // 4 cores, 1 spindle: 9 connections is the useful most (HikariCP's example)
        let p = pool("db_cores = 4");
        assert_eq!(p.cap(), 9);
        let s = size_for(&p, &[40.0], 5).unwrap();
        assert_eq!((s.size, s.unbounded), (9, 50));
        assert_eq!(pool("db_cores = 4\nmax_size = 6").cap(), 6);
        assert_eq!(pool("db_cores = 4\nspindles = 0\nmax_size = 60").cap(), 8);
        // a pool over its cap shrinks to it even when its busy share is on the aim
        assert_eq!(size_for(&p, &[9.6], 12).unwrap().size, 9);
        // at the cap and still too busy: nothing more to do
        assert_eq!(size_for(&p, &[40.0], 9), None);
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        for (toml, says) in [
            ("", "give max_size or db_cores"),
            ("max_size = 5\nmax_utilization = 0", "max_utilization"),
            ("max_size = 5\nmin_size = 6", "min_size (6)"),
            ("max_size = 5\nlookback = 0", "lookback"),
            ("max_size = 5\ntolerance = 1.5", "tolerance"),
        ] {
            let p: PoolTarget = toml::from_str(&format!("target = \"a\"\n{toml}")).unwrap();
            let e = p.check().unwrap_err();
            assert!(e.contains(says), "{toml}: {e}");
        }
    }
}
