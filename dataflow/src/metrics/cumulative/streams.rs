//! Cumulative points made deltas, per OTLP stream: each point against the stream's previous
//! one (a pure state machine; the dataflow stage in `mod.rs` feeds it a stream's points in
//! event-time order on the worker that owns the stream).
//!
//! - a stream's first point counts as a delta from the stream's start when its start time is
//!   known and within `first_within` before it (a process that just started: every value it
//!   totals is new); otherwise it is only the baseline of the next point (a process that ran
//!   before APO saw it: its totals would count its whole past in one window);
//! - then each point counts its totals minus the previous point's: a monotonic sum's
//!   increase, a histogram's new values per bucket, their number and their sum;
//! - a reset starts the stream again without a negative or inflated delta: when the start
//!   time moved past the previous point (the process restarted; every value since the new
//!   start is new and is counted, none is lost), or when a total went down, the buckets
//!   changed or the start moved otherwise (the point is the next one's baseline);
//! - a point no later than the stream's previous one (a duplicate, or one that arrived out of
//!   order) is not counted and changes nothing: it is reported as stale;
//! - a stream silent for `silence` is forgotten (its next point is a first point).
//!
//! A histogram's delta knows its smallest and largest value exactly when the stream's min
//! went down or its max went up in the interval (the new extreme was seen in it); otherwise
//! they are the edges of the outermost buckets that gained values, kept within the stream's
//! own min and max.

use std::collections::HashMap;

use apo_schemas::cumulative::{Buckets, Counted, Cumulative, Running};
use apo_schemas::exponential::{Exponential, Range};
use apo_schemas::MetricPoint;

/// How streams are kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamSettings {
    /// A stream with no point for this long is forgotten, ms.
    pub silence_ms: i64,
    /// A stream's first point counts from the stream's start if that is at most this long
    /// before it, ms.
    pub first_within_ms: i64,
}

/// What became of one cumulative point.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The values since the stream's previous point (or its start): a delta point to count.
    Delta(MetricPoint),
    /// Nothing to count; the point's totals are the next point's baseline.
    Baseline(Baseline),
    /// A point no later than the stream's previous one: not counted, nothing changed.
    Stale,
}

/// Why a point counted nothing but is kept as a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The stream's first point, its start unknown or too long before it.
    First,
    /// A total went down, the buckets changed, or the start moved before the previous point.
    Reset,
    /// No value since the previous point (a histogram that gained none).
    Empty,
}

/// How many points had each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounts {
    /// Streams held.
    pub live: usize,
    /// Points counted as deltas.
    pub deltas: u64,
    /// First points kept as baselines only.
    pub first: u64,
    /// Resets (a new baseline, or a restart counted from its start).
    pub resets: u64,
    /// Points no later than their stream's previous one, not counted.
    pub stale: u64,
    /// Streams forgotten after their silence.
    pub evicted: u64,
}

/// A stream's previous point.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Last {
    start_ms: i64,
    ts: i64,
    running: Running,
}

/// The streams of one worker.
#[derive(Debug)]
pub struct Streams {
    settings: StreamSettings,
    by_id: HashMap<u64, Last>,
    counts: StreamCounts,
}

impl Streams {
    pub fn new(settings: StreamSettings) -> Self {
        Streams {
            settings,
            by_id: HashMap::new(),
            counts: StreamCounts::default(),
        }
    }

    /// The streams' previous points as bytes, for a checkpoint.
    pub fn snapshot(&self) -> Result<Vec<u8>, bincode::Error> {
        bincode::serialize(&self.by_id)
    }

    /// These streams with the previous points of a [`Streams::snapshot`].
    pub fn restored(mut self, bytes: &[u8]) -> Result<Self, bincode::Error> {
        self.by_id = bincode::deserialize(bytes)?;
        Ok(self)
    }

    /// What the points so far came to.
    pub fn counts(&self) -> StreamCounts {
        StreamCounts {
            live: self.by_id.len(),
            ..self.counts
        }
    }

    /// Takes point `p` of its stream; a point that is not cumulative is its own delta.
    pub fn apply(&mut self, mut p: MetricPoint) -> Outcome {
        let Some(c) = p.cumulative.take() else {
            return Outcome::Delta(p);
        };
        let Cumulative {
            stream,
            start_ms,
            running,
        } = *c;
        let ts = p.timestamp;
        let delta = match self.by_id.get(&stream) {
            None => {
                let fresh = start_ms > 0
                    && start_ms <= ts
                    && ts - start_ms <= self.settings.first_within_ms;
                if fresh {
                    Ok(running.clone())
                } else {
                    self.counts.first += 1;
                    Err(Baseline::First)
                }
            }
            Some(last) if ts <= last.ts => {
                self.counts.stale += 1;
                return Outcome::Stale;
            }
            Some(last) if start_ms != last.start_ms => {
                self.counts.resets += 1;
                if start_ms > 0 && start_ms >= last.ts && start_ms <= ts {
                    // restarted after the previous point: all it totals is new
                    Ok(running.clone())
                } else {
                    Err(Baseline::Reset)
                }
            }
            Some(last) => match since(&last.running, &running) {
                Some(d) => Ok(d),
                None => {
                    self.counts.resets += 1;
                    Err(Baseline::Reset)
                }
            },
        };
        self.by_id.insert(
            stream,
            Last {
                start_ms,
                ts,
                running,
            },
        );
        let delta = match delta {
            Ok(d) => d,
            Err(why) => return Outcome::Baseline(why),
        };
        match delta.counted() {
            Counted::Value(v) => p.value = v,
            Counted::Histogram(None) => return Outcome::Baseline(Baseline::Empty),
            Counted::Histogram(Some(h)) => {
                p.value = h.sum / h.count as f64;
                p.histogram = Some(h);
            }
        }
        self.counts.deltas += 1;
        Outcome::Delta(p)
    }

    /// Forgets the streams whose last point is more than the silence before `now_ms` (event
    /// time).
    pub fn evict_silent(&mut self, now_ms: i64) {
        let before = self.by_id.len();
        let silence = self.settings.silence_ms;
        self.by_id.retain(|_, l| now_ms - l.ts <= silence);
        self.counts.evicted += (before - self.by_id.len()) as u64;
    }
}

/// The values in `now` that are not in `before` (both totals of one stream since one start);
/// `None` when `now` cannot follow `before` (a total went down, the buckets changed).
fn since(before: &Running, now: &Running) -> Option<Running> {
    match (before, now) {
        (Running::Sum(a), Running::Sum(b)) => (b >= a).then(|| Running::Sum(b - a)),
        (Running::Histogram(a), Running::Histogram(b)) => {
            histogram_since(a, b).map(Running::Histogram)
        }
        (Running::Exponential(a), Running::Exponential(b)) => {
            exponential_since(a, b).map(Running::Exponential)
        }
        (Running::Summary { count: ca, sum: sa }, Running::Summary { count: cb, sum: sb }) => {
            (cb >= ca).then(|| Running::Summary {
                count: cb - ca,
                sum: sb - sa,
            })
        }
        _ => None,
    }
}

fn histogram_since(a: &Buckets, b: &Buckets) -> Option<Buckets> {
    if b.count < a.count || (a.count > 0 && b.bounds != a.bounds) {
        return None;
    }
    let counts: Vec<u64> = if a.count == 0 {
        b.counts.clone()
    } else if b.counts.len() == a.counts.len() {
        b.counts
            .iter()
            .zip(&a.counts)
            .map(|(n, o)| n.checked_sub(*o))
            .collect::<Option<Vec<u64>>>()?
    } else {
        return None;
    };
    let count = b.count - a.count;
    let first = counts.iter().position(|&c| c > 0);
    let last = counts.iter().rposition(|&c| c > 0);
    let edges = (
        first.and_then(|i| i.checked_sub(1)).map(|i| b.bounds[i]),
        last.and_then(|i| b.bounds.get(i).copied()),
    );
    let (min, max) = extremes(a.count, (a.min, a.max), (b.min, b.max), edges);
    Some(Buckets {
        bounds: b.bounds.clone(),
        counts,
        count,
        sum: b.sum - a.sum,
        min,
        max,
    })
}

/// The values in exponential histogram `b` not in `a` (totals of one stream, `b`'s scale at
/// most `a`'s: `a`'s buckets merged to it, as the SDKs downscale); `None` when `b` cannot
/// follow `a` (a count went down, the scale went up, the zero bucket's width changed).
fn exponential_since(a: &Exponential, b: &Exponential) -> Option<Exponential> {
    if b.count < a.count || b.zero_count < a.zero_count {
        return None;
    }
    if a.count == 0 {
        return Some(b.clone());
    }
    if b.scale > a.scale || b.zero_threshold != a.zero_threshold {
        return None;
    }
    let shift = (a.scale - b.scale) as u32;
    let diff = |old: &Range, new: &Range| -> Option<Range> {
        let mut m = new.by_index();
        for (i, c) in old.downscaled(shift).nonempty() {
            let e = m.entry(i).or_insert(0);
            *e = e.checked_sub(c)?;
        }
        Some(Range::from_index(&m))
    };
    let mut d = Exponential {
        scale: b.scale,
        zero_count: b.zero_count - a.zero_count,
        zero_threshold: b.zero_threshold,
        positive: diff(&a.positive, &b.positive)?,
        negative: diff(&a.negative, &b.negative)?,
        count: b.count - a.count,
        sum: b.sum - a.sum,
        min: None,
        max: None,
    };
    let edges = d.edges().unzip();
    (d.min, d.max) = extremes(a.count, (a.min, a.max), (b.min, b.max), edges);
    Some(d)
}

/// An interval's smallest and largest value, from the stream's before (`a`, after `a_count`
/// values) and after it (`b`): exact where the stream's moved (a new extreme was seen in the
/// interval) or the stream had no value before; else the `edges` of the outermost buckets
/// that gained values, kept within the stream's own.
fn extremes(
    a_count: u64,
    (a_min, a_max): (Option<f64>, Option<f64>),
    (b_min, b_max): (Option<f64>, Option<f64>),
    (edge_low, edge_high): (Option<f64>, Option<f64>),
) -> (Option<f64>, Option<f64>) {
    if a_count == 0 {
        return (b_min, b_max);
    }
    let min = match (a_min, b_min) {
        (Some(old), Some(new)) if new < old => Some(new),
        (_, stream) => within(edge_low, stream, f64::max),
    };
    let max = match (a_max, b_max) {
        (Some(old), Some(new)) if new > old => Some(new),
        (_, stream) => within(edge_high, stream, f64::min),
    };
    (min, max)
}

/// A bucket's edge kept within the stream's own extreme (`tighter` picks the one inside).
fn within(edge: Option<f64>, stream: Option<f64>, tighter: fn(f64, f64) -> f64) -> Option<f64> {
    match (edge, stream) {
        (Some(e), Some(m)) => Some(tighter(e, m)),
        (e, m) => e.or(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_800_000_000_000;

    fn streams() -> Streams {
        Streams::new(StreamSettings {
            silence_ms: 10 * MIN,
            first_within_ms: 2 * MIN,
        })
    }

    fn point(stream: u64, ts: i64, start_ms: i64, running: Running) -> MetricPoint {
        MetricPoint {
            resource: None,
            timestamp: ts,
            service: "cart".into(),
            name: "m".into(),
            value: 0.0,
            unit: String::new(),
            tags: BTreeMap::new(),
            histogram: None,
            cumulative: Some(Box::new(Cumulative {
                stream,
                start_ms,
                running,
            })),
        }
    }

    fn sum(ts: i64, start: i64, v: f64) -> MetricPoint {
        point(1, ts, start, Running::Sum(v))
    }

    /// The value of a delta, or what else became of the point.
    fn value(o: Outcome) -> Result<f64, Outcome> {
        match o {
            Outcome::Delta(p) => {
                assert!(p.cumulative.is_none());
                Ok(p.value)
            }
            other => Err(other),
        }
    }

    #[test]
    fn a_counter_counts_its_increases_from_a_fresh_start() {
        let mut s = streams();
        let start = T0 - 60_000;
        // first point a minute after its start: all 5 are new
        assert_eq!(value(s.apply(sum(T0, start, 5.0))), Ok(5.0));
        assert_eq!(value(s.apply(sum(T0 + MIN, start, 12.0))), Ok(7.0));
        assert_eq!(value(s.apply(sum(T0 + 2 * MIN, start, 12.0))), Ok(0.0));
        assert_eq!(value(s.apply(sum(T0 + 3 * MIN, start, 12.5))), Ok(0.5));
        let c = s.counts();
        assert_eq!(
            (c.live, c.deltas, c.first, c.resets, c.stale),
            (1, 4, 0, 0, 0)
        );
    }

    #[test]
    fn a_stream_seen_first_long_after_its_start_is_only_a_baseline() {
        let mut s = streams();
        let start = T0 - 3 * 86_400_000;
        assert_eq!(
            value(s.apply(sum(T0, start, 1e6))),
            Err(Outcome::Baseline(Baseline::First))
        );
        assert_eq!(value(s.apply(sum(T0 + MIN, start, 1e6 + 30.0))), Ok(30.0));
        // an unknown start is not fresh either
        assert_eq!(
            value(s.apply(point(2, T0, 0, Running::Sum(9.0)))),
            Err(Outcome::Baseline(Baseline::First))
        );
        assert_eq!(
            value(s.apply(point(2, T0 + MIN, 0, Running::Sum(10.0)))),
            Ok(1.0)
        );
        assert_eq!(s.counts().first, 2);
    }

    #[test]
    fn a_restart_counts_everything_since_its_new_start_and_never_goes_negative() {
        let mut s = streams();
        let start = T0 - 30_000;
        assert_eq!(value(s.apply(sum(T0, start, 100.0))), Ok(100.0));
        assert_eq!(value(s.apply(sum(T0 + MIN, start, 160.0))), Ok(60.0));
        // the process restarts 20 s after that point and has counted 8 by the next
        let restart = T0 + MIN + 20_000;
        assert_eq!(value(s.apply(sum(T0 + 2 * MIN, restart, 8.0))), Ok(8.0));
        assert_eq!(value(s.apply(sum(T0 + 3 * MIN, restart, 20.0))), Ok(12.0));
        // a total that goes down with the same start: a reset, nothing counted
        assert_eq!(
            value(s.apply(sum(T0 + 4 * MIN, restart, 3.0))),
            Err(Outcome::Baseline(Baseline::Reset))
        );
        assert_eq!(value(s.apply(sum(T0 + 5 * MIN, restart, 4.0))), Ok(1.0));
        // a start that moved back before the previous point: a reset too
        assert_eq!(
            value(s.apply(sum(T0 + 6 * MIN, T0, 50.0))),
            Err(Outcome::Baseline(Baseline::Reset))
        );
        assert_eq!(s.counts().resets, 3);
    }

    #[test]
    fn duplicates_and_late_points_change_nothing() {
        let mut s = streams();
        let start = T0 - 30_000;
        assert_eq!(value(s.apply(sum(T0, start, 10.0))), Ok(10.0));
        assert_eq!(value(s.apply(sum(T0 + 2 * MIN, start, 30.0))), Ok(20.0));
        assert_eq!(
            value(s.apply(sum(T0 + 2 * MIN, start, 30.0))),
            Err(Outcome::Stale)
        );
        assert_eq!(
            value(s.apply(sum(T0 + MIN, start, 25.0))),
            Err(Outcome::Stale)
        );
        // the next point counts from the last one counted
        assert_eq!(value(s.apply(sum(T0 + 3 * MIN, start, 31.0))), Ok(1.0));
        assert_eq!(s.counts().stale, 2);
    }

    #[test]
    fn a_silent_stream_is_forgotten_and_starts_again_as_a_first_point() {
        let mut s = streams();
        let start = T0 - 30_000;
        assert_eq!(value(s.apply(sum(T0, start, 10.0))), Ok(10.0));
        s.evict_silent(T0 + 10 * MIN);
        assert_eq!(s.counts().live, 1, "silent for exactly the silence: kept");
        s.evict_silent(T0 + 10 * MIN + 1);
        let c = s.counts();
        assert_eq!((c.live, c.evicted), (0, 1));
        // its start is long ago now: a baseline, not 11 counted again
        assert_eq!(
            value(s.apply(sum(T0 + 11 * MIN, start, 11.0))),
            Err(Outcome::Baseline(Baseline::First))
        );
    }

    fn buckets(counts: &[u64], sum: f64, min: f64, max: f64) -> Running {
        Running::Histogram(Buckets {
            bounds: vec![10.0, 100.0, 1000.0],
            counts: counts.to_vec(),
            count: counts.iter().sum(),
            sum,
            min: Some(min),
            max: Some(max),
        })
    }

    fn histogram(o: Outcome) -> apo_schemas::Histogram {
        match o {
            Outcome::Delta(p) => p.histogram.expect("a histogram delta"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_histogram_counts_each_buckets_new_values_and_its_extremes_where_it_can() {
        let mut s = streams();
        let start = T0 - 30_000;
        let h = |ts: i64, r: Running| point(7, ts, start, r);
        // 3 values: 5, 50, 60
        let first = histogram(s.apply(h(T0, buckets(&[1, 2, 0, 0], 115.0, 5.0, 60.0))));
        assert_eq!(
            (first.count, first.sum, first.min, first.max),
            (3, 115.0, 5.0, 60.0)
        );
        // then 2 more: 20 and 700 (a new max: exact)
        let d = histogram(s.apply(h(T0 + MIN, buckets(&[1, 3, 1, 0], 835.0, 5.0, 700.0))));
        assert_eq!((d.count, d.sum, d.max), (2, 720.0, 700.0));
        // the min did not move: the lowest bucket that gained values starts at 10
        assert_eq!(d.min, 10.0);
        assert_eq!(d.buckets.iter().map(|b| b.1).collect::<Vec<_>>(), [1, 1]);
        // then one more, 30: neither extreme moved; within (10, 100]
        let d = histogram(s.apply(h(T0 + 2 * MIN, buckets(&[1, 4, 1, 0], 865.0, 5.0, 700.0))));
        assert_eq!((d.count, d.sum, d.min, d.max), (1, 30.0, 10.0, 100.0));
        // no new value: nothing to count
        assert_eq!(
            s.apply(h(T0 + 3 * MIN, buckets(&[1, 4, 1, 0], 865.0, 5.0, 700.0))),
            Outcome::Baseline(Baseline::Empty)
        );
        // a bucket went down: a reset
        assert_eq!(
            s.apply(h(T0 + 4 * MIN, buckets(&[0, 4, 2, 0], 900.0, 5.0, 700.0))),
            Outcome::Baseline(Baseline::Reset)
        );
        // other bounds: a reset
        let other = Running::Histogram(Buckets {
            bounds: vec![1.0],
            counts: vec![0, 9],
            count: 9,
            sum: 9000.0,
            min: Some(5.0),
            max: Some(700.0),
        });
        assert_eq!(
            s.apply(h(T0 + 5 * MIN, other)),
            Outcome::Baseline(Baseline::Reset)
        );
        let c = s.counts();
        assert_eq!((c.deltas, c.resets), (3, 2));
    }

    fn exp(scale: i32, offset: i32, counts: &[u64], sum: f64, min: f64, max: f64) -> Running {
        Running::Exponential(Exponential {
            scale,
            zero_count: 0,
            zero_threshold: 0.0,
            positive: Range {
                offset,
                counts: counts.to_vec(),
            },
            negative: Range::default(),
            count: counts.iter().sum(),
            sum,
            min: Some(min),
            max: Some(max),
        })
    }

    #[test]
    fn an_exponential_histogram_counts_its_new_values_across_a_downscale() {
        let mut s = streams();
        let start = T0 - 30_000;
        let h = |ts: i64, r: Running| point(9, ts, start, r);
        // scale 1 (base √2): 1.2 and 1.3 in bucket 0 (1, 1.41], 3.0 in bucket 3 (2.83, 4]
        let first = histogram(s.apply(h(T0, exp(1, 0, &[2, 0, 0, 1], 5.5, 1.2, 3.0))));
        assert_eq!(
            (first.count, first.sum, first.min, first.max),
            (3, 5.5, 1.2, 3.0)
        );
        // then 1.9 and 6.0: the SDK downscales to scale 0 (base 2): bucket 0 (1, 2] holds
        // 1.2, 1.3, 1.9; bucket 1 (2, 4] 3.0; bucket 2 (4, 8] 6.0
        let d = histogram(s.apply(h(T0 + MIN, exp(0, 0, &[3, 1, 1], 13.4, 1.2, 6.0))));
        assert_eq!(d.count, 2);
        assert!((d.sum - 7.9).abs() < 1e-12);
        // the new max is exact; the min did not move: bucket (1, 2]'s lower edge, but the
        // stream's own min (1.2) is tighter
        assert_eq!((d.min, d.max), (1.2, 6.0));
        assert_eq!(d.buckets.iter().map(|b| b.1).collect::<Vec<_>>(), [1, 1]);
        // a bucket that lost values: a reset; a scale that went up: a reset
        assert_eq!(
            s.apply(h(T0 + 2 * MIN, exp(0, 0, &[2, 1, 1], 20.0, 1.2, 6.0))),
            Outcome::Baseline(Baseline::Reset)
        );
        assert_eq!(
            s.apply(h(T0 + 3 * MIN, exp(1, 0, &[3, 0, 0, 1], 20.0, 1.2, 6.0))),
            Outcome::Baseline(Baseline::Reset)
        );
    }

    #[test]
    fn a_summary_counts_its_new_count_and_sum_at_their_mean_with_no_bound() {
        let mut s = streams();
        let start = T0 - 30_000;
        let sm =
            |ts: i64, count: u64, sum: f64| point(11, ts, start, Running::Summary { count, sum });
        let h = histogram(s.apply(sm(T0, 4, 10.0)));
        assert_eq!((h.count, h.sum, h.bucket_bound), (4, 10.0, f64::MAX));
        let h = histogram(s.apply(sm(T0 + MIN, 10, 40.0)));
        assert_eq!((h.count, h.sum, h.min, h.max), (6, 30.0, 5.0, 5.0));
        assert_eq!(h.buckets, [(5.0, 6)]);
        assert_eq!(
            s.apply(sm(T0 + 2 * MIN, 10, 40.0)),
            Outcome::Baseline(Baseline::Empty)
        );
        assert_eq!(
            s.apply(sm(T0 + 3 * MIN, 3, 1.0)),
            Outcome::Baseline(Baseline::Reset)
        );
    }

    #[test]
    fn a_point_that_is_not_cumulative_is_its_own_delta() {
        let mut s = streams();
        let mut p = sum(T0, 0, 1.0);
        p.cumulative = None;
        p.value = 4.0;
        assert_eq!(value(s.apply(p)), Ok(4.0));
        assert_eq!(s.counts().live, 0);
    }
}
