//! The canary judge, as Kayenta's `NetflixACAJudge` judges: each metric of the canary
//! (experiment) against the baseline (control) is classified pass, high or low
//! ([`classify`]: the Mann-Whitney shift's confidence interval against a tolerance band around
//! zero, and the effect size as the ratio of means), the classifications are scored per group
//! and weighted ([`score`]), and the score is a verdict against pass and marginal thresholds
//! ([`Verdict::of`]).
//!
//! Differences from Kayenta, deliberate: when both samples are constant (one value each,
//! different), Kayenta adds Gaussian noise and runs the test; this compares the two values
//! directly, which is what the noisy test decides, without the randomness. A metric belongs
//! to one group (Kayenta allows several).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::mann_whitney::{shift_interval, Shift};

/// Which change of a metric counts against the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Only an increase (latency, errors).
    Increase,
    /// Only a decrease (throughput, hit ratio).
    Decrease,
    /// Either.
    #[default]
    Either,
}

/// A metric's classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No significant difference in the direction that matters.
    Pass,
    /// The canary's values are higher.
    High,
    /// The canary's values are lower.
    Low,
    /// A sample is empty.
    NoData,
}

impl Class {
    /// Its name in decisions' evidence.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Pass => "pass",
            Class::High => "high",
            Class::Low => "low",
            Class::NoData => "nodata",
        }
    }
}

/// How a metric is compared (Kayenta's classifier settings; its judge's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// Confidence of the shift's interval.
    #[serde(default = "confidence")]
    pub confidence: f64,
    /// The band around zero a shift must clear, as a fraction of the estimated shift.
    #[serde(default = "tolerance")]
    pub tolerance: f64,
    /// A high needs the canary's mean at least this many times the baseline's.
    #[serde(default = "one")]
    pub allowed_increase: f64,
    /// A low needs the canary's mean at most this many times the baseline's.
    #[serde(default = "one")]
    pub allowed_decrease: f64,
    /// A critical metric's high fails the canary at once from this ratio of means.
    #[serde(default = "one")]
    pub critical_increase: f64,
    /// A critical metric's low fails the canary at once up to this ratio of means.
    #[serde(default = "one")]
    pub critical_decrease: f64,
}

fn confidence() -> f64 {
    0.98
}

fn tolerance() -> f64 {
    0.25
}

fn one() -> f64 {
    1.0
}

impl Default for Comparison {
    fn default() -> Self {
        Comparison {
            confidence: confidence(),
            tolerance: tolerance(),
            allowed_increase: one(),
            allowed_decrease: one(),
            critical_increase: one(),
            critical_decrease: one(),
        }
    }
}

impl Comparison {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), String> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(format!("confidence {} is not in (0, 1)", self.confidence));
        }
        if self.tolerance.is_nan() || self.tolerance < 0.0 {
            return Err(format!("tolerance {} is negative", self.tolerance));
        }
        for (name, v) in [
            ("allowed_increase", self.allowed_increase),
            ("allowed_decrease", self.allowed_decrease),
            ("critical_increase", self.critical_increase),
            ("critical_decrease", self.critical_decrease),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err(format!("{name} {v} is not a positive ratio"));
            }
        }
        Ok(())
    }
}

/// What [`classify`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The class.
    pub class: Class,
    /// The canary's mean over the baseline's (NaN when either mean is 0; 1 when identical).
    pub ratio: f64,
    /// The shift and its interval, when the test ran.
    pub shift: Option<Shift>,
    /// A critical metric that failed: the canary fails whatever the score.
    pub critical_failure: bool,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Kayenta's mean ratio: experiment over control, NaN when either mean is 0.
fn mean_ratio(experiment: &[f64], control: &[f64]) -> f64 {
    let (e, c) = (mean(experiment), mean(control));
    if e == 0.0 || c == 0.0 {
        f64::NAN
    } else {
        e / c
    }
}

/// Classifies `experiment` (the canary's values of a metric in a window) against `control`
/// (the baseline's); NaNs are left out. `critical`: a failure of this metric fails the canary.
pub fn classify(
    experiment: &[f64],
    control: &[f64],
    direction: Direction,
    critical: bool,
    c: &Comparison,
) -> Classification {
    let clean = |v: &[f64]| -> Vec<f64> { v.iter().copied().filter(|a| !a.is_nan()).collect() };
    let (e, b) = (clean(experiment), clean(control));
    let plain = |class: Class, ratio: f64| Classification {
        class,
        ratio,
        shift: None,
        critical_failure: critical && class == Class::NoData,
    };
    if e.is_empty() || b.is_empty() {
        return plain(Class::NoData, 1.0);
    }
    let (mut se, mut sb) = (e.clone(), b.clone());
    se.sort_by(f64::total_cmp);
    sb.sort_by(f64::total_cmp);
    if se == sb {
        return plain(Class::Pass, 1.0);
    }
    let distinct = |v: &[f64]| v.windows(2).filter(|w| w[0] != w[1]).count() + 1;
    if distinct(&se) == 1 && distinct(&sb) == 1 && se[0] == sb[0] {
        return plain(Class::Pass, 1.0);
    }
    let ratio = mean_ratio(&e, &b);
    let up = matches!(direction, Direction::Increase | Direction::Either);
    let down = matches!(direction, Direction::Decrease | Direction::Either);
    let effect_up = |limit: f64| ratio.is_nan() || ratio >= limit;
    let effect_down = |limit: f64| ratio.is_nan() || ratio <= limit;
    let (higher, lower, shift) = if distinct(&se) == 1 && distinct(&sb) == 1 {
        // Both constant (Kayenta adds noise here): the shift is the difference itself.
        (se[0] > sb[0], se[0] < sb[0], None)
    } else {
        match shift_interval(&e, &b, c.confidence) {
            Some(s) => {
                let band = c.tolerance * s.estimate.abs();
                (s.lower > band, s.upper < -band, Some(s))
            }
            None => (false, false, None),
        }
    };
    let class = if up && higher && effect_up(c.allowed_increase) {
        Class::High
    } else if down && lower && effect_down(c.allowed_decrease) {
        Class::Low
    } else {
        Class::Pass
    };
    let critical_failure = critical
        && match class {
            Class::High => effect_up(c.critical_increase),
            Class::Low => effect_down(c.critical_decrease),
            Class::NoData => true,
            Class::Pass => false,
        };
    Classification {
        class,
        ratio,
        shift,
        critical_failure,
    }
}

/// One metric's result, as the scorer takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricResult {
    /// The metric.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Its classification.
    pub class: Class,
    /// Whether it failed critically.
    pub critical_failure: bool,
}

/// The share of metrics without data at which the canary fails (Kayenta's
/// `NODATA_THRESHOLD`), percent.
pub const NODATA_THRESHOLD: f64 = 50.0;

/// A canary's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// 0–100, two decimals.
    pub score: f64,
    /// Why it is 0 regardless of the groups, when it is.
    pub reason: Option<String>,
}

/// Kayenta's weighted sum: per group the percentage of its metrics with data that passed (a
/// group without data counts 100); groups weighted by `weights` (percent), the groups not
/// named sharing what is left of 100 equally. A critical failure, or `NODATA_THRESHOLD` % of
/// the metrics without data, scores 0.
pub fn score(results: &[MetricResult], weights: &BTreeMap<String, f64>) -> Score {
    if let Some(f) = results.iter().find(|r| r.critical_failure) {
        return Score {
            score: 0.0,
            reason: Some(format!(
                "critical metric {} was {}",
                f.name,
                f.class.as_str()
            )),
        };
    }
    let nodata = results.iter().filter(|r| r.class == Class::NoData).count();
    if !results.is_empty() && nodata as f64 / results.len() as f64 * 100.0 >= NODATA_THRESHOLD {
        return Score {
            score: 0.0,
            reason: Some(format!(
                "{nodata} of {} metrics had no data (the limit is {NODATA_THRESHOLD} %)",
                results.len()
            )),
        };
    }
    // group → (passed, with data)
    let mut groups: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for r in results {
        let g = groups.entry(r.group.as_str()).or_default();
        match r.class {
            Class::Pass => {
                g.0 += 1;
                g.1 += 1;
            }
            Class::High | Class::Low => g.1 += 1,
            Class::NoData => {}
        }
    }
    let unweighted = groups.keys().filter(|g| !weights.contains_key(**g)).count();
    let share = if unweighted > 0 {
        (100.0 - weights.values().sum::<f64>()) / unweighted as f64
    } else {
        0.0
    };
    let total: f64 = groups
        .iter()
        .map(|(name, &(pass, with_data))| {
            let group_score = if with_data == 0 {
                100.0
            } else {
                pass as f64 / with_data as f64 * 100.0
            };
            group_score * weights.get(*name).copied().unwrap_or(share) / 100.0
        })
        .sum();
    Score {
        score: (total * 100.0).round() / 100.0,
        reason: None,
    }
}

/// A canary's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At or above the pass threshold.
    Pass,
    /// Between the marginal and the pass threshold: not rolled back, not promoted.
    Marginal,
    /// Below the marginal threshold: rolled back.
    Fail,
}

impl Verdict {
    /// The verdict of `score` (Kayenta's `ThresholdScoreClassifier`).
    pub fn of(score: f64, pass: f64, marginal: f64) -> Verdict {
        if score >= pass {
            Verdict::Pass
        } else if score >= marginal {
            Verdict::Marginal
        } else {
            Verdict::Fail
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Golden {
        kayenta: Vec<KayentaCase>,
    }

    #[derive(Deserialize)]
    struct KayentaCase {
        name: String,
        experiment: Vec<f64>,
        control: Vec<f64>,
        direction: Direction,
        tolerance: f64,
        confidence: f64,
        allowed_decrease: f64,
        allowed_increase: f64,
        expect: String,
    }

    #[test]
    fn kayentas_classifier_cases() {
        let g: Golden =
            serde_json::from_str(include_str!("../../../golden/mann_whitney.json")).unwrap();
        assert_eq!(g.kayenta.len(), 10);
        for k in g.kayenta {
            let c = Comparison {
                confidence: k.confidence,
                tolerance: k.tolerance,
                allowed_increase: k.allowed_increase,
                allowed_decrease: k.allowed_decrease,
                ..Comparison::default()
            };
            let got = classify(&k.experiment, &k.control, k.direction, false, &c);
            assert_eq!(got.class.as_str(), k.expect, "{}: {got:?}", k.name);
        }
    }

    #[test]
    fn edge_cases_as_kayenta_has_them() {
        let c = Comparison::default();
        let nodata = classify(&[], &[1.0], Direction::Either, true, &c);
        assert_eq!(
            (nodata.class, nodata.critical_failure),
            (Class::NoData, true)
        );
        let same = classify(
            &[3.0, 1.0, 2.0],
            &[1.0, 2.0, 3.0],
            Direction::Either,
            true,
            &c,
        );
        assert_eq!((same.class, same.ratio), (Class::Pass, 1.0));
        assert_eq!(
            classify(&[5.0, 5.0], &[5.0], Direction::Either, false, &c).class,
            Class::Pass
        );
        // both constant, different: the difference decides
        let up = classify(&[7.0, 7.0, 7.0], &[5.0, 5.0], Direction::Either, true, &c);
        assert_eq!((up.class, up.critical_failure), (Class::High, true));
        assert_eq!(
            classify(&[7.0, 7.0], &[5.0], Direction::Decrease, false, &c).class,
            Class::Pass
        );
        // NaNs are removed (Kayenta's nanStrategy "remove")
        assert_eq!(
            classify(&[f64::NAN], &[1.0], Direction::Either, false, &c).class,
            Class::NoData
        );
    }

    fn r(name: &str, group: &str, class: Class, critical_failure: bool) -> MetricResult {
        MetricResult {
            name: name.into(),
            group: group.into(),
            class,
            critical_failure,
        }
    }

    /// Kayenta's ScorerSuite, case by case.
    #[test]
    fn kayentas_scorer_cases() {
        let none = BTreeMap::new();
        let w = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let s = |rs: &[MetricResult], weights: &BTreeMap<String, f64>| score(rs, weights).score;
        assert_eq!(s(&[r("a", "g", Class::Pass, false)], &none), 100.0);
        assert_eq!(s(&[r("a", "g", Class::High, false)], &none), 0.0);
        assert_eq!(s(&[r("a", "g", Class::NoData, false)], &none), 0.0);
        assert_eq!(
            s(
                &[
                    r("1a", "pass", Class::Pass, false),
                    r("1b", "pass", Class::Pass, false),
                    r("2", "nodata", Class::NoData, false)
                ],
                &none
            ),
            100.0
        );
        assert_eq!(
            s(
                &[
                    r("p", "g", Class::Pass, false),
                    r("h", "g", Class::High, false)
                ],
                &none
            ),
            50.0
        );
        assert_eq!(
            s(
                &[
                    r("p", "g", Class::Pass, false),
                    r("h", "g", Class::High, false),
                    r("l", "g", Class::Low, false)
                ],
                &none
            ),
            33.33
        );
        assert_eq!(
            s(
                &[
                    r("p1", "group-1", Class::Pass, false),
                    r("p2", "group-1", Class::Pass, false),
                    r("f", "group-2", Class::High, false)
                ],
                &w(&[("group-1", 75.0), ("group-2", 25.0)])
            ),
            75.0
        );
        assert_eq!(
            s(
                &[
                    r("p", "group-1", Class::Pass, false),
                    r("n", "group-1", Class::NoData, false),
                    r("h", "group-2", Class::High, false)
                ],
                &w(&[("group-1", 50.0), ("group-2", 50.0)])
            ),
            50.0
        );
        assert_eq!(
            s(
                &[
                    r("p", "g", Class::Pass, false),
                    r("h", "g", Class::High, true)
                ],
                &none
            ),
            0.0
        );
        assert_eq!(
            s(
                &[
                    r("l", "g", Class::Low, false),
                    r("p", "g", Class::Pass, false)
                ],
                &none
            ),
            50.0
        );
        assert_eq!(
            s(
                &[
                    r("h1", "group1", Class::High, false),
                    r("l1", "group1", Class::Low, false),
                    r("p1", "group1", Class::Pass, false),
                    r("h2", "group2", Class::High, false)
                ],
                &w(&[("group1", 15.0), ("group2", 85.0)])
            ),
            5.0
        );
        assert_eq!(
            s(
                &[
                    r("p", "group-1", Class::Pass, false),
                    r("f1", "group-1", Class::High, false),
                    r("f2", "group-2", Class::High, false)
                ],
                &w(&[("group-1", 50.0), ("group-2", 50.0)])
            ),
            25.0
        );
        assert_eq!(
            s(
                &[
                    r("p", "g", Class::Pass, false),
                    r("n", "g", Class::NoData, true)
                ],
                &none
            ),
            0.0
        );
        let failed = score(&[r("p95", "latency", Class::High, true)], &none);
        assert_eq!(
            failed.reason.as_deref(),
            Some("critical metric p95 was high")
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(Verdict::of(95.0, 95.0, 75.0), Verdict::Pass);
        assert_eq!(Verdict::of(80.0, 95.0, 75.0), Verdict::Marginal);
        assert_eq!(Verdict::of(74.99, 95.0, 75.0), Verdict::Fail);
        assert!(Comparison::default().check().is_ok());
        let bad = Comparison {
            confidence: 1.0,
            ..Comparison::default()
        };
        assert!(bad.check().unwrap_err().contains("confidence"));
    }
}
