use super::*;
use crate::events::Nanos;
use crate::load::Shape;
use crate::service::ServiceConfig;
use crate::topology::Topology;

/// The windows of `spec` and its entry's scrapes.
fn entry_scrapes(spec: &RunSpec<'_>) -> (Vec<Window>, Vec<Scrape>) {
    let mut scrapes = Vec::new();
    let w = run_scraped(spec, &mut |mut s| {
        scrapes.push(s.remove(0));
        true
    })
    .unwrap();
    (w, scrapes)
}
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
        duration_s: 360.0,
        scales: vec![(130.0, 6)],
        seed: 7,
        scrape_s: None,
        ..fleet_spec(
            Topology::single("checkout", ServiceConfig::default(), 2),
            &rate,
            load.peak(),
        )
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
        duration_s: 600.0,
        scales: vec![(300.0, 4)],
        seed: 11,
        ..fleet_spec(
            Topology::single("checkout", ServiceConfig::default(), 2),
            &rate,
            20.0,
        )
    };
    let (windows, scrapes) = entry_scrapes(&spec);
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
        seed: 3,
        ..fleet_spec(
            Topology::single(
                "checkout",
                ServiceConfig {
                    timeout,
                    ..ServiceConfig::default()
                },
                1,
            ),
            &rate,
            76.0,
        )
    };
    let mut ended = 0u64;
    let mut failed = 0u64;
    let w = run_scraped(&spec(Some(2_000_000_000)), &mut |mut s| {
        let s = s.remove(0);
        assert!(
            s.durations_s.iter().all(|d| *d <= 2.0),
            "answered after the timeout: {:?}",
            s.durations_s.iter().fold(0.0f64, |a, b| a.max(*b))
        );
        ended += s.durations_s.len() as u64;
        failed += s.failed;
        // each failure is in the scrape's failures, as a timeout, of a request that waited
        // past its caller's 2 s
        assert_eq!(s.failures_s.len() as u64, s.failed);
        assert!(s
            .failures_s
            .iter()
            .all(|(why, d)| *why == Failure::Timeout && *d > 2.0));
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
    // a line of at most 10 and no timeout: the requests it refuses fail at once, as
    // unavailable, and are every failure
    let limited = RunSpec {
        seed: 3,
        ..fleet_spec(
            Topology::single(
                "checkout",
                ServiceConfig {
                    queue_limit: Some(10),
                    ..ServiceConfig::default()
                },
                1,
            ),
            &rate,
            76.0,
        )
    };
    let mut refused = 0u64;
    run_scraped(&limited, &mut |mut s| {
        let s = s.remove(0);
        assert_eq!(s.failures_s.len() as u64, s.failed);
        assert!(s
            .failures_s
            .iter()
            .all(|(why, d)| *why == Failure::Unavailable && *d == 0.0));
        refused += s.failed;
        true
    })
    .unwrap();
    assert!(refused > 1_000, "{refused}");
}

#[test]
fn a_pool_too_small_holds_requests_back_until_it_grows() {
    use crate::service::DbConfig;
    // one replica of 32 workers (own work 10 ms: not the bottleneck) whose requests each
    // make a 50 ms database call (32 database servers: not one either) through a pool of
    // 2: 2 / 0.0523 s = 38 calls a second at most, offered 60. Grown to 8 at 120 s.
    let rate = |_: f64| 60.0;
    let spec = RunSpec {
        duration_s: 240.0,
        tunes: vec![(120.0, POOL_SETTING.into(), 8.0)],
        seed: 11,
        ..fleet_spec(
            Topology::single(
                "checkout",
                ServiceConfig {
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
                1,
            ),
            &rate,
            60.0,
        )
    };
    let (w, scrapes) = entry_scrapes(&spec);
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
        duration_s: 360.0,
        tunes: vec![(180.0, CACHE_SETTING.into(), 9000.0)],
        seed: 5,
        ..fleet_spec(
            Topology::single(
                "checkout",
                ServiceConfig {
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
                1,
            ),
            &rate,
            60.0,
        )
    };
    let (w, scrapes) = entry_scrapes(&spec);
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

/// A service of `workers` workers whose every request takes exactly `ms` (sigma 0).
fn exact(workers: usize, ms: f64) -> ServiceConfig {
    ServiceConfig {
        workers,
        median_s: ms / 1000.0,
        sigma: 0.0,
        ..ServiceConfig::default()
    }
}

fn fleet_spec<'a>(fleet: Topology, rate: &'a dyn Fn(f64) -> f64, peak: f64) -> RunSpec<'a> {
    RunSpec {
        fleet,
        rate,
        peak,
        duration_s: 120.0,
        window_s: 60.0,
        scales: Vec::new(),
        tunes: Vec::new(),
        seed: 21,
        paced: None,
        scrape_s: Some(10.0),
        trace_sample: 0.0,
    }
}

#[test]
fn a_fan_out_answers_with_its_slowest_call_and_a_message_is_not_waited_for() {
    use crate::topology::Node;
    // frontend: 10 ms of its own, then A (20 ms) and B (30 ms) at once, and a message to C
    // (50 ms): every request answered in 10 + max(20, 30) = 40 ms exactly, at a load low
    // enough (2/s over 100 workers each) that nothing waits
    let fleet = Topology {
        nodes: vec![
            Node::new("frontend", exact(100, 10.0), 1)
                .calls(1, 1.0)
                .calls(2, 1.0)
                .sends(3, 1.0),
            Node::new("a", exact(100, 20.0), 1),
            Node::new("b", exact(100, 30.0), 1),
            Node::new("c", exact(100, 50.0), 1),
        ],
    };
    let rate = |_: f64| 2.0;
    let spec = RunSpec {
        trace_sample: 1.0,
        ..fleet_spec(fleet, &rate, 2.0)
    };
    let mut per_node = vec![Vec::new(); 4];
    let mut spans = Vec::new();
    let w = run_scraped(&spec, &mut |s| {
        for (i, s) in s.into_iter().enumerate() {
            assert_eq!(s.failed, 0);
            per_node[i].extend(s.durations_s);
            spans.extend(s.spans);
        }
        true
    })
    .unwrap();
    let close = |d: &[f64], s: f64| d.iter().all(|d| (d - s).abs() < 1e-6);
    assert!(close(&per_node[0], 0.040), "{:?}", &per_node[0][..3]);
    assert!(close(&per_node[1], 0.020) && close(&per_node[2], 0.030));
    assert!(close(&per_node[3], 0.050));
    let n = per_node[0].len();
    assert!(n > 150, "{n}");
    // one call of each kind per request (the last message may still be on its way)
    assert!(per_node[1].len() == n && per_node[2].len() == n);
    assert!(per_node[3].len() + 1 >= n && per_node[3].len() <= n);
    assert!(w.iter().all(|w| w.p95_s > 0.0399 && w.p95_s < 0.0401));
    // every request traced, 7 spans: the servers of frontend, a and b, the frontend's two
    // client spans and its producer span, c's consumer span
    use apo_schemas::SpanKind;
    let of = |k: SpanKind| spans.iter().filter(|s| s.kind == k).count();
    assert_eq!(of(SpanKind::Server), 3 * n);
    assert_eq!((of(SpanKind::Client), of(SpanKind::Producer)), (2 * n, n));
    assert!(of(SpanKind::Consumer) + 1 >= n);
    let by_id: std::collections::HashMap<_, _> = spans.iter().map(|s| (s.span_id, s)).collect();
    for s in &spans {
        match s.kind {
            SpanKind::Server if s.service == "frontend" => {
                assert!(s.parent_span_id.is_none() && s.duration_ns() == 40_000_000)
            }
            SpanKind::Server | SpanKind::Consumer => {
                // its parent is its caller's client (or producer) span, whose parent is the
                // caller's server span, in the same trace
                let c = by_id[&s.parent_span_id.unwrap()];
                let p = by_id[&c.parent_span_id.unwrap()];
                assert_eq!(
                    (c.service.as_str(), p.service.as_str()),
                    ("frontend", "frontend")
                );
                assert_eq!((c.trace_id, p.trace_id), (s.trace_id, s.trace_id));
                assert_eq!(
                    c.attributes.contains_key("peer.service"),
                    s.kind == SpanKind::Server
                );
                assert_eq!(s.follows_from, s.kind == SpanKind::Consumer);
                if s.kind == SpanKind::Server {
                    assert_eq!(c.duration_ns(), s.duration_ns(), "{c:?} {s:?}");
                }
            }
            _ => {}
        }
    }
}

#[test]
fn a_failing_or_late_call_fails_its_caller() {
    use crate::topology::Node;
    let rate = |_: f64| 2.0;
    // B fails every request on its own: every frontend request fails, A's do not
    let fleet = Topology {
        nodes: vec![
            Node::new("frontend", exact(100, 10.0), 1)
                .calls(1, 1.0)
                .calls(2, 1.0),
            Node::new("a", exact(100, 20.0), 1),
            Node {
                error_rate: 1.0,
                ..Node::new("b", exact(100, 30.0), 1)
            },
        ],
    };
    let mut failed = [0u64; 3];
    let mut ok = [0usize; 3];
    let mut why: Vec<Vec<Failure>> = vec![Vec::new(); 3];
    let mut count = |failed: &mut [u64; 3], ok: &mut [usize; 3], s: Vec<Scrape>| {
        for (i, s) in s.into_iter().enumerate() {
            failed[i] += s.failed;
            ok[i] += s.durations_s.len();
            why[i].extend(s.failures_s.iter().map(|f| f.0));
        }
        true
    };
    let w = run_scraped(&fleet_spec(fleet.clone(), &rate, 2.0), &mut |s| {
        count(&mut failed, &mut ok, s)
    })
    .unwrap();
    assert!(w.iter().all(|w| w.failed == w.requests && w.requests > 0));
    assert_eq!((ok[0], ok[2], failed[1]), (0, 0, 0));
    // (a request still on its way at the last scrape may be counted at A and not yet at the
    // frontend)
    assert!(failed[0] > 150 && failed[2] == failed[0]);
    assert!(ok[1] as u64 >= failed[0] && ok[1] as u64 <= failed[0] + 1);

    // B answers in 30 ms but its callers wait 5 ms: B fails (late), so does the frontend,
    // once A has answered, at 30 ms
    let mut late = fleet;
    late.nodes[2].error_rate = 0.0;
    late.nodes[2].service.timeout = Some(5_000_000);
    let (mut failed, mut ok) = ([0u64; 3], [0usize; 3]);
    let spec = RunSpec {
        trace_sample: 1.0,
        ..fleet_spec(late, &rate, 2.0)
    };
    let mut spans = Vec::new();
    run_scraped(&spec, &mut |mut s| {
        for s in &mut s {
            spans.append(&mut s.spans);
        }
        count(&mut failed, &mut ok, s)
    })
    .unwrap();
    assert_eq!((ok[0], ok[2], failed[1]), (0, 0, 0));
    assert!(failed[0] > 150 && failed[2].abs_diff(failed[0]) <= 1);
    // why, as each one's duration records it: the frontend's failed by a call (500), A's
    // never, B's on its own (500) in the first fleet and late (timeout) in the second
    assert!(why[0].iter().all(|w| *w == Failure::Error) && why[0].len() > 300);
    assert!(why[1].is_empty());
    let late_b = why[2].iter().filter(|w| **w == Failure::Timeout).count() as u64;
    assert_eq!(late_b, failed[2]);
    assert!(why[2].iter().filter(|w| **w == Failure::Error).count() > 150);
    use apo_schemas::{SpanKind, SpanStatus};
    for s in &spans {
        if s.service == "frontend" && s.kind == SpanKind::Client && s.name == "GET /b" {
            // the caller gave up after 5 ms
            assert_eq!((s.duration_ns(), s.status), (5_000_000, SpanStatus::Error));
        }
        if s.service == "frontend" && s.kind == SpanKind::Server {
            assert_eq!((s.duration_ns(), s.status), (30_000_000, SpanStatus::Error));
        }
    }
}

#[test]
fn the_shop_splits_its_load_by_the_calls_chances_and_a_slow_backend_slows_the_frontend() {
    // 100 requests/s at the shop: each service gets its share (binomial, 5 sigma); the
    // frontend answers within its objective. At 160/s recommendation (60 % of it: 96/s over
    // 2 x 4 workers of 91 ms mean, 88/s at most) is overloaded: the frontend's p95 grows
    // while its own replicas stay nearly idle, its workers waiting for the calls.
    let shop = Topology::shop(&ServiceConfig::default(), 2);
    let run_at = |rps: f64| {
        let rate = move |_: f64| rps;
        let spec = fleet_spec(shop.clone(), &rate, rps);
        let mut n = vec![0u64; shop.nodes.len()];
        let mut busy = Vec::new();
        let w = run_scraped(&spec, &mut |s| {
            for (i, s) in s.iter().enumerate() {
                n[i] += s.durations_s.len() as u64 + s.failed;
            }
            busy.extend(s[0].utilization.iter().copied());
            true
        })
        .unwrap();
        let util = busy.iter().sum::<f64>() / busy.len() as f64;
        (w, n, util)
    };
    let (w, n, util) = run_at(100.0);
    // the failures are stripe-api's 0.5 % of the 10 % that check out: 0.05 %
    assert!(
        w.iter()
            .all(|w| w.p95_s < 0.5 && (w.failed as f64) < 0.002 * w.requests as f64),
        "{w:?}"
    );
    assert!(w.iter().map(|w| w.failed).sum::<u64>() > 0);
    let front = n[0] as f64;
    for (i, chance) in [
        (1, 0.9),
        (2, 0.6),
        (3, 0.4),
        (4, 0.1),
        (5, 0.1),
        (6, 0.1),
        (7, 0.1),
    ] {
        let sd = (front * chance * (1.0 - chance)).sqrt();
        assert!(
            (n[i] as f64 - front * chance).abs() < 5.0 * sd + 2.0,
            "{}: {} of {front}",
            shop.nodes[i].name,
            n[i]
        );
    }
    assert!(util < 0.05, "{util}");
    let (slow, _, util) = run_at(160.0);
    assert!(slow[1].p95_s > 5.0, "{slow:?}");
    assert!(util < 0.05, "{util}");
    let again = run_at(100.0).0;
    assert_eq!(again, w, "one history per seed");
}

#[test]
fn a_heap_too_small_stops_the_world_until_it_grows() {
    use crate::gc::HeapConfig;
    const MIB: f64 = 1024.0 * 1024.0;
    // 40 requests/s on one replica of 8 workers (50 ms median): about 2 in flight, 26 %
    // busy. Its heap of 480 MiB, 400 live (and 0.5 a request in flight), 4 MiB of garbage a
    // request: 80 MiB free, a collection every 20 requests (0.5 s) pausing at least
    // 20 ms / (1 - 400/480) = 120 ms: the world stops a quarter of the time and the tail
    // grows. Grown to 1 GiB at 120 s: 624 MiB free, a 33 ms pause every 3.9 s.
    let rate = |_: f64| 40.0;
    let heap = HeapConfig {
        limit_bytes: 480.0 * MIB,
        live_bytes: 400.0 * MIB,
        request_live_bytes: 0.5 * MIB,
        request_alloc_bytes: 4.0 * MIB,
        young_pause_s: 0.02,
    };
    let service = ServiceConfig {
        workers: 8,
        median_s: 0.05,
        heap: Some(heap.clone()),
        ..ServiceConfig::default()
    };
    let spec = RunSpec {
        duration_s: 240.0,
        tunes: vec![(120.0, HEAP_SETTING.into(), 1024.0 * MIB)],
        ..fleet_spec(
            Topology::single("checkout", service.clone(), 1),
            &rate,
            40.0,
        )
    };
    let (w, scrapes) = entry_scrapes(&spec);
    let p95: Vec<f64> = w.iter().map(|w| w.p95_s).collect();
    eprintln!("p95 per minute {p95:?}");
    assert!(p95[1] > 0.15 && p95[3] < 0.1, "{p95:?}");
    let pauses = |from: usize, to: usize| -> Vec<f64> {
        scrapes[from..to]
            .iter()
            .flat_map(|s| s.gc_pauses_s.iter().copied())
            .collect()
    };
    let (small, large) = (pauses(6, 12), pauses(18, 24));
    // each pause is the formula's at the live set of its moment: at least the one with
    // nothing in flight
    let at = |limit: f64, in_flight: usize| {
        crate::gc::pause_s(
            0.02,
            crate::gc::occupancy(heap.live(in_flight), limit * MIB),
        )
    };
    assert!(small.iter().all(|p| *p >= at(480.0, 0) - 1e-9), "{small:?}");
    let stopped = small.iter().sum::<f64>() / 60.0;
    assert!(stopped > 0.15 && stopped < 0.5, "{stopped}");
    assert!(large.iter().all(|p| *p < at(1024.0, 40)), "{large:?}");
    assert!(!large.is_empty() && large.iter().sum::<f64>() < 0.02 * 60.0);
    // the collector's threads take the cores: the pod looks busier while it pauses
    let busy = |from: usize, to: usize| {
        scrapes[from..to]
            .iter()
            .map(|s| s.utilization[0])
            .sum::<f64>()
            / (to - from) as f64
    };
    assert!(
        busy(6, 12) > busy(18, 24) + 0.1,
        "{} {}",
        busy(6, 12),
        busy(18, 24)
    );
    let (limit, used) = scrapes[20].heap.clone().unwrap();
    assert_eq!(limit, 1024.0 * MIB);
    assert!(used[0] >= 400.0 * MIB && used[0] < 1024.0 * MIB);

    // the heap's arithmetic: no live memory per request, so a collection every 80 / 4 = 20
    // requests, each exactly 20 ms / (1 - 400/480) = 120 ms
    let steady = ServiceConfig {
        workers: 64,
        heap: Some(HeapConfig {
            request_live_bytes: 0.0,
            ..heap
        }),
        ..service
    };
    let rate = |_: f64| 10.0;
    let (_, scrapes) = entry_scrapes(&fleet_spec(
        Topology::single("checkout", steady, 1),
        &rate,
        10.0,
    ));
    let served: usize = scrapes.iter().map(|s| s.durations_s.len()).sum();
    let pauses: Vec<f64> = scrapes.iter().flat_map(|s| s.gc_pauses_s.clone()).collect();
    assert!(pauses.iter().all(|p| (p - 0.12).abs() < 1e-9), "{pauses:?}");
    // (requests still in service at the end have allocated, and are not counted served)
    assert!(
        pauses.len() >= served / 20 && pauses.len() <= served / 20 + 1,
        "{} pauses for {served} requests",
        pauses.len()
    );
}
