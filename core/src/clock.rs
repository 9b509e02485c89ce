//! The wall clock APO judges event times against (`--max-event-age`, `--max-event-future`), and
//! reads for `now` (`apo produce --start now`, the embedded default's traffic, the watermark
//! delay in progress lines).
//!
//! `APO_NOW` moves it, for tests that must not age and for trying a pipeline against another
//! day's data:
//!
//! - `+30d`, `-2h 30m`: the system clock plus or minus a duration (humantime's units);
//! - `2027-01-05T12:00:00Z`: an RFC 3339 time the clock reads when it is first read in the
//!   process, advancing with the system clock from there.
//!
//! Unset or empty, the clock is the system clock. Only timing against event time moves:
//! timeouts, pacing and intervals keep reading `Instant`.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that moves the clock.
pub const APO_NOW: &str = "APO_NOW";

/// An `APO_NOW` that is neither a signed duration nor an RFC 3339 time.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error(
    "APO_NOW=`{value}`: expected a signed duration (`+30d`, `-2h`) or an RFC 3339 time \
     (`2027-01-05T12:00:00Z`): {reason}"
)]
pub struct ClockError {
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The system clock, ms since the Unix epoch.
fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How far `value` moves the clock from `system_now_ms`, ms.
pub fn parse_offset(value: &str, system_now_ms: i64) -> Result<i64, ClockError> {
    let err = |reason: String| ClockError {
        value: value.to_string(),
        reason,
    };
    let v = value.trim();
    if v.is_empty() {
        return Ok(0);
    }
    let (sign, rest) = match v.as_bytes()[0] {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => {
            let t = humantime::parse_rfc3339_weak(v).map_err(|e| err(e.to_string()))?;
            let ms = t
                .duration_since(UNIX_EPOCH)
                .map_err(|_| err("before 1970".into()))?
                .as_millis() as i64;
            return Ok(ms - system_now_ms);
        }
    };
    let d = humantime::parse_duration(rest.trim()).map_err(|e| err(e.to_string()))?;
    let ms = i64::try_from(d.as_millis()).map_err(|_| err("too large".into()))?;
    Ok(sign * ms)
}

/// The offset `APO_NOW` sets, read once per process.
fn offset() -> &'static Result<i64, ClockError> {
    static OFFSET: OnceLock<Result<i64, ClockError>> = OnceLock::new();
    OFFSET.get_or_init(|| match std::env::var(APO_NOW) {
        Ok(v) => parse_offset(&v, system_ms()),
        Err(_) => Ok(0),
    })
}

/// Checks `APO_NOW` (commands call it at start, so a bad value is an error, not a silent
/// system clock); returns the offset it sets, ms.
pub fn check() -> Result<i64, ClockError> {
    offset().clone()
}

/// Now, ms since the Unix epoch: the system clock moved by `APO_NOW` (not moved when
/// `APO_NOW` is unusable; [`check`] says why).
pub fn now_ms() -> i64 {
    system_ms().saturating_add(*offset().as_ref().unwrap_or(&0))
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
        for bad in ["30d", "+", "+thirty days", "tomorrow", "-x"] {
            let e = parse_offset(bad, 0).expect_err(bad);
            assert!(e.to_string().contains("APO_NOW"), "{e}");
        }
    }
}
