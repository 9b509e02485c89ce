//! The GC rule: a JVM service whose collections pause it too long gets a larger heap, or a
//! shorter pause goal, from the OpenTelemetry semantic conventions' JVM metrics
//! (`heap.rs`, a pure function), decided per window by the planner as a `tune`.
//!
//! ```toml
//! [[gc]]
//! target = "checkout"                  # the service whose JVM it is
//! max_heap = 4294967296                # bytes: the largest heap asked for
//! # pause_metric = "jvm.gc.duration"   # histogram of the collections' pauses (s)
//! # limit_metric = "jvm.memory.limit"  # gauge: the heap's limit now (the setting decided on)
//! # used_metric = "jvm.memory.used"    # gauge per pod: the heap in use
//! # max_pause = "100ms"                # the window's p95 pause over this calls for a change
//! # occupancy = 0.45                   # the live share of the heap to size it for
//! # max_growth = 2.0                   # a heap grows at most this many times per decision
//! # pause_goal_setting = "MaxGCPauseMillis"
//! ```
//!
//! The product's rule, with G1's defaults as its starting point: pauses over `max_pause`
//! (100 ms) on a heap whose live set is more than `occupancy` of it (G1's
//! `InitiatingHeapOccupancyPercent`, 45 %) call for a heap that holds the live set at that
//! share; on a heap that is not that full, the collector is not short of room, and the rule
//! asks G1 for a shorter pause goal instead (`-XX:MaxGCPauseMillis`, 200 ms by default, set to
//! `max_pause` when that is shorter), once. The rule never shrinks a heap.
//!
//! The live set is not a metric: a collected heap's use climbs from the live set to the
//! limit and drops back at each collection, so its mean over a window is about half way:
//! live = 2 x mean used - limit (at least 0, at most the limit).
//!
//! The series are a service's (issue 15 splits them by attributes, `jvm.memory.type` and
//! `jvm.memory.pool.name`): one heap per service, all its pods alike.

pub(crate) mod heap;

use std::time::Duration;

use serde::Deserialize;

/// The OpenTelemetry metric of the collections' pauses (a histogram, seconds).
pub const PAUSE_METRIC: &str = "jvm.gc.duration";

/// The OpenTelemetry metric of the heap's limit (bytes; the setting a heap decision changes).
pub const LIMIT_METRIC: &str = "jvm.memory.limit";

/// The OpenTelemetry metric of the heap in use (bytes).
pub const USED_METRIC: &str = "jvm.memory.used";

/// G1's default pause goal, `-XX:MaxGCPauseMillis`.
pub const G1_PAUSE_GOAL_MS: f64 = 200.0;

/// G1's default `-XX:InitiatingHeapOccupancyPercent`, as a share.
pub const G1_OCCUPANCY: f64 = 0.45;

/// One JVM service the rule tunes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcTarget {
    /// The service; decisions name it as their target.
    pub target: String,
    /// The collections' pauses: the window's p95 (in its unit: `s`, `ms`, `us` or `ns`; none
    /// is seconds).
    #[serde(default = "pause_metric")]
    pub pause_metric: String,
    /// The heap's limit now, bytes (its window mean): the setting a heap decision changes.
    #[serde(default = "limit_metric")]
    pub limit_metric: String,
    /// The heap in use, bytes (its window mean over the pods).
    #[serde(default = "used_metric")]
    pub used_metric: String,
    /// Pauses (the window's p95) over this call for a change.
    #[serde(default = "max_pause", with = "humantime_serde")]
    pub max_pause: Duration,
    /// The live share of the heap it is sized for.
    #[serde(default = "occupancy")]
    pub occupancy: f64,
    /// A heap grows at most this many times per decision.
    #[serde(default = "max_growth")]
    pub max_growth: f64,
    /// The largest heap asked for, bytes.
    pub max_heap: f64,
    /// The setting of the collector's pause goal, milliseconds.
    #[serde(default = "pause_goal_setting")]
    pub pause_goal_setting: String,
}

fn pause_metric() -> String {
    PAUSE_METRIC.into()
}

fn limit_metric() -> String {
    LIMIT_METRIC.into()
}

fn used_metric() -> String {
    USED_METRIC.into()
}

fn max_pause() -> Duration {
    Duration::from_millis(100)
}

fn occupancy() -> f64 {
    G1_OCCUPANCY
}

fn max_growth() -> f64 {
    2.0
}

fn pause_goal_setting() -> String {
    "MaxGCPauseMillis".into()
}

impl GcTarget {
    /// What is wrong with these settings, if anything.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.target;
        if name.trim().is_empty() {
            return Err("a [[gc]] entry has an empty target".into());
        }
        if !(self.max_heap.is_finite() && self.max_heap > 0.0) {
            return Err(format!(
                "gc `{name}`: max_heap must be a positive number of bytes (got {})",
                self.max_heap
            ));
        }
        if !(self.occupancy > 0.0 && self.occupancy < 1.0) {
            return Err(format!(
                "gc `{name}`: occupancy must be in (0, 1) (got {})",
                self.occupancy
            ));
        }
        if !(self.max_growth.is_finite() && self.max_growth > 1.0) {
            return Err(format!(
                "gc `{name}`: max_growth must be more than 1 (got {})",
                self.max_growth
            ));
        }
        if self.max_pause.is_zero() {
            return Err(format!("gc `{name}`: max_pause must be over 0"));
        }
        Ok(())
    }

    /// Whether the rule reads this series.
    pub fn reads(&self, service: &str, metric: &str) -> bool {
        self.target == service
            && (self.pause_metric == metric
                || self.limit_metric == metric
                || self.used_metric == metric)
    }
}
