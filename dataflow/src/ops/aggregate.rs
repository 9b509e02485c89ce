//! Partial aggregates of one series over one window: exact count, sum, min, max and a DDSketch.
//! Partials built on different workers (or from different batches) merge exactly.

use apo_schemas::attributes::Attributes;
use apo_schemas::{MetricPoint, WindowStats};
use serde::{Deserialize, Serialize};

use crate::ops::exact_sum::ExactSum;
use crate::ops::sketch::DDSketch;

/// Identity of one window of one series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey {
    pub service: String,
    pub metric: String,
    /// The series attributes ([`apo_schemas::attributes`]): empty when the metric has none.
    pub attributes: Attributes,
    pub window_seconds: u32,
    pub window_start: i64,
}

impl WindowKey {
    pub fn window_end(&self) -> i64 {
        self.window_start + self.window_seconds as i64 * 1000
    }

    /// Stable across processes and compiler versions ([`crate::ops::route`]): decides which
    /// worker owns the series. Every attribute series of a metric has the metric's route, so
    /// one worker counts a metric's attribute sets against their limit.
    pub fn route(&self) -> u64 {
        crate::ops::route::route_strs(&[&self.service, &self.metric])
    }

    /// The series' own id (its route when it has no attributes).
    pub fn series_id(&self) -> u64 {
        series_id(&self.service, &self.metric, &self.attributes)
    }
}

/// The id of the series (`service`, `metric`, `attributes`), stable as routes are: the route
/// of the service and metric when there are no attributes.
pub fn series_id(service: &str, metric: &str, attributes: &Attributes) -> u64 {
    if attributes.is_empty() {
        return crate::ops::route::route_strs(&[service, metric]);
    }
    let mut parts: Vec<&str> = Vec::with_capacity(2 + 2 * attributes.len());
    parts.push(service);
    parts.push(metric);
    for (k, v) in attributes {
        parts.push(k);
        parts.push(v);
    }
    crate::ops::route::route_strs(&parts)
}

/// Bytes a map of attributes holds on the heap: its keys and values, and its nodes (a B-tree
/// node holds up to eleven entries).
pub fn attributes_bytes(a: &Attributes) -> usize {
    use crate::ops::held::block_bytes;
    if a.is_empty() {
        return 0;
    }
    let nodes = a.len().div_ceil(11);
    nodes * block_bytes(11 * 2 * std::mem::size_of::<String>() + 16)
        + a.iter()
            .map(|(k, v)| block_bytes(k.capacity()) + block_bytes(v.capacity()))
            .sum::<usize>()
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
    /// Kept exactly: a window's sum is the same however its points were grouped and merged.
    pub sum: ExactSum,
    pub min: f64,
    pub max: f64,
    pub sketch: DDSketch,
    /// The largest bucket bound of the histograms added (0: only exact values).
    pub bucket_bound: f64,
}

impl Partial {
    pub fn new(key: WindowKey, unit: String, alpha: f64) -> Self {
        Partial {
            key,
            unit,
            count: 0,
            sum: ExactSum::new(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sketch: DDSketch::new(alpha),
            bucket_bound: 0.0,
        }
    }

    /// Adds one validated point (a scalar, or an OTLP histogram with its exact totals).
    pub fn add(&mut self, p: &MetricPoint) {
        match &p.histogram {
            None => {
                self.count += 1;
                self.sum.add(p.value);
                self.min = self.min.min(p.value);
                self.max = self.max.max(p.value);
                self.sketch.add(p.value);
            }
            Some(h) => {
                self.count += h.count;
                self.sum.add(h.sum);
                self.min = self.min.min(h.min);
                self.max = self.max.max(h.max);
                for &(v, n) in &h.buckets {
                    self.sketch.add_n(v, n);
                }
                self.bucket_bound = self.bucket_bound.max(h.bucket_bound);
            }
        }
        if self.unit.is_empty() && !p.unit.is_empty() {
            self.unit.clone_from(&p.unit);
        }
    }

    /// Bytes the partial holds on the heap: its names and unit, its sketch's bins.
    pub fn heap_bytes(&self) -> usize {
        use crate::ops::held::block_bytes;
        block_bytes(self.key.service.capacity())
            + block_bytes(self.key.metric.capacity())
            + attributes_bytes(&self.key.attributes)
            + block_bytes(self.unit.capacity())
            + self.sketch.heap_bytes()
            + self.sum.heap_bytes()
    }

    /// Folds another partial of the same window into this one.
    pub fn merge(&mut self, o: &Partial) {
        self.count += o.count;
        self.sum.merge(&o.sum);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.bucket_bound = self.bucket_bound.max(o.bucket_bound);
        if self.unit.is_empty() {
            self.unit.clone_from(&o.unit);
        }
        // Every partial of a run is built with the same alpha; a mismatch is a programming error
        // that would otherwise corrupt percentiles, so it is logged and the other sketch skipped.
        if let Err(e) = self.sketch.merge(&o.sketch) {
            tracing::error!(error = %e, "sketch merge skipped");
        }
    }

    /// The bound on the quantiles' relative error: the sketch's alone for exact values; with
    /// histograms, a quantile falls in the bucket of the true one (buckets keep ranks), whose
    /// representative is within `b` of it and is estimated within `alpha`:
    /// `(1 + b)(1 + alpha) − 1`. `f64::MAX` when a bucket spans zero (no relative bound).
    pub fn relative_accuracy(&self) -> f64 {
        let alpha = self.sketch.relative_accuracy();
        match self.bucket_bound {
            b if b <= 0.0 => alpha,
            f64::MAX => f64::MAX,
            b => (1.0 + b) * (1.0 + alpha) - 1.0,
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
            attributes: self.key.attributes.clone(),
            unit: self.unit.clone(),
            window_seconds: self.key.window_seconds,
            window_start: self.key.window_start,
            window_end: self.key.window_end(),
            count: self.count,
            sum: self.sum.value(),
            min: self.min,
            max: self.max,
            mean: if self.count > 0 {
                self.sum.value() / self.count as f64
            } else {
                f64::NAN
            },
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
            relative_accuracy: self.relative_accuracy(),
            revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use apo_schemas::{bucket_bound, Histogram, MetricPoint};

    use super::{Partial, WindowKey};

    /// `values` as an OTLP explicit-bucket histogram with `bounds` (representatives and clamps
    /// as apo-schemas' OTLP decoder makes them).
    fn histogram(values: &[f64], bounds: &[f64]) -> Histogram {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut counts = vec![0u64; bounds.len() + 1];
        for &x in values {
            counts[bounds.iter().take_while(|&&b| x > b).count()] += 1;
        }
        let (mut buckets, mut bound) = (Vec::new(), 0.0f64);
        for (i, &c) in counts.iter().enumerate().filter(|(_, &c)| c > 0) {
            let lo = if i == 0 { min } else { bounds[i - 1].max(min) };
            let hi = bounds.get(i).copied().unwrap_or(max).min(max);
            let v = (lo + hi) / 2.0;
            bound = bound.max(bucket_bound(lo, v, hi));
            buckets.push((v, c));
        }
        Histogram {
            count: values.len() as u64,
            sum: values.iter().sum(),
            min,
            max,
            buckets,
            bucket_bound: bound,
        }
    }

    fn partial_of(h: Histogram) -> Partial {
        let key = WindowKey {
            attributes: Default::default(),
            service: "s".into(),
            metric: "m".into(),
            window_seconds: 10,
            window_start: 0,
        };
        let mut p = Partial::new(key, "ms".into(), 0.01);
        p.add(&MetricPoint {
            timestamp: 0,
            service: "s".into(),
            name: "m".into(),
            value: 0.0,
            unit: "ms".into(),
            tags: Default::default(),
            histogram: Some(h),
            cumulative: None,
            resource: None,
        });
        p
    }

    /// The exact quantile by the sketch's rank rule (floor(q (n − 1)) of the sorted values).
    fn exact(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v[(q * (v.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn a_histogram_fed_window_states_a_bound_its_quantiles_keep() {
        // 1..=1000 ms over the SDKs' default latency bounds (a part of them): wide buckets.
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let bounds = [5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0];
        let p = partial_of(histogram(&values, &bounds));
        let acc = p.finish(1).relative_accuracy;
        // [1, 5] by 3 is the widest relatively: 200 %, with the sketch's 1 % on top.
        assert!((acc - (3.0 * 1.01 - 1.0)).abs() < 1e-12, "{acc}");
        let w = p.finish(1);
        for (q, got) in [
            (0.5, w.p50),
            (0.9, w.p90),
            (0.95, w.p95),
            (0.99, w.p99),
            (0.999, w.p999),
        ] {
            let want = exact(&values, q);
            let err = (got - want).abs() / want;
            assert!(
                err <= acc,
                "p{q}: {got} against {want}, error {err} > {acc}"
            );
        }
        // p50 is 500: in (250, 500], stood for by 375, 25 % off; far above the sketch's 1 %.
        assert!((w.p50 - 500.0).abs() / 500.0 > 0.2);
    }

    #[test]
    fn exact_values_keep_the_sketch_accuracy_and_a_bucket_over_zero_has_no_bound() {
        let key = WindowKey {
            attributes: Default::default(),
            service: "s".into(),
            metric: "m".into(),
            window_seconds: 10,
            window_start: 0,
        };
        let p = Partial::new(key, String::new(), 0.01);
        assert_eq!(p.relative_accuracy(), 0.01);
        let q = partial_of(histogram(&[-2.0, 1.0, 3.0], &[2.0]));
        assert_eq!(q.relative_accuracy(), f64::MAX);
        let mut merged = p.clone();
        merged.merge(&q);
        assert_eq!(
            merged.relative_accuracy(),
            f64::MAX,
            "merging keeps the bound"
        );
    }
}
