//! The pool rule: a database connection pool's size from Little's law on the OpenTelemetry
//! semantic conventions' pool metrics (`littles_law.rs`, a pure function), decided per window
//! by the planner as a `tune` of the setting `db.client.connection.max`.
//!
//! ```toml
//! [[pool]]
//! target = "checkout"                              # the service whose pool it is
//! # use_time_metric = "db.client.connection.use_time"   # histogram: rate x mean = busy
//! # size_metric = "db.client.connection.max"            # gauge: the pool's size now
//! # max_utilization = 0.8    # busy / size to keep to
//! # min_size = 1
//! max_size = 50              # and/or db_cores: HikariCP's cores x 2 + spindles caps it
//! # db_cores = 4
//! # spindles = 1
//! # lookback = 5             # the busiest of the last 5 windows counts
//! # tolerance = 0.1          # no change while busy / (size x max_utilization) is within 10 % of 1
//! ```
//!
//! A pool shrinks only once `lookback` windows allow it, never on a window in which its size
//! changed, and not for 30 windows after one of its shrinks was set back (by the actuator's
//! effect check, or by hand): asking again would repeat the same slower pool.
//!
//! The series are a service's (issue 15 splits them by attributes, `pool.name`): one pool per
//! service.

pub(crate) mod littles_law;

use serde::Deserialize;

/// The OpenTelemetry metric of how long connections are held (a histogram, seconds).
pub const USE_TIME_METRIC: &str = "db.client.connection.use_time";

/// The OpenTelemetry metric of a pool's size (the setting a pool decision changes).
pub const SIZE_METRIC: &str = "db.client.connection.max";

/// One pool the rule sizes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolTarget {
    /// The service whose pool it is; decisions name it as their target.
    pub target: String,
    /// How long connections are held: its window's count per second is the rate of uses,
    /// its mean the hold time (in its unit: `s`, `ms`, `us` or `ns`; none is seconds).
    #[serde(default = "use_time")]
    pub use_time_metric: String,
    /// The pool's size now (its window mean, rounded): the setting decided on.
    #[serde(default = "size")]
    pub size_metric: String,
    /// The share of the pool kept busy at most.
    #[serde(default = "point_eight")]
    pub max_utilization: f64,
    /// The smallest size asked for.
    #[serde(default = "one")]
    pub min_size: u32,
    /// The largest size asked for.
    #[serde(default)]
    pub max_size: Option<u32>,
    /// The database's cores, when known: the size is capped at cores x 2 + spindles
    /// (HikariCP's formula for a pool's useful size).
    #[serde(default)]
    pub db_cores: Option<u32>,
    /// The database's effective spindles for that formula (0 when its data is cached).
    #[serde(default = "one")]
    pub spindles: u32,
    /// Windows whose busiest one counts (a pool shrinks only when all of them allow it).
    #[serde(default = "five")]
    pub lookback: usize,
    /// No change while the busy share of the pool is within this of `max_utilization`.
    #[serde(default = "tenth")]
    pub tolerance: f64,
}

fn use_time() -> String {
    USE_TIME_METRIC.into()
}

fn size() -> String {
    SIZE_METRIC.into()
}

fn point_eight() -> f64 {
    0.8
}

fn one() -> u32 {
    1
}

fn five() -> usize {
    5
}

fn tenth() -> f64 {
    0.1
}

impl PoolTarget {
    /// The largest size asked for: `max_size` and HikariCP's cores x 2 + spindles, the
    /// smaller of those given.
    pub fn cap(&self) -> u32 {
        let hikari = self
            .db_cores
            .map(|c| c.saturating_mul(2).saturating_add(self.spindles));
        match (self.max_size, hikari) {
            (Some(m), Some(h)) => m.min(h),
            (Some(m), None) => m,
            (None, Some(h)) => h,
            (None, None) => u32::MAX,
        }
    }

    /// What is wrong with these settings, if anything.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.target;
        if name.trim().is_empty() {
            return Err("a [[pool]] entry has an empty target".into());
        }
        if self.max_size.is_none() && self.db_cores.is_none() {
            return Err(format!(
                "pool `{name}`: give max_size or db_cores (a pool without a cap could be asked \
                 to open more connections than the database takes)"
            ));
        }
        if !(self.max_utilization > 0.0 && self.max_utilization <= 1.0) {
            return Err(format!(
                "pool `{name}`: max_utilization must be in (0, 1] (got {})",
                self.max_utilization
            ));
        }
        if self.min_size == 0 || self.min_size > self.cap() {
            return Err(format!(
                "pool `{name}`: need 1 <= min_size ({}) <= the cap ({}: max_size, db_cores x 2 + \
                 spindles)",
                self.min_size,
                self.cap()
            ));
        }
        if self.lookback == 0 {
            return Err(format!("pool `{name}`: lookback must be at least 1 window"));
        }
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return Err(format!("pool `{name}`: tolerance must be in [0, 1)"));
        }
        Ok(())
    }

    /// Whether the rule reads this series.
    pub fn reads(&self, service: &str, metric: &str) -> bool {
        self.target == service && (self.use_time_metric == metric || self.size_metric == metric)
    }
}
