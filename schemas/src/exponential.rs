//! OTLP exponential histograms: buckets whose bounds are powers of `base = 2^(2^-scale)`,
//! bucket `i` holding the values in `(base^i, base^(i+1)]` (their negatives in the negative
//! range), and a zero bucket for the values in `[-zero_threshold, zero_threshold]`.
//!
//! What a window counts of them ([`histogram_of`]): their count and sum exactly, their min
//! and max exactly when the point has them (else the outermost buckets' edges), and each
//! bucket's count at the value whose relative distance to both of the bucket's ends is the
//! same, `2·lo·hi / (lo + hi)`: its relative error is at most `(base − 1)/(base + 1)` (4.3 %
//! at scale 3, 0.27 % at scale 7), the `bucket_bound` the window's accuracy combines with the
//! sketch's. A zero bucket of positive width has no relative bound (`f64::MAX`); of width 0,
//! its values are zero.

use serde::{Deserialize, Serialize};

use crate::metric::{bucket_bound, Histogram};

/// The counts of one range (positive or negative) of an exponential histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// The index of the first count's bucket.
    pub offset: i32,
    /// Each bucket's count, from `offset` on.
    pub counts: Vec<u64>,
}

impl Range {
    /// The (index, count) of its non-empty buckets.
    pub fn nonempty(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(k, &c)| (self.offset.saturating_add(k as i32), c))
    }

    /// The same counts at a scale `shift` lower (each `2^shift` buckets merged into one, as
    /// the SDKs downscale).
    pub fn downscaled(&self, shift: u32) -> Range {
        if shift == 0 {
            return self.clone();
        }
        let mut out = Range::default();
        for (i, c) in self.nonempty() {
            let j = i >> shift.min(31);
            if out.counts.is_empty() {
                out.offset = j;
            }
            let k = (j - out.offset) as usize;
            if out.counts.len() <= k {
                out.counts.resize(k + 1, 0);
            }
            out.counts[k] += c;
        }
        out
    }

    /// Its count per bucket index.
    pub fn by_index(&self) -> std::collections::BTreeMap<i32, u64> {
        self.nonempty().collect()
    }

    /// The range of `counts` (index → count; zeros dropped).
    pub fn from_index(counts: &std::collections::BTreeMap<i32, u64>) -> Range {
        let nonzero: Vec<(i32, u64)> = counts
            .iter()
            .filter(|(_, &c)| c > 0)
            .map(|(&i, &c)| (i, c))
            .collect();
        let Some(&(first, _)) = nonzero.first() else {
            return Range::default();
        };
        let mut out = Range {
            offset: first,
            counts: Vec::new(),
        };
        for (i, c) in nonzero {
            let k = (i - first) as usize;
            out.counts.resize(k + 1, 0);
            out.counts[k] = c;
        }
        out
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// One exponential histogram data point's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exponential {
    /// The resolution: `base = 2^(2^-scale)`.
    pub scale: i32,
    /// Values in `[-zero_threshold, zero_threshold]`.
    pub zero_count: u64,
    /// The zero bucket's half width (0: exact zeros).
    pub zero_threshold: f64,
    /// The positive values' buckets.
    pub positive: Range,
    /// The negative values' buckets (by absolute value).
    pub negative: Range,
    /// The number of values.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest, when known.
    pub min: Option<f64>,
    /// The largest, when known.
    pub max: Option<f64>,
}

impl Exponential {
    /// Checks what a window relies on: counts that add up, a sum when there are values, a
    /// zero threshold that is a width, a scale whose buckets a double can express.
    pub fn check(&self) -> Result<(), String> {
        let total = self.zero_count + self.positive.total() + self.negative.total();
        if total != self.count {
            return Err(format!(
                "bucket counts sum to {total}, count is {}",
                self.count
            ));
        }
        if !(self.zero_threshold >= 0.0 && self.zero_threshold.is_finite()) {
            return Err(format!(
                "zero threshold {} is not a width",
                self.zero_threshold
            ));
        }
        if !(-10..=20).contains(&self.scale) {
            return Err(format!(
                "scale {} is outside -10..=20 (OpenTelemetry's range)",
                self.scale
            ));
        }
        Ok(())
    }

    /// The lowest and the highest value its non-empty buckets can hold; `None` without values.
    pub fn edges(&self) -> Option<(f64, f64)> {
        let bounds = |i: i32| bucket(self.scale, i);
        let zero = self.zero_threshold;
        let low = self
            .negative
            .nonempty()
            .last()
            .map(|(i, _)| -bounds(i).1)
            .or_else(|| (self.zero_count > 0).then_some(-zero))
            .or_else(|| self.positive.nonempty().next().map(|(i, _)| bounds(i).0))?;
        let high = self
            .positive
            .nonempty()
            .last()
            .map(|(i, _)| bounds(i).1)
            .or_else(|| (self.zero_count > 0).then_some(zero))
            .or_else(|| self.negative.nonempty().next().map(|(i, _)| -bounds(i).0))?;
        Some((low, high))
    }
}

/// The bounds `(base^i, base^(i+1))` of bucket `i` at `scale`.
pub fn bucket(scale: i32, i: i32) -> (f64, f64) {
    let width = (-f64::from(scale)).exp2();
    (
        (f64::from(i) * width).exp2(),
        ((f64::from(i) + 1.0) * width).exp2(),
    )
}

/// The value of `[lo, hi]` equally far, relatively, from both ends (`lo`, `hi` of one sign).
fn balanced(lo: f64, hi: f64) -> f64 {
    if lo >= hi {
        return hi;
    }
    2.0 * lo * hi / (lo + hi)
}

/// What a window counts of exponential histogram `e`; `None` when it holds no value.
pub fn histogram_of(e: &Exponential) -> Option<Histogram> {
    if e.count == 0 {
        return None;
    }
    let (low, high) = e.edges()?;
    let min = e.min.unwrap_or(low);
    let max = e.max.unwrap_or(high);
    let mut bound = 0.0f64;
    let mut buckets = Vec::new();
    for (i, c) in e.negative.nonempty().collect::<Vec<_>>().into_iter().rev() {
        let (lo, hi) = bucket(e.scale, i);
        let (a, b) = ((-hi).max(min), (-lo).min(max));
        let v = if a <= b { -balanced(-b, -a) } else { b };
        bound = bound.max(bucket_bound(a, v, b));
        buckets.push((v, c));
    }
    if e.zero_count > 0 {
        if e.zero_threshold > 0.0 {
            bound = f64::MAX;
        }
        buckets.push((0.0f64.clamp(min.min(0.0), max.max(0.0)), e.zero_count));
    }
    for (i, c) in e.positive.nonempty() {
        let (lo, hi) = bucket(e.scale, i);
        let (a, b) = (lo.max(min), hi.min(max));
        let v = if a <= b { balanced(a, b) } else { b };
        bound = bound.max(bucket_bound(a, v, b));
        buckets.push((v, c));
    }
    Some(Histogram {
        count: e.count,
        sum: e.sum,
        min,
        max,
        buckets,
        bucket_bound: bound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(offset: i32, counts: &[u64]) -> Range {
        Range {
            offset,
            counts: counts.to_vec(),
        }
    }

    #[test]
    fn bucket_bounds_are_powers_of_the_base() {
        // scale 0: base 2; bucket 0 is (1, 2], bucket -1 (0.5, 1], bucket 3 (8, 16]
        assert_eq!(bucket(0, 0), (1.0, 2.0));
        assert_eq!(bucket(0, -1), (0.5, 1.0));
        assert_eq!(bucket(0, 3), (8.0, 16.0));
        // scale 1: base √2; scale -1: base 4
        let (lo, hi) = bucket(1, 1);
        assert!((lo - 2f64.sqrt()).abs() < 1e-15 && (hi - 2.0).abs() < 1e-15);
        assert_eq!(bucket(-1, 1), (4.0, 16.0));
    }

    #[test]
    fn a_window_gets_exact_totals_and_buckets_within_the_stated_bound() {
        // scale 0: 3 values in (1, 2], 1 in (8, 16], 2 zeros, 1 in [-4, -2)
        let e = Exponential {
            scale: 0,
            zero_count: 2,
            zero_threshold: 0.0,
            positive: range(0, &[3, 0, 0, 1]),
            negative: range(1, &[1]),
            count: 7,
            sum: 1.5 + 1.5 + 2.0 + 9.0 - 3.0,
            min: Some(-3.0),
            max: Some(9.0),
        };
        e.check().unwrap();
        let h = histogram_of(&e).unwrap();
        assert_eq!((h.count, h.sum, h.min, h.max), (7, 11.0, -3.0, 9.0));
        // (-4, -2] clamped to [-3, -2]: 2·2·3/5 = 2.4; zeros; (1, 2]: 4/3; (8, 16] clamped to
        // [8, 9]: 2·8·9/17
        assert_eq!(
            h.buckets,
            [(-2.4, 1), (0.0, 2), (4.0 / 3.0, 3), (144.0 / 17.0, 1)]
        );
        // the widest relative error: (1, 2] at 4/3, a third
        assert!(
            (h.bucket_bound - 1.0 / 3.0).abs() < 1e-12,
            "{}",
            h.bucket_bound
        );
        // at scale 3 the bound is (base − 1)/(base + 1)
        let fine = Exponential {
            scale: 3,
            zero_count: 0,
            zero_threshold: 0.0,
            positive: range(20, &[5]),
            negative: Range::default(),
            count: 5,
            sum: 30.0,
            min: None,
            max: None,
        };
        let h = histogram_of(&fine).unwrap();
        let base = 2f64.powf(1.0 / 8.0);
        assert!((h.bucket_bound - (base - 1.0) / (base + 1.0)).abs() < 1e-12);
        // without min and max: the bucket's own edges
        assert_eq!((h.min, h.max), bucket(3, 20));
        // a zero bucket with a width: no relative bound
        let wide = Exponential {
            zero_threshold: 0.001,
            zero_count: 1,
            count: 6,
            ..fine
        };
        assert_eq!(histogram_of(&wide).unwrap().bucket_bound, f64::MAX);
    }

    #[test]
    fn downscaling_merges_pairs_of_buckets_floor_wise() {
        let r = range(-3, &[1, 2, 3, 4, 5]); // indices -3..=1
                                             // shift 1: -3 → -2, -2 → -1, -1 → -1, 0 → 0, 1 → 0
        assert_eq!(r.downscaled(1), range(-2, &[1, 5, 9]));
        assert_eq!(r.downscaled(2), range(-1, &[6, 9]));
        assert_eq!(r.downscaled(0), r);
        let m = r.by_index();
        assert_eq!(Range::from_index(&m), r);
    }

    #[test]
    fn counts_that_do_not_add_up_or_a_bad_threshold_are_refused() {
        let e = Exponential {
            scale: 0,
            zero_count: 0,
            zero_threshold: 0.0,
            positive: range(0, &[1]),
            negative: Range::default(),
            count: 2,
            sum: 1.5,
            min: None,
            max: None,
        };
        assert!(e.check().unwrap_err().contains("count is 2"));
        let e = Exponential {
            count: 1,
            zero_threshold: -1.0,
            ..e
        };
        assert!(e.check().unwrap_err().contains("zero threshold"));
        let e = Exponential {
            zero_threshold: 0.0,
            scale: 21,
            ..e
        };
        assert!(e.check().unwrap_err().contains("scale"));
    }
}
