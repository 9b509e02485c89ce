//! A cumulative OTLP data point as decoded: the running totals of one OTLP stream since its
//! start, before the pipeline turns consecutive points of the stream into deltas (the metrics
//! job's `cumulative` stage). The OpenTelemetry SDKs send cumulative temporality by default.
//!
//! A stream is what OTLP's data model calls one: the resource's attributes, the
//! instrumentation scope, the metric's name and the data point's attributes. Its [`stream id`]
//! is a hash of those, stable across processes (the stage routes a stream's points to one
//! worker by it).
//!
//! [`stream id`]: Cumulative::stream

use serde::{Deserialize, Serialize};

use crate::exponential::Exponential;
use crate::metric::Histogram;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// The running totals of one cumulative data point and the stream they belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cumulative {
    /// The stream's identity (see [`stream_id`]).
    pub stream: u64,
    /// When the stream's totals started (`start_time_unix_nano`), ms since the Unix epoch; 0
    /// when the point does not say.
    pub start_ms: i64,
    /// The totals.
    pub running: Running,
}

/// What a cumulative point totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Running {
    /// A monotonic sum's total since the start.
    Sum(f64),
    /// An explicit-bucket histogram's totals since the start.
    Histogram(Buckets),
    /// An exponential histogram's totals since the start.
    Exponential(Exponential),
    /// A summary's count and sum since the start (its quantiles are the producer's own and
    /// cannot be merged: not used).
    Summary {
        /// The number of values.
        count: u64,
        /// Their sum.
        sum: f64,
    },
}

/// What a window counts of some values.
#[derive(Debug, Clone, PartialEq)]
pub enum Counted {
    /// A sum's value.
    Value(f64),
    /// A histogram's, `None` when it holds no value.
    Histogram(Option<Histogram>),
}

impl Running {
    /// What a window counts of these values, taken as one interval's (a delta point's, or
    /// the difference of two cumulative ones).
    pub fn counted(&self) -> Counted {
        match self {
            Running::Sum(v) => Counted::Value(*v),
            Running::Histogram(b) => Counted::Histogram(crate::otlp::histogram_of(b)),
            Running::Exponential(e) => Counted::Histogram(crate::exponential::histogram_of(e)),
            Running::Summary { count, sum } => Counted::Histogram(summary_of(*count, *sum)),
        }
    }
}

/// A summary interval's `count` values of sum `sum`: known only by their mean, with no
/// relative bound on any quantile (`None` without values).
fn summary_of(count: u64, sum: f64) -> Option<Histogram> {
    if count == 0 {
        return None;
    }
    let mean = sum / count as f64;
    Some(Histogram {
        count,
        sum,
        min: mean,
        max: mean,
        buckets: vec![(mean, count)],
        bucket_bound: f64::MAX,
    })
}

/// An explicit-bucket histogram's counts, as OTLP carries them: bucket `i` holds the values
/// in `(bounds[i-1], bounds[i]]`, the first and the last bucket are open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    /// The buckets' upper bounds (finite, increasing).
    pub bounds: Vec<f64>,
    /// Each bucket's count: `bounds.len() + 1` of them, or none.
    pub counts: Vec<u64>,
    /// The number of values.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest value, when the point says.
    pub min: Option<f64>,
    /// The largest value, when the point says.
    pub max: Option<f64>,
}

/// The identity of an OTLP stream: `resource` and `point` attributes as (key, value) pairs in
/// any order (they are sorted here), the scope's name and version and the metric's name. A
/// SipHash-2-4 with zero keys of their canonical bytes: the same in every process.
pub fn stream_id(
    resource: &[(String, String)],
    scope: (&str, &str),
    metric: &str,
    point: &[(String, String)],
) -> u64 {
    let mut sorted: Vec<&(String, String)> = point.iter().collect();
    sorted.sort();
    StreamPrefix::of_resource(resource)
        .with_metric(scope, metric)
        .id(sorted.into_iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// [`stream_id`] in steps, for a decoder: the resource's part hashed once for all its metrics,
/// the scope's and metric's once for all its points, each point's attributes last.
#[derive(Debug, Clone, Copy)]
pub struct StreamPrefix(SipHasher24);

fn part(h: &mut SipHasher24, s: &str) {
    h.write(s.as_bytes());
    h.write_u8(0xff);
}

impl StreamPrefix {
    /// The prefix of `resource`'s streams (its attributes in any order).
    pub fn of_resource(resource: &[(String, String)]) -> Self {
        let mut sorted: Vec<&(String, String)> = resource.iter().collect();
        sorted.sort();
        let mut h = SipHasher24::new_with_keys(0, 0);
        for (k, v) in sorted {
            part(&mut h, k);
            part(&mut h, v);
        }
        h.write_u8(0xfe);
        StreamPrefix(h)
    }

    /// The prefix of the streams of `metric` of `scope` (name, version) of this resource.
    pub fn with_metric(&self, scope: (&str, &str), metric: &str) -> Self {
        let mut h = self.0;
        part(&mut h, scope.0);
        part(&mut h, scope.1);
        part(&mut h, metric);
        StreamPrefix(h)
    }

    /// The id of the stream whose point attributes are `point`, sorted by key (a map's order).
    pub fn id<'a>(&self, point: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
        let mut h = self.0;
        for (k, v) in point {
            part(&mut h, k);
            part(&mut h, v);
        }
        h.write_u8(0xfe);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id of service `a`'s metric `m` (no scope, no point attributes) in the build that
    /// introduced stream ids.
    const GOLDEN: u64 = 5_208_660_852_944_978_614;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_stream_is_its_resource_scope_name_and_attributes_in_any_order() {
        let r = kv(&[("service.name", "a"), ("host.name", "h1")]);
        let p = kv(&[("http.route", "/x"), ("http.request.method", "GET")]);
        let id = stream_id(&r, ("s", "1"), "m", &p);
        let mut r2 = r.clone();
        r2.reverse();
        let mut p2 = p.clone();
        p2.reverse();
        assert_eq!(stream_id(&r2, ("s", "1"), "m", &p2), id);
        // any part changed: another stream
        let other = [
            stream_id(&kv(&[("service.name", "a")]), ("s", "1"), "m", &p),
            stream_id(&r, ("s", "2"), "m", &p),
            stream_id(&r, ("s", "1"), "n", &p),
            stream_id(&r, ("s", "1"), "m", &kv(&[("http.route", "/x")])),
            // an attribute moved from the resource to the point is another stream
            stream_id(
                &kv(&[("service.name", "a")]),
                ("s", "1"),
                "m",
                &kv(&[
                    ("host.name", "h1"),
                    ("http.route", "/x"),
                    ("http.request.method", "GET"),
                ]),
            ),
        ];
        for (i, o) in other.iter().enumerate() {
            assert_ne!(*o, id, "case {i}");
        }
        // Golden: the id must not move between builds (a stream would change workers).
        assert_eq!(
            stream_id(&kv(&[("service.name", "a")]), ("", ""), "m", &[]),
            GOLDEN
        );
    }
}
