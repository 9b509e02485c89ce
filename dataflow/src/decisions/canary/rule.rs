//! The rollback rule: a canary's windows against its baseline's, judged as Kayenta judges a
//! canary run, once per closed window over the last `lookback` windows; a canary that fails
//! is rolled back.
//!
//! ```toml
//! [[rollback]]
//! target = "checkout"                # what a rollback decision names (default: the canary)
//! canary = "checkout-canary"         # the canary's service, as its telemetry names it
//! baseline = "checkout"              # the baseline's service
//! lookback = 10                      # windows judged together (the samples of each metric)
//! min_windows = 5                    # windows both must have before a judgement
//! pass_threshold = 95                # score at or above: pass
//! marginal_threshold = 75            # below: fail, rolled back
//! group_weights = { latency = 60, errors = 40 }
//! # comparison = { confidence = 0.98, tolerance = 0.25 }   # Kayenta's judge's defaults
//! [[rollback.metrics]]
//! name = "http.server.request.duration"
//! statistic = "p99"                  # of each window: mean, p50 … p999, min, max, count, sum
//! direction = "increase"             # increase | decrease | either
//! group = "latency"                  # default: the metric's name
//! critical = true                    # its failure fails the canary whatever the score
//! ```
//!
//! A canary that runs as the baseline's service, told apart by an attribute of its telemetry
//! (the OpenTelemetry resource attribute `service.version`, as a canary deployment of a new
//! version has it), names the service and the attribute's two values:
//!
//! ```toml
//! [[rollback]]
//! service = "checkout"               # both run as this service (the decisions' default target)
//! attribute = "service.version"      # the default
//! canary = "1.5.0"                   # the canary's value of the attribute
//! baseline = "1.4.2"                 # the baseline's
//! [[rollback.metrics]]
//! name = "http.server.request.duration"
//! statistic = "p99"
//! ```
//!
//! The attribute is then a series attribute of the metrics pipeline (added to
//! `--series-attributes` when it is not one), and each side's windows are its attribute
//! series rolled up over any other attributes (the planner's roll-up: counts and sums exact,
//! percentiles the largest).
//!
//! Each metric's samples are its statistic's values in the windows of the lookback that both
//! the canary and the baseline have. After a rollback decision the rule stays quiet for
//! `lookback` windows (the canary's windows after it are of the rollback, not of the canary).

use std::collections::{BTreeMap, VecDeque};

use apo_schemas::WindowStats;
use serde::Deserialize;

use super::judge::{classify, score, Class, Comparison, Direction, MetricResult, Verdict};
use super::mann_whitney::u_test;

/// One metric the judge compares.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryMetric {
    /// The metric's name (the same in both services).
    pub name: String,
    /// Which statistic of each window is a sample.
    #[serde(default = "mean")]
    pub statistic: String,
    /// Which change counts against the canary.
    #[serde(default)]
    pub direction: Direction,
    /// Its group for the score (default: its name).
    #[serde(default)]
    pub group: Option<String>,
    /// A failure of it fails the canary whatever the score.
    #[serde(default)]
    pub critical: bool,
}

fn mean() -> String {
    "mean".into()
}

fn ten() -> usize {
    10
}

fn five() -> usize {
    5
}

fn pass() -> f64 {
    95.0
}

fn marginal() -> f64 {
    75.0
}

/// One `[[rollback]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackTarget {
    /// What a rollback decision names (default: the canary's service, or `service`).
    #[serde(default)]
    pub target: Option<String>,
    /// The service the canary and the baseline both run as, when an attribute of their
    /// telemetry tells them apart: `canary` and `baseline` are then its values.
    #[serde(default)]
    pub service: Option<String>,
    /// The attribute that tells them apart (with `service`; default `service.version`).
    #[serde(default)]
    pub attribute: Option<String>,
    /// The canary's service (or, with `service`, its value of the attribute).
    pub canary: String,
    /// The baseline's service (or, with `service`, its value of the attribute).
    pub baseline: String,
    /// Windows judged together.
    #[serde(default = "ten")]
    pub lookback: usize,
    /// Windows with both before a judgement.
    #[serde(default = "five")]
    pub min_windows: usize,
    /// Score at or above which the canary passes.
    #[serde(default = "pass")]
    pub pass_threshold: f64,
    /// Score below which it fails (and is rolled back).
    #[serde(default = "marginal")]
    pub marginal_threshold: f64,
    /// Group weights, percent (groups not named share the rest equally).
    #[serde(default)]
    pub group_weights: BTreeMap<String, f64>,
    /// How each metric is compared.
    #[serde(default)]
    pub comparison: Comparison,
    /// The metrics.
    pub metrics: Vec<CanaryMetric>,
}

/// The statistics a metric may name.
pub const STATISTICS: &[&str] = &[
    "mean", "p50", "p90", "p95", "p99", "p999", "min", "max", "count", "sum",
];

/// The value of `statistic` in `w`.
pub fn statistic(w: &WindowStats, statistic: &str) -> Option<f64> {
    Some(match statistic {
        "mean" => w.mean,
        "p50" => w.p50,
        "p90" => w.p90,
        "p95" => w.p95,
        "p99" => w.p99,
        "p999" => w.p999,
        "min" => w.min,
        "max" => w.max,
        "count" => w.count as f64,
        "sum" => w.sum,
        _ => return None,
    })
}

impl RollbackTarget {
    /// The decisions' target.
    pub fn target(&self) -> &str {
        self.target
            .as_deref()
            .or(self.service.as_deref())
            .unwrap_or(&self.canary)
    }

    /// The attribute that tells the canary from the baseline, when both run as `service`.
    pub fn attribute(&self) -> Option<&str> {
        self.service
            .as_ref()
            .map(|_| self.attribute.as_deref().unwrap_or("service.version"))
    }

    /// The services whose windows the rule reads.
    pub fn services(&self) -> Vec<&str> {
        match &self.service {
            Some(s) => vec![s.as_str()],
            None => vec![self.canary.as_str(), self.baseline.as_str()],
        }
    }

    /// Errors on settings the rule cannot run with.
    pub fn check(&self) -> Result<(), String> {
        let name = self.target();
        if self.canary.trim().is_empty() || self.baseline.trim().is_empty() {
            return Err(format!(
                "rollback `{name}`: canary and baseline must be named"
            ));
        }
        if self.canary == self.baseline {
            return Err(format!(
                "rollback `{name}`: the canary and the baseline are the same {}",
                match self.attribute() {
                    Some(a) => format!("value of `{a}`"),
                    None => "service".to_string(),
                }
            ));
        }
        if self.service.as_deref().is_some_and(|s| s.trim().is_empty())
            || self
                .attribute
                .as_deref()
                .is_some_and(|a| a.trim().is_empty())
        {
            return Err(format!(
                "rollback `{name}`: service and attribute must not be empty"
            ));
        }
        if self.attribute.is_some() && self.service.is_none() {
            return Err(format!(
                "rollback `{name}`: `attribute` tells a canary from its baseline within one \
                 service: name it with `service`"
            ));
        }
        if self.metrics.is_empty() {
            return Err(format!("rollback `{name}`: no metrics to judge"));
        }
        if self.min_windows < 2 || self.min_windows > self.lookback {
            return Err(format!(
                "rollback `{name}`: need 2 <= min_windows ({}) <= lookback ({})",
                self.min_windows, self.lookback
            ));
        }
        if !(0.0..=100.0).contains(&self.marginal_threshold)
            || !(self.marginal_threshold..=100.0).contains(&self.pass_threshold)
        {
            return Err(format!(
                "rollback `{name}`: need 0 <= marginal_threshold ({}) <= pass_threshold ({}) <= 100",
                self.marginal_threshold, self.pass_threshold
            ));
        }
        let weights: f64 = self.group_weights.values().sum();
        if self.group_weights.values().any(|w| w.is_nan() || *w < 0.0) || weights > 100.0 {
            return Err(format!(
                "rollback `{name}`: group weights must be >= 0 and add up to at most 100"
            ));
        }
        self.comparison
            .check()
            .map_err(|e| format!("rollback `{name}`: comparison: {e}"))?;
        for m in &self.metrics {
            if !STATISTICS.contains(&m.statistic.as_str()) {
                return Err(format!(
                    "rollback `{name}`: metric `{}`: unknown statistic `{}` (one of {})",
                    m.name,
                    m.statistic,
                    STATISTICS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Whether it reads this series.
    pub fn reads(&self, service: &str, metric: &str) -> bool {
        self.services().contains(&service) && self.metrics.iter().any(|m| m.name == metric)
    }
}

/// One window's values of every metric: (canary, baseline).
type WindowValues = BTreeMap<String, (Option<f64>, Option<f64>)>;

/// A rollback target's state on its worker: the last `lookback` windows.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CanaryState {
    windows: VecDeque<(i64, WindowValues)>,
    /// Windows to stay quiet after a rollback.
    quiet: usize,
}

/// One metric's judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricVerdict {
    /// The metric.
    pub metric: CanaryMetric,
    /// Its class.
    pub class: Class,
    /// Canary mean over baseline mean of the statistic.
    pub ratio: f64,
    /// The shift's interval and estimate, when the test ran.
    pub shift: Option<super::mann_whitney::Shift>,
    /// The U test's two-sided p-value, when it ran (reported; the class comes from the
    /// interval, as in Kayenta).
    pub p_value: Option<f64>,
    /// Canary samples' mean, baseline samples' mean.
    pub means: (f64, f64),
    /// Samples per side.
    pub samples: usize,
}

/// A judgement of the canary over the lookback.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The score.
    pub score: f64,
    /// Why it is 0 regardless of the groups, when it is.
    pub reason: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// The first window judged.
    pub first_window: i64,
    /// Per metric.
    pub metrics: Vec<MetricVerdict>,
}

impl CanaryState {
    /// Takes one closed window's rows (of the canary and the baseline) starting at `start`;
    /// returns the judgement when the canary has data in it and the lookback holds
    /// `min_windows` of both (and the rule is not quiet after a rollback).
    pub fn step(
        &mut self,
        t: &RollbackTarget,
        start: i64,
        rows: &[&WindowStats],
    ) -> Option<Judgement> {
        let mut values: WindowValues = BTreeMap::new();
        let mut canary_seen = false;
        for m in &t.metrics {
            let of = |service: &str| {
                rows.iter()
                    .find(|w| w.service == service && w.metric == m.name)
                    .and_then(|w| statistic(w, &m.statistic))
                    .filter(|v| v.is_finite())
            };
            let (c, b) = (of(&t.canary), of(&t.baseline));
            canary_seen |= c.is_some();
            values.insert(m.name.clone(), (c, b));
        }
        self.windows.push_back((start, values));
        while self.windows.len() > t.lookback {
            self.windows.pop_front();
        }
        if self.quiet > 0 {
            self.quiet -= 1;
            return None;
        }
        if !canary_seen {
            return None;
        }
        let both = |name: &str| -> (Vec<f64>, Vec<f64>) {
            self.windows
                .iter()
                .filter_map(|(_, v)| match v.get(name) {
                    Some((Some(c), Some(b))) => Some((*c, *b)),
                    _ => None,
                })
                .unzip()
        };
        let windows_with_both = self
            .windows
            .iter()
            .filter(|(_, v)| v.values().any(|(c, b)| c.is_some() && b.is_some()))
            .count();
        if windows_with_both < t.min_windows {
            return None;
        }
        let mut results = Vec::new();
        let mut metrics = Vec::new();
        for m in &t.metrics {
            let (canary, baseline) = both(&m.name);
            let c = classify(&canary, &baseline, m.direction, m.critical, &t.comparison);
            let avg = |v: &[f64]| {
                if v.is_empty() {
                    f64::NAN
                } else {
                    v.iter().sum::<f64>() / v.len() as f64
                }
            };
            results.push(MetricResult {
                name: m.name.clone(),
                group: m.group.clone().unwrap_or_else(|| m.name.clone()),
                class: c.class,
                critical_failure: c.critical_failure,
            });
            metrics.push(MetricVerdict {
                metric: m.clone(),
                class: c.class,
                ratio: c.ratio,
                shift: c.shift,
                p_value: u_test(&canary, &baseline).map(|u| u.p_value),
                means: (avg(&canary), avg(&baseline)),
                samples: canary.len(),
            });
        }
        let s = score(&results, &t.group_weights);
        let verdict = Verdict::of(s.score, t.pass_threshold, t.marginal_threshold);
        if verdict == Verdict::Fail {
            self.quiet = t.lookback;
        }
        Some(Judgement {
            score: s.score,
            reason: s.reason,
            verdict,
            first_window: self.windows.front().map_or(start, |(s, _)| *s),
            metrics,
        })
    }
}
