//! Service-level objectives over spans: which spans an objective covers, whether each is good,
//! and the multi-window, multi-burn-rate alerts of the SRE workbook.
//!
//! An objective is a selector (span kind, operation prefix, service) and an indicator:
//! - latency: "p95 < 500 ms" means 95 % of the covered spans must take less than 500 ms; a span
//!   at or over the threshold is a bad event, and the error budget is the other 5 %;
//! - error rate: "< 0.1 %" means at most 0.1 % of the covered spans may fail.
//!
//! Burn rate = bad share / budget share, over the trailing windows of each alert pair. The
//! workbook's pairs are fast (1 h and 5 min, threshold 14.4: 2 % of a 30-day budget in an hour)
//! and slow (6 h and 30 min, threshold 6: 5 % in six hours); an alert fires only when both
//! windows of a pair burn faster than its threshold (the long one says it is significant, the
//! short one that it is still happening). The pair lengths are configurable and rounded up to
//! whole windows of the size SLOs are evaluated at.

use std::collections::VecDeque;

use apo_schemas::slo::SloState;
use apo_schemas::{Span, SpanKind, SpanStatus};

#[derive(Debug, Clone, PartialEq)]
/// What an objective measures.
pub enum Indicator {
    /// `quantile` of the covered spans must be below `threshold_ms`.
    Latency {
        /// The quantile, in (0, 1).
        quantile: f64,
        /// The latency it must stay below, ms.
        threshold_ms: f64,
    },
    /// At most `max_ratio` of the covered spans may have status error.
    ErrorRate {
        /// The highest share of errors allowed, in (0, 1).
        max_ratio: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
/// A service-level objective: which spans it covers and what they must meet.
pub struct Objective {
    /// Its name (unique).
    pub name: String,
    /// Span kinds covered (empty: all).
    pub kinds: Vec<SpanKind>,
    /// Operation (span name) prefixes covered, case-insensitive (empty: all).
    pub operation_prefixes: Vec<String>,
    /// Only spans carrying `db.system` (database client spans).
    pub database_only: bool,
    /// Services covered (empty: all).
    pub services: Vec<String>,
    /// What the covered spans must meet.
    pub indicator: Indicator,
}

impl Objective {
    /// Share of events that must be good.
    pub fn target(&self) -> f64 {
        match self.indicator {
            Indicator::Latency { quantile, .. } => quantile,
            Indicator::ErrorRate { max_ratio } => 1.0 - max_ratio,
        }
    }

    /// The objective in words (`p99 < 800 ms`).
    pub fn description(&self) -> String {
        match self.indicator {
            Indicator::Latency {
                quantile,
                threshold_ms,
            } => format!("p{} < {threshold_ms} ms", quantile * 100.0),
            Indicator::ErrorRate { max_ratio } => format!("error rate < {} %", max_ratio * 100.0),
        }
    }

    /// Whether the objective counts span `s`.
    pub fn covers(&self, s: &Span) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&s.kind))
            && (self.services.is_empty() || self.services.contains(&s.service))
            && (!self.database_only || s.attributes.contains_key("db.system"))
            && (self.operation_prefixes.is_empty()
                || self
                    .operation_prefixes
                    .iter()
                    .any(|p| s.name.len() >= p.len() && s.name[..p.len()].eq_ignore_ascii_case(p)))
    }

    /// Whether a covered span broke the objective.
    pub fn is_bad(&self, s: &Span) -> bool {
        match self.indicator {
            Indicator::Latency { threshold_ms, .. } => s.duration_ns() as f64 / 1e6 >= threshold_ms,
            Indicator::ErrorRate { .. } => s.status == SpanStatus::Error,
        }
    }
}

/// The product SLA: API (server spans) p50 < 100 ms, p95 < 500 ms, p99 < 1 s, error rate
/// < 0.1 %; database client spans: SELECT p95 < 50 ms, INSERT/UPDATE p95 < 200 ms.
pub fn default_objectives() -> Vec<Objective> {
    let api = |name: &str, indicator| Objective {
        name: name.into(),
        kinds: vec![SpanKind::Server],
        operation_prefixes: Vec::new(),
        database_only: false,
        services: Vec::new(),
        indicator,
    };
    let db = |name: &str, prefixes: &[&str], threshold_ms| Objective {
        name: name.into(),
        kinds: vec![SpanKind::Client],
        operation_prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        database_only: true,
        services: Vec::new(),
        indicator: Indicator::Latency {
            quantile: 0.95,
            threshold_ms,
        },
    };
    let lat = |quantile, threshold_ms| Indicator::Latency {
        quantile,
        threshold_ms,
    };
    vec![
        api("api-latency-p50", lat(0.5, 100.0)),
        api("api-latency-p95", lat(0.95, 500.0)),
        api("api-latency-p99", lat(0.99, 1000.0)),
        api("api-errors", Indicator::ErrorRate { max_ratio: 0.001 }),
        db("db-select-p95", &["SELECT"], 50.0),
        db("db-write-p95", &["INSERT", "UPDATE"], 200.0),
    ]
}

/// A pair of trailing windows and the burn rate both must exceed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertPair {
    /// The long window, ms.
    pub long_ms: i64,
    /// The short window, ms.
    pub short_ms: i64,
    /// The burn rate both windows must exceed.
    pub threshold: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
/// The two burn-rate alerts of the SRE workbook: a fast page and a slow ticket.
pub struct BurnConfig {
    /// Pages: high burn over short windows.
    pub fast: AlertPair,
    /// Tickets: lower burn over long windows.
    pub slow: AlertPair,
}

impl Default for BurnConfig {
    fn default() -> Self {
        const MIN: i64 = 60_000;
        BurnConfig {
            fast: AlertPair {
                long_ms: 60 * MIN,
                short_ms: 5 * MIN,
                threshold: 14.4,
            },
            slow: AlertPair {
                long_ms: 360 * MIN,
                short_ms: 30 * MIN,
                threshold: 6.0,
            },
        }
    }
}

/// Burn rates of one (objective, service), fed its windows in order (gaps count as windows
/// without events). Memory: one entry per window of the longest alert window.
pub struct BurnTracker {
    objective: Objective,
    service: String,
    window_ms: i64,
    cfg: BurnConfig,
    /// (window start, events, bad) of the trailing windows, oldest first.
    history: VecDeque<(i64, u64, u64)>,
}

impl BurnTracker {
    /// A tracker of `objective` for `service`'s windows of `window_s` seconds.
    pub fn new(objective: Objective, service: &str, window_s: u32, cfg: BurnConfig) -> Self {
        BurnTracker {
            objective,
            service: service.to_string(),
            window_ms: window_s.max(1) as i64 * 1000,
            cfg,
            history: VecDeque::new(),
        }
    }

    /// Windows in a trailing span (at least one).
    fn windows(&self, ms: i64) -> usize {
        ((ms + self.window_ms - 1) / self.window_ms).max(1) as usize
    }

    /// Records the window starting at `start` (after every earlier one) and returns its state.
    pub fn push(&mut self, start: i64, events: u64, bad: u64) -> SloState {
        // Windows without events between the last one and this one.
        if let Some(&(last, _, _)) = self.history.back() {
            let mut t = last + self.window_ms;
            while t < start && self.history.len() < self.windows(self.cfg.slow.long_ms) + 1 {
                self.history.push_back((t, 0, 0));
                t += self.window_ms;
            }
            if t < start {
                // A gap longer than every alert window: nothing before it matters.
                self.history.clear();
            }
        }
        self.history.push_back((start, events, bad));
        let keep = self
            .windows(self.cfg.slow.long_ms)
            .max(self.windows(self.cfg.fast.long_ms));
        while self.history.len() > keep {
            self.history.pop_front();
        }
        self.state_at(self.history.len() - 1, 1)
    }

    /// A revision of an earlier window (late spans): its counts are replaced and its state
    /// recomputed at `revision`, burn rates over the windows up to it. States already given for
    /// later windows are not revised. `None` when the window is no longer tracked (older than
    /// the longest alert window) or was never pushed.
    pub fn revise(&mut self, start: i64, events: u64, bad: u64, revision: u32) -> Option<SloState> {
        let i = self.history.iter().position(|w| w.0 == start)?;
        self.history[i] = (start, events, bad);
        Some(self.state_at(i, revision))
    }

    /// Burn rate over the `ms` of windows ending with window `i`.
    fn burn(&self, i: usize, ms: i64) -> f64 {
        let n = self.windows(ms);
        let (events, bad) = self
            .history
            .iter()
            .take(i + 1)
            .rev()
            .take(n)
            .fold((0u64, 0u64), |a, w| (a.0 + w.1, a.1 + w.2));
        let budget = 1.0 - self.objective.target();
        if events == 0 || budget <= 0.0 {
            0.0
        } else {
            (bad as f64 / events as f64) / budget
        }
    }

    fn state_at(&self, i: usize, revision: u32) -> SloState {
        let (start, events, bad) = self.history[i];
        let (fl, fs) = (
            self.burn(i, self.cfg.fast.long_ms),
            self.burn(i, self.cfg.fast.short_ms),
        );
        let (sl, ss) = (
            self.burn(i, self.cfg.slow.long_ms),
            self.burn(i, self.cfg.slow.short_ms),
        );
        let alert = if fl > self.cfg.fast.threshold && fs > self.cfg.fast.threshold {
            "page"
        } else if sl > self.cfg.slow.threshold && ss > self.cfg.slow.threshold {
            "ticket"
        } else {
            "none"
        };
        let sli = if events == 0 {
            1.0
        } else {
            1.0 - bad as f64 / events as f64
        };
        SloState {
            objective: self.objective.name.clone(),
            service: self.service.clone(),
            description: self.objective.description(),
            target: self.objective.target(),
            window_seconds: (self.window_ms / 1000) as u32,
            window_start: start,
            window_end: start + self.window_ms,
            events,
            bad_events: bad,
            sli,
            compliant: sli >= self.objective.target(),
            burn_fast_long: fl,
            burn_fast_short: fs,
            burn_slow_long: sl,
            burn_slow_short: ss,
            alert: alert.into(),
            revision,
        }
    }
}
