//! `apo sim --report`: the effectiveness report. The same load and seed run three times at
//! once, each through the whole system (the sim's metrics to Kafka on an embedded broker →
//! `apo run`'s pipeline and planner → decisions → an actuator → the webhook executor → the
//! sim), on one fast clock installed for the process:
//!
//! - **fixed**: the replicas the load's mean needs at the sizing utilisation, never changed;
//! - **hpa**: the planner's HPA rule alone (the reactive rule on the replicas' utilisation);
//! - **apo**: every rule APO has for this service: the HPA rule with the predictive rule
//!   (replicas for the LSTM's forecast of the request rate, ready by the time it comes).
//!
//! The three are services of one system (`SERVICE-fixed`, `-hpa`, `-apo`): one pipeline, one
//! planner, one actuator, three sims, so a day of load takes one day of simulated time, not
//! three. Each is measured from the sim's own scrapes (`measure.rs`): per minute the load,
//! p95, errors and replicas; over the run the table's figures (`table.rs`) and the plot
//! (`plot.rs`).
//!
//! - `args.rs`: its flags; `files.rs`: the planner's rules and the actuator's policy it writes.

pub mod args;
pub mod files;
pub mod measure;
pub mod plot;
pub mod table;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};
use apo_actuators::ActuateArgs;
use apo_core::clock::Clock;
use apo_pipeline::args::RunArgs;
use apo_pipeline::{Embedded, RunError};

pub use args::ReportArgs;

use crate::command::{parse_flags, Prepared, RateFn, SimArgs};
use crate::embedded::secret_file;
use crate::queue::erlang::utilization_for;
use crate::report::args::ApoUtilization;
use crate::report::files::{planner_rules, policy_file, tuning_rules, Sizing};
use crate::report::measure::{Capacity, Measure, Objective, Served, Summary};

/// The runs: name (the service's suffix) and label.
pub const RUNS: [(&str, &str); 3] = [
    ("fixed", "fixed capacity"),
    ("hpa", "HPA rule"),
    ("apo", "APO, all rules"),
];

/// A marker in the data directory: it is a report's, and may be replaced.
const MARKER: &str = ".apo-report";

/// The results of the three runs, as they finish.
type Results = Arc<Mutex<Vec<Option<Result<Summary, String>>>>>;

/// Runs the report of `a`.
pub fn report(mut a: SimArgs) -> anyhow::Result<()> {
    let r = a.report.clone();
    if a.kafka.brokers.is_some() {
        bail!("--report runs the whole system on an embedded broker of its own: drop --brokers");
    }
    if !(r.speed.is_finite() && r.speed > 0.0) {
        bail!("--speed must be a positive number (got {})", r.speed);
    }
    for (flag, u) in [
        ("--utilization", r.utilization),
        ("--capacity-utilization", r.capacity_utilization),
    ] {
        if !(u > 0.0 && u <= 1.0) {
            bail!("{flag} must be over 0 and at most 1 (got {u})");
        }
    }
    if let Some(ApoUtilization::Given(u)) = r.apo_utilization {
        if !(u > 0.0 && u <= BURST_UTILIZATION) {
            bail!(
                "--apo-utilization must be over 0 and at most the predictive rule's burst \
                 utilisation, {BURST_UTILIZATION} (got {u})"
            );
        }
    }
    let upper = apo_dataflow::UPPER_QUANTILE;
    if !(1.0 - upper..=upper).contains(&r.forecast_quantile) {
        bail!(
            "--forecast-quantile must be within the forecaster's 90 % interval, {:.2} to \
             {upper} (got {})",
            1.0 - upper,
            r.forecast_quantile
        );
    }
    let lstm = r.models_dir.join("lstm.onnx");
    let iforest = r.models_dir.join("iforest.onnx");
    for m in [&lstm, &iforest] {
        if !m.exists() {
            bail!(
                "{} does not exist: --models-dir must hold the forecaster and the anomaly model \
                 (models/artifacts in the repository)",
                m.display()
            );
        }
    }
    // its runs are measured from the sim's own requests; spans would only load the pipeline
    a.trace_sample = 0.0;
    a.listen.set_port(0);
    let out = r.out.clone();
    let data = out.join("data");
    prepare_out(&out, &data)?;
    let webhook_key = secret_file(&out.join("webhook.key"))?;
    let decision_key = secret_file(&out.join("decisions.key"))?;
    a.webhook_secret_file = Some(webhook_key.clone());

    // the three sims, sized once the load's mean is known: each service of ours at its share
    let probe = Prepared::new(a.clone())?;
    let (duration_s, rate, peak) = (probe.duration_s(), probe.rate(), probe.peak());
    let fleet = probe.fleet().clone();
    drop(probe);
    let mean = mean_rate(&*rate, duration_s);
    let shares = fleet.shares();
    let mut fixed_of = Vec::with_capacity(fleet.nodes.len());
    for (n, share) in fleet.nodes.iter().zip(&shares) {
        let per = n.service.per_replica();
        let fixed = ((mean * share / (per * r.utilization)).ceil() as u32).max(1);
        if !n.external && fixed > a.max_replicas {
            bail!(
                "`{}`: the load's mean ({mean:.1} requests/s, {:.0} % of it) needs {fixed} \
                 replicas at {} % utilisation, over --max-replicas {}",
                n.name,
                share * 100.0,
                r.utilization * 100.0,
                a.max_replicas
            );
        }
        // an external service keeps its own
        fixed_of.push(if n.external { n.replicas } else { fixed });
    }
    let entry = &fleet.nodes[0];
    let per_replica = entry.service.per_replica();
    let apo_utilization = match r.apo_utilization {
        None => r.utilization,
        Some(ApoUtilization::Given(u)) => u,
        Some(ApoUtilization::Slo) => slo_utilization(&fleet, a.slo_p95.as_secs_f64())
            .unwrap_or_else(|| {
                eprintln!(
                "report: no utilisation keeps a replica's p95 within --slo-p95 {:?} as an M/M/c \
                 queue: APO sizes for --utilization {} %",
                a.slo_p95,
                r.utilization * 100.0
            );
                r.utilization
            }),
    };
    let sizing = Sizing {
        services: fleet
            .nodes
            .iter()
            .zip(&fixed_of)
            .filter(|(n, _)| !n.external)
            .map(|(n, f)| (n.name.clone(), *f))
            .collect(),
        window_s: a.window.as_secs(),
        fixed: fixed_of[0],
        max_replicas: a.max_replicas,
        per_replica,
        utilization: r.utilization,
        apo_utilization,
        buffer_s: a.startup.as_secs() + a.window.as_secs(),
        quantile: r.forecast_quantile,
    };
    let mut sims = Vec::new();
    for (name, _) in RUNS {
        let mut s = a.clone();
        s.suffix = Some(name.to_string());
        s.replicas_of = fixed_of.clone();
        sims.push(Prepared::new(s)?.quiet());
    }
    let ours: Vec<&crate::topology::Node> = fleet.nodes.iter().filter(|n| !n.external).collect();
    let named = |n: &crate::topology::Node, i: usize| format!("{}-{}", n.name, RUNS[i].0);
    let planner = out.join("planner.toml");
    let targets: Vec<(String, String, f64)> = ours
        .iter()
        .map(|n| (named(n, 1), named(n, 2), n.service.per_replica()))
        .collect();
    let tuning: String = ours
        .iter()
        .map(|n| tuning_rules(&n.service, &named(n, 2)))
        .collect();
    std::fs::write(&planner, planner_rules(&sizing, &targets, &tuning))
        .with_context(|| format!("writing {}", planner.display()))?;
    let policy = out.join("policy.toml");
    let hooks: Vec<(String, String)> = (1..3)
        .flat_map(|i| {
            let base = sims[i].control_url();
            ours.iter().map(move |n| {
                let name = named(n, i);
                (name.clone(), format!("{base}/hooks/{name}"))
            })
        })
        .collect();
    std::fs::write(&policy, policy_file(&hooks, &webhook_key, a.max_replicas))
        .with_context(|| format!("writing {}", policy.display()))?;
    let served: Vec<Option<Served>> = fleet
        .nodes
        .iter()
        .zip(&shares)
        .map(|(n, share)| {
            (!n.external).then(|| Served {
                capacity: Capacity {
                    per_replica: n.service.per_replica(),
                    utilization: r.capacity_utilization,
                },
                share: *share,
            })
        })
        .collect();

    // the clock: the run's simulated time ends an hour before the wall clock's now
    let clock = match std::env::var_os(apo_core::clock::APO_NOW) {
        Some(_) => apo_core::clock::check()?,
        None => {
            let now = apo_core::clock::system_ms();
            let c = Clock {
                origin_ms: now - (duration_s * 1000.0) as i64 - 3_600_000,
                anchor_ms: now,
                speed: r.speed,
            };
            apo_core::clock::install(c).map_err(|was| {
                anyhow::anyhow!("the clock was read before the report set it ({was:?})")
            })?;
            c
        }
    };
    let wall_s = duration_s / clock.speed;
    let fixed = sizing.fixed;
    eprintln!(
        "report: {} of simulated load at {}x (about {} of wall time): fixed {fixed} replicas \
         (the mean, {mean:.1} requests/s, at {:.0} %), the HPA rule, and APO, each from {fixed} \
         replicas, at most {}; the system's data in {}",
        humantime::format_duration(std::time::Duration::from_secs(duration_s as u64)),
        clock.speed,
        humantime::format_duration(std::time::Duration::from_secs(wall_s.ceil() as u64)),
        r.utilization * 100.0,
        a.max_replicas,
        data.display()
    );

    let mut flags = run_flags(
        &data,
        &sizing,
        &planner,
        &decision_key,
        &lstm,
        &iforest,
        duration_s,
    );
    if r.fresh_forecasts {
        flags.push("--forecast-horizons".into());
        flags.push(forecast_horizons(sizing.window_s, sizing.buffer_s));
    }
    let mut run = parse_flags::<RunArgs>(&flags)?;
    run.planner.file = Some(planner.clone());
    let actuate = parse_flags::<ActuateArgs>(&[
        "--policy".into(),
        policy.display().to_string(),
        "--decision-key-file".into(),
        decision_key.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--state-dir".into(),
        out.join("actuator").display().to_string(),
        // the report's one actuator claims in its state directory, not through the broker
        "--local-claims".into(),
    ])?;
    let objective = Objective {
        p95_s: a.slo_p95.as_secs_f64(),
        max_error_rate: r.max_error_rate,
    };
    let results: Results = Arc::new(Mutex::new(vec![None, None, None]));
    let started = Instant::now();
    let shared = Arc::clone(&results);
    apo_pipeline::run_with(
        run,
        Some(Box::new(move |e: &Embedded| {
            start(sims, actuate, e, objective, served, rate, shared)
        })),
    )
    .map_err(anyhow::Error::from)?;

    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    let mut summaries = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Some(Ok(s)) => summaries.push(s),
            Some(Err(e)) => bail!("the {} run failed: {e}", RUNS[i].0),
            None => bail!("the {} run did not finish (stopped)", RUNS[i].0),
        }
    }
    let runs: Vec<(&str, &Summary)> = RUNS
        .iter()
        .zip(&summaries)
        .map(|((_, label), s)| (*label, s))
        .collect();
    let table = table::markdown(&runs);
    println!("{table}");
    let wall = started.elapsed();
    let svg = out.join("report.svg");
    plot::svg(&svg, &runs, objective.p95_s).map_err(anyhow::Error::msg)?;
    let named: Vec<(&str, &Summary)> = RUNS
        .iter()
        .zip(&summaries)
        .map(|((name, _), s)| (*name, s))
        .collect();
    std::fs::write(out.join("minutes.csv"), table::minutes_csv(&named))
        .with_context(|| format!("writing {}", out.join("minutes.csv").display()))?;
    let section = files::section(
        &a,
        &sizing,
        (mean, peak),
        clock.speed,
        wall,
        &table,
        &svg,
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    );
    let md = out.join("report.md");
    std::fs::write(&md, &section).with_context(|| format!("writing {}", md.display()))?;
    if let Some(b) = &r.benchmarks {
        files::put_section(b, &files::load_name(&a), &section)?;
    }
    eprintln!(
        "report: done in {}; {} and {} (plot); the system's tables: apo sql --data-dir {} \
         \"SELECT * FROM decisions\"",
        humantime::format_duration(std::time::Duration::from_secs(wall.as_secs())),
        md.display(),
        svg.display(),
        data.display()
    );
    Ok(())
}

/// `out` made, and `data` under it empty: a report's earlier data is removed, anything else
/// there is an error.
/// The predictive rule's default burst utilisation: APO's target may not be above it.
const BURST_UTILIZATION: f64 = apo_dataflow::DEFAULT_BURST_UTILIZATION;

/// The utilisation APO sizes for from the SLO: for each service of ours the highest at which
/// a replica as an M/M/c queue (c its workers, μ its mean service rate a worker) keeps the
/// p95 response time within `slo_p95_s` ([`utilization_for`]), less the HPA rule's
/// tolerance; the lowest of them, at most the burst utilisation. `None` when a service does
/// not keep it at any load.
fn slo_utilization(fleet: &crate::topology::Topology, slo_p95_s: f64) -> Option<f64> {
    let mut lowest = BURST_UTILIZATION;
    for n in fleet.nodes.iter().filter(|n| !n.external) {
        let s = &n.service;
        let mu = s.per_replica() / s.workers as f64;
        let rho = utilization_for(s.workers, mu, 0.95, slo_p95_s)?;
        lowest = lowest.min(rho / (1.0 + apo_dataflow::DEFAULT_TOLERANCE));
    }
    Some(lowest)
}

fn prepare_out(out: &Path, data: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if data.exists() {
        if !data.join(MARKER).exists() {
            bail!(
                "{} exists and is not an earlier report's data: choose another --out",
                data.display()
            );
        }
        std::fs::remove_dir_all(data)
            .with_context(|| format!("removing the earlier report's {}", data.display()))?;
    }
    let actuator = out.join("actuator");
    if actuator.exists() {
        std::fs::remove_dir_all(&actuator)
            .with_context(|| format!("removing the earlier report's {}", actuator.display()))?;
    }
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    std::fs::write(
        data.join(MARKER),
        "made by apo sim --report; replaced by the next\n",
    )
    .with_context(|| format!("writing in {}", data.display()))?;
    Ok(())
}

/// The mean of `rate` over `[0, duration_s)`, sampled each second.
fn mean_rate(rate: &(dyn Fn(f64) -> f64 + Send + Sync), duration_s: f64) -> f64 {
    let n = duration_s.floor().max(1.0) as u64;
    (0..n).map(|i| rate(i as f64 + 0.5)).sum::<f64>() / n as f64
}

/// `apo run`'s flags for the report: the planner's window only, no trace pipeline, the
/// forecast of the request rate, event times as old as the run.
fn run_flags(
    data: &Path,
    sizing: &Sizing,
    planner: &Path,
    decision_key: &Path,
    lstm: &Path,
    iforest: &Path,
    duration_s: f64,
) -> Vec<String> {
    let age_h = (duration_s / 3600.0).ceil() as u64 + 3;
    [
        "--data-dir",
        &data.display().to_string(),
        "--embedded-port",
        "0",
        "--windows",
        &format!("{}s", sizing.window_s),
        "--traces",
        "false",
        "--planner",
        &planner.display().to_string(),
        "--decision-key-file",
        &decision_key.display().to_string(),
        "--models",
        "true",
        "--forecast-model",
        &lstm.display().to_string(),
        "--anomaly-model",
        &iforest.display().to_string(),
        "--forecast-signal",
        "rate",
        "--warm-start",
        "false",
        "--idle-advance",
        "--idle-timeout",
        "1s",
        "--max-event-age",
        &format!("{}h", age_h.max(168)),
        "--progress-interval",
        "0s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The horizons the pipeline forecasts at for the predictive rule with `--fresh-forecasts`:
/// each window up to the last one a decision made now plans for (the scheduling buffer and a
/// window ahead), so it plans with forecasts issued at its own window, and the model's 15
/// minutes (the forecasts' usual horizon, for `apo sql`).
fn forecast_horizons(window_s: u64, buffer_s: u64) -> String {
    let window_s = window_s.max(1);
    let last = buffer_s.div_ceil(window_s) + 1;
    let mut out: Vec<String> = (1..=last).map(|k| format!("{}s", k * window_s)).collect();
    if !(1..=last).any(|k| k * window_s == 900) {
        out.push("900s".into());
    }
    out.join(",")
}

/// Starts the three sims (each measured), the actuator, and a thread that stops the run when
/// the sims are done.
fn start(
    sims: Vec<Prepared>,
    mut actuate: ActuateArgs,
    e: &Embedded,
    objective: Objective,
    served: Vec<Option<Served>>,
    rate: RateFn,
    results: Results,
) -> Result<Vec<std::thread::JoinHandle<()>>, RunError> {
    actuate.kafka.brokers = Some(e.address.clone());
    let spawn_err =
        |what: &str, e: std::io::Error| RunError::Config(format!("starting {what}: {e}"));
    let mut runs = Vec::new();
    for (i, sim) in sims.into_iter().enumerate() {
        let (client, address, stop) = (e.client.clone(), e.address.clone(), e.stop.clone());
        let (rate, results, served) = (Arc::clone(&rate), Arc::clone(&results), served.clone());
        let name = RUNS[i].0;
        let duration_s = sim.duration_s();
        let h = std::thread::Builder::new()
            .name(format!("sim-{name}"))
            .spawn(move || {
                let mut m = Measure::fleet(objective, served, rate);
                let started = Instant::now();
                let r = sim.run_observed(&client, &address, &stop, &mut |s, _| {
                    m.add_fleet(s);
                    let at_s = s.first().map_or(0.0, |e| e.at_s);
                    if crate::run::ends_multiple(at_s, 3600.0) {
                        progress(name, at_s, duration_s, started, m.minutes());
                    }
                });
                let out = match r {
                    Ok(_) if stop.load(Ordering::Relaxed) => None,
                    Ok(_) => Some(Ok(m.finish())),
                    Err(e) => Some(Err(format!("{e:#}"))),
                };
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = out;
            })
            .map_err(|e| spawn_err("a sim", e))?;
        runs.push(h);
    }
    let stop = e.stop.clone();
    let actuator = std::thread::Builder::new()
        .name("actuator".into())
        .spawn(move || {
            if let Err(e) = apo_actuators::actuate_until(actuate, stop) {
                tracing::error!(error = %e, "the report's actuator stopped");
            }
        })
        .map_err(|e| spawn_err("the actuator", e))?;
    let stop = e.stop.clone();
    let waiter = std::thread::Builder::new()
        .name("report".into())
        .spawn(move || {
            for h in runs {
                let _ = h.join();
            }
            stop.store(true, Ordering::Relaxed);
        })
        .map_err(|e| spawn_err("the report's waiter", e))?;
    Ok(vec![waiter, actuator])
}

/// A progress line of run `name` at simulated time `at_s`: its last hour.
fn progress(name: &str, at_s: f64, duration_s: f64, started: Instant, minutes: &[measure::Minute]) {
    let last = &minutes[minutes.len().saturating_sub(60)..];
    let violated = last.iter().filter(|m| m.violated).count();
    let p95 = last.iter().map(|m| m.p95_s).fold(0.0, f64::max);
    let (lo, hi) = last.iter().fold((u32::MAX, 0), |(lo, hi), m| {
        (lo.min(m.replicas), hi.max(m.replicas))
    });
    eprintln!(
        "report: {name:>5} {:>3.0} h of {:.0} h (wall {:>4} s): last hour {violated:>2} \
         SLA-violation minutes, worst minute p95 {p95:.3} s, replicas {lo}-{hi}",
        at_s / 3600.0,
        duration_s / 3600.0,
        started.elapsed().as_secs(),
    );
}

#[cfg(test)]
mod tests {
    use super::{forecast_horizons, slo_utilization};
    use crate::topology::Topology;

    #[test]
    fn apo_sized_by_the_slo_is_erlang_cs_utilisation_less_the_tolerance() {
        let a: crate::command::SimArgs = crate::command::parse_flags(&[]).unwrap();
        let service = crate::command::service_config(&a).unwrap();
        // 4 workers at a 104.6 ms mean: p95 within 500 ms up to 80.3 % (sim/golden), / 1.1
        let u = slo_utilization(&Topology::single("checkout", service.clone(), 2), 0.5).unwrap();
        assert!((u - 0.8026 / 1.1).abs() < 1e-3, "{u}");
        // an objective the service time alone misses: none
        assert_eq!(
            slo_utilization(&Topology::single("checkout", service, 2), 0.2),
            None
        );
    }

    #[test]
    fn the_forecasts_reach_the_windows_a_decision_plans_for() {
        // a decision at T plans for the windows ending at T + 2 and 3 minutes (a 90 s buffer)
        assert_eq!(forecast_horizons(60, 90), "60s,120s,180s,900s");
        assert_eq!(forecast_horizons(60, 60), "60s,120s,900s");
        // the model's 15 minutes once
        let long = forecast_horizons(60, 840);
        assert_eq!(long.split(',').count(), 15);
        assert!(long.ends_with(",900s"));
        assert_eq!(forecast_horizons(10, 40), "10s,20s,30s,40s,50s,900s");
    }
}
