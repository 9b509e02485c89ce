//! The rollback rule's judge, after Kayenta's (spinnaker/kayenta `kayenta-judge`): each metric
//! of a canary is compared with the baseline's by the Mann-Whitney U test and the confidence
//! interval of the Hodges-Lehmann shift (`mann_whitney.rs`), classified pass, high or low, and
//! the classifications are scored by group weights against pass and marginal thresholds
//! (`judge.rs`); the rule that feeds it a canary's and its baseline's windows and says when
//! to roll back (`rule.rs`).

pub mod judge;
pub mod mann_whitney;
pub mod rule;
