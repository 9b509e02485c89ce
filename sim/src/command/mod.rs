//! `apo sim`: a simulated fleet (one service, or the web shop) under a load, paced against
//! the clock (`APO_NOW`'s speed:
//! give the pipeline, the actuator and the sim the same `APO_NOW` to replay faster than real
//! time), driven through its control endpoints by the actuators' executors, its metrics
//! and a sample of its traces published to Kafka in event time as it runs. A progress line
//! per window on stderr; at the
//! end, each window as a JSON line on stdout.

pub mod args;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use apo_pipeline::signals::stop_on_signals;
use apo_pipeline::Broker;
use apo_schemas::decision::SigningKey;

pub use args::SimArgs;

use crate::control::board::Board;
use crate::control::http::{serve, ControlServer};
use crate::gc::HeapConfig;
use crate::load::{Load, Trace};
use crate::run::{run_scraped, Paced, RunSpec, Scrape, Window};
use crate::service::{CacheConfig, DbConfig, ServiceConfig};
use crate::telemetry::kafka::KafkaTelemetry;
use crate::telemetry::points::points;
use crate::topology::Topology;

/// The request rate at a simulated time.
pub type RateFn = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

/// The simulated time of a run without `--duration` or a trace.
const DEFAULT_DURATION_S: f64 = 600.0;

/// Runs `apo sim` with `a`.
pub fn sim(a: SimArgs) -> anyhow::Result<()> {
    if a.report.report {
        return crate::report::report(a);
    }
    apo_core::clock::check()?;
    let broker = Broker::required(
        &a.kafka,
        "(the sim publishes its metrics where `apo run` reads them)",
    )?;
    if a.kafka.create_topics {
        broker.prepare_topics(
            &[&a.metrics_topic, &a.spans_topic],
            true,
            a.kafka.partitions,
        )?;
    }
    let sim = Prepared::new(a)?;
    let stop = stop_on_signals()?;
    let (windows, start_ms) = sim.run(broker.client(), broker.address(), &stop)?;
    for w in &windows {
        println!("{}", window_json(w, start_ms));
    }
    Ok(())
}

/// The service `a`'s flags describe (a single service's, the shop's entry's settings).
pub fn service_config(a: &SimArgs) -> anyhow::Result<ServiceConfig> {
    Ok(ServiceConfig {
        workers: a.workers,
        startup: u64::try_from(a.startup.as_nanos()).context("--startup is too long")?,
        max_replicas: a.max_replicas,
        median_s: a.service_time.as_secs_f64(),
        sigma: a.sigma,
        timeout: match a.timeout.as_nanos() {
            0 => None,
            t => Some(u64::try_from(t).context("--timeout is too long")?),
        },
        queue_limit: a.queue_limit,
        db: a.db_pool.map(|pool_size| DbConfig {
            pool_size,
            servers: a.db_servers,
            median_s: a.db_time.as_secs_f64(),
            sigma: a.db_sigma,
        }),
        stable_median_s: a.stable_service_time.map(|d| d.as_secs_f64()),
        heap: a.heap_mib.map(|limit| {
            const MIB: f64 = 1024.0 * 1024.0;
            HeapConfig {
                limit_bytes: limit * MIB,
                live_bytes: a.heap_live_mib * MIB,
                request_live_bytes: a.request_live_mib * MIB,
                request_alloc_bytes: a.request_alloc_mib * MIB,
                young_pause_s: a.gc_pause.as_secs_f64(),
            }
        }),
        cache: a.cache_size.map(|size| CacheConfig {
            objects: a.cache_objects,
            alpha: a.cache_alpha,
            size,
        }),
    })
}

/// A sim checked and listening, ready to run: what `apo sim` runs, and the embedded default's
/// closed loop beside its pipeline.
pub struct Prepared {
    a: SimArgs,
    fleet: Topology,
    rate: RateFn,
    peak: f64,
    duration_s: f64,
    board: Arc<Board>,
    server: ControlServer,
    signed: bool,
    quiet: bool,
}

impl Prepared {
    /// Checks `a`, reads its trace and webhook secret, and serves its control endpoints.
    pub fn new(a: SimArgs) -> anyhow::Result<Prepared> {
        let scrape_s = a.scrape.as_secs_f64();
        let window_s = a.window.as_secs_f64();
        if scrape_s <= 0.0 || window_s < scrape_s {
            bail!("--scrape must be positive and --window at least --scrape");
        }
        let service = service_config(&a)?;
        if !(0.0..=1.0).contains(&a.trace_sample) {
            bail!("--trace-sample {} is not a share (0 to 1)", a.trace_sample);
        }
        let mut fleet = Topology::named(&a.topology, &a.service, &service, a.replicas)
            .map_err(anyhow::Error::msg)?;
        if let Some(suffix) = &a.suffix {
            fleet = fleet.suffixed(suffix);
        }
        for (n, r) in fleet.nodes.iter_mut().zip(&a.replicas_of) {
            n.replicas = *r;
        }
        fleet.check().map_err(anyhow::Error::msg)?;
        for n in &fleet.nodes {
            crate::service::Service::new(n.service.clone(), n.replicas)
                .map_err(|e| anyhow::anyhow!("`{}`: {e}", n.name))?;
        }
        let (rate, peak, trace_s): (RateFn, f64, Option<f64>) = match &a.trace {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the trace {}", path.display()))?;
                let t = Trace::from_csv(&text, a.peak, a.trace_speedup)
                    .with_context(|| format!("the trace {}", path.display()))?;
                let (peak, d) = (t.peak(), t.duration_s());
                let from = a.trace_from.as_secs_f64();
                if from >= d {
                    bail!(
                        "--trace-from {} is past the trace's end ({} of simulated time)",
                        humantime::format_duration(a.trace_from),
                        humantime::format_duration(std::time::Duration::from_secs(d as u64))
                    );
                }
                (Arc::new(move |s| t.rate_at(s + from)), peak, Some(d - from))
            }
            None => {
                let shape: Load = a.load.parse().map_err(anyhow::Error::msg)?;
                let peak = shape.peak();
                (Arc::new(move |s| shape.rate_at(s)), peak, None)
            }
        };
        let duration_s = a
            .duration
            .map(|d| d.as_secs_f64())
            .or(trace_s)
            .unwrap_or(DEFAULT_DURATION_S);
        let key = match &a.webhook_secret_file {
            Some(p) => {
                let secret = std::fs::read(p)
                    .with_context(|| format!("reading the webhook secret {}", p.display()))?;
                let secret = secret.trim_ascii();
                Some(SigningKey::new(None, secret).context("the webhook secret")?)
            }
            None => None,
        };
        let board = Board::new(
            fleet
                .nodes
                .iter()
                .filter(|n| !n.external)
                .map(|n| (n.name.as_str(), n.replicas, n.service.max_replicas)),
        );
        let signed = key.is_some();
        let server = serve(board.clone(), a.listen, key)
            .with_context(|| format!("listening on {}", a.listen))?;
        Ok(Prepared {
            a,
            fleet,
            rate,
            peak,
            duration_s,
            board,
            server,
            signed,
            quiet: false,
        })
    }

    /// Without its start lines and progress lines (a caller that reports on its own).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// The simulated time it runs, seconds.
    pub fn duration_s(&self) -> f64 {
        self.duration_s
    }

    /// Its fleet.
    pub fn fleet(&self) -> &Topology {
        &self.fleet
    }

    /// The highest request rate it is offered (a trace's --peak; a synthetic load's own).
    pub fn peak(&self) -> f64 {
        self.peak
    }

    /// The request rate it is offered by simulated time (seconds since its start).
    pub fn rate(&self) -> RateFn {
        Arc::clone(&self.rate)
    }

    /// Its control endpoints' base URL, `http://ADDR` (the kubernetes executor's
    /// `api_server`; the webhook's url is this and `/hooks/SERVICE`).
    pub fn control_url(&self) -> String {
        self.server.url()
    }

    /// Runs it paced at the clock's speed, its metrics to the broker of `client` (at
    /// `address`, for the first line), until its duration ends or `stop` is set: its
    /// windows and the event time it started at.
    pub fn run(
        self,
        client: &rdkafka::ClientConfig,
        address: &str,
        stop: &AtomicBool,
    ) -> anyhow::Result<(Vec<Window>, i64)> {
        self.run_observed(client, address, stop, &mut |_: &[Scrape], _| {})
    }

    /// [`Prepared::run`], handing each scrape interval's scrapes (one per node of its fleet,
    /// the entry first) to `observe` with the event time the run started at, as it ends.
    pub fn run_observed(
        self,
        client: &rdkafka::ClientConfig,
        address: &str,
        stop: &AtomicBool,
        observe: &mut dyn FnMut(&[Scrape], i64),
    ) -> anyhow::Result<(Vec<Window>, i64)> {
        let a = &self.a;
        let speed = apo_core::clock::check()?.speed;
        let mut telemetry = KafkaTelemetry::new(client, &a.metrics_topic)?;
        let mut traces = KafkaTelemetry::new(client, &a.spans_topic)?;
        let start_ms = apo_core::clock::now_ms();
        if !self.quiet {
            let entry = &self.fleet.nodes[0].name;
            if self.fleet.nodes.len() > 1 {
                let names: Vec<&str> = self.fleet.nodes.iter().map(|n| n.name.as_str()).collect();
                eprintln!(
                    "sim: the {} fleet: {} (the load arrives at `{entry}`)",
                    a.topology,
                    names.join(", ")
                );
            }
            eprintln!(
                "sim: `{}` ({} replicas of {} workers, median {:?}, start-up {:?}, at most {}) for {} \
                 of simulated time at {}x, metrics to {} on {}",
                entry,
                a.replicas,
                a.workers,
                a.service_time,
                a.startup,
                a.max_replicas,
                humantime::format_duration(std::time::Duration::from_secs_f64(self.duration_s.round())),
                speed,
                a.metrics_topic,
                address
            );
            eprintln!(
                "sim: control endpoints: webhook url {url}/hooks/{svc}{signed}; kubernetes \
                 api_server {url} (any namespace, Deployment `{svc}`)",
                url = self.server.url(),
                svc = if self.fleet.nodes.len() > 1 {
                    "SERVICE"
                } else {
                    entry
                },
                signed = if self.signed {
                    " (signed)"
                } else {
                    " (signatures not checked)"
                },
            );
        }
        let window_s = a.window.as_secs_f64();
        if !self.quiet && a.trace_sample > 0.0 {
            eprintln!(
                "sim: {} % of the user requests traced, their spans to {}",
                a.trace_sample * 100.0,
                a.spans_topic
            );
        }
        let spec = RunSpec {
            fleet: self.fleet.clone(),
            rate: &*self.rate,
            peak: self.peak,
            duration_s: self.duration_s,
            window_s,
            scales: Vec::new(),
            seed: a.seed,
            paced: Some(Paced {
                board: self.board.clone(),
                speed,
            }),
            tunes: Vec::new(),
            scrape_s: Some(a.scrape.as_secs_f64()),
            trace_sample: a.trace_sample,
        };
        let fleet = &self.fleet;
        let mut failed: Option<anyhow::Error> = None;
        let mut progress = Progress::new(window_s, a.slo_p95.as_secs_f64(), start_ms);
        let windows = run_scraped(&spec, &mut |mut scrapes: Vec<Scrape>| {
            for (n, s) in fleet.nodes.iter().zip(scrapes.iter_mut()) {
                let sent = if n.external {
                    Ok(())
                } else {
                    telemetry.publish(&n.name, &points(&n.name, start_ms, s))
                };
                let spans = std::mem::take(&mut s.spans);
                if let Err(e) = sent.and_then(|()| traces.publish_spans(start_ms, spans)) {
                    failed = Some(anyhow::Error::new(e).context("publishing the sim's telemetry"));
                    return false;
                }
            }
            let Some(entry) = scrapes.first() else {
                return false;
            };
            observe(&scrapes, start_ms);
            if !self.quiet {
                progress.add(entry);
            }
            !stop.load(Ordering::Relaxed)
        })
        .map_err(anyhow::Error::msg)?;
        if let Some(e) = failed {
            return Err(e);
        }
        telemetry
            .flush()
            .context("waiting for the broker to acknowledge the sim's metrics")?;
        traces
            .flush()
            .context("waiting for the broker to acknowledge the sim's spans")?;
        if self.quiet {
            return Ok((windows, start_ms));
        }
        eprintln!(
            "sim: done, {} points in {} messages, {} spans in {} messages; {} of {} windows \
             over the objective",
            telemetry.sent.0,
            telemetry.sent.1,
            traces.sent.0,
            traces.sent.1,
            progress.over,
            windows.len()
        );
        Ok((windows, start_ms))
    }
}

/// Parses a command's flags (defaults and all) from an argument list.
#[derive(clap::Parser)]
struct Flags<T: clap::Args> {
    #[command(flatten)]
    inner: T,
}

/// A command's flags (defaults and all) from an argument list, as its parser reads them.
pub(crate) fn parse_flags<T: clap::Args>(args: &[String]) -> anyhow::Result<T> {
    let mut all = vec!["apo".to_string()];
    all.extend_from_slice(args);
    Ok(<Flags<T> as clap::Parser>::try_parse_from(all)?.inner)
}

/// A window as a JSON line: its start's event time, requests, failed, p50, p95, replicas.
fn window_json(w: &Window, start_ms: i64) -> serde_json::Value {
    serde_json::json!({
        "start_ms": start_ms + (w.start_s * 1000.0).round() as i64,
        "start_s": w.start_s,
        "requests": w.requests,
        "failed": w.failed,
        "p50_s": w.p50_s,
        "p95_s": w.p95_s,
        "replicas": w.replicas,
        "ready": w.ready,
    })
}

/// The progress lines: the scrapes of each window, printed when it is complete.
struct Progress {
    window_s: f64,
    slo_s: f64,
    start_ms: i64,
    durations: Vec<f64>,
    failed: u64,
    /// Windows whose p95 was over the objective.
    over: usize,
}

impl Progress {
    fn new(window_s: f64, slo_s: f64, start_ms: i64) -> Self {
        Progress {
            window_s,
            slo_s,
            start_ms,
            durations: Vec::new(),
            failed: 0,
            over: 0,
        }
    }

    fn add(&mut self, s: &Scrape) {
        self.durations.extend_from_slice(&s.durations_s);
        self.failed += s.failed;
        if !crate::run::ends_multiple(s.at_s, self.window_s) {
            return;
        }
        self.durations.sort_by(f64::total_cmp);
        let q = |p: f64| crate::run::rounded_rank(&self.durations, p);
        let (p50, p95) = (q(0.5), q(0.95));
        let over = p95 > self.slo_s;
        self.over += usize::from(over);
        let at = chrono::DateTime::from_timestamp_millis(
            self.start_ms + (s.at_s * 1000.0).round() as i64,
        )
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default();
        eprintln!(
            "  {at} (+{:>5.0} s) {:>7.1} req/s  p50 {p50:.3} s  p95 {p95:.3} s{}  failed {}  \
             replicas {} ({} serving)",
            s.at_s,
            (self.durations.len() as u64 + self.failed) as f64 / self.window_s,
            if over { " OVER" } else { "" },
            self.failed,
            s.replicas,
            s.ready,
        );
        self.durations.clear();
        self.failed = 0;
    }
}
