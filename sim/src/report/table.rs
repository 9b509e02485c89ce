//! The report's table (Markdown) and its runs' minutes (CSV).

use std::fmt::Write;

use crate::report::measure::{nearest_rank, Summary};

/// A duration in seconds, short: `45 s`, `3.5 min`.
fn span(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

/// The runs as a Markdown table, with APO's change against the HPA rule under it when both
/// are there (`runs` in the order fixed, HPA, APO).
pub fn markdown(runs: &[(&str, &Summary)]) -> String {
    let mut out = String::from(
        "| run | SLA-violation minutes | p50 | p95 | p99 | error rate | replica-minutes | \
         scale actions | short of capacity: episodes, median, p90, longest |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (label, s) in runs {
        let mut short = s.shortages_s.clone();
        if s.short_at_end_s > 0.0 {
            short.push(s.short_at_end_s);
        }
        let shortages = if short.is_empty() {
            "none".to_string()
        } else {
            format!(
                "{}, {}, {}, {}",
                short.len(),
                span(nearest_rank(&short, 0.5)),
                span(nearest_rank(&short, 0.9)),
                span(nearest_rank(&short, 1.0))
            )
        };
        let _ = writeln!(
            out,
            "| {label} | {} of {} | {:.3} s | {:.3} s | {:.3} s | {:.3} % | {:.0} | {} | {shortages} |",
            s.violation_minutes(),
            s.minutes.len(),
            s.p50_s,
            s.p95_s,
            s.p99_s,
            100.0 * s.error_rate(),
            s.replica_minutes,
            s.actions,
        );
    }
    if let [_, (_, hpa), (_, apo)] = runs {
        let change = |a: f64, b: f64| {
            if b == 0.0 {
                if a == 0.0 {
                    "no change".to_string()
                } else {
                    format!("{a:.0} against none")
                }
            } else {
                format!("{:+.0} %", 100.0 * (a - b) / b)
            }
        };
        let _ = writeln!(
            out,
            "\nAPO against the HPA rule: SLA-violation minutes {}, replica-minutes {}.",
            change(
                apo.violation_minutes() as f64,
                hpa.violation_minutes() as f64
            ),
            change(apo.replica_minutes, hpa.replica_minutes),
        );
    }
    out
}

/// Every run's minutes as CSV (`runs` by name: fixed, hpa, apo): run, minute end (s), load,
/// requests, errors, p95, replicas, serving, violated.
pub fn minutes_csv(runs: &[(&str, &Summary)]) -> String {
    let mut out =
        String::from("run,end_s,load_rps,requests,errors,p95_s,replicas,ready,violated\n");
    for (name, s) in runs {
        for m in &s.minutes {
            let _ = writeln!(
                out,
                "{name},{},{:.3},{},{},{:.6},{},{},{}",
                m.end_s, m.load, m.requests, m.errors, m.p95_s, m.replicas, m.ready, m.violated
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_ranks_and_spans() {
        let v = [30.0, 10.0, 20.0, 40.0];
        assert_eq!(nearest_rank(&v, 0.5), 20.0);
        assert_eq!(nearest_rank(&v, 0.9), 40.0);
        assert_eq!(nearest_rank(&v, 1.0), 40.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
        assert_eq!(span(45.0), "45 s");
        assert_eq!(span(210.0), "3.5 min");
    }
}
