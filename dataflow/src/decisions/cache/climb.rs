//! The cache rule's controller: measure the hit ratio over `windows` windows at the size the
//! cache has; below the target, ask for `step` times the size (at most `max_size`); once the
//! cache shows the new size, measure again: an increase that won less than `min_gain` of hit
//! ratio means more size stopped paying, and the rule stops there (until the size changes by
//! other hands). An increase the cache does not show after another `windows` windows (refused,
//! a dry run) is asked again. Every measurement is of windows at one size only.

use std::collections::VecDeque;

use super::CacheTarget;

/// The increase last asked for.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Asked {
    from: u64,
    to: u64,
    /// The hit ratio measured at `from`.
    ratio: f64,
    /// Windows observed at `from` since it was asked.
    waited: usize,
}

/// What the rule asks for, and the numbers it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Increase {
    /// The size now.
    pub from: u64,
    /// The size asked for.
    pub to: u64,
    /// The hit ratio over the last windows at `from`.
    pub ratio: f64,
    /// Hits and misses over them.
    pub hits: f64,
    /// (misses)
    pub misses: f64,
    /// The increase before this one, once measured: its size before, and the hit ratio won.
    pub previous: Option<(u64, f64)>,
}

/// One cache's state.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Climber {
    size: Option<u64>,
    /// (hits, misses) of the last windows at `size`, the newest last.
    measured: VecDeque<(f64, f64)>,
    asked: Option<Asked>,
    /// The last increase measured: its size before and the hit ratio it won.
    previous: Option<(u64, f64)>,
    /// More size stopped paying at this size.
    saturated: Option<u64>,
}

impl Climber {
    /// One window: the size the cache reports in it (if it does) and its hits and misses.
    pub fn step(
        &mut self,
        c: &CacheTarget,
        size: Option<u64>,
        hits: f64,
        misses: f64,
    ) -> Option<Increase> {
        if let Some(s) = size.filter(|s| Some(*s) != self.size) {
            self.measured.clear();
            let ours = self.asked.is_some_and(|a| a.to == s);
            if !ours {
                // changed by other hands: start over from what it is
                self.asked = None;
                self.saturated = None;
            }
            self.size = Some(s);
        }
        let size = self.size?;
        if !(hits.is_finite() && misses.is_finite() && hits >= 0.0 && misses >= 0.0) {
            return None;
        }
        self.measured.push_back((hits, misses));
        while self.measured.len() > c.windows {
            self.measured.pop_front();
        }
        if let Some(a) = self.asked.as_mut().filter(|a| a.from == size) {
            a.waited += 1;
        }
        if self.measured.len() < c.windows {
            return None;
        }
        let (h, m) = self
            .measured
            .iter()
            .fold((0.0, 0.0), |(h, m), (a, b)| (h + a, m + b));
        if h + m <= 0.0 {
            return None;
        }
        let ratio = h / (h + m);
        if let Some(a) = self.asked.filter(|a| a.to == size) {
            // the increase shows: what did it win?
            let gain = ratio - a.ratio;
            self.previous = Some((a.from, gain));
            self.asked = None;
            if gain < c.min_gain {
                self.saturated = Some(size);
            }
        }
        if ratio >= c.target_hit_ratio || self.saturated == Some(size) || size >= c.max_size {
            return None;
        }
        if let Some(a) = self.asked {
            // asked, not shown yet: ask again after as many windows as a measurement takes
            if a.waited < c.windows {
                return None;
            }
        }
        let grown = (size as f64 * c.step).ceil();
        let to = (grown.min(c.max_size as f64) as u64)
            .max(size + 1)
            .min(c.max_size);
        self.asked = Some(Asked {
            from: size,
            to,
            ratio,
            waited: 0,
        });
        Some(Increase {
            from: size,
            to,
            ratio,
            hits: h,
            misses: m,
            previous: self.previous,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> CacheTarget {
        let c: CacheTarget = toml::from_str(
            "target = \"checkout\"\nhits_metric = \"h\"\nmisses_metric = \"m\"\n\
             size_metric = \"s\"\nmax_size = 4000\n",
        )
        .unwrap();
        c.check().unwrap();
        c
    }

    /// Feeds `n` windows at `size` with hit ratio `ratio` (1 000 requests each); the increases.
    fn feed(c: &CacheTarget, k: &mut Climber, n: usize, size: u64, ratio: f64) -> Vec<Increase> {
        (0..n)
            .filter_map(|_| k.step(c, Some(size), 1_000.0 * ratio, 1_000.0 * (1.0 - ratio)))
            .collect()
    }

    #[test]
    fn it_grows_while_growing_pays_and_stops_when_it_does_not() {
        let c = cache();
        let mut k = Climber::default();
        // 80 % hits at 1 000: measured over 3 windows, then 1 000 -> 1 500
        assert!(feed(&c, &mut k, 2, 1_000, 0.8).is_empty());
        let up = feed(&c, &mut k, 1, 1_000, 0.8);
        assert_eq!(up.len(), 1);
        assert_eq!((up[0].from, up[0].to, up[0].previous), (1_000, 1_500, None));
        assert!((up[0].ratio - 0.8).abs() < 1e-12);
        // the cache shows 1 500 and 90 %: that won 10 points: 1 500 -> 2 250
        let up = feed(&c, &mut k, 3, 1_500, 0.9);
        assert_eq!(up.len(), 1);
        assert_eq!((up[0].from, up[0].to), (1_500, 2_250));
        let (before, gain) = up[0].previous.unwrap();
        assert_eq!(before, 1_000);
        assert!((gain - 0.1).abs() < 1e-9);
        // 2 250 wins half a point (90.5 %): more size stopped paying; nothing more asked
        assert!(feed(&c, &mut k, 10, 2_250, 0.905).is_empty());
        // until the size changes by other hands
        let up = feed(&c, &mut k, 3, 2_000, 0.85);
        assert_eq!((up[0].from, up[0].to), (2_000, 3_000));
    }

    #[test]
    fn on_target_nothing_and_the_cap_holds() {
        let c = cache();
        let mut k = Climber::default();
        assert!(feed(&c, &mut k, 6, 1_000, 0.96).is_empty(), "over 95 %");
        let mut k = Climber::default();
        let up = feed(&c, &mut k, 3, 3_000, 0.5);
        assert_eq!(up[0].to, 4_000, "4 500 capped at max_size");
        assert!(feed(&c, &mut k, 6, 4_000, 0.7).is_empty(), "at max_size");
        // no size seen, or no requests: nothing
        let mut k = Climber::default();
        for _ in 0..5 {
            assert_eq!(k.step(&c, None, 10.0, 90.0), None);
        }
        assert!(
            feed(&c, &mut k, 5, 1_000, 0.0).len() == 1,
            "0 % hits is a ratio"
        );
        let mut k = Climber::default();
        for _ in 0..5 {
            assert_eq!(k.step(&c, Some(1_000), 0.0, 0.0), None);
        }
    }

    #[test]
    fn an_increase_that_does_not_show_is_asked_again_after_a_measurement() {
        let c = cache();
        let mut k = Climber::default();
        assert_eq!(feed(&c, &mut k, 3, 1_000, 0.8).len(), 1);
        // refused or a dry run: the cache stays at 1 000; asked again 3 windows later
        let again: Vec<usize> = (0..7)
            .filter(|_| !feed(&c, &mut k, 1, 1_000, 0.8).is_empty())
            .collect();
        assert_eq!(again, [2, 5]);
    }
}
