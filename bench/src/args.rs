//! The flags of `apo bench`, `apo score` and `apo forecast`.

use std::path::PathBuf;

use apo_pipeline::args::{duration, memory_size, AlertArgs, KafkaArgs, MemoryLimit};
use clap::Args;

#[derive(Args, Debug, Clone)]
/// The flags of `apo bench`.
pub struct BenchArgs {
    #[command(flatten)]
    /// The broker (the embedded one without `--brokers`).
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
    /// OTLP data points the official SDK exports (cumulative, protobuf) for the OTLP phases
    /// (from memory and through the broker, against APO JSON in the same run); 0: none.
    #[arg(long, env = "APO_OTLP_POINTS", default_value_t = 1_000_000)]
    pub otlp_points: u64,
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
    /// Decisions sent through `apo actuate` (this binary, as a process) and through the
    /// baseline relay, paced at 10 a second and then all at once (0: skip the actuator; the
    /// planner is measured whenever the decisions section runs).
    #[arg(long, env = "APO_BENCH_DECISIONS", default_value_t = 200)]
    pub decisions: usize,
    /// Measure only the planner and the actuator.
    #[arg(long)]
    pub decisions_only: bool,
    /// Live series at which memory is measured with the memory budget off and on (empty: skip).
    #[arg(
        long,
        env = "APO_SERIES_SIZES",
        value_delimiter = ',',
        default_value = "1000,10000,100000,1000000"
    )]
    pub series_sizes: Vec<usize>,
    /// The memory budget of the series measurement (as `apo run --memory-budget`).
    #[arg(long, env = "APO_SERIES_BUDGET", default_value = "512MiB", value_parser = memory_size)]
    pub series_budget: MemoryLimit,
    /// Measure only memory against live series.
    #[arg(long)]
    pub series_only: bool,
    /// Live series at which checkpoints are measured: points/s with checkpoints every 10 s
    /// against none, and their duration and size (0: skip).
    #[arg(
        long,
        env = "APO_CHECKPOINT_SERIES",
        value_delimiter = ',',
        default_value = "48,10000,100000"
    )]
    pub checkpoint_series: Vec<usize>,
    /// About how long each run of the checkpoint measurement lasts, seconds (checkpoints come
    /// every 10 s: a run should see several).
    #[arg(long, env = "APO_CHECKPOINT_SECONDS", default_value_t = 60.0)]
    pub checkpoint_seconds: f64,
    /// Live traffic before the restart measurement stops and restarts a pipeline with
    /// checkpoints and one without (0s: skip it).
    #[arg(long, env = "APO_RESTART_AFTER", default_value = "5m", value_parser = duration)]
    pub restart_after: std::time::Duration,
    /// Points per second of that live traffic.
    #[arg(long, env = "APO_RESTART_RATE", default_value_t = 20_000.0)]
    pub restart_rate: f64,
    /// Measure only the checkpoints.
    #[arg(long)]
    pub checkpoints_only: bool,
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
/// The flags of `apo score`.
pub struct ScoreArgs {
    #[command(flatten)]
    /// The series read and where the scores go.
    pub io: SeriesIo,
    /// The isolation forest (its metadata JSON lies beside it).
    #[arg(
        long,
        env = "APO_ANOMALY_MODEL",
        default_value = "models/artifacts/iforest.onnx"
    )]
    pub model: PathBuf,
    #[command(flatten)]
    /// How scores become alerts.
    pub alert: AlertArgs,
}

#[derive(Args, Debug, Clone)]
#[command(
    long_about = "Forecast a series with the LSTM: at every sample with 48 samples of \
history, the median and 90 % interval of the value 15 minutes ahead (3 steps at 5-minute \
resolution). The resolution is the median step between timestamps; it must be 1 to 15 minutes.\n\n\
Writes `timestamp,value,forecast,lower,upper,issued_at`: timestamp is the time forecast, value the \
actual sample there (empty where the file has none or it lies past the end)."
)]
/// The flags of `apo forecast`.
pub struct ForecastArgs {
    #[command(flatten)]
    /// The series read and where the forecasts go.
    pub io: SeriesIo,
    /// The LSTM forecaster (its metadata JSON lies beside it).
    #[arg(
        long,
        env = "APO_FORECAST_MODEL",
        default_value = "models/artifacts/lstm.onnx"
    )]
    pub model: PathBuf,
}
