//! The Kubernetes HPA's replica calculator for a per-pod metric (`replica_calculator.go`,
//! `calcPlainMetricReplicas`), as a pure function of the pods' samples, and for a total kept
//! at a value per pod (`GetExternalPerPodMetricReplicas`, [`desired_from_total`]).
//!
//! - The usage ratio is the ready pods' average over the target. Values are in milli-units and
//!   the average is truncated to a whole milli-unit, as the controller's int64 arithmetic
//!   does; the ratio and the tolerance test are in f64, as there.
//! - Within the tolerance (inclusive, `|1 − ratio| ≤ 0.1` by default) nothing changes.
//! - With every pod ready and reporting: `ceil(ratio × ready pods)`.
//! - Otherwise the ratio is recomputed with the missing pods counted at 100 % of the target on
//!   a scale-down and 0 on a scale-up, and, on a scale-up only, the not-ready pods at 0; a
//!   recomputed ratio within the tolerance or on the other side of 1 (a flip of direction)
//!   keeps the current count; else `ceil(new ratio × pods counted)`.

/// One pod as the calculator sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodSample {
    /// Ready (running, passing its readiness probe): not-ready pods count only on a scale-up.
    pub ready: bool,
    /// Its metric, milli-units (`None`: missing).
    pub milli: Option<i64>,
}

impl PodSample {
    /// A ready pod reporting `milli`.
    pub fn ready(milli: i64) -> Self {
        PodSample {
            ready: true,
            milli: Some(milli),
        }
    }

    /// A ready pod whose metric is missing.
    pub fn missing() -> Self {
        PodSample {
            ready: true,
            milli: None,
        }
    }

    /// A pod not ready yet (starting).
    pub fn not_ready() -> Self {
        PodSample {
            ready: false,
            milli: None,
        }
    }
}

/// Why no replica count could be computed (the controller's "did not receive metrics for any
/// ready pods" and friends): the rule does nothing then.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalculatorError {
    /// No pods at all.
    #[error("no pods")]
    NoPods,
    /// No ready pod reported the metric.
    #[error("no metrics for any ready pod")]
    NoMetrics,
    /// The target is not positive.
    #[error("target {0} milli-units is not positive")]
    BadTarget(i64),
}

/// The average of `values` truncated to a whole milli-unit, over `target`.
fn ratio(values: &[i64], target: i64) -> f64 {
    let total: i64 = values.iter().sum();
    let average = total / values.len().max(1) as i64;
    average as f64 / target as f64
}

/// The replica count the metric asks for, given the current count, the per-pod target
/// (milli-units) and the pods' samples; `tolerance` is the controller's (0.1).
pub fn desired_replicas(
    current: u32,
    target_milli: i64,
    pods: &[PodSample],
    tolerance: f64,
) -> Result<u32, CalculatorError> {
    if target_milli <= 0 {
        return Err(CalculatorError::BadTarget(target_milli));
    }
    if pods.is_empty() {
        return Err(CalculatorError::NoPods);
    }
    let mut values: Vec<i64> = pods
        .iter()
        .filter(|p| p.ready)
        .filter_map(|p| p.milli)
        .collect();
    let ready = values.len();
    let not_ready = pods.iter().filter(|p| !p.ready).count();
    let missing = pods.iter().filter(|p| p.ready && p.milli.is_none()).count();
    if ready == 0 {
        return Err(CalculatorError::NoMetrics);
    }
    let usage = ratio(&values, target_milli);
    let rebalance_not_ready = not_ready > 0 && usage > 1.0;
    if !rebalance_not_ready && missing == 0 {
        if (1.0 - usage).abs() <= tolerance {
            return Ok(current);
        }
        return Ok(ceil_count(usage * ready as f64));
    }
    if missing > 0 {
        let stand_in = if usage < 1.0 { target_milli } else { 0 };
        values.extend(std::iter::repeat_n(stand_in, missing));
    }
    if rebalance_not_ready {
        values.extend(std::iter::repeat_n(0, not_ready));
    }
    let new_usage = ratio(&values, target_milli);
    if (1.0 - new_usage).abs() <= tolerance
        || (usage < 1.0 && new_usage > 1.0)
        || (usage > 1.0 && new_usage < 1.0)
    {
        return Ok(current);
    }
    Ok(ceil_count(new_usage * values.len() as f64))
}

/// The same from a window's aggregate: `ready` pods all reporting, their average `average`
/// (any unit) against `target` (the same unit), and the pods asked for beyond them
/// (`current - ready`) not ready yet. What the stream knows of a target when its telemetry
/// gives the average, the ready count and the count asked for, not each pod.
pub fn desired_from_average(
    current: u32,
    ready: u32,
    average: f64,
    target: f64,
    tolerance: f64,
) -> Result<u32, CalculatorError> {
    if ready == 0 {
        return Err(CalculatorError::NoMetrics);
    }
    let milli = |v: f64| (v * 1000.0).round() as i64;
    let mut pods = vec![PodSample::ready(milli(average)); ready as usize];
    pods.extend(std::iter::repeat_n(
        PodSample::not_ready(),
        current.saturating_sub(ready) as usize,
    ));
    desired_replicas(current, milli(target), &pods, tolerance)
}

/// The replica count a total asks for (an External metric with an `AverageValue` target, the
/// controller's `GetExternalPerPodMetricReplicas`): the usage ratio is the total over
/// `per_pod` × the current count (every pod, ready or not: the scale's status replicas);
/// within the tolerance (inclusive) nothing changes, else `ceil(total / per_pod)`. Values in
/// milli-units, each rounded to one as the metrics API's quantities are; the ratio and the
/// division in f64, as there.
pub fn desired_from_total(
    current: u32,
    total: f64,
    per_pod: f64,
    tolerance: f64,
) -> Result<u32, CalculatorError> {
    let milli = |v: f64| (v * 1000.0).round() as i64;
    let (usage, target) = (milli(total), milli(per_pod));
    if target <= 0 {
        return Err(CalculatorError::BadTarget(target));
    }
    if current == 0 {
        return Err(CalculatorError::NoPods);
    }
    let ratio = usage as f64 / (target as f64 * f64::from(current));
    if (1.0 - ratio).abs() <= tolerance {
        return Ok(current);
    }
    Ok(ceil_count(usage as f64 / target as f64))
}

/// `ceil(x)` as a replica count, saturating.
fn ceil_count(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x.ceil().min(u32::MAX as f64) as u32
    }
}

/// Several metrics on one target: the largest proposal wins (a metric that cannot be computed
/// is left out; none computable: `None`, nothing changes).
pub fn largest_proposal(proposals: &[Result<u32, CalculatorError>]) -> Option<u32> {
    proposals
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .copied()
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 0.1;

    fn ready(values: &[i64]) -> Vec<PodSample> {
        values.iter().map(|&v| PodSample::ready(v)).collect()
    }

    #[test]
    fn documented_examples() {
        // Kubernetes docs: 200m against a 100m target doubles the replicas, 50m halves them.
        assert_eq!(
            desired_replicas(3, 100, &ready(&[200, 200, 200]), TOL),
            Ok(6)
        );
        assert_eq!(
            desired_replicas(4, 100, &ready(&[50, 50, 50, 50]), TOL),
            Ok(2)
        );
        // 50 replicas at 90 % against a 75 % target: ceil(50 × 90 / 75) = 60.
        assert_eq!(desired_from_average(50, 50, 0.90, 0.75, TOL), Ok(60));
    }

    #[test]
    fn pods_asked_for_but_not_ready_count_as_idle_from_an_average() {
        // 2 of 4 asked-for pods ready at 100 % against 60 %: the 2 starting count as 0, the
        // usage falls to 50/60 and changes direction: no change (the controller's rule), where
        // the 2 ready ones alone would ask for ceil(2 × 100/60) = 4 again.
        assert_eq!(desired_from_average(4, 2, 1.0, 0.6, TOL), Ok(4));
        // 2 of 4 ready at 90 %: [0.9, 0.9, 0, 0] is under the target while 0.9 alone is over:
        // no change (the 2 ready ones alone gave ceil(2 × 1.5) = 3, a scale-down mid scale-up)
        assert_eq!(desired_from_average(4, 2, 0.9, 0.6, TOL), Ok(4));
        assert_eq!(
            desired_from_average(4, 2, 1.0, 0.6, TOL),
            desired_replicas(
                4,
                600,
                &[ready(&[1000, 1000]), vec![PodSample::not_ready(); 2]].concat(),
                TOL
            )
        );
        // 2 of 3 ready at 200 %: [2000, 2000, 0] averages 1333 of 600: ceil(2.22 × 3) = 7
        assert_eq!(desired_from_average(3, 2, 2.0, 0.6, TOL), Ok(7));
        // more ready than asked for (a scale-down in progress): none is counted as starting
        assert_eq!(desired_from_average(2, 3, 0.3, 0.6, TOL), Ok(2));
    }

    #[test]
    fn tolerance_is_inclusive_and_either_side() {
        // 0.9 of the target: |1 − 0.9| is 0.09999999999999998 in f64, within 0.1
        assert_eq!(desired_replicas(10, 1000, &ready(&[900; 10]), TOL), Ok(10));
        assert_eq!(desired_replicas(10, 1000, &ready(&[1050; 10]), TOL), Ok(10));
        // 1.125 is outside: ceil(1.125 × 8) = 9
        assert_eq!(desired_replicas(8, 8000, &ready(&[9000; 8]), TOL), Ok(9));
        // 0.875 is outside: ceil(0.875 × 8) = 7
        assert_eq!(desired_replicas(8, 8000, &ready(&[7000; 8]), TOL), Ok(7));
    }

    #[test]
    fn the_average_is_truncated_to_a_milli_unit() {
        // (100 + 101) / 2 = 100 (int64), ratio 1.0: no change; f64 would give 1.005 (also
        // within tolerance), so check one where it matters: 3 pods 1, 1, 2 against 1 →
        // average 1 (not 1.33): ratio 1.0 keeps 3 replicas.
        assert_eq!(desired_replicas(3, 1, &ready(&[1, 1, 2]), TOL), Ok(3));
    }

    #[test]
    fn missing_metrics_count_as_target_down_and_zero_up() {
        // scale-down: [10, 10, missing] → usage 0.1; missing at 100 → mean 40 → 0.4 → ceil(1.2) = 2
        let pods = [
            PodSample::ready(10),
            PodSample::ready(10),
            PodSample::missing(),
        ];
        assert_eq!(desired_replicas(3, 100, &pods, TOL), Ok(2));
        // scale-up: [300, missing] → usage 3; missing at 0 → mean 150 → 1.5 → ceil(3) = 3
        let pods = [PodSample::ready(300), PodSample::missing()];
        assert_eq!(desired_replicas(2, 100, &pods, TOL), Ok(3));
    }

    #[test]
    fn not_ready_pods_count_only_on_a_scale_up_and_as_zero() {
        // scale-up: [300, not ready] → usage 3 → with the not-ready at 0: 1.5 → ceil(3) = 3
        let pods = [PodSample::ready(300), PodSample::not_ready()];
        assert_eq!(desired_replicas(2, 100, &pods, TOL), Ok(3));
        // scale-down: the not-ready pod is ignored: usage 0.1 over 1 ready pod → ceil(0.1) = 1
        let pods = [PodSample::ready(10), PodSample::not_ready()];
        assert_eq!(desired_replicas(2, 100, &pods, TOL), Ok(1));
    }

    #[test]
    fn a_flip_of_direction_keeps_the_current_count() {
        // usage 1.5, but with three missing pods at 0 the mean is 37.5 m → 0.375: a scale-up
        // that would become a scale-down keeps 4
        let pods = [
            PodSample::ready(150),
            PodSample::missing(),
            PodSample::missing(),
            PodSample::missing(),
        ];
        assert_eq!(desired_replicas(4, 100, &pods, TOL), Ok(4));
        // within tolerance after the recomputation: [105, missing] on a scale-up → missing at
        // 0 → 52 → 0.52 flips → keep; [95, 95, missing] down → (95+95+100)/3 = 96 → 0.96 → keep
        let pods = [
            PodSample::ready(95),
            PodSample::ready(95),
            PodSample::missing(),
        ];
        assert_eq!(desired_replicas(3, 100, &pods, TOL), Ok(3));
    }

    /// The controller's own cases (`replica_calculator_test.go`,
    /// `TestReplicaCalcScaleUpPerPodCMExternal` and `TestReplicaCalcTolerancePerPodCMExternal`):
    /// a total of 8600 m over 3 pods against 2150 m a pod is 4; against 2900 m it is within the
    /// tolerance (8600 / 8700) and stays 3. Its levels are milli-values, ours units.
    #[test]
    fn a_total_per_pod_as_the_controller_computes_it() {
        assert_eq!(desired_from_total(3, 8.6, 2.15, TOL), Ok(4));
        assert_eq!(desired_from_total(3, 8.6, 2.9, TOL), Ok(3));
        // every pod counts, not only the ready ones: 120 requests/s at 22.92 a pod is 6 from
        // 2 or from 4 (the ratio is not rebalanced for starting pods, unlike a mean)
        assert_eq!(desired_from_total(2, 120.0, 22.92, TOL), Ok(6));
        assert_eq!(desired_from_total(4, 120.0, 22.92, TOL), Ok(6));
        // down: 10/s at 22.92 a pod from 5 is 1; nothing is 0 (the bounds then say 1)
        assert_eq!(desired_from_total(5, 10.0, 22.92, TOL), Ok(1));
        assert_eq!(desired_from_total(5, 0.0, 22.92, TOL), Ok(0));
        assert_eq!(
            desired_from_total(0, 1.0, 1.0, TOL),
            Err(CalculatorError::NoPods)
        );
        assert_eq!(
            desired_from_total(1, 1.0, 0.0, TOL),
            Err(CalculatorError::BadTarget(0))
        );
    }

    #[test]
    fn errors_and_the_largest_proposal() {
        assert_eq!(
            desired_replicas(1, 100, &[], TOL),
            Err(CalculatorError::NoPods)
        );
        assert_eq!(
            desired_replicas(1, 100, &[PodSample::missing()], TOL),
            Err(CalculatorError::NoMetrics)
        );
        assert_eq!(
            desired_replicas(1, 0, &ready(&[1]), TOL),
            Err(CalculatorError::BadTarget(0))
        );
        assert_eq!(
            largest_proposal(&[Ok(3), Err(CalculatorError::NoMetrics), Ok(7), Ok(5)]),
            Some(7)
        );
        assert_eq!(largest_proposal(&[Err(CalculatorError::NoPods)]), None);
    }
}
