//! The cache rule: a cache's size from its hit ratio's response to earlier changes
//! (`climb.rs`, the controller, apart from the planner's plumbing), decided per window as a
//! `tune` of the cache's size setting.
//!
//! ```toml
//! [[cache]]
//! target = "checkout"                 # the service whose cache it is
//! hits_metric = "cache.hits"          # delta counters: a window's sum is its hits
//! misses_metric = "cache.misses"      # ... and its misses
//! size_metric = "cache.max_size"      # gauge: the cache's size now (the setting changed)
//! max_size = 100000
//! # target_hit_ratio = 0.95           # aim above 95 % hits
//! # step = 1.5                        # each increase multiplies the size by 1.5
//! # min_gain = 0.01                   # an increase must win 1 point of hit ratio to go on
//! # windows = 3                       # windows a hit ratio is measured over
//! ```
//!
//! The series are a service's (issue 15 splits them by attributes): one cache per service.

pub(crate) mod climb;

use serde::Deserialize;

/// One cache the rule sizes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheTarget {
    /// The service whose cache it is; decisions name it as their target.
    pub target: String,
    /// Hits, a delta counter (a window's sum is the hits in it).
    pub hits_metric: String,
    /// Misses, a delta counter.
    pub misses_metric: String,
    /// The cache's size now (its window mean, rounded): the setting decided on.
    pub size_metric: String,
    /// The largest size asked for.
    pub max_size: u64,
    /// The hit ratio to reach.
    #[serde(default = "ninety_five")]
    pub target_hit_ratio: f64,
    /// Each increase multiplies the size by this.
    #[serde(default = "one_and_a_half")]
    pub step: f64,
    /// The hit ratio an increase must win for the rule to go on increasing.
    #[serde(default = "one_point")]
    pub min_gain: f64,
    /// Windows a hit ratio is measured over (after a change, once the size shows it).
    #[serde(default = "three")]
    pub windows: usize,
}

fn ninety_five() -> f64 {
    0.95
}

fn one_and_a_half() -> f64 {
    1.5
}

fn one_point() -> f64 {
    0.01
}

fn three() -> usize {
    3
}

impl CacheTarget {
    /// What is wrong with these settings, if anything.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.target;
        if name.trim().is_empty() {
            return Err("a [[cache]] entry has an empty target".into());
        }
        if !(self.target_hit_ratio > 0.0 && self.target_hit_ratio < 1.0) {
            return Err(format!(
                "cache `{name}`: target_hit_ratio must be in (0, 1) (got {})",
                self.target_hit_ratio
            ));
        }
        if !(self.step.is_finite() && self.step > 1.0) {
            return Err(format!(
                "cache `{name}`: step must be more than 1 (got {})",
                self.step
            ));
        }
        if !(self.min_gain.is_finite() && self.min_gain >= 0.0) {
            return Err(format!("cache `{name}`: min_gain must be 0 or more"));
        }
        if self.windows == 0 || self.max_size == 0 {
            return Err(format!(
                "cache `{name}`: windows and max_size must be at least 1"
            ));
        }
        Ok(())
    }

    /// Whether the rule reads this series.
    pub fn reads(&self, service: &str, metric: &str) -> bool {
        self.target == service
            && [&self.hits_metric, &self.misses_metric, &self.size_metric]
                .iter()
                .any(|m| m.as_str() == metric)
    }
}
