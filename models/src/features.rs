//! The isolation forest's feature vectors (`models/train/apo_features.py` is the definition;
//! both sides are checked against `models/artifacts/golden/features.json`).
//!
//! Per key and closed window, five signals: p50, p95, p99, rate (count / window seconds) and
//! error ratio. Against the key's previous windows (at most [`HISTORY`]; fewer than
//! [`MIN_HISTORY`] and the window is not scored), each signal gives a level and a delta:
//! `scale = max(1.4826·MAD, 0.01·|median|, 1e-9)`,
//! `level = clip((x − median)/scale, ±20)`, `delta = clip((x − previous)/scale, ±20)`.

use std::collections::VecDeque;

/// Version of the feature definition; a model's metadata must name the same.
pub const FEATURES_VERSION: u32 = 2;
/// Windows of history kept per key (a day of 5-minute windows; version 1 kept 32, which made
/// every daily swing of a series look new).
pub const HISTORY: usize = 288;
/// Windows of history needed before a window is scored.
pub const MIN_HISTORY: usize = 8;
/// Bound on each feature's magnitude.
pub const CLIP: f64 = 20.0;
/// Number of signals per window.
pub const SIGNALS: usize = 5;
/// Number of features per vector.
pub const FEATURES: usize = 2 * SIGNALS;
/// Feature names in vector order (as in the model metadata).
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "level_p50",
    "level_p95",
    "level_p99",
    "level_rate",
    "level_error_ratio",
    "delta_p50",
    "delta_p95",
    "delta_p99",
    "delta_rate",
    "delta_error_ratio",
];

/// One closed window of one key: p50, p95, p99, rate, error ratio.
pub type Signals = [f64; SIGNALS];

/// The signals of a gauge seen once per window (how `apo score` reads a NAB series).
pub fn univariate(value: f64, window_seconds: f64) -> Signals {
    [value, value, value, 1.0 / window_seconds, 0.0]
}

/// Median of a non-empty slice (mean of the two middle values for an even count, as numpy);
/// reorders the slice. Linear time: the history holds 288 windows per signal.
fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    let (left, mid, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        mid
    } else {
        let below = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + mid) / 2.0
    }
}

/// Median and scale of one signal's history.
pub fn robust_scale(history: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut h: Vec<f64> = history.collect();
    let med = median(&mut h);
    let mut dev: Vec<f64> = h.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&mut dev);
    (med, (1.4826 * mad).max(0.01 * med.abs()).max(1e-9))
}

/// Features of `current` against a key's `history` (oldest first), or `None` when the
/// history is shorter than [`MIN_HISTORY`]. Only the last [`HISTORY`] windows count.
pub fn features(history: &[Signals], current: &Signals) -> Option<[f64; FEATURES]> {
    if history.len() < MIN_HISTORY {
        return None;
    }
    let h = &history[history.len().saturating_sub(HISTORY)..];
    let last = h.last()?;
    let mut out = [0.0; FEATURES];
    for j in 0..SIGNALS {
        let (med, scale) = robust_scale(h.iter().map(|s| s[j]));
        out[j] = ((current[j] - med) / scale).clamp(-CLIP, CLIP);
        out[SIGNALS + j] = ((current[j] - last[j]) / scale).clamp(-CLIP, CLIP);
    }
    Some(out)
}

/// A key's rolling history: push each closed window in order, get its features.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct KeyHistory {
    windows: VecDeque<Signals>,
}

impl KeyHistory {
    /// Features of `signals` against the windows before it; then `signals` joins the history.
    pub fn push(&mut self, signals: Signals) -> Option<[f64; FEATURES]> {
        let out = features(self.windows.make_contiguous(), &signals);
        if self.windows.len() == HISTORY {
            self.windows.pop_front();
        }
        self.windows.push_back(signals);
        out
    }

    /// Windows held (at most [`HISTORY`]).
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no window has been pushed.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_matches_numpy_for_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [5.0, 5.0, 1.0, 9.0, 5.0, 2.0]), 5.0);
        assert_eq!(median(&mut [7.0]), 7.0);
    }

    #[test]
    fn flat_history_uses_the_relative_floor() {
        let hist = vec![[100.0, 100.0, 100.0, 1.0, 0.0]; 10];
        let f = features(&hist, &[101.0, 100.0, 100.0, 1.0, 0.0]).expect("enough history");
        assert!(
            (f[0] - 1.0).abs() < 1e-12,
            "1 % of the median is the scale: {}",
            f[0]
        );
        assert_eq!(f[1], 0.0);
        // error ratio 0 with a zero median: the 1e-9 floor, clipped
        let g = features(&hist, &[100.0, 100.0, 100.0, 1.0, 0.5]).expect("enough history");
        assert_eq!(g[4], CLIP);
        assert_eq!(g[9], CLIP);
    }

    #[test]
    fn short_history_is_not_scored() {
        let mut k = KeyHistory::default();
        for i in 0..MIN_HISTORY {
            assert!(k.push([i as f64; SIGNALS]).is_none());
        }
        assert!(k.push([1.0; SIGNALS]).is_some());
        for _ in 0..HISTORY + 100 {
            k.push([1.0; SIGNALS]);
        }
        assert_eq!(k.len(), HISTORY);
    }
}
