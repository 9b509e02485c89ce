//! The flags of `apo sim --report` (beside the sim's own: the load, the service, the scrape,
//! the window, the objective and the seed are the sim's flags).

use std::path::PathBuf;

use clap::Args;

/// What APO's replicas are sized for (`--apo-utilization`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ApoUtilization {
    /// This utilisation.
    Given(f64),
    /// The highest the SLO allows by Erlang C, less the HPA rule's tolerance.
    Slo,
}

fn apo_utilization(s: &str) -> Result<ApoUtilization, String> {
    if s.eq_ignore_ascii_case("slo") {
        return Ok(ApoUtilization::Slo);
    }
    s.parse::<f64>()
        .map(ApoUtilization::Given)
        .map_err(|_| format!("`{s}` is neither a utilisation (0.7) nor `slo`"))
}

/// `apo sim --report`: the same load three times through the whole system.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Run the effectiveness report instead of one sim: the load (--trace or --load) and the
    /// seed three times at once through the whole system on an embedded broker (pipeline,
    /// planner, actuator, sim): fixed capacity sized for the load's mean, the HPA rule alone,
    /// and APO with every rule it has for the service. Prints a table, writes it with a plot.
    #[arg(long)]
    pub report: bool,
    /// The report's clock speed: simulated seconds per wall second (a simulated day takes
    /// 86 400 / SPEED seconds). With APO_NOW set, its clock is used instead.
    #[arg(long, default_value_t = 120.0)]
    pub speed: f64,
    /// Where the report writes its table (report.md), its plot (report.svg), its runs' minutes
    /// (minutes.csv) and the system's data (data/: the embedded broker, the Parquet tables for
    /// `apo sql --data-dir OUT/data`). The data of an earlier report there is replaced.
    #[arg(long, default_value = "apo-report")]
    pub out: PathBuf,
    /// Also put the report in this Markdown file (BENCHMARKS.md), replacing its earlier
    /// report of the same load.
    #[arg(long)]
    pub benchmarks: Option<PathBuf>,
    /// The models the pipeline forecasts with (lstm.onnx, iforest.onnx and their JSON).
    #[arg(long, default_value = "models/artifacts")]
    pub models_dir: PathBuf,
    /// The utilisation a replica is sized for by hand, as an HPA is set up: the HPA rule's
    /// target and the fixed capacity's size at the load's mean.
    #[arg(long, default_value_t = 0.6)]
    pub utilization: f64,
    /// The utilisation APO sizes its replicas for (its HPA rule's utilisation and request-rate
    /// targets, its predictive rule's): a number, or `slo` for the one queueing theory gives:
    /// the highest utilisation at which a replica as an M/M/c queue (c its workers, its mean
    /// service time) keeps the p95 response time within --slo-p95 (Erlang C), less the HPA
    /// rule's tolerance (so that the top of the band it leaves alone still keeps it), the
    /// lowest of a fleet's services. Default: --utilization (`slo` ran hotter on the ELB trace
    /// and lost more violation minutes than it saved cost: BENCHMARKS.md).
    #[arg(long, value_parser = apo_utilization)]
    pub apo_utilization: Option<ApoUtilization>,
    /// The quantile of the forecast APO's predictive rule plans capacity for: 0.95 is the
    /// upper bound of the forecaster's 90 % interval, 0.5 its median (0.05 to 0.95). The
    /// median was chosen on day 2 of elb_request_count_8c0756.csv (BENCHMARKS.md).
    #[arg(long, default_value_t = 0.5)]
    pub forecast_quantile: f64,
    /// Have the pipeline forecast each window at one, two, … windows ahead up to those the
    /// predictive rule plans for (and 15 minutes), so that the rule plans with the forecast
    /// issued at its own window rather than the model's 15-minute one, issued about 13 minutes
    /// before. Off by default: on the ELB trace it cost less but lost more violation minutes
    /// (BENCHMARKS.md).
    #[arg(long)]
    pub fresh_forecasts: bool,
    /// A minute counts short of capacity when its serving replicas would run above this
    /// utilisation at the load offered.
    #[arg(long, default_value_t = 0.8)]
    pub capacity_utilization: f64,
    /// The error rate over which a minute violates the SLA (besides its p95 over --slo-p95).
    #[arg(long, default_value_t = 0.001)]
    pub max_error_rate: f64,
}
