//! A sum of f64 values kept exactly, so its rounded value depends only on which values were
//! added, never on their order or on how they were grouped into partial sums. Windows merge
//! partials from several workers in the order they arrive, and a replay groups points into
//! partials as its reads happened to fall: with a plain `+=` the same window summed
//! differently in the last bits from one run to the next (issue 30: a replayed record must be
//! byte-identical to the first).
//!
//! The sum is Shewchuk's non-overlapping expansion ("Adaptive Precision Floating-Point
//! Arithmetic and Fast Robust Geometric Predicates", 1997): a short list of f64 whose exact
//! sum is the exact sum of the values added, each addition an error-free transformation. Its
//! value is the exact sum correctly rounded to nearest, ties to even, as Python's `math.fsum`
//! returns it (the reference of the golden vectors in `dataflow/golden/fsum.py`). The
//! expansion of typical data has one to three components; the largest is kept inline, the rest
//! on the heap only when there are any.

use serde::{Deserialize, Serialize};

/// An exactly kept sum of finite f64 values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExactSum {
    /// The expansion's smaller components, in increasing magnitude, none zero, none
    /// overlapping another or `top`.
    rest: Vec<f64>,
    /// The largest component (0 when the sum is empty or exactly zero).
    top: f64,
}

/// `a + b` and the rounding error of that addition, exactly (`|a| >= |b|`).
#[inline]
fn fast_two_sum(a: f64, b: f64) -> (f64, f64) {
    let hi = a + b;
    (hi, b - (hi - a))
}

/// The same for any two values, ordered by magnitude first.
#[inline]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    if a.abs() < b.abs() {
        fast_two_sum(b, a)
    } else {
        fast_two_sum(a, b)
    }
}

impl ExactSum {
    /// An empty sum (0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `x`. A value or an intermediate sum that is not finite makes the sum that value
    /// (NaN, or an infinity) from then on, as a plain sum would be; callers validate their
    /// values as finite, so only an overflow past f64::MAX gets there.
    pub fn add(&mut self, x: f64) {
        if !self.top.is_finite() {
            self.top += x;
            return;
        }
        if !x.is_finite() {
            self.rest.clear();
            self.top = x;
            return;
        }
        let mut x = x;
        let mut kept = 0;
        for i in 0..self.rest.len() {
            let (hi, lo) = two_sum(x, self.rest[i]);
            if lo != 0.0 {
                self.rest[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.rest.truncate(kept);
        let (hi, lo) = two_sum(x, self.top);
        if !hi.is_finite() {
            self.rest.clear();
            self.top = hi;
            return;
        }
        if lo != 0.0 {
            self.rest.push(lo);
        }
        self.top = hi;
    }

    /// Adds every component of `other`: the result is exactly the sum of both.
    pub fn merge(&mut self, other: &ExactSum) {
        for &x in &other.rest {
            self.add(x);
        }
        self.add(other.top);
    }

    /// The exact sum rounded to the nearest f64, ties to even (as `math.fsum`).
    pub fn value(&self) -> f64 {
        if !self.top.is_finite() {
            return self.top;
        }
        // Walk down from the largest component, adding until an addition is inexact: the
        // components below it only decide a tie.
        let mut hi = self.top;
        let mut lo = 0.0;
        let mut below = self.rest.len();
        while below > 0 {
            below -= 1;
            let x = hi;
            let y = self.rest[below];
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // `hi + lo` is exact with `lo` half an ulp of `hi` at most; when it is exactly half
        // and the components further down push the same way, round away from `hi`.
        if below > 0 {
            let next = self.rest[below - 1];
            if (lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0) {
                let y = lo * 2.0;
                let x = hi + y;
                if y == x - hi {
                    hi = x;
                }
            }
        }
        hi
    }

    /// Bytes the sum holds on the heap (its smaller components).
    pub fn heap_bytes(&self) -> usize {
        crate::ops::held::block_bytes(self.rest.capacity() * std::mem::size_of::<f64>())
    }
}

impl From<f64> for ExactSum {
    fn from(x: f64) -> Self {
        let mut s = ExactSum::new();
        s.add(x);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::ExactSum;

    fn sum_of(xs: &[f64]) -> f64 {
        let mut s = ExactSum::new();
        for &x in xs {
            s.add(x);
        }
        s.value()
    }

    /// Cases of CPython's `test_math.testFsum` whose results are exact by hand.
    #[test]
    fn cpython_fsum_cases() {
        let eps = f64::EPSILON;
        let cases: Vec<(Vec<f64>, f64)> = vec![
            (vec![], 0.0),
            (vec![0.0], 0.0),
            (vec![1e100, 1.0, -1e100, 1e-100, 1e50, -1.0, -1e50], 1e-100),
            (
                vec![2.0f64.powi(53), -0.5, -2.0f64.powi(-54)],
                2.0f64.powi(53) - 1.0,
            ),
            (
                vec![2.0f64.powi(53), 1.0, 2.0f64.powi(-100)],
                2.0f64.powi(53) + 2.0,
            ),
            (
                vec![2.0f64.powi(53) + 10.0, 1.0, 2.0f64.powi(-100)],
                2.0f64.powi(53) + 12.0,
            ),
            (
                vec![2.0f64.powi(53) - 4.0, 0.5, 2.0f64.powi(-54)],
                2.0f64.powi(53) - 3.0,
            ),
            // Ten 0.1s are not exactly 1: the exact remainder, as math.fsum gives it.
            (
                (0..10).map(|_| 0.1).chain([-1.0]).collect(),
                5.551115123125783e-17,
            ),
            (
                vec![1.7976931348623157e308, -1.7976931348623157e308, 1.0],
                1.0,
            ),
            (vec![1.0, eps / 2.0, eps / 2.0 * eps / 2.0], 1.0 + eps),
        ];
        for (xs, want) in cases {
            let got = sum_of(&xs);
            assert_eq!(got.to_bits(), want.to_bits(), "{xs:?}: {got:e} vs {want:e}");
        }
    }

    /// Golden vectors from `math.fsum` (`dataflow/golden/fsum.py`): every case in its original
    /// order, reversed, and as a merge of two halves summed apart gives the same bits.
    #[test]
    fn equals_python_fsum_in_any_order_and_grouping() {
        let text = include_str!("../../golden/fsum.txt");
        let mut n = 0;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (values, want) = line.split_once(" = ").expect("golden line: values = sum");
            let xs: Vec<f64> = values
                .split(' ')
                .map(|h| f64::from_bits(u64::from_str_radix(h, 16).expect("hex bits")))
                .collect();
            let want = f64::from_bits(u64::from_str_radix(want, 16).expect("hex bits"));
            assert_eq!(sum_of(&xs).to_bits(), want.to_bits(), "case {n}");
            let mut rev = xs.clone();
            rev.reverse();
            assert_eq!(sum_of(&rev).to_bits(), want.to_bits(), "case {n} reversed");
            let (a, b) = xs.split_at(xs.len() / 3);
            let mut left = ExactSum::new();
            a.iter().for_each(|&x| left.add(x));
            let mut right = ExactSum::new();
            b.iter().rev().for_each(|&x| right.add(x));
            right.merge(&left);
            assert_eq!(right.value().to_bits(), want.to_bits(), "case {n} merged");
            n += 1;
        }
        assert!(n >= 50, "{n} golden cases");
    }

    #[test]
    fn overflow_is_infinite_as_a_plain_sum() {
        let mut s = ExactSum::from(f64::MAX);
        s.add(f64::MAX);
        assert_eq!(s.value(), f64::INFINITY);
        s.add(1.0);
        assert_eq!(s.value(), f64::INFINITY);
    }

    #[test]
    fn typical_sums_stay_on_the_stack() {
        let mut s = ExactSum::new();
        for i in 0..1000 {
            s.add(i as f64);
        }
        assert_eq!((s.value(), s.heap_bytes()), (499_500.0, 0));
    }
}
