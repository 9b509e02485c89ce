//! The flags of `apo sim`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use apo_pipeline::args::{duration, KafkaArgs};
use clap::Args;

/// `apo sim`: a simulated service that answers to the actuators' executors and publishes its
/// telemetry to Kafka in event time.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    #[command(flatten)]
    /// The broker its telemetry goes to (required: the pipeline's).
    pub kafka: KafkaArgs,
    /// Topic of its metric points (what `apo run` reads).
    #[arg(long, env = "APO_METRICS_TOPIC", default_value = "apo.metrics")]
    pub metrics_topic: String,
    /// Topic of its spans (with --trace-sample above 0).
    #[arg(long, env = "APO_SPANS_TOPIC", default_value = "apo.spans")]
    pub spans_topic: String,
    /// The service's name: its metrics' `service`, the webhook's and the kubernetes
    /// Deployment's name, the policy's and the planner's target (the entry's with
    /// --topology shop, whose services have their own names).
    #[arg(long, default_value = "checkout")]
    pub service: String,
    /// The fleet: `single`, one service (--service) under the load; `shop`, the web shop
    /// (frontend fanning out to product-catalog with its cache and database, recommendation,
    /// cart and checkout, which calls payment, which calls the external stripe-api, and sends
    /// email a message). The service flags below set the single service; every service of
    /// the shop takes --startup, --timeout, --queue-limit and --max-replicas, its frontend
    /// --replicas.
    #[arg(long, default_value = "single")]
    pub topology: String,
    /// The share of user requests whose traces are published as spans (head sampling at the
    /// entry; 0: no spans).
    #[arg(long, default_value_t = 0.01)]
    pub trace_sample: f64,
    /// Replicas at the start (serving from the start).
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// The report's: every service's name followed by `-SUFFIX` (its runs apart in one system).
    #[arg(skip)]
    pub suffix: Option<String>,
    /// The report's: each node's replicas at the start, in the fleet's order (empty: the
    /// topology's own).
    #[arg(skip)]
    pub replicas_of: Vec<u32>,
    /// The most replicas it may be scaled to (more is refused: 422).
    #[arg(long, default_value_t = 10)]
    pub max_replicas: u32,
    /// Workers per replica (requests one replica serves at once; the others wait in line).
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Median service time of a request (log-normal).
    #[arg(long, default_value = "100ms", value_parser = duration)]
    pub service_time: Duration,
    /// The median service time of the service's stable version: a rollback (the webhook's
    /// `rollback` action) sets the service time to it. Without it a rollback changes nothing.
    #[arg(long, value_parser = duration)]
    pub stable_service_time: Option<Duration>,
    /// The service time's log-normal sigma (its tail: 0.3 gives a p99 about twice the median).
    #[arg(long, default_value_t = 0.3)]
    pub sigma: f64,
    /// How long its callers wait for an answer: a request still in line this long after it
    /// arrived is abandoned, one answered later fails (0s: callers wait for ever).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
    /// Requests one replica's line holds at most; one more is refused (default: no limit).
    #[arg(long)]
    pub queue_limit: Option<usize>,
    /// Each request calls a database first, through a connection from its replica's pool
    /// of this many (the setting `db.client.connection.max` a pool decision tunes); without
    /// it, requests call nothing.
    #[arg(long)]
    pub db_pool: Option<usize>,
    /// Calls the database serves at once (with --db-pool).
    #[arg(long, default_value_t = 16)]
    pub db_servers: usize,
    /// Median time of a database call (log-normal, with --db-pool).
    #[arg(long, default_value = "20ms", value_parser = duration)]
    pub db_time: Duration,
    /// The database call time's log-normal sigma.
    #[arg(long, default_value_t = 0.3)]
    pub db_sigma: f64,
    /// A cache in front of the database (with --db-pool) holding this many objects (the
    /// setting `cache.max_size` a cache decision tunes): a hit answers without the database
    /// call, at the hit ratio an LRU cache of that size has under Zipf requests.
    #[arg(long)]
    pub cache_size: Option<usize>,
    /// Objects the requests ask for (with --cache-size).
    #[arg(long, default_value_t = 100_000)]
    pub cache_objects: usize,
    /// The Zipf exponent of the objects' popularity (with --cache-size).
    #[arg(long, default_value_t = 0.9)]
    pub cache_alpha: f64,
    /// Each replica runs on a garbage-collected heap of this many MiB (the setting
    /// `jvm.memory.limit`, in bytes, a heap decision tunes): when the garbage of its requests
    /// fills the heap's free part, a collection stops the replica's workers for a pause that
    /// grows with the heap's live share. Without it, no collector.
    #[arg(long)]
    pub heap_mib: Option<f64>,
    /// The service's own live set on the heap, MiB (with --heap-mib).
    #[arg(long, default_value_t = 128.0)]
    pub heap_live_mib: f64,
    /// Live memory each request in a replica (served or in line) holds, MiB (with --heap-mib).
    #[arg(long, default_value_t = 2.0)]
    pub request_live_mib: f64,
    /// Garbage each request allocates, MiB (with --heap-mib).
    #[arg(long, default_value_t = 4.0)]
    pub request_alloc_mib: f64,
    /// A collection's pause at an empty heap (with --heap-mib): at live share p, it is this
    /// over (1 - p).
    #[arg(long, default_value = "20ms", value_parser = duration)]
    pub gc_pause: Duration,
    /// How long a new replica takes before it serves.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub startup: Duration,
    /// The load, a synthetic shape: step:BEFORE,AFTER,AT, ramp:FROM,TO,OVER or
    /// diurnal:MEAN,AMPLITUDE,PERIOD (requests a second; times like 2m), or several added with
    /// `+` (diurnal:60,40,1d+step:0,80,14h). Ignored with --trace.
    #[arg(long, default_value = "step:20,100,2m")]
    pub load: String,
    /// The load replayed from a `timestamp,value` CSV of request counts (NAB's format), scaled
    /// so that its highest value is --peak requests a second.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// The request rate of the trace's highest value, requests a second.
    #[arg(long, default_value_t = 100.0)]
    pub peak: f64,
    /// How many times faster than its own timestamps the trace is replayed (on top of the
    /// clock's speed).
    #[arg(long, default_value_t = 1.0)]
    pub trace_speedup: f64,
    /// Start the replay this far into the trace (simulated time; a later day of a trace to
    /// keep the days a setting was chosen on out of the figures).
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub trace_from: Duration,
    /// Simulated time to run (default: the trace's length, or 10m).
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,
    /// How often its metrics are scraped (simulated time).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub scrape: Duration,
    /// The windows of its progress lines and its summary (simulated time).
    #[arg(long, default_value = "1m", value_parser = duration)]
    pub window: Duration,
    /// The latency objective its progress lines mark (a window whose p95 is over it).
    #[arg(long, default_value = "500ms", value_parser = duration)]
    pub slo_p95: Duration,
    /// Where its control endpoints listen: the webhook executor's `url` is
    /// http://ADDR/hooks/NAME, the kubernetes executor's `api_server` http://ADDR. Port 0: any
    /// free one (printed).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// The webhook executor's secret (its policy's `secret_file`): webhooks not signed with
    /// it are refused (401). Without it, webhook calls are not checked.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
    /// Random seed (an unpaced run, the same seed: the same history).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    /// The effectiveness report (--report) and its flags.
    pub report: crate::report::ReportArgs,
}
