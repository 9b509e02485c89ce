//! The M/M/c queue in closed form (Erlang C): with arrivals at rate λ, service at rate μ per
//! server and c servers, offered load a = λ/μ and utilisation ρ = a/c < 1,
//!
//! C(c, a) = (aᶜ/c! · c/(c − a)) / (Σₖ₌₀^{c−1} aᵏ/k! + aᶜ/c! · c/(c − a))
//!
//! is the probability that a job waits, and its mean wait in line is W_q = C(c, a) / (cμ − λ).
//! The terms aᵏ/k! are built one from the other, so large c does not overflow a factorial.
//!
//! A job's response time T (its wait and its own service, first come first served) exceeds t
//! with probability
//!
//! P(T > t) = (1 − C) e^{−μt} + C · (r e^{−μt} − μ e^{−rt}) / (r − μ),   r = cμ − λ,
//!
//! (the wait is 0 with probability 1 − C, else exponential at rate r; the service exponential
//! at rate μ; at r = μ the last term is C (1 + μt) e^{−μt}). It falls as t grows and rises with
//! λ, so a quantile of T, and the highest utilisation at which that quantile stays within an
//! objective, are found by bisection ([`utilization_for`]).

/// The probability that a job waits, C(c, a); `None` unless 0 ≤ a < c.
pub fn erlang_c(c: usize, a: f64) -> Option<f64> {
    let cf = c as f64;
    if c == 0 || !(a >= 0.0 && a < cf) {
        return None;
    }
    // term_k = a^k / k!
    let mut term = 1.0;
    let mut sum = 0.0;
    for k in 0..c {
        sum += term;
        term *= a / (k + 1) as f64;
    }
    // term is now a^c / c!
    let last = term * cf / (cf - a);
    Some(last / (sum + last))
}

/// The mean wait in line of the M/M/c queue (in the unit of 1/μ); `None` unless λ < cμ.
pub fn mean_wait(lambda: f64, mu: f64, c: usize) -> Option<f64> {
    if !(lambda >= 0.0 && mu > 0.0) {
        return None;
    }
    let p = erlang_c(c, lambda / mu)?;
    Some(p / (c as f64 * mu - lambda))
}

/// P(T > t) for the M/M/c queue's response time T; `None` unless λ < cμ (and t ≥ 0).
pub fn response_exceeds(lambda: f64, mu: f64, c: usize, t: f64) -> Option<f64> {
    if !(lambda >= 0.0 && mu > 0.0 && t >= 0.0) {
        return None;
    }
    let p = erlang_c(c, lambda / mu)?;
    let r = c as f64 * mu - lambda;
    let service = (-mu * t).exp();
    let queued = if ((r - mu) / mu).abs() < 1e-9 {
        (1.0 + mu * t) * service
    } else {
        (r * service - mu * (-r * t).exp()) / (r - mu)
    };
    Some((1.0 - p) * service + p * queued)
}

/// The `q` quantile of the M/M/c queue's response time (0 < q < 1); `None` unless λ < cμ.
pub fn response_quantile(lambda: f64, mu: f64, c: usize, q: f64) -> Option<f64> {
    if !(q > 0.0 && q < 1.0) {
        return None;
    }
    let exceeds = |t: f64| response_exceeds(lambda, mu, c, t);
    exceeds(0.0)?;
    // grow the bracket until the tail is under 1 − q, then bisect
    let mut hi = 1.0 / mu;
    while exceeds(hi)? > 1.0 - q {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if exceeds(mid)? > 1.0 - q {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    Some(hi)
}

/// The highest utilisation ρ = λ / (cμ) at which the `q` quantile of a replica's response time
/// (c workers, service at rate μ each) stays within `objective_s`; `None` when it does not at
/// any load (the service time's own quantile is over the objective).
pub fn utilization_for(c: usize, mu: f64, q: f64, objective_s: f64) -> Option<f64> {
    let cap = c as f64 * mu;
    let within =
        |rho: f64| response_quantile(rho * cap, mu, c, q).is_some_and(|t| t <= objective_s);
    if c == 0 || !(mu > 0.0 && objective_s > 0.0) || !within(0.0) {
        return None;
    }
    // within(0) holds and, as ρ → 1, the quantile grows without bound: bisect
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if within(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // M/M/1: a job waits with probability ρ, and W_q = ρ / (μ − λ)
        assert!((erlang_c(1, 0.7).unwrap() - 0.7).abs() < 1e-12);
        assert!((mean_wait(0.7, 1.0, 1).unwrap() - 0.7 / 0.3).abs() < 1e-12);
        // M/M/2 at ρ = 0.5 (a = 1): (1/2 · 2) / (1 + 1 + 1) = 1/3
        assert!((erlang_c(2, 1.0).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // M/M/2, λ = 1, μ = 1: W_q = (1/3) / (2 − 1)
        assert!((mean_wait(1.0, 1.0, 2).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // no load, no wait; at or over capacity, no steady state
        assert_eq!(erlang_c(4, 0.0), Some(0.0));
        assert_eq!(erlang_c(4, 4.0), None);
        assert_eq!(erlang_c(0, 0.5), None);
        assert_eq!(mean_wait(5.0, 1.0, 4), None);
        // many servers: no overflow (a^c / c! built term by term)
        let p = erlang_c(500, 450.0).unwrap();
        assert!(p > 0.0 && p < 1.0, "{p}");
    }

    #[test]
    fn response_time_quantiles_are_exact_where_known_and_match_the_reference() {
        // M/M/1: T is exponential at rate μ − λ, its q quantile −ln(1 − q) / (μ − λ)
        for (lambda, mu) in [(0.5, 1.0), (7.0, 10.0), (0.0, 2.0)] {
            let exact = -(0.05f64).ln() / (mu - lambda);
            let t = response_quantile(lambda, mu, 1, 0.95).unwrap();
            assert!(
                (t - exact).abs() < 1e-9 * exact,
                "{lambda}/{mu}: {t} vs {exact}"
            );
        }
        // no load: T is the service time alone, whatever c
        let t = response_quantile(0.0, 4.0, 8, 0.9).unwrap();
        assert!((t - (10.0f64).ln() / 4.0).abs() < 1e-9);
        // r = μ (c = 2, λ = μ) takes the limit's form: continuous on either side
        let at = response_exceeds(1.0, 1.0, 2, 1.5).unwrap();
        let near = response_exceeds(1.0 + 1e-6, 1.0, 2, 1.5).unwrap();
        assert!((at - near).abs() < 1e-5, "{at} vs {near}");
        // M/M/4 with a 104.6 ms mean service (the sim's default replica): golden values from
        // an independent Python evaluation of the same closed form (sim/golden/mmc_response.py):
        // the p95 response at ρ = 0.5, 0.8 and 0.9
        let mu = 1.0 / (0.1 * (0.045f64).exp());
        for (rho, p95) in [(0.5, 0.329), (0.8, 0.496), (0.9, 0.854)] {
            let t = response_quantile(rho * 4.0 * mu, mu, 4, 0.95).unwrap();
            assert!((t - p95).abs() < 5e-4, "rho {rho}: {t} vs {p95}");
        }
        // at or over capacity there is no steady state
        assert_eq!(response_quantile(4.0 * mu, mu, 4, 0.95), None);
        assert_eq!(response_quantile(1.0, 1.0, 2, 1.0), None);
    }

    #[test]
    fn the_utilization_for_an_objective_meets_it_and_no_more() {
        let mu = 1.0 / (0.1 * (0.045f64).exp());
        let rho = utilization_for(4, mu, 0.95, 0.5).unwrap();
        // the p95 at ρ = 0.8 is 0.496 s, at 0.85 0.61 s
        assert!(rho > 0.8 && rho < 0.85, "{rho}");
        let at = response_quantile(rho * 4.0 * mu, mu, 4, 0.95).unwrap();
        assert!((at - 0.5).abs() < 1e-6, "{at}");
        // M/M/1: the objective's quantile is −ln(0.05) / (μ − λ), so ρ = 1 − ln(20) / (μ t)
        let rho1 = utilization_for(1, 10.0, 0.95, 1.0).unwrap();
        assert!(
            (rho1 - (1.0 - (20.0f64).ln() / 10.0)).abs() < 1e-9,
            "{rho1}"
        );
        // a service slower than the objective on its own meets it at no load
        assert_eq!(utilization_for(4, 1.0, 0.95, 0.5), None);
        assert_eq!(utilization_for(0, 1.0, 0.95, 0.5), None);
    }
}
