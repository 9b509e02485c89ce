//! The files of a report: the planner's rules and the actuator's policy it runs with, and
//! its Markdown section (in OUT/report.md, and in a BENCHMARKS.md between markers naming the
//! load, an earlier section of the same load replaced).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use apo_dataflow::quantile_name;

use crate::command::SimArgs;
use crate::report::args::ApoUtilization;
use crate::service::ServiceConfig;
use crate::telemetry::points::{
    CACHE_HITS, CACHE_MAX_SIZE, CACHE_MISSES, CPU_UTILIZATION, REQUEST_DURATION,
};

/// The forecast's quantile APO's predictive rule plans for unless `--forecast-quantile` says
/// otherwise: the median, chosen on day 2 of the ELB trace (BENCHMARKS.md).
pub const DEFAULT_QUANTILE: f64 = 0.5;

/// How the runs are sized.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizing {
    /// The services of ours and the fixed run's replicas of each (one for a single service).
    pub services: Vec<(String, u32)>,
    /// The planner's window, seconds.
    pub window_s: u64,
    /// The fixed run's replicas (every run starts with them).
    pub fixed: u32,
    /// The most replicas a rule may ask for.
    pub max_replicas: u32,
    /// Requests a second one replica serves at 100 % utilisation.
    pub per_replica: f64,
    /// The utilisation the fixed capacity and the HPA rule are sized for.
    pub utilization: f64,
    /// The utilisation APO's rules size replicas for.
    pub apo_utilization: f64,
    /// How long before a forecast load a predictive decision is made, seconds (the start-up
    /// delay and a window).
    pub buffer_s: u64,
    /// The forecast's quantile the predictive rule plans for.
    pub quantile: f64,
}

/// The rules that tune `apo` besides scaling it, for what its service has: the pool rule
/// with a database (its pool at most the database's servers, or its size now if more), the
/// cache rule with a cache in front of it (at most every object), the GC rule with a heap (at
/// most four times the heap).
pub fn tuning_rules(service: &ServiceConfig, apo: &str) -> String {
    let mut out = String::new();
    if let Some(db) = &service.db {
        out.push_str(&format!(
            "\n[[pool]]\ntarget = \"{apo}\"\nmax_size = {}\n",
            db.servers.max(db.pool_size).max(1)
        ));
        if let Some(cache) = &service.cache {
            out.push_str(&format!(
                "\n[[cache]]\ntarget = \"{apo}\"\nhits_metric = \"{CACHE_HITS}\"\n\
                 misses_metric = \"{CACHE_MISSES}\"\nsize_metric = \"{CACHE_MAX_SIZE}\"\n\
                 max_size = {}\n",
                cache.objects.max(1)
            ));
        }
    }
    if let Some(heap) = &service.heap {
        out.push_str(&format!(
            "\n[[gc]]\ntarget = \"{apo}\"\nmax_heap = {}\n",
            (4.0 * heap.limit_bytes).round()
        ));
    }
    out
}

/// The planner's rules: the HPA rule on `hpa` (CPU utilisation at `utilization`); on `apo`,
/// at `apo_utilization`, the HPA rule on the utilisation and on the request rate (every
/// request, failed ones included, at the replicas' capacity at that utilisation a replica: it
/// does not saturate where the utilisation stops at 100 %), the predictive rule, and the
/// rules of `tuning` ([`tuning_rules`]).
///
/// `targets`: per service, its HPA run's name, its APO run's and what a replica of it serves
/// at 100 % (a fleet has several).
pub fn planner_rules(s: &Sizing, targets: &[(String, String, f64)], tuning: &str) -> String {
    let scale = |target: &str, per_replica: Option<f64>| {
        let (util, rate) = if let Some(per) = per_replica {
            let rate = format!(
                ", {{ name = \"{REQUEST_DURATION}\", signal = \"rate\", average_value = {} }}",
                per * s.apo_utilization
            );
            (s.apo_utilization, rate)
        } else {
            (s.utilization, String::new())
        };
        format!(
            "[[scale]]\n\
             target = \"{target}\"\n\
             min_replicas = 1\n\
             max_replicas = {}\n\
             metrics = [{{ name = \"{CPU_UTILIZATION}\", average_value = {} }}{rate}]\n",
            s.max_replicas, util
        )
    };
    let mut out = format!(
        "# written by `apo sim --report`\n\
         window_seconds = {}\n\
         decision_ttl = \"5m\"\n",
        s.window_s
    );
    for (hpa, apo, per_replica) in targets {
        out.push_str(&format!(
            "\n{}\n\
             {}\
             [scale.predictive]\n\
             metric = \"{REQUEST_DURATION}\"\n\
             signal = \"rate\"\n\
             capacity_per_replica = {per_replica}\n\
             target_utilization = {}\n\
             quantile = {}\n\
             scheduling_buffer = \"{}s\"\n",
            scale(hpa, None),
            scale(apo, Some(*per_replica)),
            s.apo_utilization,
            s.quantile,
            s.buffer_s
        ));
    }
    out.push_str(tuning);
    out
}

/// The actuator's policy: each target (service, webhook url) through the webhook executor,
/// signed with `secret`, not a dry run.
pub fn policy_file(targets: &[(String, String)], secret: &Path, max_replicas: u32) -> String {
    let mut out = String::from("# written by `apo sim --report`\n");
    for (service, url) in targets {
        out.push_str(&format!(
            "[targets.\"{service}\"]\n\
             executor = \"webhook\"\n\
             dry_run = false\n\
             max_replicas = {max_replicas}\n\
             [targets.\"{service}\".webhook]\n\
             url = \"{url}\"\n\
             secret_file = {:?}\n",
            secret.display().to_string()
        ));
    }
    out
}

/// The report's name: the load's (the trace's file name, or the synthetic shape), and what
/// the service has for the tuning rules (`, pool 4`, `, cache 1000`, `, heap 480 MiB`), and
/// the flags that change a run from the defaults' (`, from 2d`, `, forecast upper bound`,
/// `, APO at 70 %`), so that a report of the same load run otherwise keeps its own section.
pub fn load_name(a: &SimArgs) -> String {
    let mut name = match &a.trace {
        Some(t) => t
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| t.display().to_string()),
        None => a.load.clone(),
    };
    if a.topology != "single" {
        name.push_str(&format!(", {}", a.topology));
    }
    if let Some(pool) = a.db_pool {
        name.push_str(&format!(", pool {pool}"));
        if let Some(size) = a.cache_size {
            name.push_str(&format!(", cache {size}"));
        }
    }
    if let Some(heap) = a.heap_mib {
        name.push_str(&format!(", heap {heap} MiB"));
    }
    if !a.trace_from.is_zero() {
        name.push_str(&format!(
            ", from {}",
            humantime::format_duration(a.trace_from)
        ));
    }
    if a.report.forecast_quantile != DEFAULT_QUANTILE {
        name.push_str(&format!(
            ", forecast {}",
            quantile_name(a.report.forecast_quantile, false)
        ));
    }
    if a.report.fresh_forecasts {
        name.push_str(", fresh forecasts");
    }
    match a.report.apo_utilization {
        Some(ApoUtilization::Given(u)) => name.push_str(&format!(", APO at {:.0} %", u * 100.0)),
        Some(ApoUtilization::Slo) => name.push_str(", APO at the SLO's utilisation"),
        None => {}
    }
    name
}

/// The report's Markdown section.
#[allow(clippy::too_many_arguments)]
pub fn section(
    a: &SimArgs,
    s: &Sizing,
    (mean, peak): (f64, f64),
    speed: f64,
    wall: Duration,
    table: &str,
    svg: &Path,
    command: String,
) -> String {
    let name = load_name(a);
    let fleet = if s.services.len() > 1 {
        let each: Vec<String> = s.services.iter().map(|(n, f)| format!("{n} {f}")).collect();
        format!(
            "The web shop (`--topology shop`: its services, their calls and their own service \
             times as the README describes them), each service sized at its share of the \
             load's requests on its own replicas' capacity, and scaled, tuned and measured as \
             one (the requests at `frontend`, the replicas of every service added up; fixed \
             capacity: {}). Its entry: ",
            each.join(", ")
        )
    } else {
        String::new()
    };
    format!(
        "### The loop against the HPA rule: {name}\n\n\
         `apo {command}` ({date}, {wall} of wall time at {speed}x on this machine)\n\n\
         {fleet}One service of {workers} workers a replica, log-normal service time (median {median:?}, \
         sigma {sigma}: {per:.1} requests/s a replica at 100 %), {startup:?} to start a replica, \
         callers that give up after {timeout:?} (a request answered later fails), at most \
         {max} replicas; the load's mean {mean:.1} requests/s, its peak {peak:.1} \
         requests/s. Fixed capacity: {fixed} replicas (the mean at {util:.0} %); the HPA rule \
         and APO start from {fixed}, on {window} s windows, the HPA rule on \
         `{CPU_UTILIZATION}` at {util:.0} %; APO sizes for {apo:.0} % ({why}), scales on the \
         request rate as well (every request, \
         failed ones included, at {rate:.1} requests/s a replica: the utilisation stops at 100 % \
         when the replicas are saturated, the rate does not) and adds the predictive rule (the LSTM's forecast of \
         the request rate, {buffer} s ahead, planned for at its {planned}, {issued}){tuned}. An SLA-violation minute: request p95 over \
         {slo:?} or errors over the error budget. Figures from the sim's own requests.\n\n\
         {table}\n\
         ![load, replicas and p95 per minute]({svg})\n",
        date = chrono::Utc::now().format("%Y-%m-%d"),
        wall = humantime::format_duration(Duration::from_secs(wall.as_secs())),
        workers = a.workers,
        median = a.service_time,
        sigma = a.sigma,
        per = s.per_replica,
        startup = a.startup,
        timeout = a.timeout,
        max = s.max_replicas,
        fixed = s.fixed,
        util = s.utilization * 100.0,
        apo = s.apo_utilization * 100.0,
        why = match a.report.apo_utilization {
            None => "as the HPA rule".to_string(),
            Some(ApoUtilization::Given(_)) => "--apo-utilization".to_string(),
            Some(ApoUtilization::Slo) => format!(
                "from the SLO: the highest utilisation at which a replica as an M/M/c queue keeps \
                 its p95 within {:?}, by Erlang C, less the HPA rule's 10 % tolerance",
                a.slo_p95
            ),
        },
        rate = s.per_replica * s.apo_utilization,
        window = s.window_s,
        buffer = s.buffer_s,
        slo = a.slo_p95,
        svg = svg.display(),
        tuned = tuned(a),
        planned = quantile_name(s.quantile, false),
        issued = if a.report.fresh_forecasts {
            "forecasts issued at the decision's window"
        } else {
            "forecasts issued 15 minutes ahead"
        },
    )
}

/// What the service has for APO's other rules to tune, in words (empty without any).
fn tuned(a: &SimArgs) -> String {
    let mut parts = Vec::new();
    if let Some(pool) = a.db_pool {
        parts.push(format!(
            "the pool rule (a pool of {pool} connections a replica to a database of {} \
             servers, {:?} a call)",
            a.db_servers, a.db_time
        ));
        if let Some(size) = a.cache_size {
            parts.push(format!(
                "the cache rule (a cache of {size} of {} objects, Zipf {})",
                a.cache_objects, a.cache_alpha
            ));
        }
    }
    if let Some(heap) = a.heap_mib {
        parts.push(format!(
            "the GC rule (a heap of {heap} MiB a replica, {} MiB live, {} MiB more a request \
             in the replica, {} MiB of garbage a request, {:?} pauses at an empty heap)",
            a.heap_live_mib, a.request_live_mib, a.request_alloc_mib, a.gc_pause
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(", and {}", parts.join(", "))
    }
}

/// Puts `section` into the Markdown file `path` between markers naming `name`: replacing the
/// section of the same name, else appended.
pub fn put_section(path: &Path, name: &str, section: &str) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    std::fs::write(path, with_section(&text, name, section))
        .with_context(|| format!("writing {}", path.display()))
}

fn with_section(text: &str, name: &str, section: &str) -> String {
    let begin = format!("<!-- apo sim --report: {name} -->");
    let end = format!("<!-- end of apo sim --report: {name} -->");
    let block = format!("{begin}\n{section}{end}\n");
    match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if e > b => {
            let after = &text[e + end.len()..];
            format!(
                "{}{block}{}",
                &text[..b],
                after.strip_prefix('\n').unwrap_or(after)
            )
        }
        _ => {
            let sep = if text.is_empty() || text.ends_with("\n\n") {
                ""
            } else if text.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{text}{sep}{block}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apo_dataflow::TargetSignal;

    fn sizing() -> Sizing {
        Sizing {
            services: vec![("checkout".into(), 2)],
            window_s: 60,
            fixed: 2,
            max_replicas: 20,
            per_replica: 38.2,
            utilization: 0.6,
            apo_utilization: 0.7,
            buffer_s: 90,
            quantile: 0.95,
        }
    }

    #[test]
    fn its_rules_and_policy_parse_as_the_planner_and_the_actuator_read_them() {
        let one = |h: &str, a: &str| vec![(h.to_string(), a.to_string(), 38.2)];
        let rules: apo_dataflow::PlannerConfig = toml::from_str(&planner_rules(
            &sizing(),
            &one("checkout-hpa", "checkout-apo"),
            "",
        ))
        .unwrap();
        assert_eq!(rules.window_seconds, 60);
        assert_eq!(rules.scale.len(), 2);
        assert!(rules.scale[0].predictive.is_none(), "the HPA rule alone");
        // the HPA rule on the utilisation at 60 %; APO on it and on the request rate, both at
        // APO's 70 % (38.2 × 70 % a replica)
        let metrics = |i: usize| -> Vec<(String, apo_dataflow::TargetSignal, f64)> {
            rules.scale[i]
                .metrics
                .iter()
                .map(|m| (m.name.clone(), m.signal, m.average_value))
                .collect()
        };
        let cpu = |u: f64| (CPU_UTILIZATION.to_string(), TargetSignal::Mean, u);
        assert_eq!(metrics(0), [cpu(0.6)]);
        let rate = (REQUEST_DURATION.to_string(), TargetSignal::Rate, 38.2 * 0.7);
        assert_eq!(metrics(1), [cpu(0.7), rate]);
        let p = rules.scale[1].predictive.as_ref().expect("APO's forecast");
        assert_eq!(p.capacity_per_replica, 38.2);
        assert_eq!(p.target_utilization, 0.7);
        assert_eq!(p.scheduling_buffer, Duration::from_secs(90));
        assert_eq!(p.signal.as_deref(), Some("rate"));
        assert_eq!(p.quantile, 0.95, "the sizing's");
        let median = Sizing {
            quantile: 0.5,
            ..sizing()
        };
        let rules: apo_dataflow::PlannerConfig =
            toml::from_str(&planner_rules(&median, &one("h", "a"), "")).unwrap();
        assert_eq!(rules.scale[1].predictive.as_ref().unwrap().quantile, 0.5);
        let a: SimArgs = crate::command::parse_flags(&[
            "--forecast-quantile".into(),
            "0.95".into(),
            "--apo-utilization".into(),
            "0.7".into(),
            "--trace-from".into(),
            "2d".into(),
            "--fresh-forecasts".into(),
        ])
        .unwrap();
        assert_eq!(
            load_name(&a),
            "step:20,100,2m, from 2days, forecast upper bound, fresh forecasts, APO at 70 %"
        );
        let slo: SimArgs =
            crate::command::parse_flags(&["--apo-utilization".into(), "SLO".into()]).unwrap();
        assert_eq!(slo.report.apo_utilization, Some(ApoUtilization::Slo));
        assert_eq!(
            load_name(&slo),
            "step:20,100,2m, APO at the SLO's utilisation"
        );
        assert!(crate::command::parse_flags::<SimArgs>(&[
            "--apo-utilization".into(),
            "hot".into()
        ])
        .is_err());
        assert!(rules.gc.is_empty() && rules.pool.is_empty() && rules.cache.is_empty());
        // with a database, a cache and a heap, APO's run tunes them too (the HPA's does not)
        let a: SimArgs = crate::command::parse_flags(&[
            "--db-pool".into(),
            "4".into(),
            "--cache-size".into(),
            "1000".into(),
            "--heap-mib".into(),
            "480".into(),
        ])
        .unwrap();
        let service = crate::command::service_config(&a).unwrap();
        let tuning = tuning_rules(&service, "checkout-apo");
        let all: apo_dataflow::PlannerConfig = toml::from_str(&planner_rules(
            &sizing(),
            &one("checkout-hpa", "checkout-apo"),
            &tuning,
        ))
        .unwrap();
        all.validate().unwrap();
        assert_eq!(
            (all.pool[0].target.as_str(), all.pool[0].max_size),
            ("checkout-apo", Some(16))
        );
        assert_eq!(all.cache[0].target, "checkout-apo");
        assert_eq!(all.gc[0].max_heap, 4.0 * 480.0 * 1024.0 * 1024.0);
        // a fleet: each service scaled in both runs, APO's on its own capacity
        let fleet = vec![
            (
                "frontend-hpa".to_string(),
                "frontend-apo".to_string(),
                6_000.0,
            ),
            ("cart-hpa".to_string(), "cart-apo".to_string(), 1_300.0),
        ];
        let shop: apo_dataflow::PlannerConfig =
            toml::from_str(&planner_rules(&sizing(), &fleet, "")).unwrap();
        shop.validate().unwrap();
        let scaled: Vec<(&str, Option<f64>)> = shop
            .scale
            .iter()
            .map(|t| {
                let p = t.predictive.as_ref().map(|p| p.capacity_per_replica);
                (t.target.as_str(), p)
            })
            .collect();
        assert_eq!(
            scaled,
            [
                ("frontend-hpa", None),
                ("frontend-apo", Some(6_000.0)),
                ("cart-hpa", None),
                ("cart-apo", Some(1_300.0))
            ]
        );
        assert_eq!(shop.scale[3].metrics[1].average_value, 1_300.0 * 0.7);
        assert!(tuned(&a).contains("the GC rule (a heap of 480 MiB"));
        assert_eq!(
            load_name(&a),
            "step:20,100,2m, pool 4, cache 1000, heap 480 MiB"
        );
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
        let policy = dir.path().join("policy.toml");
        let targets = vec![
            (
                "checkout-hpa".to_string(),
                "http://127.0.0.1:1/hooks/checkout-hpa".to_string(),
            ),
            (
                "checkout-apo".to_string(),
                "http://127.0.0.1:2/hooks/checkout-apo".to_string(),
            ),
        ];
        std::fs::write(&policy, policy_file(&targets, &key, 20)).unwrap();
        let p = apo_actuators::policy::Policy::load(&policy).unwrap();
        assert_eq!(p.targets.len(), 2);
        assert!(!p.targets["checkout-apo"].dry_run);
    }

    #[test]
    fn a_section_replaces_the_earlier_one_of_its_load_and_keeps_the_rest() {
        let text = "# Benchmarks\n\nintro\n";
        let once = with_section(text, "a.csv", "first\n");
        assert_eq!(
            once,
            "# Benchmarks\n\nintro\n\n<!-- apo sim --report: a.csv -->\nfirst\n\
             <!-- end of apo sim --report: a.csv -->\n"
        );
        let other = with_section(&format!("{once}\nmore\n"), "b.csv", "b\n");
        let again = with_section(&other, "a.csv", "second\n");
        assert!(again.contains("second\n"));
        assert!(!again.contains("first"));
        assert!(
            again.contains("\nmore\n") && again.contains("b\n<!-- end of apo sim --report: b.csv")
        );
        assert_eq!(again.matches("apo sim --report: a.csv -->").count(), 2);
    }
}
