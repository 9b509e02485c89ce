//! A cache's hit ratio by its size: requests for `objects` objects with Zipf popularity
//! (the i-th most popular requested with probability ∝ i^−α), independent of one another, and
//! an LRU cache of `size` objects. The hit ratio is Che's approximation (Che, Tung and Wang,
//! 2002): the characteristic time T solves Σᵢ (1 − e^(−pᵢT)) = size, and the hit ratio is
//! Σᵢ pᵢ (1 − e^(−pᵢT)). It is tested against an exact LRU cache fed the same requests.
//! The fleet's cache answers each request a hit with that probability, so a cache decision
//! that changes the size changes the hit ratio as a real cache's would.

/// Zipf popularity of `objects` objects with exponent `alpha`, most popular first.
pub fn zipf(objects: usize, alpha: f64) -> Vec<f64> {
    let w: Vec<f64> = (1..=objects).map(|i| (i as f64).powf(-alpha)).collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}

/// The hit ratio of an LRU cache of `size` objects under the popularity `p` (Che's
/// approximation; 1 when everything fits, 0 for an empty cache).
pub fn hit_ratio(p: &[f64], size: usize) -> f64 {
    if size == 0 || p.is_empty() {
        return 0.0;
    }
    if size >= p.len() {
        return 1.0;
    }
    let filled = |t: f64| p.iter().map(|pi| 1.0 - (-pi * t).exp()).sum::<f64>();
    // filled(t) grows from 0 to the number of objects: bisect for filled(T) = size
    let (mut lo, mut hi) = (0.0, 1.0);
    while filled(hi) < size as f64 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if filled(mid) < size as f64 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let t = 0.5 * (lo + hi);
    p.iter().map(|pi| pi * (1.0 - (-pi * t).exp())).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use rand_distr::Distribution;
    use std::collections::{BTreeMap, HashMap};

    /// An exact LRU cache of `size` objects fed `requests` Zipf requests after `warmup`
    /// more: its measured hit ratio.
    fn lru(objects: usize, alpha: f64, size: usize, warmup: usize, requests: usize) -> f64 {
        let z = rand_distr::Zipf::new(objects as f64, alpha).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let (mut by_use, mut last): (BTreeMap<u64, u64>, HashMap<u64, u64>) =
            (BTreeMap::new(), HashMap::new());
        let mut hits = 0usize;
        for tick in 0..(warmup + requests) as u64 {
            let k = z.sample(&mut rng) as u64;
            let hit = match last.insert(k, tick) {
                Some(before) => {
                    by_use.remove(&before);
                    true
                }
                None => false,
            };
            by_use.insert(tick, k);
            if by_use.len() > size {
                if let Some((_, old)) = by_use.pop_first() {
                    last.remove(&old);
                }
            }
            if hit && tick as usize >= warmup {
                hits += 1;
            }
        }
        hits as f64 / requests as f64
    }

    #[test]
    fn ches_approximation_matches_an_exact_lru_cache() {
        let (objects, alpha) = (10_000, 0.8);
        let p = zipf(objects, alpha);
        for size in [100, 1_000, 3_000] {
            let che = hit_ratio(&p, size);
            let exact = lru(objects, alpha, size, 50_000, 300_000);
            eprintln!("size {size}: Che {che:.4}, LRU {exact:.4}");
            assert!(
                (che - exact).abs() < 0.01,
                "size {size}: Che {che:.4}, LRU {exact:.4}"
            );
        }
    }

    #[test]
    fn the_hit_ratio_grows_with_the_size_by_less_per_object() {
        let p = zipf(10_000, 0.8);
        assert_eq!((hit_ratio(&p, 0), hit_ratio(&p, 10_000)), (0.0, 1.0));
        let sizes = [500usize, 1_000, 2_000, 4_000];
        let h: Vec<f64> = sizes.iter().map(|&s| hit_ratio(&p, s)).collect();
        assert!(h.windows(2).all(|w| w[1] > w[0]), "{h:?}");
        // each object added wins less than the ones before it (what the cache rule's
        // min_gain finds): the gain per object falls from step to step
        let per_object: Vec<f64> = (1..h.len())
            .map(|i| (h[i] - h[i - 1]) / (sizes[i] - sizes[i - 1]) as f64)
            .collect();
        assert!(per_object.windows(2).all(|g| g[1] < g[0]), "{per_object:?}");
        assert!((zipf(4, 0.0).iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(zipf(4, 0.0), [0.25; 4]);
    }
}
