//! Service-level objectives over spans: which spans an objective covers, whether each is good,
//! and the multi-window, multi-burn-rate alerts of the SRE workbook.
//!
//! An objective is a selector (span kind, operation prefix, service) and an indicator:
//! - latency: "p95 < 500 ms" means 95 % of the covered spans must take less than 500 ms; a span
//!   at or over the threshold is a bad event, and the error budget is the other 5 %;
//! - error rate: "< 0.1 %" means at most 0.1 % of the covered spans may fail.
//!
//! Burn rate = bad share / budget share, over the trailing windows of each alert pair. The
//! workbook's four pairs (as Sloth generates them): two that page, 1 h and 5 min at 14.4 (2 % of
//! a 30-day budget in an hour) and 6 h and 30 min at 6 (5 % in six hours), and two that open a
//! ticket, 1 d and 2 h at 3 (10 % in a day) and 3 d and 6 h at 1 (10 % in three days). A pair
//! fires only when both its windows burn faster than its threshold (the long one says it is
//! significant, the short one that it is still happening). The pair lengths are configurable
//! and rounded up to whole windows of the size SLOs are evaluated at.
//!
//! The remaining error budget of the SLO period (30 days by default) is on every record: 1 − the
//! period's bad share over its budget share (negative once the budget is overspent), over the
//! windows the tracker has seen in the period.
//!
//! Memory: each window for the longest window of six hours or less (exact sums), and hourly
//! totals for the longer ones and the period. A window of more than six hours sums the hours it
//! covers, its oldest hour counted by the share of it inside the window (exact when the window
//! starts on an hour).

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
/// The SRE workbook's four burn-rate alerts and the SLO period.
pub struct BurnConfig {
    /// Pages: the highest burn over the shortest windows.
    pub fast: AlertPair,
    /// Pages too: a lower burn over longer windows.
    pub slow: AlertPair,
    /// Tickets: a sustained burn over a day.
    pub ticket: AlertPair,
    /// Tickets too: the budget's own pace over three days.
    pub ticket_slow: AlertPair,
    /// The period whose error budget remains, ms.
    pub period_ms: i64,
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

impl Default for BurnConfig {
    fn default() -> Self {
        let pair = |long_ms, short_ms, threshold| AlertPair {
            long_ms,
            short_ms,
            threshold,
        };
        BurnConfig {
            fast: pair(HOUR, 5 * MIN, 14.4),
            slow: pair(6 * HOUR, 30 * MIN, 6.0),
            ticket: pair(24 * HOUR, 2 * HOUR, 3.0),
            ticket_slow: pair(72 * HOUR, 6 * HOUR, 1.0),
            period_ms: 30 * 24 * HOUR,
        }
    }
}

impl BurnConfig {
    /// Every trailing span a record needs, ms.
    fn spans(&self) -> impl Iterator<Item = i64> {
        [self.fast, self.slow, self.ticket, self.ticket_slow]
            .into_iter()
            .flat_map(|p| [p.long_ms, p.short_ms])
            .chain([self.period_ms])
    }
}

/// (start, events, bad) of a window or an hour.
pub type Sums = (i64, u64, u64);

/// Spans up to this long are summed window by window; longer ones by the hour.
const FINE_MS: i64 = 6 * HOUR;

/// Windows of `window_ms` in a trailing span of `ms` (at least one).
fn windows_in(ms: i64, window_ms: i64) -> usize {
    ((ms + window_ms - 1) / window_ms).max(1) as usize
}

/// Burn rates of one (objective, service), fed its windows in order (gaps count as windows
/// without events).
pub struct BurnTracker {
    objective: Objective,
    service: String,
    window_ms: i64,
    cfg: BurnConfig,
    /// The windows kept one by one: those of the longest span of six hours or less.
    fine_windows: usize,
    /// The longest span, ms: how far back the hours are kept.
    longest_ms: i64,
    /// (window start, events, bad) of the trailing windows up to `FINE_MS`, oldest first.
    history: VecDeque<(i64, u64, u64)>,
    /// (hour start, events, bad) of the hours up to the longest span, oldest first; the last
    /// one holds the windows so far of the current hour.
    hours: VecDeque<(i64, u64, u64)>,
}

impl BurnTracker {
    /// A tracker of `objective` for `service`'s windows of `window_s` seconds.
    pub fn new(objective: Objective, service: &str, window_s: u32, cfg: BurnConfig) -> Self {
        let window_ms = window_s.max(1) as i64 * 1000;
        let fine_ms = cfg
            .spans()
            .filter(|&ms| ms <= FINE_MS)
            .max()
            .unwrap_or(window_ms);
        BurnTracker {
            objective,
            service: service.to_string(),
            window_ms,
            cfg,
            fine_windows: windows_in(fine_ms, window_ms),
            longest_ms: cfg.spans().max().unwrap_or(HOUR),
            history: VecDeque::new(),
            hours: VecDeque::new(),
        }
    }

    /// What a checkpoint keeps of the tracker: its trailing windows and hours.
    pub fn history(&self) -> (&VecDeque<Sums>, &VecDeque<Sums>) {
        (&self.history, &self.hours)
    }

    /// The tracker with the trailing windows and hours of a checkpoint ([`Self::history`]).
    pub fn with_history(mut self, history: VecDeque<Sums>, hours: VecDeque<Sums>) -> Self {
        self.history = history;
        self.hours = hours;
        self
    }

    /// Windows in a trailing span (at least one).
    fn windows(&self, ms: i64) -> usize {
        windows_in(ms, self.window_ms)
    }

    /// Adds `events` and `bad` of the window starting at `start` to its hour.
    fn add_to_hour(&mut self, start: i64, events: i64, bad: i64) {
        let hour = start.div_euclid(HOUR) * HOUR;
        let i = match self.hours.iter().rposition(|h| h.0 <= hour) {
            Some(i) if self.hours[i].0 == hour => i,
            Some(i) => {
                self.hours.insert(i + 1, (hour, 0, 0));
                i + 1
            }
            None => {
                self.hours.push_front((hour, 0, 0));
                0
            }
        };
        let h = &mut self.hours[i];
        h.1 = (h.1 as i64 + events).max(0) as u64;
        h.2 = (h.2 as i64 + bad).max(0) as u64;
        // the hours the longest span can still reach from this one
        let newest = self.hours.back().map_or(hour, |h| h.0);
        while self
            .hours
            .front()
            .is_some_and(|h| h.0 + HOUR <= newest - self.longest_ms)
        {
            self.hours.pop_front();
        }
    }

    /// Records the window starting at `start` (after every earlier one) and returns its state.
    pub fn push(&mut self, start: i64, events: u64, bad: u64) -> SloState {
        let keep = self.fine_windows;
        // Windows without events between the last one and this one.
        if let Some(&(last, _, _)) = self.history.back() {
            let mut t = last + self.window_ms;
            while t < start && self.history.len() < keep + 1 {
                self.history.push_back((t, 0, 0));
                t += self.window_ms;
            }
            if t < start {
                // A gap longer than the fine windows: nothing of them before it matters.
                self.history.clear();
            }
        }
        self.history.push_back((start, events, bad));
        while self.history.len() > keep {
            self.history.pop_front();
        }
        self.add_to_hour(start, events as i64, bad as i64);
        self.state_at(self.history.len() - 1, 1)
    }

    /// A revision of an earlier window (late spans): its counts are replaced and its state
    /// recomputed at `revision`, burn rates over the windows up to it (the hourly totals of
    /// the spans longer than six hours hold it from then on). States already given for later
    /// windows are not revised. `None` when the window is no longer held one by one (older
    /// than six hours) or was never pushed.
    pub fn revise(&mut self, start: i64, events: u64, bad: u64, revision: u32) -> Option<SloState> {
        let i = self.history.iter().position(|w| w.0 == start)?;
        let (_, old_events, old_bad) = self.history[i];
        self.history[i] = (start, events, bad);
        self.add_to_hour(
            start,
            events as i64 - old_events as i64,
            bad as i64 - old_bad as i64,
        );
        Some(self.state_at(i, revision))
    }

    /// (events, bad) over the `ms` of windows ending with window `i`.
    fn totals(&self, i: usize, ms: i64) -> (f64, f64) {
        let n = self.windows(ms);
        if n <= self.history.len() || ms <= FINE_MS {
            let (events, bad) = self
                .history
                .iter()
                .take(i + 1)
                .rev()
                .take(n)
                .fold((0u64, 0u64), |a, w| (a.0 + w.1, a.1 + w.2));
            return (events as f64, bad as f64);
        }
        // By the hour: [end - ms, end), the current hour's windows one by one.
        let end = self.history[i].0 + self.window_ms;
        let from = end - ms;
        let this_hour = (end - 1).div_euclid(HOUR) * HOUR;
        let (mut events, mut bad) = self
            .history
            .iter()
            .take(i + 1)
            .filter(|w| w.0 >= this_hour)
            .fold((0.0, 0.0), |a, w| (a.0 + w.1 as f64, a.1 + w.2 as f64));
        for &(h, e, b) in &self.hours {
            if h >= this_hour || h + HOUR <= from {
                continue;
            }
            // the oldest hour by the share of it inside the span
            let share = ((h + HOUR).min(this_hour) - h.max(from)) as f64 / HOUR as f64;
            events += e as f64 * share;
            bad += b as f64 * share;
        }
        (events, bad)
    }

    /// Burn rate over the `ms` of windows ending with window `i`.
    fn burn(&self, i: usize, ms: i64) -> f64 {
        let (events, bad) = self.totals(i, ms);
        let budget = 1.0 - self.objective.target();
        if events <= 0.0 || budget <= 0.0 {
            0.0
        } else {
            (bad / events) / budget
        }
    }

    fn state_at(&self, i: usize, revision: u32) -> SloState {
        let (start, events, bad) = self.history[i];
        let rates = |p: AlertPair| (self.burn(i, p.long_ms), self.burn(i, p.short_ms));
        let fires =
            |p: AlertPair, (long, short): (f64, f64)| long > p.threshold && short > p.threshold;
        let c = self.cfg;
        let (fast, slow) = (rates(c.fast), rates(c.slow));
        let (ticket, ticket_slow) = (rates(c.ticket), rates(c.ticket_slow));
        let alert = if fires(c.fast, fast) || fires(c.slow, slow) {
            "page"
        } else if fires(c.ticket, ticket) || fires(c.ticket_slow, ticket_slow) {
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
            burn_fast_long: fast.0,
            burn_fast_short: fast.1,
            burn_slow_long: slow.0,
            burn_slow_short: slow.1,
            burn_ticket_long: ticket.0,
            burn_ticket_short: ticket.1,
            burn_ticket_slow_long: ticket_slow.0,
            burn_ticket_slow_short: ticket_slow.1,
            budget_remaining: 1.0 - self.burn(i, c.period_ms),
            alert: alert.into(),
            revision,
        }
    }
}
