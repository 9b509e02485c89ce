//! The replicas a forecast load needs: the fewest such that, over the windows the new
//! capacity will serve, the load planned for (a quantile of the forecast: its upper bound by
//! default) stays at or under the target utilisation, except in a burst: windows above the
//! target but at or under the burst utilisation, in a run of consecutive windows that lasts
//! at most `burst_for` and is known to end (the window after it is forecast, and under the
//! target). A run still going at the end of the forecasts, or at a window nobody forecast, may
//! be longer: it is not tolerated.
//!
//! Utilisation with `n` replicas is load / (n × capacity per replica). More replicas only
//! lower every window's utilisation, so whether `n` suffices is monotone in `n`: the answer
//! is found by bisection between the burst's bound and the target's.

/// A window of the forecast: when it ends and the load planned for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// The forecast window's exclusive end, ms since the Unix epoch.
    pub end: i64,
    /// The load planned for (the forecast's quantile the rule plans at).
    pub planned: f64,
}

/// What the capacity is planned for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The load one replica carries at 100 % utilisation.
    pub capacity_per_replica: f64,
    /// The utilisation to keep to.
    pub target: f64,
    /// The utilisation tolerated in a burst.
    pub burst: f64,
    /// The longest burst, ms.
    pub burst_for_ms: i64,
    /// The forecast windows' size, ms.
    pub step_ms: i64,
}

/// How many replicas the windows in focus need, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Need {
    /// The fewest replicas that carry the load.
    pub replicas: u32,
    /// The focus window with the highest load.
    pub peak: Load,
    /// Whether that load is carried above the target utilisation, as a tolerated burst.
    pub burst: bool,
}

/// Floating-point slack in comparing a utilisation with a bound: 840 / (12 × 100) is 0.7.
const SLACK: f64 = 1e-9;

/// The replicas the windows of `curve` (sorted by end, each after now) for which `focus`
/// holds need under `plan`; `None` when no window is in focus.
pub fn needed(curve: &[Load], focus: impl Fn(i64) -> bool, plan: &Plan) -> Option<Need> {
    let in_focus: Vec<usize> = (0..curve.len()).filter(|&i| focus(curve[i].end)).collect();
    let peak = in_focus
        .iter()
        .map(|&i| curve[i])
        .max_by(|a, b| a.planned.total_cmp(&b.planned))?;
    let per = |n: u64, util: f64| n as f64 * plan.capacity_per_replica * util;
    let fits = |n: u64| carries(curve, &in_focus, plan, n);
    // Bounds: below the burst's bound nothing fits; at the target's bound everything does.
    let load = peak.planned.max(0.0);
    let mut lo = ((load / per(1, plan.burst)).floor() as u64).max(1);
    let mut hi = ((load / per(1, plan.target)).ceil() as u64).max(1) + 1;
    if fits(lo) {
        hi = lo;
    } else {
        // fits(hi) holds, fits(lo) does not: bisect.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
    }
    let replicas = hi.min(u64::from(u32::MAX)) as u32;
    Some(Need {
        replicas,
        peak,
        burst: peak.planned > per(hi, plan.target) * (1.0 + SLACK),
    })
}

/// Whether `n` replicas carry every window of `focus` (indices into `curve`).
fn carries(curve: &[Load], focus: &[usize], plan: &Plan, n: u64) -> bool {
    let cap = n as f64 * plan.capacity_per_replica;
    let above = |l: &Load| l.planned > cap * plan.target * (1.0 + SLACK);
    focus.iter().all(|&i| {
        let l = &curve[i];
        if !above(l) {
            return true;
        }
        if l.planned > cap * plan.burst * (1.0 + SLACK) {
            return false;
        }
        // The run of consecutive windows above the target around window i.
        let consecutive = |a: &Load, b: &Load| b.end - a.end == plan.step_ms;
        let mut first = i;
        while first > 0 && consecutive(&curve[first - 1], &curve[first]) && above(&curve[first - 1])
        {
            first -= 1;
        }
        let mut last = i;
        while last + 1 < curve.len()
            && consecutive(&curve[last], &curve[last + 1])
            && above(&curve[last + 1])
        {
            last += 1;
        }
        let lasts = (last - first + 1) as i64 * plan.step_ms;
        let ends = last + 1 < curve.len() && consecutive(&curve[last], &curve[last + 1]);
        lasts <= plan.burst_for_ms && ends
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn plan(burst_for_min: i64) -> Plan {
        Plan {
            capacity_per_replica: 100.0,
            target: 0.7,
            burst: 0.9,
            burst_for_ms: burst_for_min * MIN,
            step_ms: MIN,
        }
    }

    /// A forecast window per minute from minute 1, with these loads planned.
    fn curve(uppers: &[f64]) -> Vec<Load> {
        uppers
            .iter()
            .enumerate()
            .map(|(i, &planned)| Load {
                end: (i as i64 + 1) * MIN,
                planned,
            })
            .collect()
    }

    fn all(_: i64) -> bool {
        true
    }

    #[test]
    fn a_flat_load_is_carried_at_the_target_utilisation_exactly() {
        // 840 / (12 × 100) = 0.70: twelve, not thirteen.
        let n = needed(&curve(&[840.0; 5]), all, &plan(5)).unwrap();
        assert_eq!((n.replicas, n.burst), (12, false));
        // one more request a second needs the thirteenth (841 / 1200 > 0.70; 841 / 1300 = 0.647)
        let n = needed(&curve(&[841.0; 5]), all, &plan(0)).unwrap();
        assert_eq!(n.replicas, 13);
        // no load: one replica
        assert_eq!(
            needed(&curve(&[0.0; 3]), all, &plan(5)).unwrap().replicas,
            1
        );
    }

    #[test]
    fn a_short_burst_is_carried_up_to_90_percent() {
        // Two minutes at 1000 in the middle of 600: 12 replicas run them at 0.833 (a burst),
        // 11 would run them at 0.909 (over 0.9). Without the burst: 1000 / 0.7 / 100 → 15.
        let c = curve(&[600.0, 1000.0, 1000.0, 600.0, 600.0]);
        let n = needed(&c, all, &plan(5)).unwrap();
        assert_eq!((n.replicas, n.burst), (12, true));
        assert_eq!(n.peak.planned, 1000.0);
        assert_eq!(needed(&c, all, &plan(0)).unwrap().replicas, 15);
        assert_eq!(
            needed(&c, all, &plan(1)).unwrap().replicas,
            15,
            "2 min > 1 min"
        );
        assert_eq!(
            needed(&c, all, &plan(2)).unwrap().replicas,
            12,
            "2 min <= 2 min"
        );
    }

    #[test]
    fn a_burst_longer_than_allowed_or_not_known_to_end_is_not_tolerated() {
        // six minutes above the target at 12 replicas: too long
        let long = curve(&[1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 600.0]);
        assert_eq!(needed(&long, all, &plan(5)).unwrap().replicas, 15);
        // two minutes, but the forecasts end there: it may go on
        let open = curve(&[600.0, 1000.0, 1000.0]);
        assert_eq!(needed(&open, all, &plan(5)).unwrap().replicas, 15);
        // two minutes, then a window nobody forecast: it may go on
        let mut gap = curve(&[600.0, 1000.0, 1000.0, 600.0]);
        gap[3].end += MIN;
        assert_eq!(needed(&gap, all, &plan(5)).unwrap().replicas, 15);
        // the run is measured at the replicas tried: at 14 the 900s are under the target
        // (900 / 1400 = 0.64), so the 1000s' run is two minutes and 14 would do with a burst;
        // but 12 already carries both as one four-minute burst (0.75 and 0.83)
        let mixed = curve(&[900.0, 1000.0, 1000.0, 900.0, 600.0]);
        let n = needed(&mixed, all, &plan(5)).unwrap();
        assert_eq!((n.replicas, n.burst), (12, true));
        assert_eq!(needed(&mixed, all, &plan(3)).unwrap().replicas, 13);
    }

    #[test]
    fn only_the_windows_in_focus_count() {
        // A spike in minute 1 (before the new replicas could be ready) and one in minute 5
        // (the next decision's): the focus is minutes 2 and 3.
        let c = curve(&[3000.0, 700.0, 770.0, 700.0, 3000.0]);
        let focus = |end: i64| end > MIN && end <= 3 * MIN;
        let n = needed(&c, focus, &plan(0)).unwrap();
        assert_eq!(n.replicas, 11, "770 / 0.7 / 100 = 11");
        assert_eq!(
            n.peak,
            Load {
                end: 3 * MIN,
                planned: 770.0
            }
        );
        assert_eq!(needed(&c, |_| false, &plan(0)), None);
    }

    #[test]
    fn the_answer_is_the_fewest_that_fit_by_brute_force_too() {
        let mut next = crate::decisions::uniform(11);
        for case in 0..300 {
            let uppers: Vec<f64> = (0..12).map(|_| (next() * 3000.0).round()).collect();
            let c = curve(&uppers);
            let p = plan(case % 7);
            let focus = |end: i64| end > 2 * MIN && end <= 6 * MIN;
            let got = needed(&c, focus, &p).unwrap().replicas as u64;
            let idx: Vec<usize> = (0..c.len()).filter(|&i| focus(c[i].end)).collect();
            let brute = (1..).find(|&n| carries(&c, &idx, &p, n)).unwrap();
            assert_eq!(got, brute, "case {case}: {uppers:?}");
        }
    }
}
