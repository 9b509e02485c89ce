//! The SLO state record (`apo.slo`, table `slo`): per objective, service and window, the
//! objective's compliance, its error-budget burn rate over the multi-window pairs of the SRE
//! workbook (two pairs that page, two that open a ticket) and the error budget remaining of the
//! SLO period.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
/// One objective's state for one service and window: compliance and burn rates.
pub struct SloState {
    /// Objective name from the configuration (e.g. `api-latency-p95`).
    pub objective: String,
    /// The service.
    pub service: String,
    /// What is promised: e.g. `p95 < 500 ms` or `error rate < 0.1 %`.
    pub description: String,
    /// Share of events that must be good (0.95 for a p95 objective, 0.999 for an error rate
    /// below 0.1 %).
    pub target: f64,
    /// The window's size, seconds.
    pub window_seconds: u32,
    /// Its start, ms since the epoch.
    pub window_start: i64,
    /// Its end (exclusive), ms since the epoch.
    pub window_end: i64,
    /// Events in the window and how many broke the objective (too slow, or failed).
    pub events: u64,
    /// Events that missed the objective.
    pub bad_events: u64,
    /// Good share of the window's events (1 when there were none).
    pub sli: f64,
    /// Whether the window met the objective.
    pub compliant: bool,
    /// Budget burn rate (bad share / allowed bad share) over the trailing windows of each
    /// alert pair, ending with this window.
    pub burn_fast_long: f64,
    /// Burn rate over the fast alert's short window.
    pub burn_fast_short: f64,
    /// Burn rate over the slow page alert's long window (6 h by default).
    pub burn_slow_long: f64,
    /// Burn rate over the slow page alert's short window (30 min).
    pub burn_slow_short: f64,
    /// Burn rate over the ticket alert's long window (1 d by default).
    pub burn_ticket_long: f64,
    /// Burn rate over the ticket alert's short window (2 h).
    pub burn_ticket_short: f64,
    /// Burn rate over the slow ticket alert's long window (3 d).
    pub burn_ticket_slow_long: f64,
    /// Burn rate over the slow ticket alert's short window (6 h).
    pub burn_ticket_slow_short: f64,
    /// The share of the SLO period's error budget left (1 − its burn rate over the period, 30
    /// days by default; negative once overspent), over the windows seen in the period.
    pub budget_remaining: f64,
    /// `page` when both windows of a page pair (fast, slow) burn above its threshold, else
    /// `ticket` when both windows of a ticket pair do, else `none`.
    pub alert: String,
    /// 1 for the first emission, more for revisions by late data.
    pub revision: u32,
}

impl SloState {
    /// The Kafka key: objective, service and window.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}s|{}",
            self.objective, self.service, self.window_seconds, self.window_start
        )
    }
}
