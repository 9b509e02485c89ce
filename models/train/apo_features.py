"""The feature vectors APO's models see, defined once for training and evaluation.

The Rust side (`models/src/features.rs`, `models/src/normalise.rs`) computes the same
numbers; `golden/features.json` holds a series and the vectors computed here, and a Rust
test checks that both agree. Change one side only together with the other, and bump
`FEATURES_VERSION`.

Isolation forest features (10 per closed window of one key):

  signals, in order: p50, p95, p99, rate (count / window seconds), error_ratio
  history: the key's previous closed windows, at most HISTORY (288); a window with fewer
           than MIN_HISTORY (8) before it is not scored
  for each signal s, with med = median(history), mad = median(|history - med|),
           scale = max(1.4826 * mad, 0.01 * |med|, 1e-9):
      level_s = clip((s - med) / scale, -20, 20)
      delta_s = clip((s - previous window's s) / scale, -20, 20)
  vector: [level_p50, level_p95, level_p99, level_rate, level_error_ratio,
           delta_p50, delta_p95, delta_p99, delta_rate, delta_error_ratio]

A univariate series (one value per window, as `apo score` reads NAB's CSV) is the stream's
view of a gauge sampled once a window: p50 = p95 = p99 = value, rate constant, no errors.

LSTM input (one series): the last SEQ_LEN (48) values at the series' own resolution,
normalised by their own mean and standard deviation (population),
scale = max(std, 0.001 * |mean|, 1e-9); the model's outputs are in the same units and are
mapped back with value = mean + scale * output.
"""

import numpy as np

FEATURES_VERSION = 2
SIGNALS = ["p50", "p95", "p99", "rate", "error_ratio"]
HISTORY = 288
MIN_HISTORY = 8
CLIP = 20.0
FEATURE_NAMES = [f"level_{s}" for s in SIGNALS] + [f"delta_{s}" for s in SIGNALS]

SEQ_LEN = 48
HORIZON_STEPS = 15
FORECAST_HORIZON_SECONDS = 15 * 60


def robust_scale(history: np.ndarray) -> tuple[float, float]:
    """Median and scale of one signal's history (float64, as in Rust)."""
    med = float(np.median(history))
    mad = float(np.median(np.abs(history - med)))
    scale = max(1.4826 * mad, 0.01 * abs(med), 1e-9)
    return med, scale


def window_features(signals: np.ndarray) -> np.ndarray:
    """Features of every window of one key.

    `signals` is [windows, 5] in SIGNALS order. Returns [windows, 10] with NaN rows for the
    windows that have fewer than MIN_HISTORY windows before them.
    """
    n = signals.shape[0]
    out = np.full((n, 2 * len(SIGNALS)), np.nan)
    for i in range(MIN_HISTORY, n):
        hist = signals[max(0, i - HISTORY) : i]
        for j in range(len(SIGNALS)):
            med, scale = robust_scale(hist[:, j])
            x = signals[i, j]
            out[i, j] = np.clip((x - med) / scale, -CLIP, CLIP)
            out[i, len(SIGNALS) + j] = np.clip((x - hist[-1, j]) / scale, -CLIP, CLIP)
    return out


def univariate_signals(values: np.ndarray, window_seconds: float) -> np.ndarray:
    """The five signals the stream sees for a gauge sampled once per window."""
    n = len(values)
    sig = np.zeros((n, len(SIGNALS)))
    sig[:, 0] = values
    sig[:, 1] = values
    sig[:, 2] = values
    sig[:, 3] = 1.0 / window_seconds
    return sig


def normalise_window(history: np.ndarray) -> tuple[float, float]:
    """Mean and scale of an LSTM input window (float64, population std)."""
    mean = float(np.mean(history))
    std = float(np.std(history))
    return mean, max(std, 0.001 * abs(mean), 1e-9)
