//! A scrape as metric points, the names the OpenTelemetry semantic conventions and the
//! Collector's Kubernetes receivers give them:
//!
//! - `http.server.request.duration` (s): the requests that ended in the interval, as one
//!   histogram point whose buckets are logarithmic with a relative accuracy of
//!   [`BUCKET_ACCURACY`] (count, sum, min and max exact), the form of the SDKs' exponential
//!   histograms; the failed ones as a point of their own per `error.type` (`timeout`, `503`
//!   for a request no replica took, `500`), as the semantic conventions record every request,
//!   so that the histogram's count is the requests offered even when the replicas are
//!   saturated;
//! - `k8s.deployment.available_pods` and `k8s.deployment.desired_pods`: the serving replicas
//!   (what the HPA rule reads as the current replicas) and those asked for;
//! - `cpu.utilization` (1): one point per serving replica (tagged `k8s.pod.name`), so that a
//!   window's mean is the pods' average, what the HPA's resource metric averages.
//!
//! - with a database, `db.client.connection.use_time` (s, a histogram of how long the calls
//!   that ended held their connection), `db.client.connection.max` (a replica's pool size, the
//!   setting a pool decision tunes), `db.client.connection.count` (connections in use) and
//!   `db.client.connection.pending_requests` (callers waiting for one), the last two over
//!   all replicas (the semantic conventions' `state` and `pool.name` attributes do not split
//!   a series yet: issue 15).
//!
//! - with a cache, `cache.hits` and `cache.misses` (the interval's, delta counters) and
//!   `cache.max_size` (objects, the setting a cache decision tunes): no semantic convention
//!   names a cache's metrics; these are the cache rule's defaults.
//!
//! - with a heap, `jvm.gc.duration` (s, a histogram of the collections' pauses that began in
//!   the interval), `jvm.memory.limit` (bytes, a replica's heap limit, the setting a heap
//!   decision tunes) and `jvm.memory.used` (bytes, one point per serving replica, tagged
//!   `k8s.pod.name`: a window's mean is the pods' average).
//!
//! A scrape's points are stamped 1 ms before its interval's end, so that a window whose size
//! is a multiple of the interval holds exactly the intervals inside it.

use std::collections::BTreeMap;

use apo_schemas::metric::{bucket_bound, Histogram};
use apo_schemas::MetricPoint;

use crate::run::Scrape;

/// The requests' durations.
pub const REQUEST_DURATION: &str = "http.server.request.duration";
/// The attribute of a failed request's duration: why it failed.
pub const ERROR_TYPE: &str = "error.type";
/// The serving replicas (the planner's default replicas metric).
pub const AVAILABLE_PODS: &str = "k8s.deployment.available_pods";
/// The replicas asked for.
pub const DESIRED_PODS: &str = "k8s.deployment.desired_pods";
/// A replica's utilisation, 0 to 1.
pub const CPU_UTILIZATION: &str = "cpu.utilization";
/// How long database calls held their connection.
pub const DB_USE_TIME: &str = "db.client.connection.use_time";
/// A replica's pool size.
pub const DB_POOL_MAX: &str = "db.client.connection.max";
/// Connections in use (all replicas).
pub const DB_POOL_USED: &str = "db.client.connection.count";
/// Callers waiting for a connection (all replicas).
pub const DB_POOL_PENDING: &str = "db.client.connection.pending_requests";
/// Requests the cache answered in a scrape interval (a delta counter).
pub const CACHE_HITS: &str = "cache.hits";
/// Requests it missed (a delta counter).
pub const CACHE_MISSES: &str = "cache.misses";
/// Its size, objects.
pub const CACHE_MAX_SIZE: &str = "cache.max_size";

/// The collections' pauses.
pub const GC_DURATION: &str = "jvm.gc.duration";
/// A replica's heap limit.
pub const HEAP_LIMIT: &str = "jvm.memory.limit";
/// A replica's heap in use.
pub const HEAP_USED: &str = "jvm.memory.used";

/// The relative accuracy of the duration histogram's buckets.
pub const BUCKET_ACCURACY: f64 = 0.01;

/// `scrape` of `service` as points, its times from `start_ms` (the event time of the run's
/// start, ms since the Unix epoch).
pub fn points(service: &str, start_ms: i64, scrape: &Scrape) -> Vec<MetricPoint> {
    let at = start_ms + (scrape.at_s * 1000.0).round() as i64 - 1;
    let point = |name: &str, value: f64, unit: &str| MetricPoint {
        timestamp: at,
        service: service.to_string(),
        name: name.to_string(),
        value,
        unit: unit.to_string(),
        tags: BTreeMap::new(),
        histogram: None,
        cumulative: None,
        resource: None,
    };
    let mut out = Vec::with_capacity(3 + scrape.utilization.len());
    if let Some(h) = histogram(&scrape.durations_s) {
        out.push(MetricPoint {
            histogram: Some(h),
            ..point(REQUEST_DURATION, 0.0, "s")
        });
    }
    let mut failures: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for (why, d) in &scrape.failures_s {
        failures.entry(why.error_type()).or_default().push(*d);
    }
    for (error_type, durations) in failures {
        if let Some(h) = histogram(&durations) {
            let mut p = MetricPoint {
                histogram: Some(h),
                ..point(REQUEST_DURATION, 0.0, "s")
            };
            p.tags.insert(ERROR_TYPE.into(), error_type.into());
            out.push(p);
        }
    }
    if let Some((size, used, waiting)) = scrape.pool {
        if let Some(h) = histogram(&scrape.db_use_s) {
            out.push(MetricPoint {
                histogram: Some(h),
                ..point(DB_USE_TIME, 0.0, "s")
            });
        }
        out.push(point(DB_POOL_MAX, size as f64, "{connection}"));
        out.push(point(DB_POOL_USED, used as f64, "{connection}"));
        out.push(point(DB_POOL_PENDING, waiting as f64, "{request}"));
    }
    if let Some((size, hits, misses)) = scrape.cache {
        out.push(point(CACHE_HITS, hits as f64, "{request}"));
        out.push(point(CACHE_MISSES, misses as f64, "{request}"));
        out.push(point(CACHE_MAX_SIZE, size as f64, "{object}"));
    }
    if let Some((limit, used)) = &scrape.heap {
        if let Some(h) = histogram(&scrape.gc_pauses_s) {
            out.push(MetricPoint {
                histogram: Some(h),
                ..point(GC_DURATION, 0.0, "s")
            });
        }
        out.push(point(HEAP_LIMIT, *limit, "By"));
        for (i, u) in used.iter().enumerate() {
            let mut p = point(HEAP_USED, *u, "By");
            p.tags
                .insert("k8s.pod.name".into(), format!("{service}-{i}"));
            out.push(p);
        }
    }
    out.push(point(AVAILABLE_PODS, f64::from(scrape.ready), "{pod}"));
    out.push(point(DESIRED_PODS, f64::from(scrape.replicas), "{pod}"));
    for (i, u) in scrape.utilization.iter().enumerate() {
        let mut p = point(CPU_UTILIZATION, *u, "1");
        p.tags
            .insert("k8s.pod.name".into(), format!("{service}-{i}"));
        out.push(p);
    }
    out
}

/// Positive `values` as a histogram of logarithmic buckets (γ = (1 + a) / (1 − a) for the
/// accuracy a), each bucket's representative the value within a of both its ends; values at
/// or below zero share one bucket at 0. `None` without values.
pub fn histogram(values: &[f64]) -> Option<Histogram> {
    if values.is_empty() {
        return None;
    }
    let a = BUCKET_ACCURACY;
    let gamma = (1.0 + a) / (1.0 - a);
    let ln_gamma = gamma.ln();
    let mut buckets: BTreeMap<i64, u64> = BTreeMap::new();
    let mut zeros = 0u64;
    let (mut sum, mut min, mut max) = (0.0, f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        sum += v;
        min = min.min(v);
        max = max.max(v);
        if v > 0.0 {
            *buckets
                .entry((v.ln() / ln_gamma).ceil() as i64)
                .or_default() += 1;
        } else {
            zeros += 1;
        }
    }
    let mut bound: f64 = 0.0;
    let mut out: Vec<(f64, u64)> = Vec::with_capacity(buckets.len() + 1);
    if zeros > 0 {
        out.push((0.0, zeros));
    }
    for (k, n) in buckets {
        // the bucket (γ^(k-1), γ^k]; its representative 2γ^k / (γ + 1)
        let (lo, hi) = (gamma.powi(k as i32 - 1), gamma.powi(k as i32));
        let v = 2.0 * hi / (gamma + 1.0);
        bound = bound.max(bucket_bound(lo, v, hi));
        out.push((v, n));
    }
    Some(Histogram {
        count: values.len() as u64,
        sum,
        min,
        max,
        buckets: out,
        bucket_bound: bound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Failure;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rand_distr::{Distribution, LogNormal};

    #[test]
    fn the_histogram_keeps_totals_exact_and_every_rank_within_its_accuracy() {
        let mut rng = StdRng::seed_from_u64(3);
        let d = LogNormal::new((0.1f64).ln(), 0.8).unwrap();
        let mut values: Vec<f64> = (0..5_000).map(|_| d.sample(&mut rng)).collect();
        let h = histogram(&values).unwrap();
        assert_eq!(h.count, 5_000);
        assert_eq!(h.buckets.iter().map(|b| b.1).sum::<u64>(), 5_000);
        let sum: f64 = values.iter().sum();
        assert!((h.sum - sum).abs() < 1e-9 * sum);
        values.sort_by(f64::total_cmp);
        assert_eq!((h.min, h.max), (values[0], values[4_999]));
        assert!(
            h.bucket_bound <= BUCKET_ACCURACY + 1e-12,
            "{}",
            h.bucket_bound
        );
        // the value of each rank, read from the buckets, is within the accuracy of the exact one
        let mut ranked = Vec::new();
        for &(v, n) in &h.buckets {
            ranked.extend(std::iter::repeat_n(v, n as usize));
        }
        for (exact, from_buckets) in values.iter().zip(&ranked) {
            assert!(
                (from_buckets - exact).abs() <= BUCKET_ACCURACY * exact * (1.0 + 1e-9),
                "{exact} as {from_buckets}"
            );
        }
        assert!(histogram(&[]).is_none());
        let z = histogram(&[0.0, 2.0]).unwrap();
        assert_eq!(z.buckets[0], (0.0, 1));
    }

    #[test]
    fn a_scrape_is_its_durations_replicas_and_each_pods_utilisation() {
        let s = Scrape {
            durations_s: vec![0.1, 0.2, 0.4],
            replicas: 3,
            ready: 2,
            utilization: vec![0.5, 0.25],
            ..Scrape::empty(60.0, 10.0, None)
        };
        let p = points("checkout", 1_000_000, &s);
        assert!(p
            .iter()
            .all(|p| p.timestamp == 1_059_999 && p.service == "checkout"));
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                REQUEST_DURATION,
                AVAILABLE_PODS,
                DESIRED_PODS,
                CPU_UTILIZATION,
                CPU_UTILIZATION
            ]
        );
        let h = p[0].histogram.as_ref().unwrap();
        assert_eq!((h.count, h.min, h.max), (3, 0.1, 0.4));
        assert_eq!((p[1].value, p[2].value), (2.0, 3.0));
        assert_eq!((p[3].value, p[4].value), (0.5, 0.25));
        assert_eq!(p[4].tags["k8s.pod.name"], "checkout-1");
        for q in &p {
            q.validate().unwrap();
        }
        // failed requests: a duration point per error.type after the successful ones, their
        // counts, extremes and sums exact
        let failed = points(
            "checkout",
            0,
            &Scrape {
                failures_s: vec![
                    (Failure::Timeout, 10.5),
                    (Failure::Unavailable, 0.0),
                    (Failure::Timeout, 12.0),
                    (Failure::Error, 0.3),
                ],
                ..s.clone()
            },
        );
        let durations: Vec<(&str, u64, f64, f64)> = failed
            .iter()
            .filter(|p| p.name == REQUEST_DURATION)
            .map(|p| {
                let h = p.histogram.as_ref().unwrap();
                let why = p.tags.get(ERROR_TYPE).map_or("", String::as_str);
                (why, h.count, h.min, h.max)
            })
            .collect();
        assert_eq!(
            durations,
            [
                ("", 3, 0.1, 0.4),
                ("500", 1, 0.3, 0.3),
                ("503", 1, 0.0, 0.0),
                ("timeout", 2, 10.5, 12.0)
            ]
        );
        for q in &failed {
            q.validate().unwrap();
        }
        // without requests: no duration point
        let idle = points(
            "checkout",
            0,
            &Scrape {
                durations_s: vec![],
                ..s.clone()
            },
        );
        assert_eq!(idle[0].name, AVAILABLE_PODS);
        // with a database: its pool's points after the durations
        let db = points(
            "checkout",
            0,
            &Scrape {
                db_use_s: vec![0.05, 0.07],
                pool: Some((10, 7, 3)),
                ..s.clone()
            },
        );
        let names: Vec<&str> = db.iter().take(5).map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                REQUEST_DURATION,
                DB_USE_TIME,
                DB_POOL_MAX,
                DB_POOL_USED,
                DB_POOL_PENDING
            ]
        );
        let h = db[1].histogram.as_ref().unwrap();
        assert_eq!((h.count, h.min, h.max), (2, 0.05, 0.07));
        assert_eq!((db[2].value, db[3].value, db[4].value), (10.0, 7.0, 3.0));
        for q in &db {
            q.validate().unwrap();
        } // with a heap: its pauses, its limit and each serving pod's heap in use
        let gc = points(
            "checkout",
            0,
            &Scrape {
                gc_pauses_s: vec![0.12, 0.15],
                heap: Some((480.0, vec![410.0, 420.0])),
                ..s.clone()
            },
        );
        let names: Vec<&str> = gc.iter().skip(1).take(4).map(|p| p.name.as_str()).collect();
        assert_eq!(names, [GC_DURATION, HEAP_LIMIT, HEAP_USED, HEAP_USED]);
        let h = gc[1].histogram.as_ref().unwrap();
        assert_eq!((h.count, h.min, h.max), (2, 0.12, 0.15));
        assert_eq!(
            (gc[2].value, gc[3].value, gc[4].value),
            (480.0, 410.0, 420.0)
        );
        assert_eq!(gc[4].tags["k8s.pod.name"], "checkout-1");
        for q in &gc {
            q.validate().unwrap();
        }
    }
}
