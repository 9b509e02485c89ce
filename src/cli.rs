//! Command-line arguments. Every flag can also come from an environment variable (`APO_…`, shown
//! in `--help`) or from the TOML file named by `--config` / `APO_CONFIG`; the command line wins
//! over the environment, which wins over the file.

use std::path::PathBuf;

use apo_actuators::{ActuateArgs, OverrideArgs};
use apo_bench::{BenchArgs, ForecastArgs, ScoreArgs};
use apo_pipeline::args::{BrokerArgs, ProduceArgs, RunArgs};
use apo_sim::command::SimArgs;
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
        default_value = "warn,apo=info,apo_pipeline=info,apo_bench=info,apo_ingest=info,apo_dataflow=info,apo_sinks=info"
    )]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the pipelines, metrics and traces (embedded broker and synthetic traffic when no --brokers).
    Run(Box<RunArgs>),
    /// Carry out the planner's decisions: verify, check the policy, execute once, audit on apo.actions.
    Actuate(Box<ActuateArgs>),
    /// Pause, resume or pin a target by hand for the actuators; list the overrides in force.
    Override(Box<OverrideArgs>),
    /// Produce synthetic telemetry to a Kafka topic (a load source for any broker).
    Produce(ProduceArgs),
    /// Simulate a service that the actuators' executors scale, publishing its metrics to Kafka.
    #[command(
        long_about = "Simulate a service that the actuators' executors scale, publishing \
its metrics to Kafka in event time.\n\n\
The sim serves the webhook executor's endpoint (http://LISTEN/hooks/SERVICE) and the apps/v1 \
scale and workload paths the kubernetes executor calls (api_server = http://LISTEN, any \
namespace), so `apo actuate` drives it unchanged; `apo run --planner` reads its metrics.\n\n\
It runs paced against the clock. To replay faster than real time, give the sim, `apo run` and \
`apo actuate` the same fast clock in APO_NOW, written 'T at S xK': the clock reads T when the \
system clock reads S and runs K times as fast (T and S as RFC 3339 times or Unix milliseconds). \
For example, with S the time you start and T fifteen minutes earlier (event time must stay \
behind the wall clock), x60 runs a simulated minute each second. Every process must get the \
same string: expiry, pacing and effect checks compare their clocks.\n\n\
A progress line per window goes to stderr (OVER marks a window whose p95 is over --slo-p95); \
at the end each window is printed on stdout as a JSON line.\n\n\
With --report, the effectiveness report instead: the load (--trace FILE.csv or --load) and the \
seed run three times at once through the whole system on an embedded broker of its own (no \
--brokers): fixed capacity sized for the load's mean, the planner's HPA rule alone, and APO with \
every rule it has for the service; on a clock of its own (--speed, 120x: a simulated day in \
12 minutes). It prints a table (SLA-violation minutes, p50/p95/p99, error rate, \
replica-minutes, scale actions, time short of capacity) and writes it with a plot (report.svg) \
and each run's minutes (minutes.csv) to --out, and with --benchmarks into a Markdown file."
    )]
    Sim(Box<SimArgs>),
    /// Query the Parquet tables of a data directory with SQL (DataFusion).
    #[command(
        long_about = "Query the Parquet tables of a data directory with SQL (DataFusion). Each \
table (window_stats, red, slo, service_map, service_map_current, critical_path, critical_path_share, \
anomalies, forecasts, decisions, actions) is read as its latest rows: one per key, the highest \
revision, so a window revised by late data or replayed after a restart counts once. Every row as \
written, each revision and each replayed copy, is in <table>_log (window_stats_log, ...). Files are \
partitioned by day: the `date` column (YYYY-MM-DD)."
    )]
    Sql(SqlArgs),
    /// Run the embedded Kafka-protocol broker on its own (tansu, sqlite storage) until stopped.
    Broker(BrokerArgs),
    /// Measure throughput, latency, memory and accuracy against baselines from the same run.
    Bench(BenchArgs),
    /// Score a `timestamp,value` CSV series with the anomaly model, as the stream would.
    Score(ScoreArgs),
    /// Forecast a `timestamp,value` CSV series 15 minutes ahead with the LSTM, next to the actuals.
    Forecast(ForecastArgs),
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
