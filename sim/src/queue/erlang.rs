//! The M/M/c queue in closed form (Erlang C): with arrivals at rate λ, service at rate μ per
//! server and c servers, offered load a = λ/μ and utilisation ρ = a/c < 1,
//!
//! C(c, a) = (aᶜ/c! · c/(c − a)) / (Σₖ₌₀^{c−1} aᵏ/k! + aᶜ/c! · c/(c − a))
//!
//! is the probability that a job waits, and its mean wait in line is W_q = C(c, a) / (cμ − λ).
//! The terms aᵏ/k! are built one from the other, so large c does not overflow a factorial.

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
}
