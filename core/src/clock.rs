//! The wall clock APO judges event times against (`--max-event-age`, `--max-event-future`), and
//! reads for `now` (`apo produce --start now`, the embedded default's traffic, the watermark
//! delay in progress lines, a decision's expiry, an action's pacing and its effect check).
//!
//! `APO_NOW` moves it, for tests that must not age, for trying a pipeline against another
//! day's data, and for a simulation replayed faster than real time (`apo sim`):
//!
//! - `+30d`, `-2h 30m`: the system clock plus or minus a duration (humantime's units);
//! - `2027-01-05T12:00:00Z`: an RFC 3339 time the clock reads when it is first read in the
//!   process, advancing with the system clock from there;
//! - `2027-01-05T12:00:00Z at 2026-12-06T07:30:00Z`: the clock reads the first time when the
//!   system clock reads the second (`at` also takes ms since the Unix epoch), so that every
//!   process given the same value reads the same clock;
//! - any of these followed by `x60`: the clock runs 60 times as fast as the system clock
//!   from that point (simulated time; give every process of one run the same value, with
//!   `at`, so that they agree).
//!
//! Unset or empty, the clock is the system clock. Only timing against event time moves:
//! timeouts, leases and intervals keep reading `Instant`.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that moves the clock.
pub const APO_NOW: &str = "APO_NOW";

/// An `APO_NOW` that does not parse.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error(
    "APO_NOW=`{value}`: expected a signed duration (`+30d`, `-2h`) or an RFC 3339 time \
     (`2027-01-05T12:00:00Z`, optionally `at` a system time), optionally followed by a \
     speed (`x60`): {reason}"
)]
pub struct ClockError {
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A clock: it reads `origin_ms` when the system clock reads `anchor_ms`, and runs `speed`
/// times as fast as the system clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    /// What it reads at the anchor, ms since the Unix epoch.
    pub origin_ms: i64,
    /// The system time of the anchor, ms since the Unix epoch.
    pub anchor_ms: i64,
    /// Clock ms per system ms (positive).
    pub speed: f64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock {
            origin_ms: 0,
            anchor_ms: 0,
            speed: 1.0,
        }
    }

    /// What it reads when the system clock reads `system_ms`.
    pub fn at(&self, system_ms: i64) -> i64 {
        let since = system_ms.saturating_sub(self.anchor_ms);
        let moved = if self.speed == 1.0 {
            since
        } else {
            (since as f64 * self.speed).round() as i64
        };
        self.origin_ms.saturating_add(moved)
    }

    /// How far it is from the system clock when that reads `system_ms`, ms.
    pub fn offset_at(&self, system_ms: i64) -> i64 {
        self.at(system_ms).saturating_sub(system_ms)
    }

    /// Whether it is the system clock.
    pub fn is_system(&self) -> bool {
        self.speed == 1.0 && self.origin_ms == self.anchor_ms
    }

    /// The `APO_NOW` value of this clock (an RFC 3339 time `at` an epoch ms, with its speed),
    /// for other processes that must read the same clock.
    pub fn to_env(&self) -> String {
        let origin = UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(self.origin_ms).unwrap_or(0));
        format!(
            "{} at {} x{}",
            humantime::format_rfc3339_millis(origin),
            self.anchor_ms,
            self.speed
        )
    }
}

/// The system clock, ms since the Unix epoch.
pub fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An RFC 3339 time or ms since the Unix epoch, as ms since the Unix epoch.
fn time_ms(v: &str) -> Result<i64, String> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(v).map_err(|e| format!("`{v}`: {e}"))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map_err(|_| format!("`{v}` is before 1970"))?
        .as_millis() as i64)
}

/// The clock `value` describes, read first when the system clock reads `system_now_ms`.
pub fn parse(value: &str, system_now_ms: i64) -> Result<Clock, ClockError> {
    let err = |reason: String| ClockError {
        value: value.to_string(),
        reason,
    };
    let mut v = value.trim();
    let mut speed = 1.0;
    if let Some(i) = v.rfind(['x', 'X']) {
        let s = v[i + 1..].trim();
        let before = &v[..i];
        if before.is_empty() || before.ends_with(char::is_whitespace) {
            speed = s
                .parse::<f64>()
                .ok()
                .filter(|k| k.is_finite() && *k > 0.0)
                .ok_or_else(|| err(format!("`x{s}`: a speed is a positive number")))?;
            v = before.trim();
        }
    }
    let mut clock = Clock {
        origin_ms: system_now_ms,
        anchor_ms: system_now_ms,
        speed,
    };
    if v.is_empty() {
        return Ok(clock);
    }
    let (sign, rest) = match v.as_bytes()[0] {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => {
            let (time, at) = match v.split_once(" at ") {
                Some((t, a)) => (t.trim(), Some(a.trim())),
                None => (v, None),
            };
            clock.origin_ms = time_ms(time).map_err(err)?;
            if let Some(a) = at {
                clock.anchor_ms = time_ms(a).map_err(err)?;
            }
            return Ok(clock);
        }
    };
    let d = humantime::parse_duration(rest.trim()).map_err(|e| err(e.to_string()))?;
    let ms = i64::try_from(d.as_millis()).map_err(|_| err("too large".into()))?;
    clock.origin_ms = system_now_ms.saturating_add(sign * ms);
    Ok(clock)
}

/// How far `value` moves the clock from `system_now_ms` when first read then, ms.
pub fn parse_offset(value: &str, system_now_ms: i64) -> Result<i64, ClockError> {
    parse(value, system_now_ms).map(|c| c.offset_at(system_now_ms))
}

/// The process's clock, set once: by [`install`], else at its first reading.
fn static_clock() -> &'static OnceLock<Result<Clock, ClockError>> {
    static CLOCK: OnceLock<Result<Clock, ClockError>> = OnceLock::new();
    &CLOCK
}

/// The clock `APO_NOW` sets, read once per process.
fn clock() -> &'static Result<Clock, ClockError> {
    static_clock().get_or_init(|| match std::env::var(APO_NOW) {
        Ok(v) => parse(&v, system_ms()),
        Err(_) => Ok(Clock::system()),
    })
}

/// Sets this process's clock to `clock` instead of what `APO_NOW` says, for a command that
/// runs a simulation of its own (`apo sim --report`). Only before the clock is first read:
/// after, the clock already read is returned as the error (every part of the process must
/// read one clock).
pub fn install(clock: Clock) -> Result<(), Clock> {
    static_clock().set(Ok(clock)).map_err(|_| match check() {
        Ok(c) => c,
        Err(_) => Clock::system(),
    })
}

/// Checks `APO_NOW` (commands call it at start, so a bad value is an error, not a silent
/// system clock); returns the clock it sets.
pub fn check() -> Result<Clock, ClockError> {
    clock().clone()
}

/// Now, ms since the Unix epoch: the system clock moved by `APO_NOW` (not moved when
/// `APO_NOW` is unusable; [`check`] says why).
pub fn now_ms() -> i64 {
    let system = system_ms();
    match clock() {
        Ok(c) => c.at(system),
        Err(_) => system,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_times() {
        let day = 86_400_000;
        assert_eq!(parse_offset("", 5), Ok(0));
        assert_eq!(parse_offset("+30d", 5), Ok(30 * day));
        assert_eq!(parse_offset("-2h 30m", 5), Ok(-(2 * 3_600_000 + 1_800_000)));
        assert_eq!(parse_offset(" +1s ", 5), Ok(1_000));
        // 2027-01-05T12:00:00Z is 1 799 150 400 000 ms
        assert_eq!(
            parse_offset("2027-01-05T12:00:00Z", 1_799_150_000_000),
            Ok(400_000)
        );
        for bad in [
            "30d",
            "+",
            "+thirty days",
            "tomorrow",
            "-x",
            "+1h x0",
            "+1h x-2",
            "+1h xfast",
        ] {
            let e = parse_offset(bad, 0).expect_err(bad);
            assert!(e.to_string().contains("APO_NOW"), "{e}");
        }
    }

    #[test]
    fn a_fast_clock_agrees_across_processes_given_its_anchor() {
        // reads 2027-01-05T12:00:00Z (1 799 150 400 000) when the system reads 1 000 000, 60x
        let v = "2027-01-05T12:00:00Z at 1000000 x60";
        let first = parse(v, 1_000_500).unwrap();
        let later = parse(v, 9_000_000).unwrap();
        assert_eq!(
            first, later,
            "the same clock whenever a process reads it first"
        );
        assert_eq!(first.at(1_000_000), 1_799_150_400_000);
        // a system second later it has moved a minute
        assert_eq!(first.at(1_001_000), 1_799_150_460_000);
        assert_eq!(first.offset_at(1_001_000), 1_799_150_460_000 - 1_001_000);
        // written for another process and read back: the same clock
        assert_eq!(parse(&first.to_env(), 5).unwrap(), first);
        // a duration with a speed: from the first read
        let c = parse("-1h x2", 10_000).unwrap();
        assert_eq!(
            (c.at(10_000), c.at(11_000)),
            (10_000 - 3_600_000, 12_000 - 3_600_000)
        );
        assert!(parse("", 7).unwrap().is_system() && Clock::system().is_system());
        assert!(!parse("+0s x3", 7).unwrap().is_system());
        // the anchor as an RFC 3339 time
        let c = parse("2027-01-05T12:00:00Z at 2027-01-05T11:00:00Z", 0).unwrap();
        assert_eq!(c.offset_at(c.anchor_ms), 3_600_000);
    }
}
