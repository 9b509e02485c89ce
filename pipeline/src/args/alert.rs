//! How anomaly scores become alerts: the alert stage's flags (`apo run` and `apo score`).

use clap::Args;

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
    /// The alert stage's settings these flags give.
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
