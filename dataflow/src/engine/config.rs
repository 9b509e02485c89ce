//! The settings every lane runs under, whatever its job (lateness, horizon, idleness, drain,
//! commits, reading rate), and the granularity of timely time. A job's own settings are the
//! job's (the metrics job's windows: `MetricsConfig`; the trace job's: `SpanConfig`).

use std::time::Duration;

pub use apo_ingest::watermark::IdlePolicy;

use crate::engine::error::PipelineError;

/// Granularity of timely time: the watermark is rounded down to whole seconds.
pub const TICK_MS: i64 = 1000;

/// Settings of a lane (see `apo run --help` for their meaning and defaults). In a file,
/// durations are written as `"5s"`, `"5m"`; unknown keys are errors, missing ones default.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaneConfig {
    /// The watermark trails the highest event time by this much.
    #[serde(with = "humantime_serde")]
    pub lateness: Duration,
    /// How far behind the watermark a record may still revise a closed window.
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    /// What a partition that delivers nothing does to the watermark: `hold` it (the default:
    /// the watermark moves on event times only, so backlogs and backfills land in their
    /// windows and replays decide lateness as the first run did) or `advance` without it once
    /// it has been silent for `idle_timeout` (live dashboards).
    pub idle_policy: IdlePolicy,
    /// Under `advance`, a partition silent this long stops holding the watermark back; under
    /// either policy, a partition silent this long while others deliver is reported.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A partition that delivers nothing while messages wait behind its position (its fetch
    /// is stuck: a record larger than the fetch limit, a broker fault) stops holding the
    /// watermark after this long, so the other partitions' windows close; zero: never.
    #[serde(with = "humantime_serde")]
    pub stuck_timeout: Duration,
    /// Stop once every partition is caught up, closing all windows (batch / test mode).
    pub drain: bool,
    /// Drain mode: fail when no message was read and no output became durable for this long
    /// (the broker is gone: without it a drain would wait forever).
    #[serde(with = "humantime_serde")]
    pub drain_stall: Duration,
    /// How often offsets are committed.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Messages read per poll of the source.
    pub poll_batch: usize,
    /// Per-worker ceiling on messages read per second (throttles backfills); `None`: unlimited.
    pub max_messages_per_sec: Option<f64>,
}

impl Default for LaneConfig {
    fn default() -> Self {
        LaneConfig {
            lateness: Duration::from_secs(5),
            horizon: Duration::from_secs(300),
            idle_policy: IdlePolicy::Hold,
            idle_timeout: Duration::from_secs(30),
            stuck_timeout: Duration::from_secs(120),
            drain: false,
            drain_stall: Duration::from_secs(60),
            commit_interval: Duration::from_secs(1),
            poll_batch: 100,
            max_messages_per_sec: None,
        }
    }
}

impl LaneConfig {
    /// Errors on a setting no lane can run with.
    pub fn validate(&self) -> Result<(), PipelineError> {
        let bad = |m: String| Err(PipelineError::Config(m));
        if self
            .max_messages_per_sec
            .is_some_and(|r| r.is_nan() || r <= 0.0)
        {
            return bad("the message rate limit must be positive".into());
        }
        if self.poll_batch == 0 {
            return bad("poll batch must be at least 1".into());
        }
        Ok(())
    }
}
