//! A service of the fleet: replicas of `workers` workers each (a [`Station`] per replica), a
//! start-up delay before a new replica takes traffic, and a heavy-tailed (log-normal) service
//! time. A job goes to the ready replica with the fewest jobs (ties: the oldest replica); a
//! replica scaled away takes no new job and leaves once its jobs are done. The control API,
//! [`Service::scale_to`], is bounded: 0 to `max_replicas` (a count is unsigned; more than the
//! most is refused, nothing changed).

use rand::Rng;
use rand_distr::{Distribution, LogNormal};

use crate::events::Nanos;
use crate::gc::{Heap, HeapConfig};
use crate::queue::pool::Pool;
use crate::queue::station::Station;

/// A service's database: each replica's connection pool to it, and the database itself, a
/// station of `servers` shared by the replicas, with a log-normal time per call.
#[derive(Debug, Clone, PartialEq)]
pub struct DbConfig {
    /// Connections in each replica's pool at the start.
    pub pool_size: usize,
    /// Calls the database serves at once.
    pub servers: usize,
    /// The median time of a call, seconds.
    pub median_s: f64,
    /// The log-normal's σ of a call's time.
    pub sigma: f64,
}

/// A service's cache in front of its database: requests for `objects` objects with Zipf
/// popularity `alpha`, an LRU cache of `size` of them; a hit answers without the database
/// call, with the hit ratio Che's approximation gives for the size (`cache.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Objects requested.
    pub objects: usize,
    /// The Zipf exponent of their popularity.
    pub alpha: f64,
    /// Objects the cache holds at the start.
    pub size: usize,
}

/// A database call: the request's job, on a replica, holding a connection since a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The replica whose pool lent the connection.
    pub replica: u64,
    /// The request.
    pub job: Job,
    /// When it took the connection, ns.
    pub acquired: Nanos,
}

/// A service's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Workers per replica (jobs one replica serves at once).
    pub workers: usize,
    /// How long a new replica takes before it serves, ns.
    pub startup: Nanos,
    /// The most replicas it may be scaled to.
    pub max_replicas: u32,
    /// The median service time, seconds.
    pub median_s: f64,
    /// The log-normal's σ (the tail: 0.5 gives a p99 about 3.2 times the median).
    pub sigma: f64,
    /// How long a caller waits for its answer, ns (`None`: for ever). A request that has
    /// waited this long in line is abandoned when its turn comes (not served), and one
    /// answered later than this after it arrived came too late: either fails.
    pub timeout: Option<Nanos>,
    /// Requests one replica's line holds at most (`None`: no limit): a request that would
    /// wait in a full line is refused.
    pub queue_limit: Option<usize>,
    /// Its database, when each request makes one call to it (before its own work): a
    /// connection from its replica's pool, held while the call waits for and is served by
    /// the database.
    pub db: Option<DbConfig>,
    /// Its cache in front of the database (with `db`).
    pub cache: Option<CacheConfig>,
    /// The median service time of its stable version, seconds: a rollback sets the service
    /// time to it (`None`: nothing to roll back to, a rollback changes nothing).
    pub stable_median_s: Option<f64>,
    /// Each replica's garbage-collected heap (`gc.rs`): its collections stop the replica's
    /// workers (`None`: no collector).
    pub heap: Option<HeapConfig>,
}

impl Default for ServiceConfig {
    /// A web service's replica: 4 workers, a 100 ms median service time with σ 0.3, 30 s to
    /// start, at most 10 replicas (one replica carries about 38 requests a second).
    fn default() -> Self {
        ServiceConfig {
            workers: 4,
            startup: 30_000_000_000,
            max_replicas: 10,
            median_s: 0.1,
            sigma: 0.3,
            timeout: None,
            queue_limit: None,
            db: None,
            cache: None,
            stable_median_s: None,
            heap: None,
        }
    }
}

impl ServiceConfig {
    /// Requests a second a replica's workers serve flat out on their own work: workers over
    /// the log-normal service time's mean, median × e^(σ²/2) (what its CPU utilisation reads
    /// 100 % at; a worker held waiting for its database or its calls is not counted busy).
    pub fn per_replica(&self) -> f64 {
        self.workers as f64 / (self.median_s * (self.sigma * self.sigma / 2.0).exp())
    }
}

/// A job: its number and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Its number.
    pub id: u64,
    /// When it arrived, ns.
    pub arrived: Nanos,
}

/// Where an arriving job went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// It started at once on this replica (schedule its end).
    Started(u64),
    /// It waits in this replica's line.
    Queued(u64),
    /// No replica is ready, or the one picked has a full line: refused (the caller counts it
    /// failed).
    Refused,
}

/// What began when a job began its work ([`Service::begin_work`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begun {
    /// The collection its garbage started, its pause, ns.
    pub pause: Option<Nanos>,
    /// How long from now the world stands still (a pause going on, or the one it started):
    /// its work ends that much later.
    pub stalled: Nanos,
    /// The replica's pauses so far: pauses after this put its end off further.
    pub mark: Nanos,
}

/// Why a scale was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{asked} replicas is more than the most, {max}: nothing changed")]
pub struct TooMany {
    /// Replicas asked for.
    pub asked: u32,
    /// The most allowed.
    pub max: u32,
}

#[derive(Debug)]
struct Replica {
    id: u64,
    ready_at: Nanos,
    leaving: bool,
    station: Station<Job>,
    jobs: usize,
    /// Service time of the jobs started since the last [`Service::utilization`], ns.
    busy: Nanos,
    /// Its connection pool to the database (size 0 without one).
    pool: Pool<Job>,
    /// Its heap (unused without `cfg.heap`).
    heap: Heap,
}

/// One service.
#[derive(Debug)]
pub struct Service {
    cfg: ServiceConfig,
    service_time: LogNormal<f64>,
    replicas: Vec<Replica>,
    next_id: u64,
    /// The database: its station and call time (with `cfg.db`).
    db: Option<(Station<Call>, LogNormal<f64>)>,
    /// Each replica's pool size now.
    pool_size: usize,
    /// The cache: its objects' popularity, its size and its hit ratio at that size.
    cache: Option<(Vec<f64>, usize, f64)>,
    /// Each replica's heap limit now, bytes (with `cfg.heap`).
    heap_limit: f64,
}

impl Service {
    /// A service of `replicas` replicas, all ready at time 0.
    pub fn new(cfg: ServiceConfig, replicas: u32) -> Result<Self, String> {
        if !(cfg.median_s.is_finite() && cfg.median_s > 0.0 && cfg.sigma.is_finite()) {
            return Err(format!(
                "a service time needs a positive median and a finite sigma (got {} s, {})",
                cfg.median_s, cfg.sigma
            ));
        }
        let service_time = LogNormal::new(cfg.median_s.ln(), cfg.sigma).map_err(|e| {
            format!(
                "service time (median {} s, sigma {}): {e}",
                cfg.median_s, cfg.sigma
            )
        })?;
        if cfg.workers == 0 {
            return Err("a replica needs at least one worker".into());
        }
        let db = match &cfg.db {
            Some(d) => {
                if d.servers == 0 || !(d.median_s.is_finite() && d.median_s > 0.0) {
                    return Err(format!(
                        "a database needs a server and a positive call time (got {} servers, \
                         {} s)",
                        d.servers, d.median_s
                    ));
                }
                let t = LogNormal::new(d.median_s.ln(), d.sigma)
                    .map_err(|e| format!("database call time: {e}"))?;
                Some((Station::new(d.servers), t))
            }
            None => None,
        };
        let pool_size = cfg.db.as_ref().map_or(0, |d| d.pool_size);
        let cache = match &cfg.cache {
            Some(_) if cfg.db.is_none() => {
                return Err("a cache is in front of a database: give the service one".into())
            }
            Some(c) => {
                if c.objects == 0 || !(c.alpha.is_finite() && c.alpha > 0.0) {
                    return Err(format!(
                        "a cache needs objects and a positive Zipf exponent (got {}, {})",
                        c.objects, c.alpha
                    ));
                }
                let p = crate::cache::zipf(c.objects, c.alpha);
                let h = crate::cache::hit_ratio(&p, c.size);
                Some((p, c.size, h))
            }
            None => None,
        };
        if let Some(h) = &cfg.heap {
            h.check()?;
        }
        let heap_limit = cfg.heap.as_ref().map_or(0.0, |h| h.limit_bytes);
        let mut s = Service {
            cfg,
            service_time,
            replicas: Vec::new(),
            next_id: 0,
            db,
            pool_size,
            cache,
            heap_limit,
        };
        s.scale_to(replicas, 0).map_err(|e| e.to_string())?;
        for r in &mut s.replicas {
            r.ready_at = 0;
        }
        Ok(s)
    }

    /// Scales to `n` replicas at `now`: new ones serve from `now` + the start-up delay; the
    /// ones removed (those not ready yet first, then the newest) take no new job. Returns the
    /// replicas before.
    pub fn scale_to(&mut self, n: u32, now: Nanos) -> Result<u32, TooMany> {
        if n > self.cfg.max_replicas {
            return Err(TooMany {
                asked: n,
                max: self.cfg.max_replicas,
            });
        }
        let before = self.replicas();
        let mut staying = before;
        while staying < n {
            self.replicas.push(Replica {
                id: self.next_id,
                ready_at: now.saturating_add(self.cfg.startup),
                leaving: false,
                station: Station::new(self.cfg.workers),
                jobs: 0,
                busy: 0,
                pool: Pool::new(self.pool_size),
                heap: Heap::default(),
            });
            self.next_id += 1;
            staying += 1;
        }
        while staying > n {
            // the last not yet ready, else the newest
            let pick = self
                .replicas
                .iter()
                .rposition(|r| !r.leaving && r.ready_at > now)
                .or_else(|| self.replicas.iter().rposition(|r| !r.leaving));
            match pick {
                Some(i) => self.replicas[i].leaving = true,
                None => break,
            }
            staying -= 1;
        }
        self.replicas.retain(|r| !(r.leaving && r.jobs == 0));
        Ok(before)
    }

    /// Replicas it is scaled to (ready or starting).
    pub fn replicas(&self) -> u32 {
        self.replicas.iter().filter(|r| !r.leaving).count() as u32
    }

    /// Replicas serving at `now`.
    pub fn ready(&self, now: Nanos) -> u32 {
        self.replicas
            .iter()
            .filter(|r| !r.leaving && r.ready_at <= now)
            .count() as u32
    }

    /// Jobs in service or waiting.
    pub fn jobs(&self) -> usize {
        self.replicas.iter().map(|r| r.jobs).sum()
    }

    /// A job arrives at `now`.
    pub fn arrive(&mut self, job: Job, now: Nanos) -> Arrival {
        let pick = self
            .replicas
            .iter_mut()
            .filter(|r| !r.leaving && r.ready_at <= now)
            .min_by_key(|r| r.jobs);
        let Some(r) = pick else {
            return Arrival::Refused;
        };
        if let Some(limit) = self.cfg.queue_limit {
            if r.jobs >= self.cfg.workers + limit {
                return Arrival::Refused;
            }
        }
        r.jobs += 1;
        match r.station.arrive(job) {
            Some(_) => Arrival::Started(r.id),
            None => Arrival::Queued(r.id),
        }
    }

    /// A job ended on replica `id`: the next job that starts there, if one waits.
    pub fn finish(&mut self, id: u64) -> Option<Job> {
        let i = self.replicas.iter().position(|r| r.id == id)?;
        let r = &mut self.replicas[i];
        r.jobs = r.jobs.saturating_sub(1);
        let next = r.station.finish();
        if next.is_none() && r.leaving && r.jobs == 0 {
            self.replicas.remove(i);
        }
        next
    }

    fn replica(&self, id: u64) -> Option<&Replica> {
        self.replicas.iter().find(|r| r.id == id)
    }

    fn replica_mut(&mut self, id: u64) -> Option<&mut Replica> {
        self.replicas.iter_mut().find(|r| r.id == id)
    }

    /// Each serving replica's utilisation over the `interval` ns ending at `now`: the service
    /// time credited to it since the last call over its workers' time in the interval, at
    /// most 1 (a replica that was not serving all of it counts only its serving part). The
    /// credits start again from zero.
    pub fn utilization(&mut self, now: Nanos, interval: Nanos) -> Vec<f64> {
        let workers = self.cfg.workers as f64;
        let from = now.saturating_sub(interval);
        let mut out = Vec::new();
        for r in &mut self.replicas {
            let busy = std::mem::take(&mut r.busy);
            if r.leaving || r.ready_at > now {
                continue;
            }
            let serving = now - r.ready_at.max(from);
            let u = if serving == 0 {
                0.0
            } else {
                busy as f64 / (workers * serving as f64)
            };
            out.push(u.min(1.0));
        }
        out
    }

    /// A job on replica `id` begins `took` ns of work at `now`: the work counts as the
    /// replica's busy time; its garbage goes on the replica's heap (with one), and when that
    /// starts a collection, the pause counts as busy time of every worker (the collector's
    /// threads take the cores). What began: see [`Begun`] (`None` when the replica is gone).
    pub fn begin_work(&mut self, id: u64, took: Nanos, now: Nanos) -> Option<Begun> {
        let (heap, limit, workers) = (self.cfg.heap.as_ref(), self.heap_limit, self.cfg.workers);
        let r = self.replicas.iter_mut().find(|r| r.id == id)?;
        r.busy = r.busy.saturating_add(took);
        let pause = heap.and_then(|cfg| r.heap.allocate(cfg, limit, r.jobs, now));
        if let Some(p) = pause {
            r.busy = r.busy.saturating_add(p.saturating_mul(workers as Nanos));
        }
        Some(Begun {
            pause,
            stalled: r.heap.paused_until().saturating_sub(now),
            mark: r.heap.paused_total(),
        })
    }

    /// When replica `id`'s world runs again (0 without a heap, or when it is gone).
    pub fn stalled_until(&self, id: u64) -> Nanos {
        self.replica(id).map_or(0, |r| r.heap.paused_until())
    }

    /// Replica `id`'s pauses so far, ns (0 without a heap, or when it is gone).
    pub fn paused_total(&self, id: u64) -> Nanos {
        self.replica(id).map_or(0, |r| r.heap.paused_total())
    }

    /// Sets every replica's heap limit (with a heap) to `bytes`.
    pub fn resize_heap(&mut self, bytes: f64) {
        if self.cfg.heap.is_some() && bytes.is_finite() && bytes > 0.0 {
            self.heap_limit = bytes;
        }
    }

    /// With a heap: its limit, and each serving replica's heap in use at `now` (its live set
    /// and the garbage not yet collected), bytes.
    pub fn heaps(&self, now: Nanos) -> Option<(f64, Vec<f64>)> {
        let cfg = self.cfg.heap.as_ref()?;
        let used = self
            .replicas
            .iter()
            .filter(|r| !r.leaving && r.ready_at <= now)
            .map(|r| cfg.live(r.jobs) + r.heap.garbage())
            .collect();
        Some((self.heap_limit, used))
    }

    /// A service time, ns.
    pub fn service_time<R: Rng>(&self, rng: &mut R) -> Nanos {
        (self.service_time.sample(rng) * 1e9).round() as Nanos
    }

    /// Rolls back to the stable version: its service time's median from now on. `false`
    /// when it has none to roll back to.
    pub fn roll_back(&mut self) -> bool {
        let Some(m) = self
            .cfg
            .stable_median_s
            .filter(|m| m.is_finite() && *m > 0.0)
        else {
            return false;
        };
        match LogNormal::new(m.ln(), self.cfg.sigma) {
            Ok(t) => {
                self.service_time = t;
                self.cfg.median_s = m;
                true
            }
            Err(_) => false,
        }
    }

    /// Whether its requests call a database.
    pub fn has_db(&self) -> bool {
        self.db.is_some()
    }

    /// A database call's time, ns (0 without a database).
    pub fn db_time<R: Rng>(&self, rng: &mut R) -> Nanos {
        self.db
            .as_ref()
            .map_or(0, |(_, t)| (t.sample(rng) * 1e9).round() as Nanos)
    }

    /// The job started on replica `id` asks its pool for a connection at `now`: the call to
    /// make at once, or `None` (it waits for a connection; also when the replica is gone).
    pub fn acquire(&mut self, id: u64, job: Job, now: Nanos) -> Option<Call> {
        let r = self.replica_mut(id)?;
        r.pool.acquire(job).map(|job| Call {
            replica: id,
            job,
            acquired: now,
        })
    }

    /// A call's connection goes back to its replica's pool at `now`: the call of the job that
    /// takes it, if one waits.
    pub fn release(&mut self, call: &Call, now: Nanos) -> Option<Call> {
        let r = self.replica_mut(call.replica)?;
        r.pool.release().map(|job| Call {
            replica: call.replica,
            job,
            acquired: now,
        })
    }

    /// Sets every replica's pool (and new ones') to `size` at `now`: the calls of the jobs
    /// that take the connections a larger pool frees.
    pub fn resize_pools(&mut self, size: usize, now: Nanos) -> Vec<Call> {
        self.pool_size = size;
        let mut out = Vec::new();
        for r in &mut self.replicas {
            let id = r.id;
            out.extend(r.pool.resize(size).into_iter().map(|job| Call {
                replica: id,
                job,
                acquired: now,
            }));
        }
        out
    }

    /// Each replica's pool size, connections in use and callers waiting, summed.
    pub fn pools(&self) -> (usize, usize, usize) {
        let used = self.replicas.iter().map(|r| r.pool.used()).sum();
        let waiting = self.replicas.iter().map(|r| r.pool.waiting()).sum();
        (self.pool_size, used, waiting)
    }

    /// Whether a request is answered from the cache (`u`, uniform in [0, 1), under the hit
    /// ratio); always `false` without one.
    pub fn cache_hit(&self, u: f64) -> bool {
        self.cache.as_ref().is_some_and(|(_, _, h)| u < *h)
    }

    /// The cache's size and hit ratio, with one.
    pub fn cache(&self) -> Option<(usize, f64)> {
        self.cache.as_ref().map(|(_, size, h)| (*size, *h))
    }

    /// Resizes the cache (with one) to `size` objects: its hit ratio is that size's from now.
    pub fn resize_cache(&mut self, size: usize) {
        if let Some((p, s, h)) = &mut self.cache {
            *s = size;
            *h = crate::cache::hit_ratio(p, size);
        }
    }

    /// A call reaches the database: `Some` when it is served at once (schedule its end).
    pub fn db_arrive(&mut self, call: Call) -> Option<Call> {
        match &mut self.db {
            Some((station, _)) => station.arrive(call),
            None => Some(call),
        }
    }

    /// A database call ended: the next one it serves, if one waits.
    pub fn db_finish(&mut self) -> Option<Call> {
        self.db.as_mut().and_then(|(station, _)| station.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const S: Nanos = 1_000_000_000;

    fn cfg() -> ServiceConfig {
        ServiceConfig {
            workers: 1,
            startup: 30 * S,
            max_replicas: 3,
            median_s: 0.1,
            sigma: 0.5,
            ..ServiceConfig::default()
        }
    }

    fn job(id: u64, at: Nanos) -> Job {
        Job { id, arrived: at }
    }

    #[test]
    fn a_new_replica_serves_only_after_its_start_up_delay() {
        let mut s = Service::new(cfg(), 1).unwrap();
        assert_eq!(s.arrive(job(0, 0), 0), Arrival::Started(0));
        assert_eq!(s.scale_to(2, 0), Ok(1));
        assert_eq!((s.replicas(), s.ready(10 * S)), (2, 1));
        // at 10 s the new replica is starting: the job waits behind the busy one
        assert_eq!(s.arrive(job(1, 10 * S), 10 * S), Arrival::Queued(0));
        // at 30 s it serves
        assert_eq!(s.ready(30 * S), 2);
        assert_eq!(s.arrive(job(2, 30 * S), 30 * S), Arrival::Started(1));
        assert_eq!(s.finish(0), Some(job(1, 10 * S)), "the one waiting starts");
    }

    #[test]
    fn the_control_api_is_bounded_and_a_replica_removed_finishes_its_jobs() {
        let mut s = Service::new(cfg(), 2).unwrap();
        assert_eq!(
            s.scale_to(4, 0),
            Err(TooMany { asked: 4, max: 3 }),
            "over the most: refused"
        );
        assert_eq!(s.replicas(), 2, "nothing changed");
        assert_eq!(s.arrive(job(0, 0), 0), Arrival::Started(0));
        assert_eq!(s.arrive(job(1, 0), 0), Arrival::Started(1));
        assert_eq!(s.arrive(job(2, 0), 0), Arrival::Queued(0));
        // down to none: both leave once their jobs are done; nothing new is taken
        assert_eq!(s.scale_to(0, S), Ok(2));
        assert_eq!((s.replicas(), s.jobs()), (0, 3));
        assert_eq!(s.arrive(job(3, S), S), Arrival::Refused);
        assert_eq!(s.finish(0), Some(job(2, 0)), "its line is still served");
        assert_eq!(s.finish(1), None);
        assert_eq!(s.finish(0), None);
        assert_eq!(s.jobs(), 0);
        assert_eq!(s.finish(0), None, "gone");
        // starting replicas are removed before ready ones
        let mut s = Service::new(cfg(), 1).unwrap();
        s.scale_to(3, 0).unwrap();
        s.scale_to(2, 5 * S).unwrap();
        assert_eq!((s.replicas(), s.ready(5 * S), s.ready(30 * S)), (2, 1, 2));
    }

    #[test]
    fn service_times_are_log_normal_around_their_median() {
        let s = Service::new(cfg(), 1).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let mut t: Vec<Nanos> = (0..100_000).map(|_| s.service_time(&mut rng)).collect();
        t.sort_unstable();
        let q = |p: f64| t[(p * (t.len() - 1) as f64) as usize] as f64 / 1e9;
        // median 0.1 s; p99 = median x e^(2.326 sigma) = 0.320 s
        assert!((q(0.5) - 0.1).abs() / 0.1 < 0.02, "median {}", q(0.5));
        assert!(
            (q(0.99) - 0.1 * (2.326f64 * 0.5).exp()).abs() / 0.32 < 0.05,
            "p99 {}",
            q(0.99)
        );
        assert!(Service::new(
            ServiceConfig {
                median_s: -1.0,
                ..cfg()
            },
            1
        )
        .is_err());
        assert!(Service::new(
            ServiceConfig {
                workers: 0,
                ..cfg()
            },
            1
        )
        .is_err());
    }

    #[test]
    fn a_full_line_refuses() {
        let mut s = Service::new(
            ServiceConfig {
                queue_limit: Some(1),
                ..cfg()
            },
            1,
        )
        .unwrap();
        assert_eq!(s.arrive(job(0, 0), 0), Arrival::Started(0));
        assert_eq!(s.arrive(job(1, 0), 0), Arrival::Queued(0));
        assert_eq!(
            s.arrive(job(2, 0), 0),
            Arrival::Refused,
            "one worker, one waiting"
        );
        assert_eq!(s.finish(0), Some(job(1, 0)));
        assert_eq!(s.arrive(job(3, 0), 0), Arrival::Queued(0), "room again");
    }

    #[test]
    fn a_rollback_returns_to_the_stable_service_time() {
        let mut rng = StdRng::seed_from_u64(9);
        let median = |s: &Service, rng: &mut StdRng| {
            let mut t: Vec<Nanos> = (0..20_001).map(|_| s.service_time(rng)).collect();
            t.sort_unstable();
            t[10_000] as f64 / 1e9
        };
        let mut s = Service::new(cfg(), 1).unwrap();
        assert!(!s.roll_back(), "no stable version: nothing to go back to");
        let mut s2 = Service::new(
            ServiceConfig {
                median_s: 0.2,
                stable_median_s: Some(0.1),
                ..cfg()
            },
            1,
        )
        .unwrap();
        assert!((median(&s2, &mut rng) - 0.2).abs() < 0.01);
        assert!(s2.roll_back());
        assert!((median(&s2, &mut rng) - 0.1).abs() < 0.005);
        assert!((median(&s, &mut rng) - 0.1).abs() < 0.005, "unchanged");
    }
}
