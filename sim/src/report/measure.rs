//! What one run of the report measured, from the sim's own scrapes (what the service did, not
//! what its telemetry said): per minute the load offered, the request p95, the error rate and
//! the replicas; over the run the request percentiles (a DDSketch at 0.5 % relative accuracy),
//! the error rate, the replica-minutes (the replicas asked for, starting ones included: they
//! are paid for), the scale changes the service took, and the episodes short of capacity (from
//! the first scrape whose serving replicas would run above the capacity utilisation at the
//! load offered to the first that would not).
//!
//! A fleet ([`Measure::fleet`]) is measured the same way: the requests at its entry (what the
//! users see), the replicas and replica-minutes of every service of ours added up, the scale
//! changes of each counted, and a scrape short of capacity when any service is, each at its
//! share of the load offered; an external service is not ours to count.

use apo_dataflow::DDSketch;

use crate::command::RateFn;
use crate::run::{ends_multiple, Scrape};

/// The percentiles' relative accuracy.
const ACCURACY: f64 = 0.005;

/// What violates the SLA in a minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// The request p95 over which a minute violates, seconds.
    pub p95_s: f64,
    /// The error rate over which a minute violates.
    pub max_error_rate: f64,
}

/// How capacity is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Requests a second one replica serves at 100 % utilisation.
    pub per_replica: f64,
    /// The utilisation over which serving replicas are short of the load.
    pub utilization: f64,
}

impl Capacity {
    /// The replicas the load `rate` needs (at least one).
    pub fn needed(&self, rate: f64) -> u32 {
        let n = (rate / (self.per_replica * self.utilization)).ceil();
        n.clamp(1.0, f64::from(u32::MAX)) as u32
    }
}

/// A service of a fleet as the measure judges it: its capacity, and its share of the load
/// offered at the entry (1 at the entry; `Topology::shares`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Served {
    /// Its replicas' capacity.
    pub capacity: Capacity,
    /// Its share of the entry's requests.
    pub share: f64,
}

/// One minute of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Minute {
    /// Its end, seconds since the run's start.
    pub end_s: f64,
    /// The load offered, requests a second (the mean of the load at the scrapes' midpoints).
    pub load: f64,
    /// Requests that ended in it, and those that failed.
    pub requests: u64,
    /// (failed)
    pub errors: u64,
    /// Its request p95, seconds (0 without requests).
    pub p95_s: f64,
    /// Replicas asked for, and serving, at its end (of every service of a fleet).
    pub replicas: u32,
    /// (serving)
    pub ready: u32,
    /// Whether it violated the SLA.
    pub violated: bool,
}

/// A run's totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Its minutes.
    pub minutes: Vec<Minute>,
    /// Requests served, and failed.
    pub requests: u64,
    /// (failed)
    pub errors: u64,
    /// Request p50, p95 and p99 over the run, seconds.
    pub p50_s: f64,
    /// (p95)
    pub p95_s: f64,
    /// (p99)
    pub p99_s: f64,
    /// Replica-minutes asked for.
    pub replica_minutes: f64,
    /// Scale changes the service took.
    pub actions: u32,
    /// How long each episode short of capacity lasted, seconds (the last one still open at
    /// the run's end is not here: see `short_at_end_s`).
    pub shortages_s: Vec<f64>,
    /// How long the run had been short of capacity at its end, seconds (0: it was not).
    pub short_at_end_s: f64,
}

impl Summary {
    /// Minutes that violated the SLA.
    pub fn violation_minutes(&self) -> usize {
        self.minutes.iter().filter(|m| m.violated).count()
    }

    /// The failed requests' share of all.
    pub fn error_rate(&self) -> f64 {
        let all = self.requests + self.errors;
        if all == 0 {
            0.0
        } else {
            self.errors as f64 / all as f64
        }
    }
}

/// `q` (0 to 1) of `values` by the nearest rank (0 when empty).
pub fn nearest_rank(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Measures a run scrape by scrape.
pub struct Measure {
    objective: Objective,
    /// Per node of the fleet, the service measured (`None`: external).
    services: Vec<Option<Served>>,
    rate: RateFn,
    minute_s: f64,
    sketch: DDSketch,
    minute: Vec<f64>,
    minute_errors: u64,
    minute_load: (f64, u32),
    last_replicas: Vec<Option<u32>>,
    short_since: Option<f64>,
    summary: Summary,
}

impl Measure {
    /// Measures one service against `objective` and `capacity`, the load offered being
    /// `rate`.
    pub fn new(objective: Objective, capacity: Capacity, rate: RateFn) -> Self {
        Measure::fleet(
            objective,
            vec![Some(Served {
                capacity,
                share: 1.0,
            })],
            rate,
        )
    }

    /// Measures a fleet whose nodes are `services` (in its order, the entry first; `None` for
    /// an external one), the load offered at its entry being `rate`.
    pub fn fleet(objective: Objective, services: Vec<Option<Served>>, rate: RateFn) -> Self {
        let nodes = services.len();
        Measure {
            objective,
            services,
            rate,
            minute_s: 60.0,
            sketch: DDSketch::new(ACCURACY),
            minute: Vec::new(),
            minute_errors: 0,
            minute_load: (0.0, 0),
            last_replicas: vec![None; nodes],
            short_since: None,
            summary: Summary {
                minutes: Vec::new(),
                requests: 0,
                errors: 0,
                p50_s: 0.0,
                p95_s: 0.0,
                p99_s: 0.0,
                replica_minutes: 0.0,
                actions: 0,
                shortages_s: Vec::new(),
                short_at_end_s: 0.0,
            },
        }
    }

    /// Takes one scrape of a single service.
    pub fn add(&mut self, s: &Scrape) {
        self.add_fleet(std::slice::from_ref(s));
    }

    /// Takes one scrape interval of a fleet: its nodes' scrapes, the entry first.
    pub fn add_fleet(&mut self, scrapes: &[Scrape]) {
        let Some(s) = scrapes.first() else {
            return;
        };
        for &d in &s.durations_s {
            self.sketch.add(d);
        }
        self.minute.extend_from_slice(&s.durations_s);
        self.minute_errors += s.failed;
        let load = (self.rate)(s.at_s - s.every_s / 2.0);
        self.minute_load.0 += load;
        self.minute_load.1 += 1;
        let sum = &mut self.summary;
        sum.requests += s.durations_s.len() as u64;
        sum.errors += s.failed;
        let (mut replicas, mut ready, mut short) = (0u32, 0u32, false);
        for (i, n) in scrapes.iter().enumerate() {
            let Some(served) = self.services.get(i).copied().flatten() else {
                continue;
            };
            sum.replica_minutes += f64::from(n.replicas) * n.every_s / 60.0;
            if self.last_replicas[i].is_some_and(|r| r != n.replicas) {
                sum.actions += 1;
            }
            self.last_replicas[i] = Some(n.replicas);
            replicas = replicas.saturating_add(n.replicas);
            ready = ready.saturating_add(n.ready);
            short |= n.ready < served.capacity.needed(load * served.share);
        }
        match (short, self.short_since) {
            (true, None) => self.short_since = Some(s.at_s - s.every_s),
            (false, Some(from)) => {
                sum.shortages_s.push(s.at_s - s.every_s - from);
                self.short_since = None;
            }
            _ => {}
        }
        sum.short_at_end_s = self.short_since.map_or(0.0, |from| s.at_s - from);
        if ends_multiple(s.at_s, self.minute_s) {
            self.close_minute(s.at_s, replicas, ready);
        }
    }

    fn close_minute(&mut self, at_s: f64, replicas: u32, ready: u32) {
        let p95 = nearest_rank(&self.minute, 0.95);
        let requests = self.minute.len() as u64;
        let errors = self.minute_errors;
        let all = requests + errors;
        let error_rate = if all == 0 {
            0.0
        } else {
            errors as f64 / all as f64
        };
        let violated = (requests > 0 && p95 > self.objective.p95_s)
            || error_rate > self.objective.max_error_rate;
        let (load_sum, n) = self.minute_load;
        self.summary.minutes.push(Minute {
            end_s: at_s,
            load: if n == 0 { 0.0 } else { load_sum / f64::from(n) },
            requests,
            errors,
            p95_s: p95,
            replicas,
            ready,
            violated,
        });
        self.minute.clear();
        self.minute_errors = 0;
        self.minute_load = (0.0, 0);
    }

    /// The minutes closed so far.
    pub fn minutes(&self) -> &[Minute] {
        &self.summary.minutes
    }

    /// The run's summary.
    pub fn finish(mut self) -> Summary {
        let q = |p: f64| self.sketch.quantile(p).unwrap_or(0.0);
        self.summary.p50_s = q(0.5);
        self.summary.p95_s = q(0.95);
        self.summary.p99_s = q(0.99);
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn scrape(at_s: f64, durations_s: Vec<f64>, failed: u64, replicas: u32, ready: u32) -> Scrape {
        Scrape {
            durations_s,
            failed,
            replicas,
            ready,
            ..Scrape::empty(at_s, 30.0, None)
        }
    }

    #[test]
    fn minutes_costs_changes_and_shortages_are_counted_exactly() {
        // 40 requests/s for the first two minutes, 120 after; a replica carries 50 at 100 %,
        // 40 at the capacity utilisation of 80 %: 1 replica is enough, then 3 are needed
        let rate: RateFn = Arc::new(|t| if t < 120.0 { 40.0 } else { 120.0 });
        let mut m = Measure::new(
            Objective {
                p95_s: 0.5,
                max_error_rate: 0.001,
            },
            Capacity {
                per_replica: 50.0,
                utilization: 0.8,
            },
            rate,
        );
        // minute 1: 20 requests, 19 fast and 1 slow: p95 is the 19th, fast
        let mut first: Vec<f64> = vec![0.1; 19];
        first.push(2.0);
        m.add(&scrape(30.0, first[..10].to_vec(), 0, 1, 1));
        m.add(&scrape(60.0, first[10..].to_vec(), 0, 1, 1));
        // minute 2: fast but 2 failed in 1 002: over 0.1 % (1 in 1 001 would not be)
        m.add(&scrape(90.0, vec![0.1; 500], 2, 1, 1));
        m.add(&scrape(120.0, vec![0.1; 500], 0, 3, 1));
        // minute 3: short (1 of 3 serving at 120/s), slow; minute 4: 3 serving, p95 0.2
        m.add(&scrape(150.0, vec![1.0; 100], 0, 3, 1));
        m.add(&scrape(180.0, vec![1.0; 100], 0, 3, 3));
        m.add(&scrape(210.0, vec![0.2; 100], 0, 3, 3));
        m.add(&scrape(240.0, vec![0.2; 100], 0, 2, 2));
        let s = m.finish();
        let violated: Vec<bool> = s.minutes.iter().map(|m| m.violated).collect();
        assert_eq!(violated, vec![false, true, true, false]);
        assert_eq!(s.minutes[0].p95_s, 0.1);
        assert_eq!(s.minutes[1].errors, 2);
        assert_eq!(
            s.minutes[1].load, 40.0,
            "the load at the scrapes' midpoints"
        );
        assert_eq!(s.minutes[2].load, 120.0);
        assert_eq!(s.violation_minutes(), 2);
        assert_eq!((s.requests, s.errors), (1420, 2));
        // replicas 1,1,1,3,3,3,3,2 for half a minute each
        assert_eq!(s.replica_minutes, 8.5);
        assert_eq!(s.actions, 2, "1 -> 3 and 3 -> 2");
        // short from 120 s (the scrape ending at 150 s) to 150 s (the one ending at 180 s
        // serves 3): 30 s; then 2 serving at 120/s is still 1 short: open since 210 s
        assert_eq!(s.shortages_s, vec![30.0]);
        assert_eq!(s.short_at_end_s, 30.0);
        // 1 420 durations: 1 019 at 0.1, 200 at 0.2, 200 at 1.0, 1 at 2.0
        assert!(
            (s.p99_s - 1.0).abs() <= 1.0 * ACCURACY * 1.01,
            "{}",
            s.p99_s
        );
        assert!(
            (s.p50_s - 0.1).abs() <= 0.1 * ACCURACY * 1.01,
            "{}",
            s.p50_s
        );
        assert!((s.error_rate() - 2.0 / 1422.0).abs() < 1e-12);
    }

    /// A fleet: the entry's requests, the services of ours added up, the external one left
    /// out, a shortage of the second service alone counted at its share of the load.
    #[test]
    fn a_fleet_is_its_entrys_requests_and_every_service_of_ours() {
        // 100 requests/s at the entry, 40 % of them to the second service; 50 a replica at
        // 100 %, 40 at 80 %: the entry needs 3, the second 1 (40 / 40), then 5 and 2 from
        // 120 s when the load becomes 200/s (80 for the second)
        let rate: RateFn = Arc::new(|t| if t < 120.0 { 100.0 } else { 200.0 });
        let capacity = Capacity {
            per_replica: 50.0,
            utilization: 0.8,
        };
        let served = |share: f64| Some(Served { capacity, share });
        let mut m = Measure::fleet(
            Objective {
                p95_s: 0.5,
                max_error_rate: 0.001,
            },
            vec![served(1.0), served(0.4), None],
            rate,
        );
        let at = |t: f64, entry: (u32, u32), second: (u32, u32)| {
            vec![
                scrape(t, vec![0.1; 10], 0, entry.0, entry.1),
                scrape(t, vec![5.0; 1_000], 7, second.0, second.1),
                scrape(t, vec![], 0, 1_000, 1_000),
            ]
        };
        m.add_fleet(&at(30.0, (3, 3), (1, 1)));
        m.add_fleet(&at(60.0, (3, 3), (1, 1)));
        m.add_fleet(&at(90.0, (5, 5), (1, 1)));
        m.add_fleet(&at(120.0, (5, 5), (1, 1)));
        // from 120 s the second needs 2 and has 1 ready for two scrapes
        m.add_fleet(&at(150.0, (5, 5), (2, 1)));
        m.add_fleet(&at(180.0, (5, 5), (2, 1)));
        m.add_fleet(&at(210.0, (5, 5), (2, 2)));
        m.add_fleet(&at(240.0, (5, 5), (2, 2)));
        let s = m.finish();
        // the entry's 80 requests, none of the second's; its 7 failures not the users'
        assert_eq!((s.requests, s.errors), (80, 0));
        assert_eq!(s.violation_minutes(), 0);
        // (3+1) x 2 + (5+1) x 2 + (5+2) x 4 half-minutes
        assert_eq!(s.replica_minutes, (8.0 + 12.0 + 28.0) / 2.0);
        assert_eq!(s.actions, 2, "the entry 3 -> 5, the second 1 -> 2");
        let totals: Vec<(u32, u32)> = s.minutes.iter().map(|m| (m.replicas, m.ready)).collect();
        assert_eq!(totals, vec![(4, 4), (6, 6), (7, 6), (7, 7)]);
        // the scrapes ending at 150 and 180 s (from 120 s to 180 s) short: 60 s; the entry
        // at 5 is not short of its 5, the external service of its 1 000 not measured
        assert_eq!(s.shortages_s, vec![60.0]);
    }
}
