//! Partial aggregates of one series over one window: exact count, sum, min, max and a DDSketch.
//! Partials built on different workers (or from different batches) merge exactly.

use apo_schemas::{MetricPoint, WindowStats};
use serde::{Deserialize, Serialize};

use crate::ops::sketch::DDSketch;

/// Identity of one window of one series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey {
    pub service: String,
    pub metric: String,
    pub window_seconds: u32,
    pub window_start: i64,
}

impl WindowKey {
    pub fn window_end(&self) -> i64 {
        self.window_start + self.window_seconds as i64 * 1000
    }

    /// Stable across processes and compiler versions ([`crate::ops::route`]): decides which worker owns the series.
    pub fn route(&self) -> u64 {
        crate::ops::route::route_strs(&[&self.service, &self.metric])
    }
}

/// One tumbling window, whatever it aggregates over (outputs keyed by window alone: critical-path
/// shares, service-map edges).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowId {
    pub window_seconds: u32,
    pub window_start: i64,
}

impl WindowId {
    /// The window of `size_s` seconds holding `ts_ms`.
    pub fn containing(ts_ms: i64, size_s: u32) -> Self {
        WindowId {
            window_seconds: size_s,
            window_start: window_start(ts_ms, size_s as i64 * 1000),
        }
    }

    pub fn window_end(&self) -> i64 {
        self.window_start + self.window_seconds as i64 * 1000
    }

    /// The worker that owns the window.
    pub fn route(&self) -> u64 {
        self.window_start as u64 ^ ((self.window_seconds as u64) << 48)
    }
}

/// The start of the tumbling window of `size_ms` containing `ts` (aligned to the epoch).
pub fn window_start(ts: i64, size_ms: i64) -> i64 {
    ts.div_euclid(size_ms) * size_ms
}

/// Aggregate of some of the points of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    pub key: WindowKey,
    pub unit: String,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub sketch: DDSketch,
}

impl Partial {
    pub fn new(key: WindowKey, unit: String, alpha: f64) -> Self {
        Partial {
            key,
            unit,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sketch: DDSketch::new(alpha),
        }
    }

    /// Adds one validated point (a scalar, or an OTLP histogram with its exact totals).
    pub fn add(&mut self, p: &MetricPoint) {
        match &p.histogram {
            None => {
                self.count += 1;
                self.sum += p.value;
                self.min = self.min.min(p.value);
                self.max = self.max.max(p.value);
                self.sketch.add(p.value);
            }
            Some(h) => {
                self.count += h.count;
                self.sum += h.sum;
                self.min = self.min.min(h.min);
                self.max = self.max.max(h.max);
                for &(v, n) in &h.buckets {
                    self.sketch.add_n(v, n);
                }
            }
        }
        if self.unit.is_empty() && !p.unit.is_empty() {
            self.unit.clone_from(&p.unit);
        }
    }

    /// Folds another partial of the same window into this one.
    pub fn merge(&mut self, o: &Partial) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if self.unit.is_empty() {
            self.unit.clone_from(&o.unit);
        }
        // Every partial of a run is built with the same alpha; a mismatch is a programming error
        // that would otherwise corrupt percentiles, so it is logged and the other sketch skipped.
        if let Err(e) = self.sketch.merge(&o.sketch) {
            tracing::error!(error = %e, "sketch merge skipped");
        }
    }

    /// The output record for this window at `revision`.
    pub fn finish(&self, revision: u32) -> WindowStats {
        let q = |x: f64| {
            self.sketch
                .quantile(x)
                .map(|v| v.clamp(self.min, self.max))
                .unwrap_or(f64::NAN)
        };
        WindowStats {
            service: self.key.service.clone(),
            metric: self.key.metric.clone(),
            unit: self.unit.clone(),
            window_seconds: self.key.window_seconds,
            window_start: self.key.window_start,
            window_end: self.key.window_end(),
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
            mean: if self.count > 0 {
                self.sum / self.count as f64
            } else {
                f64::NAN
            },
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            relative_accuracy: self.sketch.relative_accuracy(),
            revision,
        }
    }
}
