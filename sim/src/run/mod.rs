//! A fleet under a load, simulated: user requests arrive at the entry at the load's rate;
//! each request a service takes waits for a worker on one of its replicas (refused when no
//! replica is ready or the line is full; abandoned when it waited past its callers' timeout),
//! makes its database call through its replica's pool unless the cache answers, does its own
//! work, then makes its calls to other services (`topology.rs`): the synchronous ones in
//! parallel, its worker held until every answer is in (a failed one fails it; a callee with a
//! timeout fails its caller when the timeout passes), the asynchronous ones as messages the
//! callee consumes without the caller waiting. The entry's service is scaled and tuned at
//! given times as an executor would; per window of simulated time, the user requests that
//! arrived in it, those that failed, and their latency (arrival to answer) at p50 and p95.
//! Deterministic for a seed.
//!
//! - `flow.rs`: the requests' way through the fleet (the event handlers);
//! - `spans.rs`: the sampled requests as spans, as the services' instrumentation reports them.
//!
//! Paced ([`Paced`]), the run keeps simulated time at a multiple of wall time and takes the
//! commands the executors gave the control board as they come (at the simulated time they
//! are taken), for any service of ours, reporting their serving replicas back: the loop
//! closed through the executors. A paced run is not deterministic (when a command lands
//! depends on the wall clock).
//!
//! Scraped ([`RunSpec::scrape_s`]), the run also reports, at the end of each scrape interval,
//! what a monitoring agent would have seen of each service in it ([`Scrape`]): the durations
//! of its requests that ended in it, those that failed, the replicas and each serving
//! replica's utilisation, its pool and cache, its spans; `telemetry/` turns that into metric
//! points.

mod flow;
mod spans;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use apo_schemas::Span;

use crate::control::board::Board;
use crate::events::Nanos;
use crate::topology::Topology;

/// What one window of simulated time saw of the user requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Its start, seconds.
    pub start_s: f64,
    /// Requests that arrived in it.
    pub requests: u64,
    /// Of those, failed: refused (no replica ready, or a full line), timed out, or failed by
    /// a call they made.
    pub failed: u64,
    /// Latency of the others, seconds: median and 95th percentile (0 without requests).
    pub p50_s: f64,
    /// (p95)
    pub p95_s: f64,
    /// Replicas the entry was scaled to at the window's start, and those serving then.
    pub replicas: u32,
    /// (serving)
    pub ready: u32,
}

/// How the run goes.
pub struct RunSpec<'a> {
    /// The fleet (checked when the run starts).
    pub fleet: Topology,
    /// The request rate at a time, seconds, and its highest value.
    pub rate: &'a dyn Fn(f64) -> f64,
    /// (peak)
    pub peak: f64,
    /// How long, seconds.
    pub duration_s: f64,
    /// The windows' size, seconds.
    pub window_s: f64,
    /// Scales of the entry: at a time (seconds), to a number of replicas.
    pub scales: Vec<(f64, u32)>,
    /// Settings of the entry tuned: at a time (seconds), a setting ([`POOL_SETTING`],
    /// [`CACHE_SETTING`], [`HEAP_SETTING`]) to a value, as a tune decision would.
    pub tunes: Vec<(f64, String, f64)>,
    /// The seed.
    pub seed: u64,
    /// Paced against the wall clock and driven by a control board, when given.
    pub paced: Option<Paced>,
    /// Scraped every this many seconds, when given ([`run_scraped`] reports each scrape).
    pub scrape_s: Option<f64>,
    /// The share of user requests whose traces are recorded as spans (head sampling at the
    /// entry; 0: none), reported in the scrapes.
    pub trace_sample: f64,
}

/// What a scrape interval saw of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    /// The interval's end, seconds since the run's start.
    pub at_s: f64,
    /// Its length, seconds.
    pub every_s: f64,
    /// The durations of its requests that ended in it (arrival to answer), seconds, in the
    /// order they ended.
    pub durations_s: Vec<f64>,
    /// Its requests that failed in it: refused (no replica ready, or a full line), timed
    /// out, failed on their own or by a call they made.
    pub failed: u64,
    /// Each of them as its instrumentation records it (the duration histogram records every
    /// request, a failed one with its `error.type`): why it failed and its duration, seconds.
    pub failures_s: Vec<(Failure, f64)>,
    /// Replicas the service is scaled to at its end, and those serving.
    pub replicas: u32,
    /// (serving)
    pub ready: u32,
    /// Each serving replica's utilisation over the interval: the service time of the jobs it
    /// started in it over its workers' time, at most 1 (the time a worker waits for the
    /// service's calls is not work).
    pub utilization: Vec<f64>,
    /// How long each database call that ended in it held its connection (waiting for the
    /// database and served by it), seconds.
    pub db_use_s: Vec<f64>,
    /// With a database, at its end: each replica's pool size, and the connections in use and
    /// the callers waiting for one over all replicas.
    pub pool: Option<(usize, usize, usize)>,
    /// With a cache: its size at its end, and the requests it answered and missed in it.
    pub cache: Option<(usize, u64, u64)>,
    /// The garbage collections' pauses that began in it, seconds.
    pub gc_pauses_s: Vec<f64>,
    /// With a heap, at its end: each replica's heap limit, and each serving replica's heap in
    /// use, bytes.
    pub heap: Option<(f64, Vec<f64>)>,
    /// The spans of the sampled requests that ended in it (its server and consumer spans,
    /// the client and producer spans of its calls, its database calls), their times in
    /// nanoseconds since the run's start.
    pub spans: Vec<Span>,
}

impl Scrape {
    /// An empty interval ending at `at_s`.
    pub(crate) fn empty(at_s: f64, every_s: f64, cache: Option<(usize, u64, u64)>) -> Self {
        Scrape {
            at_s,
            every_s,
            durations_s: Vec::new(),
            failed: 0,
            failures_s: Vec::new(),
            replicas: 0,
            ready: 0,
            utilization: Vec::new(),
            db_use_s: Vec::new(),
            pool: None,
            cache,
            gc_pauses_s: Vec::new(),
            heap: None,
            spans: Vec::new(),
        }
    }
}

/// Why a request failed, as the `error.type` of its duration's point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// Its caller's timeout passed (abandoned in line, or answered too late).
    Timeout,
    /// No replica took it (none ready, or its line full): what a proxy answers 503 for.
    Unavailable,
    /// It failed on its own, or a call it made did.
    Error,
}

impl Failure {
    /// Its `error.type`: `timeout`, and the HTTP status codes for the other two.
    pub fn error_type(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Unavailable => "503",
            Failure::Error => "500",
        }
    }
}

/// A run kept at `speed` times wall time, taking the commands for its services from `board`.
pub struct Paced {
    /// The board the control endpoints write to.
    pub board: Arc<Board>,
    /// Simulated seconds per wall second.
    pub speed: f64,
}

const NS: f64 = 1e9;

/// The setting a pool decision tunes: each replica's pool size (the OpenTelemetry name of the
/// metric that reports it).
pub const POOL_SETTING: &str = "db.client.connection.max";

/// The setting a cache decision tunes: the cache's size in objects (the name of the metric
/// that reports it).
pub const CACHE_SETTING: &str = "cache.max_size";

pub use crate::gc::HEAP_SETTING;

/// Whether `at_s` is a whole multiple of `every_s` (a scrape that ends a window, a minute, an
/// hour).
pub fn ends_multiple(at_s: f64, every_s: f64) -> bool {
    ((at_s / every_s).round() * every_s - at_s).abs() < 1e-6
}

/// `p` (0 to 1) of the sorted `values`, the value at rank (n - 1) x p rounded (0 when empty):
/// the windows' and the progress lines' p50 and p95.
pub fn rounded_rank(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[((n - 1) as f64 * p).round() as usize],
    }
}

/// Simulated seconds as nanoseconds.
fn ns(s: f64) -> Nanos {
    (s * NS).round() as Nanos
}

/// Runs `spec`; a scale the entry refuses (over its most) is an error.
pub fn run(spec: &RunSpec<'_>) -> Result<Vec<Window>, String> {
    run_scraped(spec, &mut |_| true)
}

/// Runs `spec`, handing each scrape (one per service, in the fleet's order) to `scraped` as
/// its interval ends (none without `spec.scrape_s`); the run stops there, its windows
/// measured so far, when `scraped` says `false`.
pub fn run_scraped(
    spec: &RunSpec<'_>,
    scraped: &mut dyn FnMut(Vec<Scrape>) -> bool,
) -> Result<Vec<Window>, String> {
    spec.fleet.check()?;
    flow::Sim::new(spec)?.run(scraped)
}
