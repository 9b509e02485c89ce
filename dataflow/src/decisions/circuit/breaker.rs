//! One edge's circuit breaker, stepped by its closed windows in event time.
//!
//! ```toml
//! [[circuit]]
//! client = "frontend"          # the caller: the decisions' target (its breaker)
//! server = "checkout"          # the callee
//! failure_ratio = 0.5          # open at this share of failed calls ...
//! min_calls = 100              # ... over at least this many calls in a window (resilience4j)
//! consecutive_failures = 5     # or this many failed calls in a row (Envoy's consecutive_5xx)
//! # latency_p99_ms = 800       # or a p99 above this (over min_calls)
//! base_open = "30s"            # open for base × times opened (Envoy's base_ejection_time)
//! max_open = "300s"            # at most (Envoy's max_ejection_time)
//! half_open_calls = 10         # calls a half-open window needs to judge (resilience4j)
//! ```
//!
//! - **Closed**: a window with `min_calls` calls and a failed share of at least
//!   `failure_ratio`, or a p99 over `latency_p99_ms`, opens it; so do `consecutive_failures`
//!   failed calls in a row, which windows of aggregates show as windows in which every call
//!   failed, counted over the windows since the last one with a success.
//! - **Open** for `base_open` × the times it opened (1 the first time), at most `max_open`;
//!   the first window ending at or after that half-opens it.
//! - **Half-open**: the first window with `half_open_calls` calls closes it when it would not
//!   open a closed breaker, else it opens again (for longer).
//! - The times opened go down by one for each `max_open` the breaker stays closed, as Envoy
//!   lowers the ejection multiplier of a host that stays healthy.
//!
//! Only a change of state is a decision. An open breaker's client sends no calls, so no
//! windows of its edge come: [`Breaker::tick`] half-opens it as event time passes.

use std::time::Duration;

use apo_schemas::decision::CircuitState;
use apo_schemas::service_map::ServiceMapEdge;
use serde::Deserialize;

/// One `[[circuit]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitEdge {
    /// The caller (the decisions' target).
    pub client: String,
    /// The callee.
    pub server: String,
    /// Failed share of calls that opens it.
    #[serde(default = "half")]
    pub failure_ratio: f64,
    /// Calls a window needs for its failed share (or p99) to count.
    #[serde(default = "hundred")]
    pub min_calls: u64,
    /// Failed calls in a row that open it.
    #[serde(default = "five")]
    pub consecutive_failures: u64,
    /// A p99 latency over this opens it (ms).
    #[serde(default)]
    pub latency_p99_ms: Option<f64>,
    /// The first opening's length.
    #[serde(default = "thirty_s", with = "humantime_serde")]
    pub base_open: Duration,
    /// The longest opening.
    #[serde(default = "five_min", with = "humantime_serde")]
    pub max_open: Duration,
    /// Calls a half-open window needs to judge.
    #[serde(default = "ten")]
    pub half_open_calls: u64,
}

fn half() -> f64 {
    0.5
}
fn hundred() -> u64 {
    100
}
fn five() -> u64 {
    5
}
fn ten() -> u64 {
    10
}
fn thirty_s() -> Duration {
    Duration::from_secs(30)
}
fn five_min() -> Duration {
    Duration::from_secs(300)
}

impl CircuitEdge {
    /// Errors on settings the breaker cannot run with.
    pub fn check(&self) -> Result<(), String> {
        let name = format!("circuit `{}` -> `{}`", self.client, self.server);
        if self.client.trim().is_empty() || self.server.trim().is_empty() {
            return Err(format!("{name}: client and server must be named"));
        }
        if !(self.failure_ratio > 0.0 && self.failure_ratio <= 1.0) {
            return Err(format!("{name}: failure_ratio must be in (0, 1]"));
        }
        if self.min_calls == 0 || self.consecutive_failures == 0 || self.half_open_calls == 0 {
            return Err(format!(
                "{name}: min_calls, consecutive_failures and half_open_calls must be at least 1"
            ));
        }
        if self.base_open.is_zero() || self.max_open < self.base_open {
            return Err(format!("{name}: need 0 s < base_open <= max_open"));
        }
        if let Some(l) = self.latency_p99_ms {
            if !(l.is_finite() && l > 0.0) {
                return Err(format!("{name}: latency_p99_ms must be positive"));
            }
        }
        Ok(())
    }
}

/// A change the breaker decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The new state.
    pub state: CircuitState,
    /// Open: for how long, ms.
    pub open_for_ms: Option<i64>,
    /// Why, in a sentence.
    pub reason: String,
}

/// One edge's breaker.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Breaker {
    state: CircuitState,
    /// Times opened (the multiplier of `base_open`).
    opened: u32,
    /// Open: the event time it half-opens at.
    open_until: i64,
    /// Failed calls in a row, over windows where every call failed.
    in_a_row: u64,
    /// Closed: event time closed and not yet counted against `opened`, ms.
    healthy_ms: i64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: CircuitState::Closed,
            opened: 0,
            open_until: 0,
            in_a_row: 0,
            healthy_ms: 0,
        }
    }
}

impl Breaker {
    /// Why window `w` would open a closed breaker, if it would.
    fn trips(&self, c: &CircuitEdge, w: &ServiceMapEdge) -> Option<String> {
        if self.in_a_row >= c.consecutive_failures {
            return Some(format!(
                "{} failed calls in a row (consecutive_failures {})",
                self.in_a_row, c.consecutive_failures
            ));
        }
        if w.calls >= c.min_calls {
            let ratio = w.failed as f64 / w.calls as f64;
            if ratio >= c.failure_ratio {
                return Some(format!(
                    "{} of {} calls failed ({:.1} % >= {:.1} %)",
                    w.failed,
                    w.calls,
                    ratio * 100.0,
                    c.failure_ratio * 100.0
                ));
            }
            if let Some(limit) = c.latency_p99_ms.filter(|l| w.latency_p99_ms > *l) {
                return Some(format!(
                    "p99 {:.1} ms over {limit} ms across {} calls",
                    w.latency_p99_ms, w.calls
                ));
            }
        }
        None
    }

    fn open(&mut self, c: &CircuitEdge, at: i64, why: String) -> Change {
        self.opened = self.opened.saturating_add(1);
        let ms = self.opening_ms(c);
        self.state = CircuitState::Open;
        self.open_until = at.saturating_add(ms);
        self.healthy_ms = 0;
        Change {
            state: CircuitState::Open,
            open_for_ms: Some(ms),
            reason: format!("{why}: open for {} s (opening {})", ms / 1000, self.opened),
        }
    }

    /// Takes the edge's next closed window (windows in order); the change it makes, if any.
    pub fn step(&mut self, c: &CircuitEdge, w: &ServiceMapEdge) -> Option<Change> {
        let end = w.window_end;
        if w.calls > 0 && w.failed >= w.calls {
            self.in_a_row = self.in_a_row.saturating_add(w.failed);
        } else if w.calls > 0 {
            self.in_a_row = 0;
        }
        match self.state {
            CircuitState::Closed => match self.trips(c, w) {
                Some(why) => {
                    self.in_a_row = 0;
                    Some(self.open(c, end, why))
                }
                None => {
                    self.healthy_ms += end - w.window_start;
                    let max = c.max_open.as_millis() as i64;
                    while self.opened > 0 && self.healthy_ms >= max {
                        self.opened -= 1;
                        self.healthy_ms -= max;
                    }
                    if self.opened == 0 {
                        self.healthy_ms = 0;
                    }
                    None
                }
            },
            CircuitState::Open => self.tick(c, end),
            CircuitState::HalfOpen => {
                if w.calls < c.half_open_calls {
                    return None;
                }
                let trial = CircuitEdge {
                    min_calls: c.half_open_calls,
                    ..c.clone()
                };
                match self.trips(&trial, w) {
                    Some(why) => {
                        self.in_a_row = 0;
                        Some(self.open(c, end, format!("half-open trial failed: {why}")))
                    }
                    None => {
                        self.state = CircuitState::Closed;
                        self.healthy_ms = 0;
                        Some(Change {
                            state: CircuitState::Closed,
                            open_for_ms: None,
                            reason: format!(
                                "half-open trial passed: {} of {} calls failed",
                                w.failed, w.calls
                            ),
                        })
                    }
                }
            }
        }
    }

    /// The length of the current (or next) opening: `base_open` × the times opened (at least
    /// one), at most `max_open`, ms.
    fn opening_ms(&self, c: &CircuitEdge) -> i64 {
        (c.base_open.as_millis() as i64)
            .saturating_mul(i64::from(self.opened.max(1)))
            .min(c.max_open.as_millis() as i64)
    }

    /// Time passing without a window of the edge (an open breaker's client sends no calls):
    /// an open breaker whose time is up at `now` half-opens.
    pub fn tick(&mut self, c: &CircuitEdge, now: i64) -> Option<Change> {
        if self.state != CircuitState::Open || now < self.open_until {
            return None;
        }
        let was = self.opening_ms(c);
        self.state = CircuitState::HalfOpen;
        self.in_a_row = 0;
        Some(Change {
            state: CircuitState::HalfOpen,
            open_for_ms: None,
            reason: format!(
                "open for {} s: half-open, {} trial calls judge it",
                was / 1000,
                c.half_open_calls
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge() -> CircuitEdge {
        toml::from_str("client = \"frontend\"\nserver = \"checkout\"").unwrap()
    }

    /// A 10 s window starting at `s` seconds with `calls` calls of which `failed` failed.
    fn w(s: i64, calls: u64, failed: u64) -> ServiceMapEdge {
        ServiceMapEdge {
            client: "frontend".into(),
            server: "checkout".into(),
            connection_type: String::new(),
            window_seconds: 10,
            window_start: s * 1000,
            window_end: (s + 10) * 1000,
            calls,
            failed,
            latency_mean_ms: 10.0,
            latency_p50_ms: 10.0,
            latency_p95_ms: 20.0,
            latency_p99_ms: 30.0,
            latency_max_ms: 40.0,
            server_latency_mean_ms: 40.0,
            server_latency_p50_ms: 40.0,
            server_latency_p95_ms: 40.0,
            server_latency_p99_ms: 40.0,
            server_latency_max_ms: 40.0,
            critical_path_ms: 0.0,
            relative_accuracy: 0.01,
            revision: 1,
        }
    }

    fn states(
        b: &mut Breaker,
        c: &CircuitEdge,
        ws: &[ServiceMapEdge],
    ) -> Vec<Option<(CircuitState, Option<i64>)>> {
        ws.iter()
            .map(|x| b.step(c, x).map(|ch| (ch.state, ch.open_for_ms)))
            .collect()
    }

    #[test]
    fn defaults_are_envoys_and_resilience4js() {
        let c = edge();
        assert_eq!(
            (
                c.failure_ratio,
                c.min_calls,
                c.consecutive_failures,
                c.half_open_calls
            ),
            (0.5, 100, 5, 10)
        );
        assert_eq!(
            (c.base_open, c.max_open),
            (Duration::from_secs(30), Duration::from_secs(300))
        );
        assert!(c.check().is_ok());
    }

    #[test]
    fn open_half_open_closed_with_growing_openings() {
        use CircuitState::*;
        let c = edge();
        let mut b = Breaker::default();
        let got = states(
            &mut b,
            &c,
            &[
                w(0, 200, 20), // 10 %: closed
                w(10, 99, 99), // 99 failed in a row: under 100 calls, but 5+ in a row
                w(20, 0, 0),   // open until 20 + 30 = 50 s
                w(30, 0, 0),
                w(40, 5, 0),   // ends at 50: half-open
                w(50, 5, 0),   // 5 < 10 trial calls: still half-open
                w(60, 20, 12), // trial fails (60 %): open again, 2 × 30 s, until 130
                w(70, 0, 0),
                w(110, 0, 0),    // ends at 120 < 130
                w(120, 0, 0),    // ends at 130: half-open
                w(130, 20, 1),   // trial passes: closed
                w(140, 150, 75), // 50 % of 150: open, 3 × 30 = 90 s
            ],
        );
        assert_eq!(
            got,
            vec![
                None,
                Some((Open, Some(30_000))),
                None,
                None,
                Some((HalfOpen, None)),
                None,
                Some((Open, Some(60_000))),
                None,
                None,
                Some((HalfOpen, None)),
                Some((Closed, None)),
                Some((Open, Some(90_000))),
            ]
        );
    }

    #[test]
    fn the_opening_is_capped_at_max_open_and_shrinks_while_healthy() {
        use CircuitState::*;
        let c = edge();
        let mut b = Breaker::default();
        let mut t = 0;
        let mut last = None;
        // open and fail the trial 12 times: 30, 60, … capped at 300 s
        for _ in 0..12 {
            let ch = b.step(&c, &w(t, 100, 100)).unwrap();
            assert_eq!(ch.state, Open);
            last = ch.open_for_ms;
            t = (b.open_until / 1000) - 10; // the window ending as it half-opens
            assert_eq!(b.step(&c, &w(t, 0, 0)).unwrap().state, HalfOpen);
            t += 10;
        }
        assert_eq!(last, Some(300_000));
        // a trial passes; ten healthy 5-minute spans bring the multiplier back down
        assert_eq!(b.step(&c, &w(t, 20, 0)).unwrap().state, Closed);
        assert_eq!(b.opened, 12);
        for i in 0..(30 * 11) {
            assert_eq!(b.step(&c, &w(t + 10 + i * 10, 200, 0)), None);
        }
        assert_eq!(b.opened, 1, "11 × 300 s healthy took 11 off 12");
        let ch = b.step(&c, &w(t + 10 + 330 * 10, 200, 150)).unwrap();
        assert_eq!(ch.open_for_ms, Some(60_000), "second opening since then");
    }

    #[test]
    fn an_open_breaker_half_opens_as_time_passes_without_its_windows() {
        let c = edge();
        let mut b = Breaker::default();
        assert_eq!(b.tick(&c, 1_000_000), None, "closed: nothing to do");
        b.step(&c, &w(0, 100, 100)).unwrap();
        assert_eq!(b.tick(&c, 39_999), None);
        let ch = b.tick(&c, 40_000).unwrap();
        assert_eq!(ch.state, CircuitState::HalfOpen);
        assert_eq!(
            ch.reason,
            "open for 30 s: half-open, 10 trial calls judge it"
        );
        assert_eq!(b.tick(&c, 50_000), None);
    }

    #[test]
    fn latency_opens_it_and_bad_settings_are_refused() {
        let mut c = edge();
        c.latency_p99_ms = Some(25.0);
        let mut b = Breaker::default();
        let ch = b.step(&c, &w(0, 100, 0)).unwrap();
        assert!(
            ch.reason
                .starts_with("p99 30.0 ms over 25 ms across 100 calls"),
            "{}",
            ch.reason
        );
        assert_eq!(
            Breaker::default().step(&c, &w(0, 99, 0)),
            None,
            "too few calls"
        );
        for (field, bad) in [
            ("failure_ratio = 0", "failure_ratio"),
            ("min_calls = 0", "at least 1"),
            ("base_open = \"10m\"", "base_open"),
        ] {
            let c: CircuitEdge =
                toml::from_str(&format!("client = \"a\"\nserver = \"b\"\n{field}")).unwrap();
            assert!(c.check().unwrap_err().contains(bad), "{field}");
        }
    }
}
