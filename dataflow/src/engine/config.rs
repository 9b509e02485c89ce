//! The settings a lane runs under, and the granularity of timely time.

use std::time::Duration;

use apo_ingest::decode::{Encoding, TimeBounds};

use crate::engine::error::PipelineError;

/// Granularity of timely time: the watermark is rounded down to whole seconds.
pub const TICK_MS: i64 = 1000;

/// Settings of the metrics pipeline (see `apo run --help` for their meaning and defaults).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub window_seconds: Vec<u32>,
    pub relative_accuracy: f64,
    pub lateness: Duration,
    pub horizon: Duration,
    pub idle_timeout: Duration,
    pub encoding: Encoding,
    pub time_bounds: TimeBounds,
    /// Stop once every partition is caught up, closing all windows (batch / test mode).
    pub drain: bool,
    /// Drain mode: fail when no message was read and no output became durable for this long
    /// (the broker is gone: without it a drain would wait forever).
    pub drain_stall: Duration,
    pub commit_interval: Duration,
    pub poll_batch: usize,
    /// Per-worker ceiling on messages read per second (throttles backfills); `None`: unlimited.
    pub max_messages_per_sec: Option<f64>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            window_seconds: vec![10, 60],
            relative_accuracy: 0.01,
            lateness: Duration::from_secs(5),
            horizon: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(30),
            encoding: Encoding::Auto,
            time_bounds: TimeBounds::default(),
            drain: false,
            drain_stall: Duration::from_secs(60),
            commit_interval: Duration::from_secs(1),
            poll_batch: 100,
            max_messages_per_sec: None,
        }
    }
}

impl PipelineConfig {
    pub fn validate(&self) -> Result<(), PipelineError> {
        let bad = |m: String| Err(PipelineError::Config(m));
        if self.window_seconds.is_empty() || self.window_seconds.contains(&0) {
            return bad("window sizes must be whole seconds, at least one, none zero".into());
        }
        if !(self.relative_accuracy > 0.0 && self.relative_accuracy < 1.0) {
            return bad(format!(
                "relative accuracy must be in (0, 1), got {}",
                self.relative_accuracy
            ));
        }
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
