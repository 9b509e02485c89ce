//! The SLO state record (`apo.slo`, table `slo`): per objective, service and window, the
//! objective's compliance and its error-budget burn rate over the multi-window pairs of the SRE
//! workbook (a fast pair that pages, a slow pair that opens a ticket).

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
    /// Burn rate over the slow alert's long window.
    pub burn_slow_long: f64,
    /// Burn rate over the slow alert's short window.
    pub burn_slow_short: f64,
    /// `page` when both fast windows burn above the fast threshold, else `ticket` when both
    /// slow windows burn above the slow threshold, else `none`.
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
