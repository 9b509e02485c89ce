//! Command-line arguments. Every flag can also come from an environment variable (`APO_…`, shown
//! in `--help`) or from the TOML file named by `--config` / `APO_CONFIG`; the command line wins
//! over the environment, which wins over the file.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "apo",
    version,
    about = "APO: streaming performance analytics on Kafka",
    long_about = "APO reads metrics and spans from Kafka and computes, incrementally and in event \
time: windowed statistics of metrics (count, sum, min, max, mean, p50…p99.9 from DDSketch); RED \
metrics per service and operation, per-trace critical paths, critical-path shares and the \
service map from spans. Results go to Kafka topics and Parquet tables, queryable with SQL.\n\nWithout --brokers, `apo run` starts an embedded Kafka-protocol broker and \
a synthetic traffic generator, so it works on a machine with no Kafka.\n\nConfiguration: flags, \
APO_* environment variables, or a TOML file (--config / APO_CONFIG) whose top-level keys and \
[run] / [produce] / [sql] / [bench] tables use the flag names, plus a [kafka] table of librdkafka \
properties."
)]
pub struct Cli {
    /// TOML configuration file (read before the flags are parsed).
    #[arg(long, global = true, env = "APO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax; APO_LOG overrides).
    #[arg(
        long,
        global = true,
        default_value = "warn,apo=info,apo_ingest=info,apo_dataflow=info,apo_sinks=info"
    )]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the pipelines, metrics and traces (embedded broker and synthetic traffic when no --brokers).
    Run(Box<RunArgs>),
    /// Produce synthetic telemetry to a Kafka topic (a load source for any broker).
    Produce(ProduceArgs),
    /// Query the Parquet tables of a data directory with SQL (DataFusion).
    Sql(SqlArgs),
    /// Measure throughput, latency, memory and accuracy against baselines from the same run.
    Bench(BenchArgs),
    /// Score a `timestamp,value` CSV series with the anomaly model, as the stream would.
    Score(ScoreArgs),
    /// Forecast a `timestamp,value` CSV series 15 minutes ahead with the LSTM, next to the actuals.
    Forecast(ForecastArgs),
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (examples: 500ms, 10s, 5m, 7d)"))
}

fn kafka_prop(s: &str) -> Result<(String, String), String> {
    apo_ingest::kafka::parse_override(s)
}

/// Kafka connection flags shared by the commands that talk to a broker.
#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,…).
    #[arg(long, env = "APO_BROKERS")]
    pub brokers: Option<String>,
    /// A librdkafka property, as kcat's -X (repeatable): security.protocol=SASL_SSL, sasl.mechanism=…, ssl.ca.location=…
    #[arg(short = 'X', long = "kafka", value_name = "KEY=VALUE", value_parser = kafka_prop)]
    pub kafka: Vec<(String, String)>,
    /// Create missing topics at start (the test broker and some clusters do not auto-create).
    #[arg(long, env = "APO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_topics: bool,
    /// Partitions of topics created by --create-topics.
    #[arg(long, env = "APO_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
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
    /// Input encoding: auto (per message), json, otlp.
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
    /// A partition silent this long stops holding the watermark back.
    #[arg(long, env = "APO_IDLE_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// Points older than this (by the clock) are invalid.
    #[arg(long, env = "APO_MAX_EVENT_AGE", default_value = "7d", value_parser = duration)]
    pub max_event_age: Duration,
    /// Points further in the future than this are invalid.
    #[arg(long, env = "APO_MAX_EVENT_FUTURE", default_value = "1h", value_parser = duration)]
    pub max_event_future: Duration,
    /// Where Parquet tables (and the embedded broker's log) are written.
    #[arg(long, env = "APO_DATA_DIR", default_value = "apo-data")]
    pub data_dir: PathBuf,
    /// Longest time rows wait before their Parquet file is written (offsets commit after it).
    #[arg(long, env = "APO_PARQUET_ROLL", default_value = "10s", value_parser = duration)]
    pub parquet_roll: Duration,
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
    /// Points per second the built-in generator sends in embedded mode (0: no generator).
    #[arg(long, env = "APO_GENERATE_RATE", default_value_t = 2000.0)]
    pub generate_rate: f64,
    /// Traces per second the built-in generator sends in embedded mode (0: none).
    #[arg(long, env = "APO_GENERATE_TRACES", default_value_t = 50.0)]
    pub generate_traces: f64,
    #[command(flatten)]
    pub traces: TraceArgs,
    #[command(flatten)]
    pub models: ModelArgs,
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
    #[command(flatten)]
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
    /// SLO objectives and alert windows (TOML; see the README). Default: API p50 < 100 ms, p95 < 500 ms, p99 < 1 s, errors < 0.1 %; DB SELECT p95 < 50 ms, INSERT/UPDATE p95 < 200 ms; pages at burn 14.4 over 1 h and 5 m, tickets at 6 over 6 h and 30 m.
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
    /// Operations per service with RED rows of their own; the rest fold into one `otel.metric.overflow` row.
    #[arg(long, env = "APO_MAX_OPERATIONS", default_value_t = 100)]
    pub max_operations: usize,
    /// Contributors per window with critical-path share rows of their own; the rest fold into one row.
    #[arg(long, env = "APO_MAX_SHARE_ROWS", default_value_t = 50)]
    pub max_share_rows: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Produce traces (spans of a web shop's services) instead of metric points.
    #[arg(long, env = "APO_SPANS")]
    pub spans: bool,
    /// Span encoding with --spans: json (APO JSON), otlp (protobuf ExportTraceServiceRequest), zipkin (v2 JSON).
    #[arg(long, env = "APO_SPAN_FORMAT", default_value = "json")]
    pub span_format: apo_ingest::trace_produce::SpanFormat,
    /// Topic to write to (default apo.metrics; with --spans, apo.spans).
    #[arg(long, env = "APO_TOPIC")]
    pub topic: Option<String>,
    /// Number of services.
    #[arg(long, env = "APO_SERVICES", default_value_t = 6)]
    pub services: usize,
    /// Metrics per service.
    #[arg(long, env = "APO_METRICS", default_value_t = 4)]
    pub metrics: usize,
    /// Points per second of event time (with --spans: traces per second, about 7 spans each).
    #[arg(long, env = "APO_RATE", default_value_t = 2000.0)]
    pub rate: f64,
    /// Stop after this many points (with --spans: spans).
    #[arg(long, env = "APO_COUNT")]
    pub count: Option<u64>,
    /// Stop after this much event time (e.g. 10m); without --count or --duration, runs until interrupted.
    #[arg(long, env = "APO_DURATION", value_parser = duration)]
    pub duration: Option<Duration>,
    /// Points per Kafka message (one JSON array each, keyed by service).
    #[arg(long, env = "APO_BATCH", default_value_t = 200)]
    pub batch: usize,
    /// realtime: send each point (span) when its event time (end) comes; flat: as fast as possible.
    #[arg(long, env = "APO_PACE", default_value = "realtime", value_parser = ["realtime", "flat"])]
    pub pace: String,
    /// Event time of the first point: RFC 3339, or now.
    #[arg(long, env = "APO_START", default_value = "now")]
    pub start: String,
    /// Mean latency incidents per hour of event time.
    #[arg(long, env = "APO_INCIDENTS_PER_HOUR", default_value_t = 6.0)]
    pub incidents_per_hour: f64,
    /// Random seed (same seed, same data).
    #[arg(long, env = "APO_SEED", default_value_t = 42)]
    pub seed: u64,
}

#[derive(Args, Debug, Clone)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT service, max(p99) FROM window_stats GROUP BY service".
    pub query: String,
    /// Data directory written by `apo run`.
    #[arg(long, env = "APO_DATA_DIR", default_value = "apo-data")]
    pub data_dir: PathBuf,
    /// Output format: table, csv, json.
    #[arg(long, env = "APO_FORMAT", default_value = "table")]
    pub format: apo_sinks::sql::OutputFormat,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Points to load and process.
    #[arg(long, env = "APO_POINTS", default_value_t = 1_000_000)]
    pub points: u64,
    /// Also measure peak memory of the dataflow at this many points (lazily generated), to show it does not grow with input.
    #[arg(long, env = "APO_MEMORY_POINTS", default_value_t = 10_000_000)]
    pub memory_points: u64,
    /// Spans to load and run through the trace pipeline (0: skip the trace benchmark).
    #[arg(long, env = "APO_SPAN_COUNT", default_value_t = 1_000_000)]
    pub span_count: u64,
    /// Worker threads.
    #[arg(short = 'w', long, env = "APO_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Also run the full pipeline at this fraction of the raw consumption rate (a steady load,
    /// as a live pipeline runs, rather than catching up at the broker's limit) and report its
    /// close-to-output latency; 0 skips it.
    #[arg(long, env = "APO_PACED", default_value_t = 0.5)]
    pub paced: f64,
    /// Also measure the models: tract's scoring rates and the pipeline with models off and on
    /// (run from the repository root, where models/artifacts is).
    #[arg(long, env = "APO_BENCH_MODELS", default_value_t = true, action = clap::ArgAction::Set)]
    pub models: bool,
    /// Measure only the models (quick).
    #[arg(long)]
    pub models_only: bool,
    /// Write the results as Markdown to this file (e.g. BENCHMARKS.md); from a heading
    /// `## Model quality` on, the old file is kept (the NAB evaluation writes that part).
    #[arg(long, env = "APO_WRITE")]
    pub write: Option<PathBuf>,
    /// Working directory for the embedded broker and Parquet output.
    #[arg(long, env = "APO_DATA_DIR", default_value = "apo-bench-data")]
    pub data_dir: PathBuf,
}

/// Input and output of the offline model commands.
#[derive(Args, Debug, Clone)]
pub struct SeriesIo {
    /// A `timestamp,value` CSV with a header (NAB's format; timestamps `YYYY-MM-DD HH:MM:SS`
    /// UTC, RFC 3339, or epoch seconds), in time order.
    pub file: PathBuf,
    /// Write the result here instead of standard output.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
#[command(
    long_about = "Score a series with the isolation forest and the contextual detector as the \
stream would: each sample is one closed window of a gauge (p50 = p95 = p99 = value, constant rate, \
no errors), its features are taken against the samples before it, the contextual detector judges \
the value after the values before it, and both scores go through the alert stage (likelihood, \
minimum duration, hysteresis, quiet period).\n\nWrites \
`timestamp,value,anomaly_score,label,context_score`: anomaly_score (the forest's) in (0, 1), 0 for \
the first samples that have too little history; label 1 where an alert is raised (its onset), else \
0; context_score in [0, 1], empty while the detector learns the series' range."
)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub io: SeriesIo,
    /// The isolation forest (its metadata JSON lies beside it).
    #[arg(
        long,
        env = "APO_ANOMALY_MODEL",
        default_value = "models/artifacts/iforest.onnx"
    )]
    pub model: PathBuf,
    #[command(flatten)]
    pub alert: AlertArgs,
}

/// How anomaly scores become alerts (`apo run` and `apo score`).
#[derive(Args, Debug, Clone)]
pub struct AlertArgs {
    /// Anomaly score threshold [default: the model's, from its metadata].
    #[arg(long, env = "APO_ANOMALY_THRESHOLD")]
    pub anomaly_threshold: Option<f64>,
    /// Quantile of a series' own last 288 scores its threshold never goes below (0: off, the
    /// default, as the likelihood already adapts to each series; 0.99 is a sensible value
    /// with --min-likelihood 0).
    #[arg(long, env = "APO_ADAPTIVE_QUANTILE", default_value_t = 0.0)]
    pub adaptive_quantile: f64,
    /// Likelihood a window needs to count towards an alert: the standard normal CDF of how far
    /// the mean of the series' last --likelihood-short scores lies above the mean of its last
    /// 288, in standard deviations (0: off). A series needs 48 scores before it can alert.
    #[arg(long, env = "APO_MIN_LIKELIHOOD", default_value_t = 0.8)]
    pub min_likelihood: f64,
    /// Recent scores whose mean the likelihood judges.
    #[arg(long, env = "APO_LIKELIHOOD_SHORT", default_value_t = 10)]
    pub likelihood_short: usize,
    /// Consecutive windows at or above the threshold before an alert is raised.
    #[arg(long, env = "APO_RAISE_AFTER", default_value_t = 1)]
    pub raise_after: usize,
    /// Consecutive windows below 0.95 x threshold before an alert clears.
    #[arg(long, env = "APO_CLEAR_AFTER", default_value_t = 3)]
    pub clear_after: usize,
    /// Seconds after a raised alert during which the same series' next onsets are not raised
    /// again: a flapping incident pages once (0: off).
    #[arg(long, env = "APO_ALERT_QUIET_SECONDS", default_value_t = 43_200)]
    pub alert_quiet_seconds: u64,
    /// Contextual score at or above which a window counts towards an alert, whatever the
    /// forest's score (0: off). The contextual detector learns each series' sequences online
    /// (after CAD OSE): how surprising the window's p95 is after the windows before it.
    #[arg(long, env = "APO_CONTEXT_THRESHOLD", default_value_t = apo_models::alerting::AlertConfig::default().context_threshold)]
    pub context_threshold: f64,
    /// Windows the contextual detector watches to learn a series' range before it scores.
    #[arg(long, env = "APO_CONTEXT_LEARN_WINDOWS", default_value_t = apo_models::context::ContextConfig::default().learn_windows)]
    pub context_learn_windows: usize,
    /// Windows the contextual detector stays silent after a surprising one.
    #[arg(long, env = "APO_CONTEXT_REST_WINDOWS", default_value_t = apo_models::context::ContextConfig::default().rest_windows)]
    pub context_rest_windows: usize,
    /// Fraction of the learnt range added below and above it before values are quantised.
    #[arg(long, env = "APO_CONTEXT_RANGE_MARGIN", default_value_t = apo_models::context::ContextConfig::default().range_margin)]
    pub context_range_margin: f64,
}

impl AlertArgs {
    pub fn config(&self) -> apo_models::alerting::AlertConfig {
        apo_models::alerting::AlertConfig {
            threshold: self.anomaly_threshold,
            adaptive_quantile: self.adaptive_quantile,
            min_likelihood: self.min_likelihood,
            likelihood_short: self.likelihood_short,
            raise_after: self.raise_after,
            clear_after: self.clear_after,
            quiet_seconds: self.alert_quiet_seconds,
            context_threshold: self.context_threshold,
            context: apo_models::context::ContextConfig {
                learn_windows: self.context_learn_windows,
                rest_windows: self.context_rest_windows,
                range_margin: self.context_range_margin,
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

#[derive(Args, Debug, Clone)]
#[command(
    long_about = "Forecast a series with the LSTM: at every sample with 48 samples of \
history, the median and 90 % interval of the value 15 minutes ahead (3 steps at 5-minute \
resolution). The resolution is the median step between timestamps; it must be 1 to 15 minutes.\n\n\
Writes `timestamp,value,forecast,lower,upper,issued_at`: timestamp is the time forecast, value the \
actual sample there (empty where the file has none or it lies past the end)."
)]
pub struct ForecastArgs {
    #[command(flatten)]
    pub io: SeriesIo,
    /// The LSTM forecaster (its metadata JSON lies beside it).
    #[arg(
        long,
        env = "APO_FORECAST_MODEL",
        default_value = "models/artifacts/lstm.onnx"
    )]
    pub model: PathBuf,
}
