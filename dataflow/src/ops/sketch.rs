//! DDSketch (Masson, Rim, Lee: "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with
//! Relative-Error Guarantees", VLDB 2019) with weighted insertion.
//!
//! Every quantile it returns is within a relative error `alpha` of the exact value of the same
//! rank, `floor(q · (n − 1))` in the sorted input, and two sketches with the same `alpha` merge
//! exactly (bin counts add). The published crates we looked at (`sketches-ddsketch`,
//! `ddsketchy`) have no weighted insertion, which OTLP histogram buckets need; this one keeps the
//! same logarithmic mapping as `sketches-ddsketch`, so the two agree bin for bin.

use serde::{Deserialize, Serialize};

/// Values whose magnitude is at or below this count as zero.
const MIN_INDEXABLE: f64 = 1e-9;
/// Bins per store before the lowest ones are collapsed (loses accuracy only for the smallest
/// magnitudes; at alpha = 1 % it spans a ratio of about 10^17 between largest and smallest).
pub const DEFAULT_MAX_BINS: usize = 2048;

/// Error merging two sketches of different accuracy.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("cannot merge sketches with relative accuracy {0} and {1}")]
pub struct MergeError(pub f64, pub f64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Store {
    /// Key of `bins[0]`.
    offset: i32,
    bins: Vec<u64>,
    count: u64,
}

impl Store {
    fn new() -> Self {
        Store {
            offset: 0,
            bins: Vec::new(),
            count: 0,
        }
    }

    fn add(&mut self, key: i32, n: u64, max_bins: usize) {
        if self.bins.is_empty() {
            self.offset = key;
            self.bins.push(0);
        } else if key < self.offset {
            let grow = (self.offset - key) as usize;
            let mut bins = vec![0; grow + self.bins.len()];
            bins[grow..].copy_from_slice(&self.bins);
            self.bins = bins;
            self.offset = key;
        } else if key >= self.offset + self.bins.len() as i32 {
            self.bins.resize((key - self.offset) as usize + 1, 0);
        }
        self.bins[(key - self.offset) as usize] += n;
        self.count += n;
        if self.bins.len() > max_bins {
            self.collapse_lowest(max_bins);
        }
    }

    /// Folds the lowest bins into the lowest one kept, so at most `max_bins` remain.
    fn collapse_lowest(&mut self, max_bins: usize) {
        let excess = self.bins.len() - max_bins;
        let folded: u64 = self.bins[..=excess].iter().sum();
        self.bins.drain(..excess);
        self.bins[0] = folded;
        self.offset += excess as i32;
    }

    fn merge(&mut self, other: &Store, max_bins: usize) {
        for (i, &c) in other.bins.iter().enumerate() {
            if c > 0 {
                self.add(other.offset + i as i32, c, max_bins);
            }
        }
    }

    fn key_at_rank(&self, rank: u64) -> i32 {
        let mut seen = 0;
        for (i, &c) in self.bins.iter().enumerate() {
            seen += c;
            if seen > rank {
                return self.offset + i as i32;
            }
        }
        self.offset + self.bins.len() as i32 - 1
    }
}

/// A sketch's counts as an ordered, hashable value (what keyed collections such as
/// differential's need): bins as (key, count), non-zero ones only, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SketchBins {
    pub negative: Vec<(i32, u64)>,
    pub zero: u64,
    pub positive: Vec<(i32, u64)>,
}

impl SketchBins {
    /// The bins of both, added (exact: the bins of a sketch fed both inputs, before any
    /// collapse of the lowest bins).
    pub fn merged(&self, other: &SketchBins, times: u64) -> SketchBins {
        let add = |a: &[(i32, u64)], b: &[(i32, u64)]| {
            let mut m: std::collections::BTreeMap<i32, u64> = a.iter().copied().collect();
            for &(k, c) in b {
                *m.entry(k).or_default() += c * times;
            }
            m.into_iter().collect::<Vec<_>>()
        };
        SketchBins {
            negative: add(&self.negative, &other.negative),
            zero: self.zero + other.zero * times,
            positive: add(&self.positive, &other.positive),
        }
    }
}

impl Store {
    fn nonzero(&self) -> Vec<(i32, u64)> {
        self.bins
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (self.offset + i as i32, *c))
            .collect()
    }
}

/// A DDSketch over f64 values (negative, zero and positive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DDSketch {
    alpha: f64,
    gamma_ln: f64,
    /// 2 / (1 + gamma): maps a bin's upper bound to the value with the least relative error.
    midpoint: f64,
    max_bins: usize,
    positive: Store,
    negative: Store,
    zero: u64,
}

impl DDSketch {
    /// A sketch whose quantiles are within `alpha` relative error (0 < alpha < 1).
    pub fn new(alpha: f64) -> Self {
        Self::with_max_bins(alpha, DEFAULT_MAX_BINS)
    }

    /// The same with at most `max_bins` bins per sign (the lowest collapse past it).
    pub fn with_max_bins(alpha: f64, max_bins: usize) -> Self {
        let gamma = 1.0 + 2.0 * alpha / (1.0 - alpha);
        DDSketch {
            alpha,
            gamma_ln: gamma.ln(),
            midpoint: 2.0 / (1.0 + gamma),
            max_bins: max_bins.max(1),
            positive: Store::new(),
            negative: Store::new(),
            zero: 0,
        }
    }

    /// Bytes the sketch's bins take on the heap.
    pub fn heap_bytes(&self) -> usize {
        let store = |s: &Store| crate::ops::held::block_bytes(s.bins.capacity() * 8);
        store(&self.positive) + store(&self.negative)
    }

    /// The relative accuracy the sketch was made with.
    pub fn relative_accuracy(&self) -> f64 {
        self.alpha
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.positive.count + self.negative.count + self.zero
    }

    #[inline]
    fn key(&self, v: f64) -> i32 {
        (v.ln() / self.gamma_ln).ceil() as i32
    }

    #[inline]
    fn value(&self, key: i32) -> f64 {
        (key as f64 * self.gamma_ln).exp() * self.midpoint
    }

    /// Adds `v` once.
    #[inline]
    pub fn add(&mut self, v: f64) {
        self.add_n(v, 1)
    }

    /// Adds `v` with weight `n` (as if added `n` times). Non-finite values are ignored: callers
    /// validate first.
    pub fn add_n(&mut self, v: f64, n: u64) {
        if n == 0 || !v.is_finite() {
            return;
        }
        if v > MIN_INDEXABLE {
            let k = self.key(v);
            self.positive.add(k, n, self.max_bins);
        } else if v < -MIN_INDEXABLE {
            let k = self.key(-v);
            self.negative.add(k, n, self.max_bins);
        } else {
            self.zero += n;
        }
    }

    /// Adds every bin of `other`. Exact: the result equals a sketch fed both inputs.
    pub fn merge(&mut self, other: &DDSketch) -> Result<(), MergeError> {
        if self.alpha != other.alpha {
            return Err(MergeError(self.alpha, other.alpha));
        }
        self.positive.merge(&other.positive, self.max_bins);
        self.negative.merge(&other.negative, self.max_bins);
        self.zero += other.zero;
        Ok(())
    }

    /// The counts, as a value that orders and hashes.
    pub fn bins(&self) -> SketchBins {
        SketchBins {
            negative: self.negative.nonzero(),
            zero: self.zero,
            positive: self.positive.nonzero(),
        }
    }

    /// Adds bins taken from a sketch of the same relative accuracy.
    pub fn add_bins(&mut self, b: &SketchBins) {
        for &(k, c) in &b.negative {
            self.negative.add(k, c, self.max_bins);
        }
        for &(k, c) in &b.positive {
            self.positive.add(k, c, self.max_bins);
        }
        self.zero += b.zero;
    }

    /// The value of rank `floor(q · (n − 1))`, within relative error `alpha`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (n - 1) as f64).floor() as u64;
        let neg = self.negative.count;
        Some(if rank < neg {
            -self.value(self.negative.key_at_rank(neg - 1 - rank))
        } else if rank < neg + self.zero {
            0.0
        } else {
            self.value(self.positive.key_at_rank(rank - neg - self.zero))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_merge_as_the_sketches_do() {
        let (mut a, mut b, mut both) = (
            DDSketch::new(0.01),
            DDSketch::new(0.01),
            DDSketch::new(0.01),
        );
        for i in 0..500 {
            let v = (i as f64 * 0.37).sin() * 100.0 + (i % 7) as f64;
            if i % 3 == 0 {
                a.add(v);
            } else {
                b.add(v);
            }
            both.add(v);
        }
        a.add(0.0);
        both.add(0.0);
        let merged = a.bins().merged(&b.bins(), 1);
        assert_eq!(merged, both.bins());
        let mut rebuilt = DDSketch::new(0.01);
        rebuilt.add_bins(&merged);
        assert_eq!(rebuilt, both);
        assert_eq!(a.bins().merged(&a.bins(), 2).zero, 3 * a.bins().zero);
    }

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn check(values: &[f64], alpha: f64) {
        let mut s = DDSketch::new(alpha);
        for &v in values {
            s.add(v);
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact(&sorted, q);
            let got = s.quantile(q).unwrap();
            let err = if want == 0.0 {
                got.abs()
            } else {
                ((got - want) / want).abs()
            };
            assert!(
                err <= alpha + 1e-12,
                "q={q} want={want} got={got} err={err}"
            );
        }
    }

    /// A small deterministic generator (SplitMix64) so the tests need no RNG crate.
    fn uniform(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn relative_error_holds_on_varied_distributions() {
        let mut seed = 7;
        let lognormal: Vec<f64> = (0..20_000)
            .map(|_| {
                let (u1, u2) = (uniform(&mut seed).max(1e-12), uniform(&mut seed));
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (3.0 + 1.2 * z).exp()
            })
            .collect();
        check(&lognormal, 0.01);
        check(&lognormal, 0.05);
        let mixed: Vec<f64> = (0..10_000)
            .map(|_| uniform(&mut seed) * 2000.0 - 1000.0)
            .collect();
        check(&mixed, 0.01);
        let with_zeros: Vec<f64> = (0..1000)
            .map(|i| if i % 3 == 0 { 0.0 } else { i as f64 })
            .collect();
        check(&with_zeros, 0.02);
        check(&[42.0], 0.01);
    }

    #[test]
    fn weighted_add_equals_repeated_add_and_merge_is_exact() {
        let mut a = DDSketch::new(0.01);
        let mut b = DDSketch::new(0.01);
        for v in [1.0, 5.5, -3.0, 0.0, 1e6] {
            a.add_n(v, 7);
            for _ in 0..7 {
                b.add(v);
            }
        }
        assert_eq!(a, b);

        let mut whole = DDSketch::new(0.01);
        let mut left = DDSketch::new(0.01);
        let mut right = DDSketch::new(0.01);
        for i in 0..5000 {
            let v = (i as f64 * 0.37).sin() * 100.0;
            whole.add(v);
            if i % 2 == 0 {
                left.add(v)
            } else {
                right.add(v)
            }
        }
        left.merge(&right).unwrap();
        for q in [0.0, 0.3, 0.5, 0.99, 1.0] {
            assert_eq!(left.quantile(q), whole.quantile(q));
        }
        assert!(left.merge(&DDSketch::new(0.02)).is_err());
    }

    #[test]
    fn agrees_with_the_sketches_ddsketch_crate_bin_for_bin() {
        let cfg = sketches_ddsketch::Config::new(0.01, 2048, 1e-9);
        let mut theirs = sketches_ddsketch::DDSketch::new(cfg);
        let mut ours = DDSketch::new(0.01);
        let mut seed = 3;
        for _ in 0..10_000 {
            let v = uniform(&mut seed) * 500.0 + 0.5;
            theirs.add(v);
            ours.add(v);
        }
        for q in [0.1, 0.5, 0.9, 0.99, 0.999] {
            let t = theirs.quantile(q).unwrap().unwrap();
            let o = ours.quantile(q).unwrap();
            assert!(((t - o) / t).abs() < 1e-12, "q={q}: {t} vs {o}");
        }
    }

    #[test]
    fn collapsing_keeps_high_quantiles_accurate() {
        let mut s = DDSketch::with_max_bins(0.01, 64);
        for i in 1..=10_000 {
            s.add(i as f64);
        }
        assert_eq!(s.count(), 10_000);
        let p99 = s.quantile(0.99).unwrap();
        assert!(((p99 - 9900.0) / 9900.0).abs() <= 0.0101, "{p99}");
    }
}
