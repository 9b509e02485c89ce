//! The M/M/c queue simulated: Poisson arrivals at rate λ, exponential service at rate μ on c
//! servers of a [`Station`], on the [`Events`] clock, deterministic for a seed. What the
//! service model of the fleet is checked against queueing theory with ([`super::erlang`]).

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};

use super::station::Station;
use crate::events::{Events, Nanos};

/// What a run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Jobs served.
    pub jobs: u64,
    /// The share of them that waited in line.
    pub waited: f64,
    /// Their mean wait in line, seconds.
    pub mean_wait: f64,
}

enum Event {
    Arrival,
    Done,
}

/// Simulates `jobs` jobs through an M/M/c queue (rates per second) with `seed`; the first
/// `warmup` jobs are not measured (the queue starts empty, not in its steady state).
pub fn simulate(lambda: f64, mu: f64, c: usize, jobs: u64, warmup: u64, seed: u64) -> Measured {
    let mut rng = StdRng::seed_from_u64(seed);
    let (Ok(arrivals), Ok(service)) = (Exp::new(lambda), Exp::new(mu)) else {
        return Measured {
            jobs: 0,
            waited: 0.0,
            mean_wait: 0.0,
        };
    };
    let ns = |s: f64| (s * 1e9).round() as Nanos;
    let mut events = Events::default();
    // a job is its number and its arrival time
    let mut station: Station<(u64, Nanos)> = Station::new(c);
    let (mut arrived, mut measured, mut waited, mut wait_ns) = (0u64, 0u64, 0u64, 0u128);
    events.at(ns(arrivals.sample(&mut rng)), Event::Arrival);
    while let Some((now, e)) = events.pop() {
        let started = match e {
            Event::Arrival => {
                let job = (arrived, now);
                arrived += 1;
                if arrived < jobs {
                    events.after(ns(arrivals.sample(&mut rng)), Event::Arrival);
                }
                station.arrive(job)
            }
            Event::Done => station.finish(),
        };
        if let Some((n, at)) = started {
            if n >= warmup {
                measured += 1;
                let w = now - at;
                if w > 0 {
                    waited += 1;
                }
                wait_ns += u128::from(w);
            }
            events.after(ns(service.sample(&mut rng)), Event::Done);
        }
    }
    let m = measured.max(1) as f64;
    Measured {
        jobs: measured,
        waited: waited as f64 / m,
        mean_wait: wait_ns as f64 / 1e9 / m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::erlang::{erlang_c, mean_wait};

    #[test]
    fn the_simulated_queue_waits_as_erlang_c_says() {
        // 4 servers of 10 jobs/s each, at 50 %, 70 % and 85 % utilisation; 400 000 jobs each
        let (mu, c) = (10.0, 4);
        for (rho, seed) in [(0.5, 1), (0.7, 2), (0.85, 3)] {
            let lambda = rho * c as f64 * mu;
            let got = simulate(lambda, mu, c, 400_000, 20_000, seed);
            let p = erlang_c(c, lambda / mu).unwrap();
            let w = mean_wait(lambda, mu, c).unwrap();
            eprintln!(
                "rho {rho}: waited {:.4} vs {p:.4}; wait {:.5} vs {w:.5} ({:+.2} %)",
                got.waited,
                got.mean_wait,
                100.0 * (got.mean_wait - w) / w
            );
            assert!(
                (got.waited - p).abs() < 0.01,
                "rho {rho}: waited {:.4}, Erlang C {p:.4}",
                got.waited
            );
            assert!(
                (got.mean_wait - w).abs() / w < 0.05,
                "rho {rho}: mean wait {:.5} s, Erlang C {w:.5} s",
                got.mean_wait
            );
        }
    }

    #[test]
    fn a_seed_gives_one_history() {
        let a = simulate(30.0, 10.0, 4, 20_000, 0, 42);
        assert_eq!(a, simulate(30.0, 10.0, 4, 20_000, 0, 42));
        assert_ne!(a, simulate(30.0, 10.0, 4, 20_000, 0, 43));
    }
}
