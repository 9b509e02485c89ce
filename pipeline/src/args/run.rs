//! `apo run`'s flags: inputs and outputs, windows and lateness, the cluster, the embedded
//! default, and the trace pipeline's and the models' groups.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{duration, memory_size, MemoryLimit};

use super::{AlertArgs, KafkaArgs, PlannerArgs};

#[derive(Args, Debug, Clone)]
/// The flags of `apo run`.
pub struct RunArgs {
    #[command(flatten)]
    /// The broker (the embedded one without `--brokers`).
    pub kafka: KafkaArgs,
    /// Consumer group under which input offsets are committed.
    #[arg(long, env = "APO_GROUP", default_value = "apo")]
    pub group: String,
    /// Input topic of metric points.
    #[arg(long, env = "APO_METRICS_TOPIC", default_value = "apo.metrics")]
    pub metrics_topic: String,
    /// Output topic of window statistics.
    #[arg(
        long,
        env = "APO_WINDOW_STATS_TOPIC",
        default_value = "apo.window_stats"
    )]
    pub window_stats_topic: String,
    /// Dead-letter topic.
    #[arg(long, env = "APO_DLQ_TOPIC", default_value = "apo.dlq")]
    pub dlq_topic: String,
    /// Input encoding: auto (detected per message: OTLP JSON by its first key
    /// `resourceMetrics`, APO JSON by a `{` or `[`, OTLP protobuf otherwise), json (APO's),
    /// otlp (protobuf, `otlp_proto` too) or otlp_json (the Collector's Kafka exporter's
    /// `encoding: otlp_json`).
    #[arg(long, env = "APO_ENCODING", default_value = "auto")]
    pub encoding: apo_ingest::decode::Encoding,
    /// Tumbling window sizes (whole seconds), comma-separated.
    #[arg(long, env = "APO_WINDOWS", value_delimiter = ',', default_value = "10s,1m", value_parser = duration)]
    pub windows: Vec<Duration>,
    /// Relative accuracy of the percentiles (DDSketch alpha).
    #[arg(long, env = "APO_ACCURACY", default_value_t = 0.01)]
    pub accuracy: f64,
    /// Allowed lateness: the watermark trails the highest event time by this much.
    #[arg(long, env = "APO_LATENESS", default_value = "5s", value_parser = duration)]
    pub lateness: Duration,
    /// How far behind the watermark a record may still revise a closed window; older records go to the dead-letter topic with reason `late`.
    #[arg(long, env = "APO_HORIZON", default_value = "5m", value_parser = duration)]
    pub horizon: Duration,
    /// Let a partition that is silent for --idle-timeout stop holding the watermark back, and
    /// the watermark follow the wall clock once every partition is silent: the last windows of
    /// a quiet stream close, as a live dashboard wants. Off by default: a silent partition
    /// holds the watermark, so a partition's backlog or an hour of old data arriving later
    /// lands in its windows instead of the dead-letter topic, and a replay decides lateness as
    /// the first run did (with this on, that depends on timing).
    #[arg(long, env = "APO_IDLE_ADVANCE")]
    pub idle_advance: bool,
    /// With --idle-advance, a partition silent this long stops holding the watermark back;
    /// either way, a partition silent this long while others deliver is reported.
    #[arg(long, env = "APO_IDLE_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// A partition that delivers nothing while messages wait behind its position (its fetch
    /// is stuck at one offset: a record larger than the fetch limit, a broker fault) is
    /// reported after --idle-timeout, and after this long stops holding the watermark, so the
    /// other partitions' windows close again; its records, if they ever come, are judged late
    /// by its own partition's rule. The report names the partition and the offset to act on.
    /// 0s: a stuck partition holds the watermark until it delivers.
    #[arg(long, env = "APO_STUCK_TIMEOUT", default_value = "2m", value_parser = duration)]
    pub stuck_timeout: Duration,
    /// Points older than this (by the clock) are invalid. The clock is the system's, moved by
    /// the APO_NOW environment variable when set (`+30d`, `-2h`, or an RFC 3339 time to start
    /// from, optionally `at` a system time and with a speed, `x60`), e.g. to process an
    /// archive of another day's data or a simulation replayed faster than real time.
    #[arg(long, env = "APO_MAX_EVENT_AGE", default_value = "7d", value_parser = duration)]
    pub max_event_age: Duration,
    /// Points further in the future than this are invalid.
    #[arg(long, env = "APO_MAX_EVENT_FUTURE", default_value = "1h", value_parser = duration)]
    pub max_event_future: Duration,
    /// Longest service, metric or operation name (and unit) accepted, bytes; a record with a
    /// longer one goes to the dead-letter topic as `too_large` (OpenTelemetry's own limit for
    /// an instrument name is 255 characters).
    #[arg(long, env = "APO_MAX_NAME_BYTES", default_value_t = 255)]
    pub max_name_bytes: usize,
    /// Most tags (metrics) or attributes (spans) on one record, and the longest attribute
    /// value, bytes (keys are names); records beyond them go to the dead-letter topic.
    #[arg(long, env = "APO_MAX_ATTRIBUTES", default_value_t = 128)]
    pub max_attributes: usize,
    /// Longest tag or attribute value accepted, bytes.
    #[arg(long, env = "APO_MAX_ATTRIBUTE_BYTES", default_value_t = 4096)]
    pub max_attribute_bytes: usize,
    /// Most metric series (service, metric, series attributes) live at once, in total: a new series past it is
    /// folded into the series `otel.metric.overflow` / `otel.metric.overflow` (its counts and
    /// sums stay exact totals). A series is live while one of its windows can still change
    /// (its latest window's end plus --horizon). Each worker takes an equal share.
    #[arg(long, env = "APO_MAX_SERIES", default_value_t = 20_000)]
    pub max_series: usize,
    /// Most live series of one service: a new one past it is folded into the service's
    /// series `otel.metric.overflow` (without attributes).
    #[arg(long, env = "APO_MAX_SERIES_PER_SERVICE", default_value_t = 2_000)]
    pub max_series_per_service: usize,
    /// Most live attribute sets of one metric of one service: a new set past it is folded into
    /// the metric's series with the one attribute `otel.metric.overflow = "true"`, exactly as
    /// the OpenTelemetry SDKs fold attribute sets past their cardinality limit (2 000 there
    /// too). Exact whatever --workers (a metric's sets are on one worker).
    #[arg(long, env = "APO_MAX_ATTRIBUTE_SETS", default_value_t = 2_000)]
    pub max_attribute_sets: usize,
    /// The attribute keys whose values, with the service and the metric name, make a metric
    /// series, comma-separated (`--series-attributes ''`: none, a series is service + metric).
    /// A point's tags (OTLP data point attributes) are looked up first, then its resource's
    /// attributes. Default: the OpenTelemetry semantic conventions' low-cardinality
    /// dimensions, http.route, http.request.method, http.response.status_code, http.method,
    /// http.status_code, rpc.system, rpc.service, rpc.method, rpc.grpc.status_code, db.system,
    /// db.system.name, db.operation.name, db.collection.name, messaging.system,
    /// messaging.destination.name, messaging.operation.name, error.type, host.name. Every
    /// output record carries its series' attributes (`attributes`, a map column in Parquet:
    /// `attributes['http.route']` in SQL) and they are in its Kafka key.
    #[arg(long, env = "APO_SERIES_ATTRIBUTES", value_delimiter = ',', num_args = 0..)]
    pub series_attributes: Option<Vec<String>>,
    /// A cumulative OTLP stream (the OpenTelemetry SDKs' default temporality: each export
    /// repeats the stream's totals, which APO turns into deltas against the stream's previous
    /// point) with no point for this long is forgotten; its next point is then a first point.
    #[arg(long, env = "APO_CUMULATIVE_SILENCE", default_value = "10m", value_parser = duration)]
    pub cumulative_silence: Duration,
    /// A cumulative stream's first point counts all it totals when the stream started at most
    /// this long before it (a process that just started); an older stream's first point is
    /// only the baseline of its next (its totals hold the process's whole past).
    #[arg(long, env = "APO_CUMULATIVE_FIRST_WITHIN", default_value = "2m", value_parser = duration)]
    pub cumulative_first_within: Duration,
    /// Memory ceiling of this process (`512MiB`, `2GiB`, `1.5GB`, `800Mi`; `none`: no
    /// ceiling). What the process holds with no state (measured when it starts) is taken off;
    /// the rest is for windows and traces being assembled. Past 80 % of that (or with resident
    /// memory past 90 % of the ceiling) the pipeline reads slowly, folds every new metric
    /// series into its overflow series and emits the oldest traces early, until both are under
    /// 70 % and 80 % for 5 s; a `[memory]` progress line shows its use. Bursts of closing
    /// windows' output can briefly pass it: set it a quarter below the container's limit.
    #[arg(long, env = "APO_MEMORY_BUDGET", default_value = "1GiB", value_parser = memory_size)]
    pub memory_budget: MemoryLimit,
    /// Where Parquet tables (and the embedded broker's log) are written.
    #[arg(long, env = "APO_DATA_DIR", default_value = "apo-data")]
    pub data_dir: PathBuf,
    /// Longest time rows wait before their Parquet file is written (offsets commit after it).
    #[arg(long, env = "APO_PARQUET_ROLL", default_value = "10s", value_parser = duration)]
    pub parquet_roll: Duration,
    /// How often the jobs' state is checkpointed: every worker's open windows and their
    /// sketches, the windows still revisable, the series limits, the cumulative streams, the
    /// models' per-series state, the planner's and circuit breakers' state, trace assembly,
    /// SLO burn state, the current service map, and the offsets and watermark they reflect,
    /// written under --data-dir/checkpoints/<job> (or --checkpoint-url; the newest 3 kept)
    /// before those offsets are committed. A restart resumes from the newest and re-reads at
    /// most about this much input. 0s turns them off (a restart then replays from the last
    /// offsets committed at a cut no open window spans). For now on one process (-n 1).
    #[arg(long, env = "APO_CHECKPOINT_INTERVAL", default_value = "10s", value_parser = duration)]
    pub checkpoint_interval: Duration,
    /// Keep checkpoints in an object store instead of --data-dir, so a process moved to
    /// another machine resumes from shared storage: `s3://bucket/prefix` (credentials,
    /// region and endpoint from the AWS_* environment variables, e.g. AWS_ENDPOINT and
    /// AWS_ALLOW_HTTP=true for a local S3-compatible server) or `file:///shared/path`. Each
    /// job's go under `<url>/<job>/epoch-N/`, the manifest put last.
    #[arg(long, env = "APO_CHECKPOINT_URL")]
    pub checkpoint_url: Option<String>,
    /// Discard the metrics job's checkpoints at start and begin from the consumer group's
    /// committed offsets (needed after changing a setting the checkpoint depends on: windows,
    /// lateness, horizon, workers, series limits or attributes).
    #[arg(long, env = "APO_FROM_SCRATCH")]
    pub from_scratch: bool,
    /// Process what the topic holds, close every window, commit, and exit.
    #[arg(long, env = "APO_DRAIN")]
    pub drain: bool,
    /// With --drain: give up with an error when nothing was read and no output acknowledged
    /// for this long (the broker went away; without --drain the pipeline waits for it).
    #[arg(long, env = "APO_DRAIN_STALL_TIMEOUT", default_value = "60s", value_parser = duration)]
    pub drain_stall_timeout: Duration,
    /// Ceiling on Kafka messages read per second by each worker (throttles a backfill so it does not starve the cluster).
    #[arg(long, env = "APO_MAX_MESSAGES_PER_SEC")]
    pub max_messages_per_sec: Option<f64>,
    /// Worker threads in this process.
    #[arg(short = 'w', long, env = "APO_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Processes in the timely cluster.
    #[arg(short = 'n', long, env = "APO_PROCESSES", default_value_t = 1)]
    pub processes: usize,
    /// Index of this process in the cluster (0-based).
    #[arg(short = 'p', long, env = "APO_PROCESS", default_value_t = 0)]
    pub process: usize,
    /// File of host:port lines, one per process (default: localhost:2101, 2102, …).
    #[arg(short = 'H', long, env = "APO_HOSTFILE")]
    pub hostfile: Option<PathBuf>,
    /// Port of the embedded broker (0 picks a free one). Ignored with --brokers.
    #[arg(long, env = "APO_EMBEDDED_PORT", default_value_t = 19092)]
    pub embedded_port: u16,
    /// On the embedded broker, the open-loop generator's metric points (six services, at
    /// --generate-rate) instead of the closed loop: a simulated `checkout` service that the
    /// planner scales through an actuator (see `apo sim`). Ignored with --brokers.
    #[arg(long, env = "APO_OPEN_LOOP")]
    pub open_loop: bool,
    /// Points per second the open-loop generator sends in embedded mode with --open-loop (0:
    /// no generator).
    #[arg(long, env = "APO_GENERATE_RATE", default_value_t = 2000.0)]
    pub generate_rate: f64,
    /// Traces per second the built-in generator sends in embedded mode (0: none).
    #[arg(long, env = "APO_GENERATE_TRACES", default_value_t = 50.0)]
    pub generate_traces: f64,
    #[command(flatten)]
    /// The trace pipeline's flags.
    pub traces: TraceArgs,
    #[command(flatten)]
    /// The models' flags.
    pub models: ModelArgs,
    #[command(flatten)]
    /// The planner's flags.
    pub planner: PlannerArgs,
    /// How often progress is printed (0s: never).
    #[arg(long, env = "APO_PROGRESS_INTERVAL", default_value = "5s", value_parser = duration)]
    pub progress_interval: Duration,
}

/// The models' flags (part of `apo run`): anomaly scores and forecasts of every closed window.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Score every closed window with the isolation forest (to --anomalies-topic) and forecast
    /// the series 15 minutes ahead with the LSTM (to --forecasts-topic).
    #[arg(id = "models", long = "models", env = "APO_MODELS", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,
    /// The isolation forest, its metadata JSON beside it [default: models/artifacts/iforest.onnx
    /// when that exists; else no scores, with a warning]. Replaced files are taken while running.
    #[arg(long, env = "APO_ANOMALY_MODEL")]
    pub anomaly_model: Option<PathBuf>,
    /// The LSTM forecaster, its metadata JSON beside it [default: models/artifacts/lstm.onnx when
    /// that exists]. Replaced files are taken while running.
    #[arg(long, env = "APO_FORECAST_MODEL")]
    pub forecast_model: Option<PathBuf>,
    /// Output topic of anomaly scores (JSON, key = series + window).
    #[arg(long, env = "APO_ANOMALIES_TOPIC", default_value = "apo.anomalies")]
    pub anomalies_topic: String,
    /// Output topic of forecasts (JSON, key = series + signal + window).
    #[arg(long, env = "APO_FORECASTS_TOPIC", default_value = "apo.forecasts")]
    pub forecasts_topic: String,
    /// The window statistic forecast: mean, p50, p95, p99, max, sum or rate.
    #[arg(long, env = "APO_FORECAST_SIGNAL", default_value = "mean")]
    pub forecast_signal: apo_dataflow::Signal,
    /// The horizons each window is forecast at (e.g. 2m,3m,15m), each a whole number of the
    /// series' windows up to the model's steps (15 for the shipped LSTM); one forecast record
    /// per horizon, from one run of the model. A planner's predictive rule plans with the
    /// freshest forecast of each window it looks at, so horizons near its scheduling buffer
    /// give it the latest information. [default: the model's own horizon, 15 minutes]
    #[arg(long, env = "APO_FORECAST_HORIZONS", value_delimiter = ',', value_parser = duration)]
    pub forecast_horizons: Vec<Duration>,
    #[command(flatten)]
    /// How anomaly scores become alerts.
    pub alert: AlertArgs,
    /// Audit topic of actions carried out on services (`apo.actions`, JSON, key = target;
    /// schema: schemas/json/action.schema.json). Read from its beginning at start, then
    /// followed: an alert on a service within --suppress-seconds after an action that changed
    /// it is reported as suppressed, not raised (empty: no suppression).
    #[arg(long, env = "APO_ACTIONS_TOPIC", default_value = "apo.actions")]
    pub actions_topic: String,
    /// Seconds after an action on a service during which its alerts are suppressed.
    #[arg(long, env = "APO_SUPPRESS_SECONDS", default_value_t = 600)]
    pub suppress_seconds: u64,
    /// At start, rebuild each series' model state (feature history, alert state, forecaster
    /// input) from the windows the previous run wrote to --data-dir's Parquet tables, so a
    /// restart neither blinds the models for the windows they need nor changes what they emit.
    #[arg(long, env = "APO_WARM_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub warm_start: bool,
    /// How often the model files are looked at for a replacement.
    #[arg(long, env = "APO_MODEL_RELOAD_CHECK", default_value = "5s", value_parser = duration)]
    pub model_reload_check: Duration,
}

/// The trace pipeline's flags (part of `apo run`).
#[derive(Args, Debug, Clone)]
pub struct TraceArgs {
    /// Run the trace pipeline beside the metrics one: RED, SLOs, critical paths and the service map from --spans-topic.
    #[arg(long = "traces", env = "APO_TRACES", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,
    /// Input topic of spans: APO JSON, Zipkin v2 JSON or OTLP protobuf ExportTraceServiceRequest per message (the Collector's Kafka exporter writes `otlp_spans`), keyed by trace id.
    #[arg(long, env = "APO_SPANS_TOPIC", default_value = "apo.spans")]
    pub spans_topic: String,
    /// Output topic of RED metrics (spanmetrics names).
    #[arg(long, env = "APO_RED_TOPIC", default_value = "apo.red")]
    pub red_topic: String,
    /// Output topic of per-trace critical paths.
    #[arg(
        long,
        env = "APO_CRITICAL_PATH_TOPIC",
        default_value = "apo.critical_path"
    )]
    pub critical_path_topic: String,
    /// Output topic of per-window critical-path shares.
    #[arg(
        long,
        env = "APO_CRITICAL_PATH_SHARE_TOPIC",
        default_value = "apo.critical_path_share"
    )]
    pub critical_path_share_topic: String,
    /// Output topic of service-map edges.
    #[arg(long, env = "APO_SERVICE_MAP_TOPIC", default_value = "apo.service_map")]
    pub service_map_topic: String,
    /// Output topic of the current service map's changes (upsert / retract per edge, keyed by edge: compaction keeps the map).
    #[arg(
        long,
        env = "APO_SERVICE_MAP_CURRENT_TOPIC",
        default_value = "apo.service_map_current"
    )]
    pub service_map_current_topic: String,
    /// How long a closed edge window stays in the current service map; an edge without calls for this long is retracted.
    #[arg(long, env = "APO_MAP_HORIZON", default_value = "15m", value_parser = duration)]
    pub map_horizon: Duration,
    /// Output topic of SLO states (compliance and burn-rate alerts per objective, service and window).
    #[arg(long, env = "APO_SLO_TOPIC", default_value = "apo.slo")]
    pub slo_topic: String,
    /// SLO objectives and alert windows: APO's TOML, or a Sloth SLO spec (YAML, prometheus/v1; its SLIs read over spans where they can be, see the README). Default: API p50 < 100 ms, p95 < 500 ms, p99 < 1 s, errors < 0.1 %; DB SELECT p95 < 50 ms, INSERT/UPDATE p95 < 200 ms; pages at burn 14.4 over 1 h and 5 m or 6 over 6 h and 30 m, tickets at 3 over 1 d and 2 h or 1 over 3 d and 6 h.
    #[arg(long, env = "APO_SLO_FILE")]
    pub slo_file: Option<PathBuf>,
    /// Window of RED, SLOs, critical-path shares and service-map edges (whole seconds).
    #[arg(long, env = "APO_TRACE_WINDOW", default_value = "1m", value_parser = duration)]
    pub trace_window: Duration,
    /// A trace is complete when no span of it arrived for this long (event time) after its last span ended.
    #[arg(long, env = "APO_TRACE_IDLE", default_value = "10s", value_parser = duration)]
    pub trace_idle: Duration,
    /// Spans per trace; a larger trace is analysed in fragments of this size, flagged incomplete.
    #[arg(long, env = "APO_MAX_TRACE_SPANS", default_value_t = 10_000)]
    pub max_trace_spans: usize,
    /// Spans held in open traces per worker; past it the oldest traces are analysed early, flagged incomplete.
    #[arg(long, env = "APO_MAX_HELD_SPANS", default_value_t = 1_000_000)]
    pub max_held_spans: usize,
    /// The span attributes that name an uninstrumented peer of a client span (a service-map
    /// virtual node), first found first; database client spans are named by db.name, else
    /// db.namespace, else db.system, whatever this says.
    #[arg(
        long,
        env = "APO_PEER_ATTRIBUTES",
        value_delimiter = ',',
        default_value = "peer.service,rpc.service,server.address,net.peer.name,net.sock.peer.addr,net.sock.peer.name,http.url,http.target"
    )]
    pub peer_attributes: Vec<String>,
    /// Operations per service with RED rows of their own; the rest fold into one `otel.metric.overflow` row.
    #[arg(long, env = "APO_MAX_OPERATIONS", default_value_t = 100)]
    pub max_operations: usize,
    /// Contributors per window with critical-path share rows of their own; the rest fold into one row.
    #[arg(long, env = "APO_MAX_SHARE_ROWS", default_value_t = 50)]
    pub max_share_rows: usize,
}
