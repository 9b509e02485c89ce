//! One service under a load, simulated: arrivals at the load's rate, each served by the
//! service (waiting in a replica's line when its workers are busy, refused when no replica is
//! ready, or the line is full; failed when it waits past the callers' timeout), the service scaled at given times as an executor would, and per window of
//! simulated time the requests that arrived in it, those that failed, and their latency (arrival
//! to end of service) at p50 and p95. Deterministic for a seed.
//!
//! Paced ([`Paced`]), the run keeps simulated time at a multiple of wall time and takes the
//! scales the executors asked of the control board as they come (at the simulated time they
//! are taken), reporting its serving replicas back: the loop closed through the executors.
//! A paced run is not deterministic (when a command lands depends on the wall clock).
//!
//! Scraped ([`RunSpec::scrape_s`]), the run also reports, at the end of each scrape interval,
//! what a monitoring agent would have seen in it ([`Scrape`]): the durations of the requests
//! that ended in it, those that failed, the replicas and each serving replica's utilisation;
//! `telemetry/` turns that into metric points.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::control::board::{Board, Command};
use crate::events::{Events, Nanos};
use crate::load::next_arrival;
use crate::service::{Arrival, Call, Job, Service, ServiceConfig};

/// What one window of simulated time saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Its start, seconds.
    pub start_s: f64,
    /// Requests that arrived in it.
    pub requests: u64,
    /// Of those, failed: refused (no replica ready, or a full line) or timed out.
    pub failed: u64,
    /// Latency of the others, seconds: median and 95th percentile (0 without requests).
    pub p50_s: f64,
    /// (p95)
    pub p95_s: f64,
    /// Replicas the service was scaled to at the window's start, and those serving then.
    pub replicas: u32,
    /// (serving)
    pub ready: u32,
}

/// How the run goes.
pub struct RunSpec<'a> {
    /// The service.
    pub service: ServiceConfig,
    /// Its replicas at the start (serving from 0).
    pub replicas: u32,
    /// The request rate at a time, seconds, and its highest value.
    pub rate: &'a dyn Fn(f64) -> f64,
    /// (peak)
    pub peak: f64,
    /// How long, seconds.
    pub duration_s: f64,
    /// The windows' size, seconds.
    pub window_s: f64,
    /// Scales: at a time (seconds), to a number of replicas.
    pub scales: Vec<(f64, u32)>,
    /// Settings tuned: at a time (seconds), a setting ([`POOL_SETTING`], [`CACHE_SETTING`])
    /// to a value, as a tune decision would.
    pub tunes: Vec<(f64, String, f64)>,
    /// The seed.
    pub seed: u64,
    /// Paced against the wall clock and driven by a control board, when given.
    pub paced: Option<Paced>,
    /// Scraped every this many seconds, when given ([`run_scraped`] reports each scrape).
    pub scrape_s: Option<f64>,
}

/// What a scrape interval saw of the service.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// The interval's end, seconds since the run's start.
    pub at_s: f64,
    /// Its length, seconds.
    pub every_s: f64,
    /// The durations of the requests that ended in it (arrival to end of service), seconds,
    /// in the order they ended.
    pub durations_s: Vec<f64>,
    /// Requests that failed in it: refused (no replica ready, or a full line) or timed out.
    pub failed: u64,
    /// Replicas the service is scaled to at its end, and those serving.
    pub replicas: u32,
    /// (serving)
    pub ready: u32,
    /// Each serving replica's utilisation over the interval: the service time of the jobs it
    /// started in it over its workers' time, at most 1.
    pub utilization: Vec<f64>,
    /// How long each database call that ended in it held its connection (waiting for the
    /// database and served by it), seconds.
    pub db_use_s: Vec<f64>,
    /// With a database, at its end: each replica's pool size, and the connections in use and
    /// the callers waiting for one over all replicas.
    pub pool: Option<(usize, usize, usize)>,
    /// With a cache: its size at its end, and the requests it answered and missed in it.
    pub cache: Option<(usize, u64, u64)>,
}

/// A run kept at `speed` times wall time, taking the scales of service `name` from `board`.
pub struct Paced {
    /// The board the control endpoints write to.
    pub board: Arc<Board>,
    /// The service's name on it.
    pub name: String,
    /// Simulated seconds per wall second.
    pub speed: f64,
}

/// Under this, a paced run does not sleep to let the wall clock catch up.
const PACE_SLACK: Duration = Duration::from_millis(2);

enum Event {
    Arrival,
    /// A job that arrived at the time given ended on a replica.
    Done(u64, Nanos),
    /// A database call ended.
    DbDone(Call),
    Scale(u32),
    Tune(String, f64),
    Scrape,
}

const NS: f64 = 1e9;

/// The setting a pool decision tunes: each replica's pool size (the OpenTelemetry name of the
/// metric that reports it).
pub const POOL_SETTING: &str = "db.client.connection.max";

/// The setting a cache decision tunes: the cache's size in objects (the name of the metric
/// that reports it).
pub const CACHE_SETTING: &str = "cache.max_size";

/// Whether `at_s` is a whole multiple of `every_s` (a scrape that ends a window, a minute, an
/// hour).
pub fn ends_multiple(at_s: f64, every_s: f64) -> bool {
    ((at_s / every_s).round() * every_s - at_s).abs() < 1e-6
}

/// Sets `setting` of `service` to `value` at `now` (a setting it does not have: nothing);
/// the calls that take connections a larger pool frees go to `calls`.
fn tune(service: &mut Service, setting: &str, value: f64, now: Nanos, calls: &mut Vec<Call>) {
    let n = value.round().clamp(0.0, u32::MAX as f64) as usize;
    match setting {
        POOL_SETTING if service.has_db() => calls.extend(service.resize_pools(n, now)),
        CACHE_SETTING => service.resize_cache(n),
        _ => tracing::debug!(setting, "a setting the service does not have"),
    }
}

/// Runs `spec`; a scale the service refuses (over its most) is an error.
pub fn run(spec: &RunSpec<'_>) -> Result<Vec<Window>, String> {
    run_scraped(spec, &mut |_| true)
}

/// Runs `spec`, handing each scrape to `scraped` as its interval ends (none without
/// `spec.scrape_s`); the run stops there, its windows measured so far, when `scraped` says
/// `false`.
pub fn run_scraped(
    spec: &RunSpec<'_>,
    scraped: &mut dyn FnMut(Scrape) -> bool,
) -> Result<Vec<Window>, String> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut service = Service::new(spec.service.clone(), spec.replicas)?;
    let mut events: Events<Event> = Events::default();
    let ns = |s: f64| (s * NS).round() as Nanos;
    for &(at, n) in &spec.scales {
        events.at(ns(at), Event::Scale(n));
    }
    for (at, setting, value) in &spec.tunes {
        events.at(ns(*at), Event::Tune(setting.clone(), *value));
    }
    let windows = (spec.duration_s / spec.window_s).ceil().max(1.0) as usize;
    let mut state: Vec<(u32, u32)> = vec![(0, 0); windows];
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); windows];
    let mut failed = vec![0u64; windows];
    let window_of = |t: Nanos| ((t as f64 / NS / spec.window_s) as usize).min(windows - 1);
    let mut next_window = 0usize;
    let mut jobs = 0u64;
    // whether a request answered this long after it arrived came too late
    let timed_out = |waited: Nanos| spec.service.timeout.is_some_and(|t| waited > t);
    let wall = Instant::now();
    if let Some(t) = next_arrival(&mut rng, 0.0, spec.duration_s, spec.peak, spec.rate) {
        events.at(ns(t), Event::Arrival);
    }
    let scrape_s = spec.scrape_s.filter(|s| s.is_finite() && *s > 0.0);
    let mut scrape = Scrape {
        at_s: 0.0,
        every_s: scrape_s.unwrap_or(0.0),
        durations_s: Vec::new(),
        failed: 0,
        replicas: 0,
        ready: 0,
        utilization: Vec::new(),
        db_use_s: Vec::new(),
        pool: None,
        cache: service.cache().map(|(size, _)| (size, 0, 0)),
    };
    if let Some(every) = scrape_s {
        events.at(ns(every), Event::Scrape);
    }
    // calls that took a connection now (to the database), and jobs that start their own
    // work now (their call done, or none to make)
    let mut calls: Vec<Call> = Vec::new();
    let mut own_work: Vec<(u64, Job)> = Vec::new();
    while let Some((now, e)) = events.pop() {
        if let Some(p) = &spec.paced {
            let due = wall + Duration::from_secs_f64(now as f64 / NS / p.speed.max(1e-9));
            let ahead = due.saturating_duration_since(Instant::now());
            if ahead > PACE_SLACK {
                std::thread::sleep(ahead);
            }
            for c in p.board.take() {
                match c {
                    Command::Scale {
                        service: s,
                        replicas,
                    } if s == p.name => {
                        if let Err(e) = service.scale_to(replicas, now) {
                            tracing::warn!(service = %s, error = %e, "a scale the service refused");
                        }
                    }
                    Command::Tune {
                        service: s,
                        setting,
                        value,
                    } if s == p.name => tune(&mut service, &setting, value, now, &mut calls),
                    Command::Rollback { service: s } if s == p.name && !service.roll_back() => {
                        tracing::warn!(
                            service = %s,
                            "a rollback with no stable version to go back to: nothing changed"
                        );
                    }
                    _ => {}
                }
            }
            p.board.report_ready(&p.name, service.ready(now));
        }
        while next_window < windows && ns(next_window as f64 * spec.window_s) <= now {
            let at = ns(next_window as f64 * spec.window_s);
            state[next_window] = (service.replicas(), service.ready(at));
            next_window += 1;
        }
        let started = match e {
            Event::Arrival => {
                let job = Job {
                    id: jobs,
                    arrived: now,
                };
                jobs += 1;
                if let Some(t) = next_arrival(
                    &mut rng,
                    now as f64 / NS,
                    spec.duration_s,
                    spec.peak,
                    spec.rate,
                ) {
                    events.at(ns(t), Event::Arrival);
                }
                match service.arrive(job, now) {
                    Arrival::Started(r) => Some((r, job)),
                    Arrival::Queued(_) => None,
                    Arrival::Refused => {
                        failed[window_of(now)] += 1;
                        scrape.failed += 1;
                        None
                    }
                }
            }
            Event::Done(r, arrived) => {
                if timed_out(now - arrived) {
                    scrape.failed += 1;
                } else if scrape_s.is_some() {
                    scrape.durations_s.push((now - arrived) as f64 / NS);
                }
                service.finish(r).map(|j| (r, j))
            }
            Event::DbDone(c) => {
                if scrape_s.is_some() {
                    scrape.db_use_s.push((now - c.acquired) as f64 / NS);
                }
                if let Some(next) = service.db_finish() {
                    events.at(now + service.db_time(&mut rng), Event::DbDone(next));
                }
                calls.extend(service.release(&c, now));
                own_work.push((c.replica, c.job));
                None
            }
            Event::Tune(setting, value) => {
                tune(&mut service, &setting, value, now, &mut calls);
                None
            }
            Event::Scale(n) => {
                service.scale_to(n, now).map_err(|e| e.to_string())?;
                None
            }
            Event::Scrape => {
                let every = scrape.every_s;
                scrape.at_s = now as f64 / NS;
                scrape.replicas = service.replicas();
                scrape.ready = service.ready(now);
                scrape.utilization = service.utilization(now, ns(every));
                scrape.pool = service.has_db().then(|| service.pools());
                if let (Some(c), Some((size, _))) = (&mut scrape.cache, service.cache()) {
                    c.0 = size;
                }
                let next = Scrape {
                    at_s: 0.0,
                    every_s: every,
                    durations_s: Vec::with_capacity(scrape.durations_s.len()),
                    failed: 0,
                    replicas: 0,
                    ready: 0,
                    utilization: Vec::new(),
                    db_use_s: Vec::new(),
                    pool: None,
                    cache: service.cache().map(|(size, _)| (size, 0, 0)),
                };
                if !scraped(std::mem::replace(&mut scrape, next)) {
                    let end = window_of(now.saturating_sub(1)) + 1;
                    state.truncate(end);
                    latencies.truncate(end);
                    failed.truncate(end);
                    break;
                }
                // the last scrape is the one at the run's end
                if now < ns(spec.duration_s) {
                    events.at(now + ns(every), Event::Scrape);
                }
                None
            }
        };
        // A job started on replica r: its end, and its latency, are known now. One that has
        // waited past the callers' timeout is abandoned (it fails now, unserved) and the next
        // in line takes its worker.
        let mut started = started;
        while let Some((r, job)) = started {
            if timed_out(now - job.arrived) {
                failed[window_of(job.arrived)] += 1;
                scrape.failed += 1;
                started = service.finish(r).map(|j| (r, j));
                continue;
            }
            let hit = service.cache().is_some() && {
                let hit = service.cache_hit(rng.random::<f64>());
                if let Some((_, hits, misses)) = &mut scrape.cache {
                    *if hit { hits } else { misses } += 1;
                }
                hit
            };
            if service.has_db() && !hit {
                // its call first: at once with a free connection, else when one is released
                calls.extend(service.acquire(r, job, now));
            } else {
                own_work.push((r, job));
            }
            break;
        }
        for c in calls.drain(..) {
            if let Some(c) = service.db_arrive(c) {
                events.at(now + service.db_time(&mut rng), Event::DbDone(c));
            }
        }
        for (r, job) in own_work.drain(..) {
            let took = service.service_time(&mut rng);
            service.credit(r, took);
            let end = now + took;
            if timed_out(end - job.arrived) {
                failed[window_of(job.arrived)] += 1;
            } else {
                latencies[window_of(job.arrived)].push((end - job.arrived) as f64 / NS);
            }
            events.at(end, Event::Done(r, job.arrived));
        }
    }
    Ok((0..state.len())
        .map(|w| {
            let l = &mut latencies[w];
            l.sort_by(f64::total_cmp);
            let q = |p: f64| {
                if l.is_empty() {
                    0.0
                } else {
                    l[((l.len() - 1) as f64 * p).round() as usize]
                }
            };
            Window {
                start_s: w as f64 * spec.window_s,
                requests: l.len() as u64 + failed[w],
                failed: failed[w],
                p50_s: q(0.5),
                p95_s: q(0.95),
                replicas: state[w].0,
                ready: state[w].1,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Shape;
    #[test]
    fn an_overload_is_relieved_once_the_new_replicas_have_started() {
        // 4 workers a replica, 0.1 s median service: a replica carries about 38 requests/s.
        // 20/s, then 100/s from 120 s: 2 replicas (about 76/s) fall behind; scaled to 6 at
        // 130 s, serving from 160 s (30 s start-up), the line drains.
        let load = Shape::Step {
            before: 20.0,
            after: 100.0,
            at_s: 120.0,
        };
        let rate = move |t: f64| load.rate_at(t);
        let spec = RunSpec {
            service: ServiceConfig::default(),
            replicas: 2,
            rate: &rate,
            peak: load.peak(),
            duration_s: 360.0,
            window_s: 60.0,
            scales: vec![(130.0, 6)],
            seed: 7,
            paced: None,
            tunes: Vec::new(),
            scrape_s: None,
        };
        let w = run(&spec).unwrap();
        assert_eq!(w.len(), 6);
        let p95: Vec<f64> = w.iter().map(|w| w.p95_s).collect();
        eprintln!("p95 per minute: {p95:?}");
        assert!(p95[1] < 0.5, "20/s on 2 replicas: {p95:?}");
        assert!(p95[2] > 1.0, "100/s on 2 replicas until 160 s: {p95:?}");
        assert!(p95[4] < 0.5 && p95[5] < 0.5, "6 replicas: {p95:?}");
        assert_eq!(
            w.iter().map(|w| (w.replicas, w.ready)).collect::<Vec<_>>(),
            [(2, 2), (2, 2), (2, 2), (6, 6), (6, 6), (6, 6)]
        );
        assert!(w.iter().all(|w| w.failed == 0));
        let total: u64 = w.iter().map(|w| w.requests).sum();
        // 120 s at 20/s and 240 s at 100/s: 26 400 expected
        assert!(
            (total as f64 - 26_400.0).abs() < 4.0 * 26_400f64.sqrt(),
            "{total}"
        );
        assert_eq!(run(&spec).unwrap(), w, "one history per seed");

        // scaled to none: every request refused; over the most: an error
        let none = RunSpec {
            scales: vec![(0.0, 0)],
            ..spec
        };
        let w = run(&none).unwrap();
        assert!(w.iter().all(|w| w.failed == w.requests));
        let over = RunSpec {
            scales: vec![(10.0, 11)],
            ..none
        };
        assert!(run(&over).unwrap_err().contains("more than the most"));
    }

    #[test]
    fn scrapes_see_every_request_once_and_the_utilisation_queueing_theory_gives() {
        // 20 requests/s on 2 replicas of 4 workers, log-normal service time of median 0.1 s
        // and sigma 0.3: mean 0.1 x e^(0.045) = 0.1046 s, so each worker is busy
        // rho = 20 x 0.1046 / 8 = 0.2615 of the time.
        let load = Shape::Step {
            before: 20.0,
            after: 20.0,
            at_s: 0.0,
        };
        let rate = move |t: f64| load.rate_at(t);
        let spec = RunSpec {
            service: ServiceConfig::default(),
            replicas: 2,
            rate: &rate,
            peak: 20.0,
            duration_s: 600.0,
            window_s: 60.0,
            scales: vec![(300.0, 4)],
            seed: 11,
            paced: None,
            tunes: Vec::new(),
            scrape_s: Some(10.0),
        };
        let mut scrapes = Vec::new();
        let windows = run_scraped(&spec, &mut |s| {
            scrapes.push(s);
            true
        })
        .unwrap();
        assert_eq!(scrapes.len(), 60);
        assert_eq!(
            scrapes.iter().map(|s| s.at_s).collect::<Vec<_>>(),
            (1..=60).map(|i| f64::from(i) * 10.0).collect::<Vec<_>>()
        );
        let requests: u64 = windows.iter().map(|w| w.requests).sum();
        let seen: usize = scrapes.iter().map(|s| s.durations_s.len()).sum();
        // every request ended by the last scrape is in one; a few are still in service then
        assert!(
            seen as u64 <= requests && requests - seen as u64 <= 8,
            "{seen} of {requests}"
        );
        assert!(scrapes
            .iter()
            .all(|s| s.failed == 0 && s.durations_s.iter().all(|d| *d > 0.0)));
        // scaled to 4 at 300 s, serving from 330 s
        let at = |t: f64| scrapes.iter().find(|s| s.at_s == t).unwrap();
        assert_eq!((at(300.0).replicas, at(300.0).ready), (4, 2));
        assert_eq!((at(330.0).replicas, at(330.0).ready), (4, 4));
        let mean = |from: f64, to: f64| {
            let u: Vec<f64> = scrapes
                .iter()
                .filter(|s| s.at_s > from && s.at_s <= to)
                .flat_map(|s| s.utilization.iter().copied())
                .collect();
            u.iter().sum::<f64>() / u.len() as f64
        };
        let rho = |replicas: f64| 20.0 * 0.1 * (0.045f64).exp() / (4.0 * replicas);
        let (two, four) = (mean(0.0, 300.0), mean(340.0, 600.0));
        assert!(
            (two - rho(2.0)).abs() / rho(2.0) < 0.05,
            "{two} against {}",
            rho(2.0)
        );
        assert!(
            (four - rho(4.0)).abs() / rho(4.0) < 0.05,
            "{four} against {}",
            rho(4.0)
        );
    }

    #[test]
    fn callers_time_out_and_a_request_answered_late_fails() {
        // one replica (about 38 requests/s) offered 76/s for 2 minutes: the line grows
        // without bound, unless callers give up after 2 s
        let rate = |_: f64| 76.0;
        let spec = |timeout: Option<Nanos>| RunSpec {
            service: ServiceConfig {
                timeout,
                ..ServiceConfig::default()
            },
            replicas: 1,
            rate: &rate,
            peak: 76.0,
            duration_s: 120.0,
            window_s: 60.0,
            scales: Vec::new(),
            seed: 3,
            paced: None,
            tunes: Vec::new(),
            scrape_s: Some(10.0),
        };
        let mut ended = 0u64;
        let mut failed = 0u64;
        let w = run_scraped(&spec(Some(2_000_000_000)), &mut |s| {
            assert!(
                s.durations_s.iter().all(|d| *d <= 2.0),
                "answered after the timeout: {:?}",
                s.durations_s.iter().fold(0.0f64, |a, b| a.max(*b))
            );
            ended += s.durations_s.len() as u64;
            failed += s.failed;
            true
        })
        .unwrap();
        let arrived: u64 = w.iter().map(|w| w.requests).sum();
        let window_failed: u64 = w.iter().map(|w| w.failed).sum();
        assert!(w.iter().all(|w| w.p95_s <= 2.0), "{w:?}");
        // about half the requests cannot be served; the scrapes see every request's fate
        // (but those still in service or in line at the end)
        assert!(window_failed as f64 > 0.4 * arrived as f64, "{w:?}");
        assert!(ended + failed <= arrived && ended + failed + 200 >= arrived);
        assert!(failed > 0 && failed <= window_failed);
        // without the timeout every request waits its turn: nothing fails, the p95 grows
        let slow = run(&spec(None)).unwrap();
        assert!(slow.iter().all(|w| w.failed == 0));
        assert!(slow[1].p95_s > 20.0, "{slow:?}");
    }

    #[test]
    fn a_pool_too_small_holds_requests_back_until_it_grows() {
        use crate::service::DbConfig;
        // one replica of 32 workers (own work 10 ms: not the bottleneck) whose requests each
        // make a 50 ms database call (32 database servers: not one either) through a pool of
        // 2: 2 / 0.0523 s = 38 calls a second at most, offered 60. Grown to 8 at 120 s.
        let rate = |_: f64| 60.0;
        let spec = RunSpec {
            service: ServiceConfig {
                workers: 32,
                median_s: 0.01,
                sigma: 0.3,
                db: Some(DbConfig {
                    pool_size: 2,
                    servers: 32,
                    median_s: 0.05,
                    sigma: 0.3,
                }),
                ..ServiceConfig::default()
            },
            replicas: 1,
            rate: &rate,
            peak: 60.0,
            duration_s: 240.0,
            window_s: 60.0,
            scales: Vec::new(),
            tunes: vec![(120.0, POOL_SETTING.into(), 8.0)],
            seed: 11,
            paced: None,
            scrape_s: Some(10.0),
        };
        let mut scrapes = Vec::new();
        let w = run_scraped(&spec, &mut |s| {
            scrapes.push(s);
            true
        })
        .unwrap();
        let p95: Vec<f64> = w.iter().map(|w| w.p95_s).collect();
        assert!(p95[1] > 5.0, "the line for connections grows: {p95:?}");
        assert!(
            p95[3] < 0.2,
            "8 connections carry 60 calls a second: {p95:?}"
        );
        let pools: Vec<(usize, usize, usize)> = scrapes.iter().map(|s| s.pool.unwrap()).collect();
        assert!(
            pools[..11].iter().all(|p| p.0 == 2 && p.1 == 2),
            "{pools:?}"
        );
        // a worker waiting for a connection is held: the other 30 wait, the rest of the
        // requests in the replica's line
        assert_eq!(pools[6].2, 30, "{pools:?}");
        assert!(pools[15..].iter().all(|p| p.0 == 8 && p.2 < 8), "{pools:?}");
        // a connection is held for the call alone (no database line): its mean is the call
        // time's, 0.05 e^(0.3^2 / 2) = 0.0523 s; and, by Little's law over the last minute,
        // the connections in use average 60 x 0.0523 = 3.1
        let last: Vec<f64> = scrapes[18..]
            .iter()
            .flat_map(|s| s.db_use_s.iter().copied())
            .collect();
        let mean = last.iter().sum::<f64>() / last.len() as f64;
        assert!((mean - 0.0523).abs() < 0.003, "{mean}");
        let busy = last.iter().sum::<f64>() / 60.0;
        assert!((busy - 60.0 * 0.0523).abs() < 0.4, "{busy}");
    }

    #[test]
    fn a_cache_too_small_overloads_the_database_until_it_grows() {
        use crate::service::{CacheConfig, DbConfig};
        // 60 requests/s; a miss makes a 50 ms database call, the database serving 2 at once
        // (38 calls/s at most). 100 000 objects of Zipf(0.9) popularity: a cache of 1 000
        // answers 34.2 % (Che), so 39.5 misses/s overload the database; one of 9 000 answers
        // 59 %, 24.6 misses/s
        let rate = |_: f64| 60.0;
        let spec = RunSpec {
            service: ServiceConfig {
                workers: 64,
                median_s: 0.01,
                sigma: 0.3,
                db: Some(DbConfig {
                    pool_size: 64,
                    servers: 2,
                    median_s: 0.05,
                    sigma: 0.3,
                }),
                cache: Some(CacheConfig {
                    objects: 100_000,
                    alpha: 0.9,
                    size: 1000,
                }),
                ..ServiceConfig::default()
            },
            replicas: 1,
            rate: &rate,
            peak: 60.0,
            duration_s: 360.0,
            window_s: 60.0,
            scales: Vec::new(),
            tunes: vec![(180.0, CACHE_SETTING.into(), 9000.0)],
            seed: 5,
            paced: None,
            scrape_s: Some(10.0),
        };
        let mut scrapes = Vec::new();
        let w = run_scraped(&spec, &mut |s| {
            scrapes.push(s);
            true
        })
        .unwrap();
        let p95: Vec<f64> = w.iter().map(|w| w.p95_s).collect();
        assert!(p95[2] > 2.0, "the database's line grows: {p95:?}");
        assert!(p95[5] < 0.5, "{p95:?}");
        // the hits are Che's hit ratio of each size (binomial, 4 sigma)
        // (a scrape reports the size at its end: the one ending at 180 s, 9 000)
        for (from, to, size) in [(0, 17, 1000usize), (18, 36, 9000)] {
            let (hits, misses) = scrapes[from..to]
                .iter()
                .map(|s| s.cache.unwrap())
                .inspect(|c| assert_eq!(c.0, size))
                .fold((0u64, 0u64), |(h, m), c| (h + c.1, m + c.2));
            let n = (hits + misses) as f64;
            let expected = crate::cache::hit_ratio(&crate::cache::zipf(100_000, 0.9), size);
            let sd = (expected * (1.0 - expected) / n).sqrt();
            assert!(
                ((hits as f64 / n) - expected).abs() < 4.0 * sd,
                "size {size}: {hits} of {n}, expected {expected}"
            );
        }
    }
}
