//! The verdict on an action's effect: the windows of each watched signal after the action
//! against as many before it.
//!
//! - **Latency** (the mean, over the windows, of the statistic each window reports): worse when
//!   after > before × (1 + `worse_by`).
//! - **An SLO objective** (the bad-event ratio, Σ bad / Σ events over the windows): worse when
//!   the ratio after exceeds what the objective allows (1 − target) *and* before × (1 +
//!   `worse_by`): an action is not undone while its target stays within its objective.
//!
//! The windows before are the last `windows` that ended by the action; the windows after, the
//! first `windows` that started `settle` or more after it. One signal worse is a verdict at
//! once; otherwise the verdict waits for every signal's windows after, until `wait` has passed
//! since the action, and then judges what it has (nothing: `unverified`).

use std::collections::BTreeMap;

use super::VerifyConfig;

/// One closed window of a watched signal (its latest revision).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Inclusive start, ms since the Unix epoch.
    pub start: i64,
    /// Exclusive end, ms.
    pub end: i64,
    /// The record's revision (the latest is kept).
    pub revision: u32,
    /// Latency: the statistic; an SLO: the objective's target (0.999).
    pub value: f64,
    /// Latency: points in the window; an SLO: its events.
    pub events: u64,
    /// An SLO: its bad events.
    pub bad: u64,
}

/// The signal key of the latency series.
pub const LATENCY: &str = "latency";

/// The signal key of an SLO objective.
pub fn slo_key(objective: &str) -> String {
    format!("slo:{objective}")
}

/// A target's watched signals: signal key → window start → window.
pub type Signals = BTreeMap<String, BTreeMap<i64, Window>>;

/// What is known of an action's effect.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Windows after the action are still to come.
    Wait,
    /// No signal got worse (the text says what was compared).
    Held(String),
    /// A signal got worse (the text says which, by how much).
    Worse(String),
    /// Nothing could be compared by the deadline.
    Unjudged(String),
}

/// The verdict on an action carried out at `executed_at`, at `now` (both ms, the actuator's
/// clock), from the target's `signals`.
pub fn judge(cfg: &VerifyConfig, signals: Option<&Signals>, executed_at: i64, now: i64) -> Verdict {
    let empty = Signals::new();
    let signals = signals.unwrap_or(&empty);
    let late = now >= executed_at.saturating_add(cfg.wait_ms());
    let n = cfg.windows as usize;
    let mut keys: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    if let Some(metric) = &cfg.metric {
        keys.push(LATENCY.into());
        if !signals.contains_key(LATENCY) {
            missing.push(format!("{} of {metric}: no window seen", cfg.statistic));
        }
    }
    if cfg.slo {
        let objectives: Vec<&String> = signals.keys().filter(|k| k.starts_with("slo:")).collect();
        if objectives.is_empty() {
            missing.push("slo: no objective of the target seen".into());
        }
        keys.extend(objectives.into_iter().cloned());
    }
    let mut held: Vec<String> = Vec::new();
    let mut worse: Vec<String> = Vec::new();
    let mut waiting = !missing.is_empty();
    for key in keys {
        let Some(windows) = signals.get(&key) else {
            continue;
        };
        let before: Vec<&Window> = {
            let mut b: Vec<&Window> = windows.values().filter(|w| w.end <= executed_at).collect();
            let skip = b.len().saturating_sub(n);
            b.drain(..skip);
            b
        };
        let after: Vec<&Window> = windows
            .values()
            .filter(|w| w.start >= executed_at + cfg.settle_ms())
            .take(n)
            .collect();
        let name = match key.strip_prefix("slo:") {
            Some(o) => format!("objective {o}"),
            None => format!(
                "{} of {}",
                cfg.statistic,
                cfg.metric.as_deref().unwrap_or(LATENCY)
            ),
        };
        if after.len() < n {
            waiting = true;
            missing.push(format!("{name}: {} of {n} windows after", after.len()));
            continue;
        }
        if before.is_empty() {
            missing.push(format!("{name}: no window before the action"));
            continue;
        }
        let span = format!("over {} windows before and {n} after", before.len());
        let limit = 1.0 + cfg.worse_by;
        if key.starts_with("slo:") {
            let ratio = |ws: &[&Window]| {
                let events: u64 = ws.iter().map(|w| w.events).sum();
                let bad: u64 = ws.iter().map(|w| w.bad).sum();
                (events > 0).then(|| bad as f64 / events as f64)
            };
            let (Some(b), Some(a)) = (ratio(&before), ratio(&after)) else {
                missing.push(format!("{name}: no events before or after"));
                continue;
            };
            let allowed = 1.0 - after.last().map_or(1.0, |w| w.value);
            let text = format!(
                "{name}: bad events {:.3} % -> {:.3} % (the objective allows {:.3} %) {span}",
                b * 100.0,
                a * 100.0,
                allowed * 100.0
            );
            if a > allowed && a > b * limit {
                worse.push(text);
            } else {
                held.push(text);
            }
        } else {
            let mean = |ws: &[&Window]| ws.iter().map(|w| w.value).sum::<f64>() / ws.len() as f64;
            let (b, a) = (mean(&before), mean(&after));
            let change = if b > 0.0 {
                format!("{:+.1} %", (a / b - 1.0) * 100.0)
            } else {
                "from 0".into()
            };
            let text = format!(
                "{name}: {b:.4} -> {a:.4} ({change}; worse beyond {:+.1} %) {span}",
                cfg.worse_by * 100.0
            );
            if a > b * limit {
                worse.push(text);
            } else {
                held.push(text);
            }
        }
    }
    if !worse.is_empty() {
        return Verdict::Worse(worse.join("; "));
    }
    if waiting && !late {
        return Verdict::Wait;
    }
    let not_judged = if missing.is_empty() {
        String::new()
    } else {
        format!("not judged: {}", missing.join("; "))
    };
    if held.is_empty() {
        Verdict::Unjudged(format!(
            "{not_judged} (waited {:?} after the action)",
            cfg.wait
        ))
    } else if not_judged.is_empty() {
        Verdict::Held(held.join("; "))
    } else {
        Verdict::Held(format!("{}; {not_judged}", held.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 10_000;
    const ACT: i64 = 1_000_000;

    fn cfg(text: &str) -> VerifyConfig {
        let c: VerifyConfig = toml::from_str(text).unwrap();
        c.check().unwrap();
        c
    }

    /// 10 s windows of `(value, events, bad)`: `before` ending at the action, the last one
    /// last; `after` starting at it.
    fn around(before: &[(f64, u64, u64)], after: &[(f64, u64, u64)]) -> BTreeMap<i64, Window> {
        let at = |start: i64, &(value, events, bad): &(f64, u64, u64)| {
            let w = Window {
                start,
                end: start + W,
                revision: 1,
                value,
                events,
                bad,
            };
            (start, w)
        };
        let before = before.iter().rev().enumerate();
        let after = after.iter().enumerate();
        before
            .map(|(i, v)| at(ACT - W * (i as i64 + 1), v))
            .chain(after.map(|(i, v)| at(ACT + W * i as i64, v)))
            .collect()
    }

    /// Latency windows: the statistic `before` and `after` the action, 100 points each.
    fn latency(before: &[f64], after: &[f64]) -> BTreeMap<i64, Window> {
        let points = |vs: &[f64]| vs.iter().map(|&v| (v, 100, 0)).collect::<Vec<_>>();
        around(&points(before), &points(after))
    }

    /// An objective's windows of `(events, bad)` with its `target`.
    fn slo(target: f64, before: &[(u64, u64)], after: &[(u64, u64)]) -> BTreeMap<i64, Window> {
        let counts =
            |es: &[(u64, u64)]| es.iter().map(|&(e, b)| (target, e, b)).collect::<Vec<_>>();
        around(&counts(before), &counts(after))
    }

    fn one(key: &str, windows: BTreeMap<i64, Window>) -> Signals {
        Signals::from([(key.to_string(), windows)])
    }

    #[test]
    fn latency_worse_than_the_limit_is_worse_at_once_and_within_it_held() {
        let c = cfg("metric = \"lat\"\nwindows = 2\nworse_by = 0.2");
        // before: the last two of 300, 100, 100 (mean 100); after: 130, 110 (mean 120: +20 %,
        // the limit itself, is not worse)
        let s = one(LATENCY, latency(&[300.0, 100.0, 100.0], &[130.0, 110.0]));
        match judge(&c, Some(&s), ACT, ACT + 1) {
            Verdict::Held(t) => {
                assert!(t.contains("100.0000 -> 120.0000 (+20.0 %"), "{t}");
                assert!(t.contains("over 2 windows before and 2 after"), "{t}");
            }
            v => panic!("{v:?}"),
        }
        let s = one(LATENCY, latency(&[100.0, 100.0], &[130.0, 112.0]));
        match judge(&c, Some(&s), ACT, ACT + 1) {
            Verdict::Worse(t) => assert!(
                t.contains("p99 of lat: 100.0000 -> 121.0000 (+21.0 %"),
                "{t}"
            ),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn it_waits_for_the_windows_after_then_judges_what_it_has() {
        let c = cfg("metric = \"lat\"\nwindows = 3\nwait = \"1m\"");
        let s = one(LATENCY, latency(&[100.0, 100.0, 100.0], &[100.0, 100.0]));
        assert_eq!(judge(&c, Some(&s), ACT, ACT + 59_999), Verdict::Wait);
        match judge(&c, Some(&s), ACT, ACT + 60_000) {
            Verdict::Unjudged(t) => assert!(t.contains("2 of 3 windows after"), "{t}"),
            v => panic!("{v:?}"),
        }
        assert_eq!(judge(&c, None, ACT, ACT + 1), Verdict::Wait);
        match judge(&c, None, ACT, ACT + 60_000) {
            Verdict::Unjudged(t) => assert!(t.contains("no window seen"), "{t}"),
            v => panic!("{v:?}"),
        }
        // settle: the first window after the action is skipped
        let c = cfg("metric = \"lat\"\nwindows = 2\nsettle = \"5s\"");
        let s = one(LATENCY, latency(&[100.0], &[900.0, 100.0, 100.0]));
        match judge(&c, Some(&s), ACT, ACT + 1) {
            Verdict::Held(t) => assert!(t.contains("100.0000 -> 100.0000"), "{t}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn an_slo_is_worse_only_out_of_its_objective() {
        let c = cfg("slo = true\nwindows = 2");
        // 0.05 % -> 0.08 % bad: worse than before but within 99.9 %: held
        let s = one(
            &slo_key("avail"),
            slo(0.999, &[(2000, 1)], &[(1000, 1), (1500, 1)]),
        );
        match judge(&c, Some(&s), ACT, ACT + 1) {
            Verdict::Held(t) => assert!(
                t.contains(
                    "objective avail: bad events 0.050 % -> 0.080 % (the objective allows 0.100 %)"
                ),
                "{t}"
            ),
            v => panic!("{v:?}"),
        }
        // 0.05 % -> 0.5 %: out of the objective and worse: worse
        let s = one(
            &slo_key("avail"),
            slo(0.999, &[(2000, 1)], &[(1000, 5), (1000, 5)]),
        );
        assert!(matches!(
            judge(&c, Some(&s), ACT, ACT + 1),
            Verdict::Worse(_)
        ));
        // out of the objective before and after alike (0.5 % both): not worse
        let s = one(
            &slo_key("avail"),
            slo(0.999, &[(2000, 10)], &[(1000, 5), (1000, 5)]),
        );
        assert!(matches!(
            judge(&c, Some(&s), ACT, ACT + 1),
            Verdict::Held(_)
        ));
        // no events after: not judged
        let s = one(
            &slo_key("avail"),
            slo(0.999, &[(2000, 10)], &[(0, 0), (0, 0)]),
        );
        match judge(&c, Some(&s), ACT, ACT + c.wait_ms()) {
            Verdict::Unjudged(t) => assert!(t.contains("no events"), "{t}"),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn one_worse_signal_is_enough_and_held_ones_name_what_was_not_judged() {
        let c = cfg("metric = \"lat\"\nslo = true\nwindows = 1\nwait = \"1m\"");
        let mut s = one(LATENCY, latency(&[100.0], &[100.0]));
        s.insert(slo_key("avail"), slo(0.99, &[(100, 0)], &[]));
        assert_eq!(judge(&c, Some(&s), ACT, ACT + 1), Verdict::Wait);
        match judge(&c, Some(&s), ACT, ACT + 60_000) {
            Verdict::Held(t) => {
                assert!(t.contains("p99 of lat: 100.0000 -> 100.0000"), "{t}");
                assert!(
                    t.contains("not judged: objective avail: 0 of 1 windows after"),
                    "{t}"
                );
            }
            v => panic!("{v:?}"),
        }
        s.insert(LATENCY.into(), latency(&[100.0], &[500.0]));
        assert!(matches!(
            judge(&c, Some(&s), ACT, ACT + 1),
            Verdict::Worse(_)
        ));
    }
}
