//! From anomaly scores to alerts, per key, with what real detectors do against noise:
//!
//! - **Adaptive threshold**: a key whose ordinary scores run high (a noisy service) needs
//!   more: the threshold used is the larger of the global one and the `adaptive_quantile` of
//!   the key's last `adaptive_window` scores (once it has `adaptive_min` of them).
//! - **Likelihood** (after Numenta's anomaly likelihood, which NAB's best detectors use): how
//!   unusual the key's recent scores are for this key. The mean of its last `likelihood_short`
//!   scores is set against the mean μ and standard deviation σ of its last `adaptive_window`
//!   scores: likelihood = Φ((mean_short − μ) / max(σ, 0.001)), Φ the standard normal CDF. A window
//!   counts as above only when its likelihood is at least `min_likelihood` too: a key whose
//!   scores always run high (a spiky series the forest finds odd at every spike) must score
//!   higher than it usually does.
//! - **Minimum duration and hysteresis**: an alert is raised after `raise_after` consecutive
//!   windows at or above the threshold, and clears only after `clear_after` consecutive
//!   windows below `clear_ratio` × threshold; scores in between hold the state.
//! - **Quiet period**: once an alert is raised on a key, a new onset within `quiet_seconds` of
//!   it is not raised again (the key is in alert, but nobody is paged twice for one flapping
//!   incident).
//! - **Contextual detector** ([`crate::context`]): a window whose contextual score (how
//!   surprising the series' value is after the values before it) reaches
//!   `context_threshold` counts as above too, whatever the forest's score. The forest judges
//!   a window's features; this judges sequences (a daily swing at the wrong hour, a pattern
//!   that stops); on NAB it is what carries the score (BENCHMARKS.md).
//! - **Suppression**: for `suppress_seconds` after a decision was carried out on the key's
//!   target, a raised alert is reported as suppressed (the decision explains it) rather than
//!   as an anomaly. If the key is still in alert when the suppression ends, the onset is
//!   raised then.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::context::ContextConfig;

/// How scores become alerts. Defaults are documented on each field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Global threshold on the anomaly score; `None` takes the model's metadata threshold.
    pub threshold: Option<f64>,
    /// Quantile of a key's own recent scores that its threshold never goes below (0: off, the
    /// default, since the likelihood adapts to the key; 0.99 is a sensible value without it).
    pub adaptive_quantile: f64,
    /// Recent scores kept per key for the adaptive threshold and the likelihood (288: a day of
    /// 5-minute windows).
    pub adaptive_window: usize,
    /// Scores a key needs before its adaptive threshold and likelihood apply (48); with the
    /// likelihood on, a key raises no alert before.
    pub adaptive_min: usize,
    /// Likelihood a window needs to count as above (0.8); 0 turns the likelihood off.
    pub min_likelihood: f64,
    /// Recent scores whose mean the likelihood judges (10).
    pub likelihood_short: usize,
    /// Consecutive windows at or above the threshold before an alert is raised (1).
    pub raise_after: usize,
    /// Consecutive windows below `clear_ratio` × threshold before an alert clears (3).
    pub clear_after: usize,
    /// Fraction of the threshold under which a window counts towards clearing (0.95).
    pub clear_ratio: f64,
    /// Seconds after a decision on a key during which its alerts are suppressed (600).
    pub suppress_seconds: u64,
    /// Seconds after a raised alert during which the key's next onsets are not raised again
    /// (43 200: 12 hours). 0 turns it off.
    pub quiet_seconds: u64,
    /// Contextual score at or above which a window counts as above (0.56); 0 turns the
    /// contextual detector's say off.
    pub context_threshold: f64,
    /// The contextual detector's settings.
    pub context: ContextConfig,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            threshold: None,
            adaptive_quantile: 0.0,
            adaptive_window: 288,
            adaptive_min: 48,
            min_likelihood: 0.8,
            likelihood_short: 10,
            raise_after: 1,
            clear_after: 3,
            clear_ratio: 0.95,
            suppress_seconds: 600,
            quiet_seconds: 43_200,
            context_threshold: 0.56,
            context: ContextConfig::default(),
        }
    }
}

impl AlertConfig {
    /// Checks the values make sense; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = self.threshold {
            if !(t > 0.0 && t < 1.0) {
                return Err(format!("threshold {t} is not an anomaly score in (0, 1)"));
            }
        }
        if !(0.0..1.0).contains(&self.adaptive_quantile) {
            return Err(format!(
                "adaptive_quantile {} must be in [0, 1)",
                self.adaptive_quantile
            ));
        }
        if !(0.0..1.0).contains(&self.min_likelihood) {
            return Err(format!(
                "min_likelihood {} must be in [0, 1)",
                self.min_likelihood
            ));
        }
        if self.min_likelihood > 0.0
            && (self.likelihood_short == 0
                || self.adaptive_window < self.adaptive_min.max(self.likelihood_short))
        {
            return Err(format!(
                "the likelihood needs likelihood_short ({}) of at least 1 and adaptive_window ({}) \
                 of at least adaptive_min ({}) and likelihood_short",
                self.likelihood_short, self.adaptive_window, self.adaptive_min
            ));
        }
        if !(0.0..=1.0).contains(&self.context_threshold) {
            return Err(format!(
                "context_threshold {} must be in [0, 1]",
                self.context_threshold
            ));
        }
        self.context
            .validate()
            .map_err(|e| format!("context: {e}"))?;
        if self.raise_after == 0 || self.clear_after == 0 {
            return Err("raise_after and clear_after must be at least 1".into());
        }
        if !(self.clear_ratio > 0.0 && self.clear_ratio <= 1.0) {
            return Err(format!(
                "clear_ratio {} must be in (0, 1]",
                self.clear_ratio
            ));
        }
        Ok(())
    }
}

/// What one window's score did to its key's alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertOutcome {
    /// The threshold this window was held to (global or adaptive).
    pub threshold: f64,
    /// The key's likelihood after this window ([`AlertState::likelihood`]).
    pub likelihood: f64,
    /// The key is in alert after this window (and not suppressed).
    pub is_anomaly: bool,
    /// This window raised the alert (the onset: what pages someone).
    pub raised: bool,
    /// The key would be in alert, but a recent decision explains it.
    pub suppressed: bool,
}

/// One key's alert state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AlertState {
    recent: VecDeque<f64>,
    above: usize,
    below: usize,
    active: bool,
    suppressed_until: Option<i64>,
    /// The key went into alert and that onset was not reported yet (it was suppressed).
    onset_pending: bool,
    /// When the last alert was raised (reported), for the quiet period.
    last_raised_ms: Option<i64>,
}

impl AlertState {
    /// The threshold the next window is held to.
    pub fn threshold(&self, config: &AlertConfig, global: f64) -> f64 {
        if config.adaptive_quantile <= 0.0 || self.recent.len() < config.adaptive_min.max(1) {
            return global;
        }
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        // linear interpolation between order statistics (numpy's default quantile)
        let pos = config.adaptive_quantile * (sorted.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        let q = sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64);
        global.max(q)
    }

    /// The likelihood of the key's recent scores (the current one included), or 0 before it
    /// has `adaptive_min` of them.
    pub fn likelihood(&self, config: &AlertConfig) -> f64 {
        let n = self.recent.len();
        if n == 0 || n < config.adaptive_min || config.likelihood_short == 0 {
            return 0.0;
        }
        let mean = self.recent.iter().sum::<f64>() / n as f64;
        let var = self.recent.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let short = config.likelihood_short.min(n);
        let recent_mean = self.recent.iter().skip(n - short).sum::<f64>() / short as f64;
        let z = (recent_mean - mean) / var.sqrt().max(1e-3);
        0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
    }

    /// Takes the next window's score and contextual score (windows in order; `at_ms` its
    /// end; `context` is `None` while the contextual detector learns the series' range).
    pub fn step(
        &mut self,
        config: &AlertConfig,
        global: f64,
        at_ms: i64,
        score: f64,
        context: Option<f64>,
    ) -> AlertOutcome {
        let threshold = self.threshold(config, global);
        if config.adaptive_window > 0 {
            if self.recent.len() == config.adaptive_window {
                self.recent.pop_front();
            }
            self.recent.push_back(score);
        }
        let likelihood = self.likelihood(config);
        let likely = config.min_likelihood <= 0.0 || likelihood >= config.min_likelihood;
        let surprising = config.context_threshold > 0.0
            && context.is_some_and(|c| c >= config.context_threshold);
        if (score >= threshold && likely) || surprising {
            self.above += 1;
            self.below = 0;
        } else if score < threshold * config.clear_ratio || !likely {
            self.below += 1;
            self.above = 0;
        } else {
            self.above = 0;
            self.below = 0;
        }
        if !self.active && self.above >= config.raise_after {
            self.active = true;
            self.onset_pending = true;
        } else if self.active && self.below >= config.clear_after {
            self.active = false;
            self.onset_pending = false;
        }
        let suppressed = self.active && self.suppressed_until.is_some_and(|until| at_ms < until);
        // An onset is reported once: at once, or when its suppression ends with the key still
        // in alert (the decision did not explain it after all); unless within the quiet period.
        let mut raised = false;
        if self.onset_pending && !suppressed {
            self.onset_pending = false;
            let quiet_ms = (config.quiet_seconds as i64).saturating_mul(1000);
            raised = self
                .last_raised_ms
                .is_none_or(|last| at_ms.saturating_sub(last) >= quiet_ms);
        }
        if raised {
            self.last_raised_ms = Some(at_ms);
        }
        AlertOutcome {
            threshold,
            likelihood,
            is_anomaly: self.active && !suppressed,
            raised,
            suppressed,
        }
    }

    /// A decision was carried out on this key's target at `at_ms`.
    pub fn decision(&mut self, config: &AlertConfig, at_ms: i64) {
        let until = at_ms.saturating_add((config.suppress_seconds as i64).saturating_mul(1000));
        self.suppressed_until = Some(self.suppressed_until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &AlertConfig, scores: &[f64]) -> Vec<AlertOutcome> {
        let mut s = AlertState::default();
        scores
            .iter()
            .enumerate()
            .map(|(i, x)| s.step(config, 0.6, i as i64 * 1000, *x, None))
            .collect()
    }

    fn fixed() -> AlertConfig {
        AlertConfig {
            adaptive_quantile: 0.0,
            min_likelihood: 0.0,
            quiet_seconds: 0,
            ..AlertConfig::default()
        }
    }

    #[test]
    fn raises_after_the_minimum_duration_and_clears_with_hysteresis() {
        let c = AlertConfig {
            raise_after: 2,
            clear_after: 2,
            ..fixed()
        };
        let out = run(&c, &[0.7, 0.5, 0.7, 0.7, 0.59, 0.58, 0.5, 0.5, 0.5]);
        let active: Vec<bool> = out.iter().map(|o| o.is_anomaly).collect();
        // one window above is not enough; two are; 0.59 and 0.58 lie between 0.57 (0.95 × 0.6)
        // and 0.6, so they hold the alert; two windows below 0.57 clear it
        assert_eq!(
            active,
            [false, false, false, true, true, true, true, false, false]
        );
        let raised: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, o)| o.raised)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(raised, [3]);
    }

    #[test]
    fn adaptive_threshold_follows_a_noisy_key() {
        let c = AlertConfig {
            adaptive_quantile: 0.9,
            adaptive_min: 10,
            adaptive_window: 10,
            min_likelihood: 0.0,
            ..AlertConfig::default()
        };
        let mut s = AlertState::default();
        // ten ordinary windows of a noisy key (held back from raising while it warms up)
        let warming = AlertConfig {
            raise_after: 100,
            ..c
        };
        for i in 0..10 {
            s.step(&warming, 0.6, i, 0.6 + 0.01 * i as f64, None);
        }
        // scores 0.60..0.69: the 0.9 quantile is 0.681 (numpy: np.quantile(..., 0.9))
        assert!((s.threshold(&c, 0.6) - 0.681).abs() < 1e-12);
        // 0.67 is above the global 0.6 but ordinary for this key
        assert!(!s.step(&c, 0.6, 11, 0.67, None).is_anomaly);
        assert!(s.step(&c, 0.6, 12, 0.75, None).raised);
        // a quiet key is held to the global threshold
        assert_eq!(AlertState::default().threshold(&c, 0.6), 0.6);
    }

    #[test]
    fn a_decision_suppresses_alerts_for_its_duration() {
        let c = AlertConfig {
            suppress_seconds: 5,
            ..fixed()
        };
        let mut s = AlertState::default();
        s.decision(&c, 0);
        let o = s.step(&c, 0.6, 1000, 0.9, None);
        assert!(o.suppressed && !o.is_anomaly && !o.raised);
        let o = s.step(&c, 0.6, 6000, 0.9, None);
        assert!(o.is_anomaly && !o.suppressed);
        assert!(
            o.raised,
            "still in alert once the suppression ended: raised then"
        );
        let o = s.step(&c, 0.6, 7000, 0.9, None);
        assert!(o.is_anomaly && !o.raised, "raised once");
    }

    #[test]
    fn an_alert_that_ends_within_its_suppression_is_never_raised() {
        let c = AlertConfig {
            suppress_seconds: 5,
            clear_after: 1,
            ..fixed()
        };
        let mut s = AlertState::default();
        s.decision(&c, 0);
        let out: Vec<AlertOutcome> = [0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]
            .iter()
            .enumerate()
            .map(|(i, x)| s.step(&c, 0.6, 1000 * (i as i64 + 1), *x, None))
            .collect();
        assert!(out[0].suppressed && out[1].suppressed);
        assert!(out.iter().all(|o| !o.raised && !o.is_anomaly));
    }

    #[test]
    fn onsets_within_the_quiet_period_are_not_raised_again() {
        let c = AlertConfig {
            quiet_seconds: 5,
            clear_after: 1,
            ..fixed()
        };
        // run() steps one second apart: onsets at 0 s, 2 s (within 5 s of 0), 4 s (within),
        // 6 s (6 s after the last raise at 0: raised), 8 s (within 5 s of 6)
        let out = run(&c, &[0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9]);
        let raised: Vec<usize> = (0..out.len()).filter(|&i| out[i].raised).collect();
        assert_eq!(raised, [0, 6]);
        // the key is still in alert at every onset
        assert!([0, 2, 4, 6, 8].iter().all(|&i| out[i].is_anomaly));
        let off = AlertConfig {
            quiet_seconds: 0,
            ..c
        };
        let out = run(&off, &[0.9, 0.1, 0.9, 0.1, 0.9]);
        assert_eq!(out.iter().filter(|o| o.raised).count(), 3);
    }

    /// Against Python's `statistics.NormalDist().cdf` on numpy's mean and (population) std,
    /// the definition `models/train` evaluates with.
    #[test]
    fn likelihood_is_the_normal_tail_of_the_recent_mean() {
        let c = AlertConfig {
            adaptive_window: 6,
            adaptive_min: 4,
            likelihood_short: 2,
            ..fixed()
        };
        let mut s = AlertState::default();
        let mut got = Vec::new();
        for x in [0.5, 0.52, 0.48, 0.5, 0.7, 0.55, 0.9] {
            s.step(&c, 0.6, 0, x, None);
            got.push(s.likelihood(&c));
        }
        // python3 -c "import numpy as np; from statistics import NormalDist
        // xs=[0.5,0.52,0.48,0.5,0.7,0.55,0.9]
        // for i in range(len(xs)):
        //   h=xs[max(0,i-5):i+1]
        //   print(0 if len(h)<4 else NormalDist().cdf((np.mean(h[-2:])-np.mean(h))/max(np.std(h),1e-3)))"
        let want = [
            0.0,
            0.0,
            0.0,
            0.23975006109347674,
            0.7705917926581658,
            0.8698448458243727,
            0.783464636294595,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
    }

    #[test]
    fn a_key_whose_scores_always_run_high_needs_more_than_usual() {
        let c = AlertConfig {
            adaptive_window: 50,
            adaptive_min: 20,
            likelihood_short: 3,
            min_likelihood: 0.9,
            ..fixed()
        };
        let (mut spiky, mut calm) = (AlertState::default(), AlertState::default());
        let mut raised = (0, 0);
        for i in 0..40 {
            // spiky: every other window scores 0.7, above the 0.6 threshold
            let o = spiky.step(&c, 0.6, i, if i % 2 == 0 { 0.7 } else { 0.4 }, None);
            raised.0 += usize::from(o.raised);
            let o = calm.step(&c, 0.6, i, 0.4, None);
            raised.1 += usize::from(o.raised);
        }
        assert_eq!(raised, (0, 0), "nothing unusual for either key yet");
        // a run of 0.7: unusual for the calm key, what the spiky one does every other window
        let mut now = (false, false);
        for i in 40..44 {
            now.0 |= spiky.step(&c, 0.6, i, 0.7, None).raised;
            now.1 |= calm.step(&c, 0.6, i, 0.7, None).raised;
        }
        assert_eq!(now, (false, true));
        // scores the spiky key never had raise it
        let high = (44..47).any(|i| spiky.step(&c, 0.6, i, 0.99, None).raised);
        assert!(
            high,
            "spiky key at 0.99: likelihood {}",
            spiky.likelihood(&c)
        );
        let off = AlertConfig {
            min_likelihood: 0.0,
            clear_after: 1,
            ..c
        };
        let mut s = AlertState::default();
        let raised = (0..40)
            .filter(|i| {
                s.step(&off, 0.6, *i, if i % 2 == 0 { 0.7 } else { 0.4 }, None)
                    .raised
            })
            .count();
        assert_eq!(raised, 20, "without the likelihood every spike raises");
    }

    #[test]
    fn a_surprising_context_raises_whatever_the_forest_says() {
        let c = AlertConfig {
            context_threshold: 0.74,
            ..fixed()
        };
        let mut s = AlertState::default();
        // ordinary forest scores; the contextual detector learning, then calm, then surprised
        assert!(!s.step(&c, 0.6, 0, 0.4, None).is_anomaly);
        assert!(!s.step(&c, 0.6, 1, 0.4, Some(0.73)).is_anomaly);
        let o = s.step(&c, 0.6, 2, 0.4, Some(0.74));
        assert!(o.raised && o.is_anomaly);
        // the next windows are ordinary on both: it clears after clear_after of them
        let cleared: Vec<bool> = (3..6)
            .map(|i| s.step(&c, 0.6, i, 0.4, Some(0.0)).is_anomaly)
            .collect();
        assert_eq!(cleared, [true, true, false]);
        // 0 turns the contextual detector's say off
        let off = AlertConfig {
            context_threshold: 0.0,
            ..fixed()
        };
        assert!(
            !AlertState::default()
                .step(&off, 0.6, 0, 0.4, Some(1.0))
                .raised
        );
    }
}
