//! The requests' way through the fleet, event by event. A request is a job of one node's
//! service, known by its id for as long as it is in the fleet; a synchronous call counts as
//! pending on its caller until it is answered or its timeout passes, and the caller completes
//! (and frees its worker for the next in its replica's line) when nothing is pending.
//!
//! Work that follows from an event at the same instant (a job that starts, a database call
//! that takes a connection, own work that begins) is queued and settled before the next
//! event is taken, in that order, so a seed gives one history.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::spans::{self, Ids, Traced};
use super::{
    ns, rounded_rank, Failure, RunSpec, Scrape, Window, CACHE_SETTING, HEAP_SETTING, NS,
    POOL_SETTING,
};
use crate::control::board::Command;
use crate::events::{Events, Nanos};
use crate::load::next_arrival;
use crate::service::{Arrival, Begun, Call, Job, Service};

/// Under this, a paced run does not sleep to let the wall clock catch up.
const PACE_SLACK: Duration = Duration::from_millis(2);

enum Event {
    /// A user request arrives at the entry.
    Arrival,
    /// A request's own work ended: node, replica, request, and the replica's pauses when
    /// its end was last set (pauses since then put it off).
    Worked(usize, u64, u64, Nanos),
    /// The world of a replica runs again: a job held back by its pause begins its work:
    /// node, replica, job.
    Resume(usize, u64, Job),
    /// A database call of a node ended.
    DbDone(usize, Call),
    /// The caller of a synchronous call stops waiting for it.
    Timeout(u64),
    /// The entry scaled.
    Scale(u32),
    /// A setting of the entry tuned.
    Tune(String, f64),
    Scrape,
}

/// A request in the fleet.
struct Request {
    node: usize,
    arrived: Nanos,
    /// The replica serving it, once it started.
    replica: Option<u64>,
    /// The request waiting for its answer (it is a synchronous call), while it still waits.
    caller: Option<u64>,
    /// The node that sent it (a call or a message), for its client span.
    from: Option<usize>,
    /// Calls it waits for (and 1 while it is making them).
    pending: usize,
    /// A call it made failed.
    failed: bool,
    /// Its place in its trace, when sampled.
    traced: Option<Traced>,
}

/// Whether an answer this long after the request arrived is later than `timeout`.
fn late(timeout: Option<Nanos>, waited: Nanos) -> bool {
    timeout.is_some_and(|t| waited > t)
}

/// A run in progress.
pub(super) struct Sim<'s, 'a> {
    spec: &'s RunSpec<'a>,
    rng: StdRng,
    services: Vec<Service>,
    events: Events<Event>,
    requests: HashMap<u64, Request>,
    next_id: u64,
    ids: Ids,
    /// Each node's scrape interval so far.
    scrapes: Vec<Scrape>,
    /// Per window of user requests: the entry's (replicas, serving) at its start, the
    /// latencies of those answered, those failed.
    state: Vec<(u32, u32)>,
    latencies: Vec<Vec<f64>>,
    failed: Vec<u64>,
    next_window: usize,
    /// Jobs that start now, database calls that took a connection now, own work that begins
    /// now: (node, replica, job) and (node, call).
    starts: Vec<(usize, u64, Job)>,
    calls: Vec<(usize, Call)>,
    own: Vec<(usize, u64, Job)>,
    /// Each node's serving replicas last reported to the board (paced).
    reported: Vec<u32>,
}

impl<'s, 'a> Sim<'s, 'a> {
    /// A run of `spec` (its fleet checked) at time 0.
    pub(super) fn new(spec: &'s RunSpec<'a>) -> Result<Self, String> {
        let services = spec
            .fleet
            .nodes
            .iter()
            .map(|n| {
                Service::new(n.service.clone(), n.replicas)
                    .map_err(|e| format!("`{}`: {e}", n.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let windows = (spec.duration_s / spec.window_s).ceil().max(1.0) as usize;
        let every = spec.scrape_s.filter(|s| s.is_finite() && *s > 0.0);
        let scrapes = services
            .iter()
            .map(|s| {
                Scrape::empty(
                    0.0,
                    every.unwrap_or(0.0),
                    s.cache().map(|(size, _)| (size, 0, 0)),
                )
            })
            .collect();
        Ok(Sim {
            spec,
            rng: StdRng::seed_from_u64(spec.seed),
            services,
            events: Events::default(),
            requests: HashMap::new(),
            next_id: 0,
            ids: Ids::default(),
            scrapes,
            state: vec![(0, 0); windows],
            latencies: vec![Vec::new(); windows],
            failed: vec![0; windows],
            next_window: 0,
            starts: Vec::new(),
            calls: Vec::new(),
            own: Vec::new(),
            reported: vec![u32::MAX; spec.fleet.nodes.len()],
        })
    }

    fn window_of(&self, t: Nanos) -> usize {
        ((t as f64 / NS / self.spec.window_s) as usize).min(self.state.len() - 1)
    }

    fn scraped(&self) -> bool {
        self.spec.scrape_s.is_some_and(|s| s.is_finite() && s > 0.0)
    }

    fn next_arrival(&mut self, from_s: f64) {
        let s = self.spec;
        if let Some(t) = next_arrival(&mut self.rng, from_s, s.duration_s, s.peak, s.rate) {
            self.events.at(ns(t), Event::Arrival);
        }
    }

    /// Runs to the end, handing each scrape to `scraped`.
    pub(super) fn run(
        mut self,
        scraped: &mut dyn FnMut(Vec<Scrape>) -> bool,
    ) -> Result<Vec<Window>, String> {
        let spec = self.spec;
        for &(at, n) in &spec.scales {
            self.events.at(ns(at), Event::Scale(n));
        }
        for (at, setting, value) in &spec.tunes {
            self.events
                .at(ns(*at), Event::Tune(setting.clone(), *value));
        }
        self.next_arrival(0.0);
        if self.scraped() {
            let every = self.scrapes[0].every_s;
            self.events.at(ns(every), Event::Scrape);
        }
        let wall = Instant::now();
        while let Some((now, e)) = self.events.pop() {
            self.pace(wall, now);
            while self.next_window < self.state.len()
                && ns(self.next_window as f64 * spec.window_s) <= now
            {
                let at = ns(self.next_window as f64 * spec.window_s);
                self.state[self.next_window] =
                    (self.services[0].replicas(), self.services[0].ready(at));
                self.next_window += 1;
            }
            match e {
                Event::Arrival => {
                    let id = self.new_request(0, now, None, None);
                    if spec.trace_sample > 0.0 && self.rng.random::<f64>() < spec.trace_sample {
                        let t = self.ids.root(spec.seed);
                        if let Some(r) = self.requests.get_mut(&id) {
                            r.traced = Some(t);
                        }
                    }
                    self.next_arrival(now as f64 / NS);
                    self.arrive(id, now);
                }
                Event::Worked(node, r, id, mark) => {
                    // the world stopped while it worked: it ends that much later
                    let total = self.services[node].paused_total(r);
                    if total > mark {
                        self.events
                            .at(now + (total - mark), Event::Worked(node, r, id, total));
                    } else {
                        self.worked(node, id, now);
                    }
                }
                Event::DbDone(node, c) => self.db_done(node, c, now),
                Event::Resume(node, r, job) => self.own.push((node, r, job)),
                Event::Timeout(id) => self.give_up(id, now),
                Event::Scale(n) => {
                    self.services[0]
                        .scale_to(n, now)
                        .map_err(|e| e.to_string())?;
                }
                Event::Tune(setting, value) => self.tune(0, &setting, value, now),
                Event::Scrape => {
                    if !self.scrape(now, scraped) {
                        let end = self.window_of(now.saturating_sub(1)) + 1;
                        self.state.truncate(end);
                        self.latencies.truncate(end);
                        self.failed.truncate(end);
                        break;
                    }
                }
            }
            self.settle(now);
        }
        Ok(self.windows())
    }

    /// Paced: waits for the wall clock, takes the board's commands, reports the serving
    /// replicas.
    fn pace(&mut self, wall: Instant, now: Nanos) {
        let spec = self.spec;
        let Some(p) = &spec.paced else {
            return;
        };
        let due = wall + Duration::from_secs_f64(now as f64 / NS / p.speed.max(1e-9));
        let ahead = due.saturating_duration_since(Instant::now());
        if ahead > PACE_SLACK {
            std::thread::sleep(ahead);
        }
        let fleet = &spec.fleet;
        let ours = |name: &str| fleet.index(name).filter(|&i| !fleet.nodes[i].external);
        for c in p.board.take() {
            match c {
                Command::Scale { service, replicas } => {
                    if let Some(i) = ours(&service) {
                        if let Err(e) = self.services[i].scale_to(replicas, now) {
                            tracing::warn!(%service, error = %e, "a scale the service refused");
                        }
                    }
                }
                Command::Tune {
                    service,
                    setting,
                    value,
                } => {
                    if let Some(i) = ours(&service) {
                        self.tune(i, &setting, value, now);
                    }
                }
                Command::Rollback { service } => {
                    if let Some(i) = ours(&service) {
                        if !self.services[i].roll_back() {
                            tracing::warn!(
                                %service,
                                "a rollback with no stable version to go back to: nothing changed"
                            );
                        }
                    }
                }
            }
        }
        // (the board's lock taken only for a count that changed: this runs at every event)
        for ((n, s), last) in fleet
            .nodes
            .iter()
            .zip(&self.services)
            .zip(&mut self.reported)
        {
            let ready = s.ready(now);
            if !n.external && ready != *last {
                p.board.report_ready(&n.name, ready);
                *last = ready;
            }
        }
    }

    /// Sets `setting` of node `i` to `value` at `now` (a setting it does not have: nothing);
    /// the calls that take connections a larger pool frees go on.
    fn tune(&mut self, i: usize, setting: &str, value: f64, now: Nanos) {
        let n = value.round().clamp(0.0, u32::MAX as f64) as usize;
        let s = &mut self.services[i];
        match setting {
            POOL_SETTING if s.has_db() => {
                let freed = s.resize_pools(n, now);
                self.calls.extend(freed.into_iter().map(|c| (i, c)));
            }
            CACHE_SETTING => s.resize_cache(n),
            HEAP_SETTING => s.resize_heap(value),
            _ => tracing::debug!(setting, "a setting the service does not have"),
        }
    }

    fn new_request(
        &mut self,
        node: usize,
        now: Nanos,
        caller: Option<u64>,
        from: Option<usize>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(
            id,
            Request {
                node,
                arrived: now,
                replica: None,
                caller,
                from,
                pending: 0,
                failed: false,
                traced: None,
            },
        );
        id
    }

    /// Request `id` arrives at its node.
    fn arrive(&mut self, id: u64, now: Nanos) {
        let Some(node) = self.requests.get(&id).map(|r| r.node) else {
            return;
        };
        let job = Job { id, arrived: now };
        match self.services[node].arrive(job, now) {
            Arrival::Started(r) => self.starts.push((node, r, job)),
            Arrival::Queued(_) => {}
            Arrival::Refused => self.complete(id, now, false),
        }
    }

    /// `job` takes a worker of replica `r` of `node`: abandoned when its caller gave up
    /// waiting; else its database call (unless the cache answers), else its own work.
    fn start(&mut self, node: usize, r: u64, job: Job, now: Nanos) {
        let Some(req) = self.requests.get_mut(&job.id) else {
            return;
        };
        req.replica = Some(r);
        let timeout = self.spec.fleet.nodes[node].service.timeout;
        if late(timeout, now - job.arrived) {
            self.complete(job.id, now, false);
            return;
        }
        let s = &self.services[node];
        let hit = s.cache().is_some() && {
            let hit = s.cache_hit(self.rng.random::<f64>());
            if let Some((_, hits, misses)) = &mut self.scrapes[node].cache {
                *if hit { hits } else { misses } += 1;
            }
            hit
        };
        if self.services[node].has_db() && !hit {
            // its call first: at once with a free connection, else when one is released
            let call = self.services[node].acquire(r, job, now);
            self.calls.extend(call.map(|c| (node, c)));
        } else {
            self.own.push((node, r, job));
        }
    }

    /// A database call of `node` ended: the next call the database serves, the connection to
    /// the next caller waiting, and the request's own work.
    fn db_done(&mut self, node: usize, c: Call, now: Nanos) {
        if self.scraped() {
            self.scrapes[node]
                .db_use_s
                .push((now - c.acquired) as f64 / NS);
        }
        if let Some(t) = self.requests.get(&c.job.id).and_then(|r| r.traced) {
            let ids = self.ids.inner(&t);
            let name = &self.spec.fleet.nodes[node].name;
            let span = spans::database(name, &t, ids, c.acquired, now);
            self.scrapes[node].spans.push(span);
        }
        if let Some(next) = self.services[node].db_finish() {
            let t = self.services[node].db_time(&mut self.rng);
            self.events.at(now + t, Event::DbDone(node, next));
        }
        let next = self.services[node].release(&c, now);
        self.calls.extend(next.map(|c| (node, c)));
        self.own.push((node, c.replica, c.job));
    }

    /// Request `id`'s own work at `node` ended: it fails on its own (the node's error rate),
    /// or makes its calls and waits for the synchronous ones.
    fn worked(&mut self, node: usize, id: u64, now: Nanos) {
        let spec = self.spec;
        let n = &spec.fleet.nodes[node];
        if n.error_rate > 0.0 && self.rng.random::<f64>() < n.error_rate {
            self.complete(id, now, false);
            return;
        }
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        // held while the calls are made, so that one answered at once does not complete it
        req.pending += 1;
        let traced = req.traced;
        for d in &n.calls {
            if d.chance < 1.0 && self.rng.random::<f64>() >= d.chance {
                continue;
            }
            let caller = (!d.asynchronous).then_some(id);
            let child = self.new_request(d.to, now, caller, Some(node));
            if let Some(t) = &traced {
                let c = self.ids.call(t, d.asynchronous);
                if let Some(r) = self.requests.get_mut(&child) {
                    r.traced = Some(c);
                }
                if d.asynchronous {
                    // a message's producer span ends when it is handed over
                    let callee = &spec.fleet.nodes[d.to].name;
                    self.scrapes[node]
                        .spans
                        .extend(spans::client(&n.name, callee, &c, now, now, true));
                }
            }
            if !d.asynchronous {
                if let Some(r) = self.requests.get_mut(&id) {
                    r.pending += 1;
                }
                if let Some(t) = spec.fleet.nodes[d.to].service.timeout {
                    self.events.at(now.saturating_add(t), Event::Timeout(child));
                }
            }
            self.arrive(child, now);
        }
        self.answered(id, true, now);
    }

    /// One of request `id`'s pending calls was answered (`ok`, else it failed); with nothing
    /// left pending, it completes.
    fn answered(&mut self, id: u64, ok: bool, now: Nanos) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        req.pending = req.pending.saturating_sub(1);
        req.failed |= !ok;
        if req.pending == 0 {
            let ok = !req.failed;
            self.complete(id, now, ok);
        }
    }

    /// The caller of request `id` stops waiting for it: the call failed (the request goes
    /// on, and fails at its node when it ends, late).
    fn give_up(&mut self, id: u64, now: Nanos) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let Some(caller) = req.caller.take() else {
            return;
        };
        let (node, arrived, from, traced) = (req.node, req.arrived, req.from, req.traced);
        self.client_span(node, from, traced, arrived, now, false);
        self.answered(caller, false, now);
    }

    fn client_span(
        &mut self,
        node: usize,
        from: Option<usize>,
        traced: Option<Traced>,
        start: Nanos,
        end: Nanos,
        ok: bool,
    ) {
        let (Some(from), Some(t)) = (from, traced) else {
            return;
        };
        let spec = self.spec;
        let nodes = &spec.fleet.nodes;
        let span = spans::client(&nodes[from].name, &nodes[node].name, &t, start, end, ok);
        self.scrapes[from].spans.extend(span);
    }

    /// Request `id` is done at `now` (`ok`, else failed; an answer later than its node's
    /// timeout fails): its worker takes the next in line, it is counted, its spans reported,
    /// and a caller still waiting has its answer.
    fn complete(&mut self, id: u64, now: Nanos, ok: bool) {
        let Some(req) = self.requests.remove(&id) else {
            return;
        };
        let node = req.node;
        let spec = self.spec;
        let n = &spec.fleet.nodes[node];
        let timed_out = late(n.service.timeout, now - req.arrived);
        let ok = ok && !timed_out;
        let failure = if timed_out {
            Failure::Timeout
        } else if req.replica.is_none() {
            Failure::Unavailable
        } else {
            Failure::Error
        };
        if let Some(r) = req.replica {
            if let Some(next) = self.services[node].finish(r) {
                self.starts.push((node, r, next));
            }
        }
        if ok && self.scraped() {
            self.scrapes[node]
                .durations_s
                .push((now - req.arrived) as f64 / NS);
        } else if !ok {
            self.scrapes[node].failed += 1;
            if self.scraped() {
                self.scrapes[node]
                    .failures_s
                    .push((failure, (now - req.arrived) as f64 / NS));
            }
        }
        // a user request: the entry's (calls go to later nodes, so none reaches it)
        if node == 0 {
            let w = self.window_of(req.arrived);
            if ok {
                self.latencies[w].push((now - req.arrived) as f64 / NS);
            } else {
                self.failed[w] += 1;
            }
        }
        if let Some(t) = &req.traced {
            if !n.external {
                let span = spans::server(&n.name, t, req.arrived, now, ok);
                self.scrapes[node].spans.push(span);
            }
        }
        if let Some(caller) = req.caller {
            self.client_span(node, req.from, req.traced, req.arrived, now, ok);
            self.answered(caller, ok, now);
        }
    }

    /// Settles the work that follows at `now`: jobs that start, database calls that took a
    /// connection, own work that begins.
    fn settle(&mut self, now: Nanos) {
        while !(self.starts.is_empty() && self.calls.is_empty() && self.own.is_empty()) {
            for (node, r, job) in std::mem::take(&mut self.starts) {
                self.start(node, r, job, now);
            }
            for (node, c) in std::mem::take(&mut self.calls) {
                if let Some(c) = self.services[node].db_arrive(c) {
                    let t = self.services[node].db_time(&mut self.rng);
                    self.events.at(now + t, Event::DbDone(node, c));
                }
            }
            for (node, r, job) in std::mem::take(&mut self.own) {
                // a pause going on holds it back (nothing runs, nothing allocates)
                let stalled = self.services[node].stalled_until(r);
                if stalled > now {
                    self.events.at(stalled, Event::Resume(node, r, job));
                    continue;
                }
                let took = self.services[node].service_time(&mut self.rng);
                // its garbage may start a collection, which stops it too
                let b = self.services[node]
                    .begin_work(r, took, now)
                    .unwrap_or(Begun {
                        pause: None,
                        stalled: 0,
                        mark: 0,
                    });
                if let Some(pause) = b.pause {
                    self.scrapes[node].gc_pauses_s.push(pause as f64 / NS);
                }
                let end = now + b.stalled + took;
                self.events.at(end, Event::Worked(node, r, job.id, b.mark));
            }
        }
    }

    /// The scrape at `now`: every node's interval handed over, the next begun; `false` when
    /// `scraped` stops the run.
    fn scrape(&mut self, now: Nanos, scraped: &mut dyn FnMut(Vec<Scrape>) -> bool) -> bool {
        let every = self.scrapes[0].every_s;
        let mut out = Vec::with_capacity(self.scrapes.len());
        for (i, s) in self.services.iter_mut().enumerate() {
            let next = Scrape::empty(0.0, every, s.cache().map(|(size, _)| (size, 0, 0)));
            let mut done = std::mem::replace(&mut self.scrapes[i], next);
            done.at_s = now as f64 / NS;
            done.replicas = s.replicas();
            done.ready = s.ready(now);
            done.utilization = s.utilization(now, ns(every));
            done.pool = s.has_db().then(|| s.pools());
            done.heap = s.heaps(now);
            if let (Some(c), Some((size, _))) = (&mut done.cache, s.cache()) {
                c.0 = size;
            }
            out.push(done);
        }
        if !scraped(out) {
            return false;
        }
        // the last scrape is the one at the run's end
        if now < ns(self.spec.duration_s) {
            self.events.at(now + ns(every), Event::Scrape);
        }
        true
    }

    fn windows(mut self) -> Vec<Window> {
        let window_s = self.spec.window_s;
        (0..self.state.len())
            .map(|w| {
                let l = &mut self.latencies[w];
                l.sort_by(f64::total_cmp);
                let q = |p: f64| rounded_rank(l, p);
                Window {
                    start_s: w as f64 * window_s,
                    requests: l.len() as u64 + self.failed[w],
                    failed: self.failed[w],
                    p50_s: q(0.5),
                    p95_s: q(0.95),
                    replicas: self.state[w].0,
                    ready: self.state[w].1,
                }
            })
            .collect()
    }
}
