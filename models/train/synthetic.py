"""Synthetic training data: normal behaviour of services and of single series.

The models are trained on this, never on the NAB corpus they are evaluated on. Everything is
drawn from one numpy Generator, so a seed gives the same data on every machine.
"""

import numpy as np


def service_windows(rng: np.random.Generator, windows: int, window_seconds: float) -> np.ndarray:
    """[windows, 5] signals (p50, p95, p99, rate, error_ratio) of one healthy service.

    Request rate with a daily-like cycle and Poisson noise; latencies drawn from a lognormal
    whose median drifts a little with load; errors binomial at a small base rate.
    """
    base_rate = float(np.exp(rng.uniform(np.log(0.5), np.log(500.0))))
    period = float(rng.choice([96, 144, 288, 1440]))
    amplitude = rng.uniform(0.0, 0.6)
    phase = rng.uniform(0, 2 * np.pi)
    mu = np.log(rng.uniform(5.0, 300.0))
    sigma = rng.uniform(0.2, 0.9)
    p_err = float(np.exp(rng.uniform(np.log(1e-4), np.log(2e-2))))
    t = np.arange(windows)
    load = 1.0 + amplitude * np.sin(2 * np.pi * t / period + phase)
    drift = np.cumsum(rng.normal(0.0, 0.002, windows))
    out = np.zeros((windows, 5))
    for i in range(windows):
        lam = max(base_rate * load[i] * window_seconds, 1.0)
        count = max(int(rng.poisson(lam)), 1)
        samples = np.exp(rng.normal(mu + 0.15 * (load[i] - 1.0) + drift[i], sigma, min(count, 2000)))
        out[i, 0:3] = np.quantile(samples, [0.5, 0.95, 0.99])
        out[i, 3] = count / window_seconds
        out[i, 4] = rng.binomial(count, p_err) / count
    return out


def series(rng: np.random.Generator, length: int) -> np.ndarray:
    """One healthy univariate series: level, cycle, slow wander and noise of varied kinds."""
    kind = rng.integers(0, 4)
    t = np.arange(length)
    level = float(np.exp(rng.uniform(np.log(1.0), np.log(1e4))))
    period = float(rng.choice([24, 48, 96, 144, 288, 1440]))
    amplitude = rng.uniform(0.0, 0.5)
    cycle = amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    wander = np.cumsum(rng.normal(0.0, rng.uniform(0.0, 0.01), length))
    noise_sd = rng.uniform(0.005, 0.15)
    if kind == 0:  # gaussian noise around a cycle
        noise = rng.normal(0.0, noise_sd, length)
    elif kind == 1:  # heavy tails: occasional ordinary blips must not look like incidents
        noise = noise_sd * rng.standard_t(4, length) / 2.0
    elif kind == 2:  # counts: Poisson around the cycle
        lam = np.maximum(level * (1 + cycle + wander), 0.5)
        return rng.poisson(lam).astype(float)
    else:  # bounded utilisation (percent)
        util = np.clip(rng.uniform(5, 70) * (1 + cycle + wander) + rng.normal(0, rng.uniform(0.2, 5), length), 0, 100)
        return util
    return level * np.maximum(1.0 + cycle + wander + noise, 0.01)


def forecast_series(rng: np.random.Generator, length: int) -> np.ndarray:
    """A series to forecast: request rates, CPU and latency shapes at several resolutions."""
    t = np.arange(length)
    period = float(rng.choice([96, 144, 288, 288, 1440]))
    level = float(np.exp(rng.uniform(np.log(1.0), np.log(1e4))))
    amplitude = rng.uniform(0.0, 0.7)
    shape = 1.0 + amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    shape += rng.uniform(0.0, 0.2) * np.sin(4 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    shape += np.cumsum(rng.normal(0.0, rng.uniform(0.0, 0.01), length))
    kind = rng.integers(0, 3)
    if kind == 0:  # request counts per interval
        return rng.poisson(np.maximum(level * shape, 0.5)).astype(float)
    if kind == 1:  # CPU percent
        return np.clip(rng.uniform(5, 60) * shape + rng.normal(0, rng.uniform(0.3, 4), length), 0, 100)
    # latency: lognormal noise around the shape
    return level * np.maximum(shape, 0.05) * np.exp(rng.normal(0, rng.uniform(0.02, 0.3), length))
