//! The loop closed end to end on the real broker, replayed 30 times faster than real time
//! (one `APO_NOW` clock for every process): `apo sim` (a service of 2 replicas under a step
//! from 20 to 100 requests a second) publishes its metrics → `apo run --planner` (the HPA
//! rule on its `cpu.utilization`) decides a scale-up → `apo actuate` carries it out through
//! the webhook executor, or the kubernetes executor, against the sim's own control endpoints
//! → the sim's p95 is back under its 500 ms objective within five minutes of the step.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use apo_schemas::action::{ActionOutcome, ActionRecord};

use crate::common::*;

/// The clock's speed: a simulated minute every two wall seconds.
const SPEED: u32 = 30;

/// Children killed on drop (a failing test leaves no process behind).
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A clock that reads 15 minutes ago now and runs `speed` times as fast: every process given
/// it agrees on event time, which stays behind the wall clock for the run.
pub fn fast_clock(speed: u32) -> String {
    let now = apo_core::clock::Clock {
        origin_ms: apo_core::clock::system_ms() - 15 * 60_000,
        anchor_ms: apo_core::clock::system_ms(),
        speed: f64::from(speed),
    };
    now.to_env()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// What one run of the loop left: the sim's windows (its JSON lines), the audit records, the
/// decisions (parameters and reason) and the processes' logs.
struct Loop {
    windows: Vec<serde_json::Value>,
    audit: Vec<ActionRecord>,
    decided: Vec<String>,
    logs: String,
    /// The service map's edges (a traced run's).
    edges: Vec<serde_json::Value>,
}

impl Loop {
    /// The sim's p95 per window.
    fn p95(&self) -> Vec<f64> {
        self.windows
            .iter()
            .map(|w| w["p95_s"].as_f64().unwrap())
            .collect()
    }

    /// What the loop did, for a failed assertion.
    fn why(&self) -> String {
        format!(
            "p95 {:.3?}, decisions {:#?}, audit {:#?}\n{}",
            self.p95(),
            self.decided,
            self.audit,
            self.logs
        )
    }

    /// Prints its p95 per minute and its audit records' actions and outcomes.
    fn show(&self) {
        eprintln!(
            "p95 per minute: {:.3?}\naudit: {:?}",
            self.p95(),
            self.audit
                .iter()
                .map(|a| format!("{} {:?}", a.action, a.outcome))
                .collect::<Vec<_>>()
        );
    }

    /// Asserts that the windows from `from` on served nearly everything (a line of timed-out
    /// callers fails every request while the p95 of those served says nothing).
    fn served_from(&self, from: usize, at_least: u64) {
        for w in &self.windows[from..] {
            let (failed, requests) = (
                w["failed"].as_u64().unwrap(),
                w["requests"].as_u64().unwrap(),
            );
            assert!(
                requests > at_least && failed * 100 < requests,
                "{}",
                self.why()
            );
        }
    }

    /// Asserts that a tune was verified and nothing reverted.
    fn verified_without_revert(&self) {
        assert!(
            self.audit
                .iter()
                .any(|a| a.action == "verify" && a.outcome == ActionOutcome::Verified),
            "{}",
            self.why()
        );
        assert!(
            !self
                .audit
                .iter()
                .any(|a| a.outcome == ActionOutcome::Reverted),
            "{}",
            self.why()
        );
    }
}

/// A policy that tunes `setting` of `checkout` (within `min..=max`) through the webhook at
/// `url`, its effect checked on the p95 over 2 windows after `settle`.
fn tune_policy(
    setting: &str,
    min: u32,
    max: u32,
    settle: &str,
    url: &str,
    secret: &Path,
) -> String {
    format!(
        "[targets.checkout]\nexecutor = \"webhook\"\ndry_run = false\n\
         [targets.checkout.settings.\"{setting}\"]\nmin = {min}\nmax = {max}\n\
         [targets.checkout.verify]\nmetric = \"http.server.request.duration\"\n\
         statistic = \"p95\"\nwindows = 2\nsettle = \"{settle}\"\n\
         [targets.checkout.webhook]\nurl = \"{url}/hooks/checkout\"\nsecret_file = \"{}\"\n",
        secret.display()
    )
}

/// The HPA rule on `target`'s utilisation, 60 % a replica, 2 to 10 replicas.
fn hpa_rules(target: &str) -> String {
    format!(
        "window_seconds = 60\ndecision_ttl = \"1h\"\n[[scale]]\ntarget = \"{target}\"\n\
         min_replicas = 2\nmax_replicas = 10\n\
         metrics = [{{ name = \"cpu.utilization\", average_value = 0.6 }}]\n"
    )
}

/// Runs the loop: `apo run` with the planner's `rules`, `apo actuate` with the policy
/// `policy(control_url, webhook secret)` for `checkout`, and `apo sim` with `sim_flags`
/// (its load, duration, seed and service), all on one fast clock.
fn run_loop(
    name: &str,
    rules: &str,
    sim_flags: &[&str],
    policy: impl Fn(&str, &Path) -> String,
) -> Loop {
    run_loop_beside(name, rules, sim_flags, &[], false, policy)
}

/// [`run_loop`] with more sims beside the one measured (`beside`: each one's flags), on the
/// same clock and broker, each listening on a port of its own; `traced`: the sim's spans
/// through the run's trace pipeline (else the sims send none).
fn run_loop_beside(
    name: &str,
    rules: &str,
    sim_flags: &[&str],
    beside: &[&[&str]],
    traced: bool,
    policy: impl Fn(&str, &Path) -> String,
) -> Loop {
    let t = if traced {
        trace_topics(name, 1)
    } else {
        topics(name, 1)
    };
    let decisions = unique(&format!("{name}.decisions"));
    let actions = unique(&format!("{name}.actions"));
    let slo = unique(&format!("{name}.slo"));
    apo_ingest::kafka::ensure_topics(&client(), &[&decisions, &actions, &slo], 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("decisions.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
    let secret = dir.path().join("webhook.key");
    std::fs::write(&secret, "sim-webhook-secret-0123456789\n").unwrap();
    let planner = dir.path().join("planner.toml");
    std::fs::write(&planner, rules).unwrap();
    let control = format!("127.0.0.1:{}", free_port());
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy(&format!("http://{control}"), &secret)).unwrap();
    let clock = fast_clock(SPEED);
    let key_s = key.display().to_string();
    let log = |n: &str| std::fs::File::create(dir.path().join(n)).unwrap();

    let planner_s = planner.display().to_string();
    let run = apo_run_args(
        &t,
        &dir.path().join("data"),
        &[
            "--planner",
            &planner_s,
            "--decision-key-file",
            &key_s,
            "--decisions-topic",
            &decisions,
            "--windows",
            "60s",
        ],
    );
    let actuate: Vec<String> = actuate_drain_args(
        &decisions,
        &actions,
        &unique("sim"),
        &policy_file,
        &key_s,
        &dir.path().join("actuator"),
    )
    .into_iter()
    .filter(|a| a != "--drain")
    .chain([
        "--windows-topic".to_string(),
        t.stats.clone(),
        "--slo-topic".to_string(),
        slo.clone(),
    ])
    .collect();
    let mut procs = Procs(Vec::new());
    for (args, out) in [(run, "run.log"), (actuate, "actuate.log")] {
        procs.0.push(
            apo(&args)
                .env("APO_NOW", &clock)
                .env("APO_LOG", "info")
                .stdout(log(out))
                .stderr(log(out))
                .spawn()
                .unwrap(),
        );
    }
    // both ready to read before the sim's time starts
    std::thread::sleep(Duration::from_secs(4));
    // `apo sim` on the run's topic, listening at `listen`, with `flags`
    let sim_args = |listen: &str, flags: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "sim",
            "--brokers",
            &brokers(),
            "--create-topics",
            "false",
            "--metrics-topic",
            &t.metrics,
            "--listen",
            listen,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match &t.traces {
            Some(tt) => a.extend(["--spans-topic".to_string(), tt.spans.clone()]),
            None => a.extend(["--trace-sample".to_string(), "0".to_string()]),
        }
        a.extend(flags.iter().map(|s| s.to_string()));
        a
    };
    for (i, flags) in beside.iter().enumerate() {
        let other = sim_args(&format!("127.0.0.1:{}", free_port()), flags);
        procs.0.push(
            apo(&other)
                .env("APO_NOW", &clock)
                .stdout(Stdio::null())
                .stderr(log(&format!("beside-{i}.log")))
                .spawn()
                .unwrap(),
        );
    }
    let secret_s = secret.display().to_string();
    let mut flags = vec!["--webhook-secret-file", secret_s.as_str()];
    flags.extend_from_slice(sim_flags);
    let sim = sim_args(&control, &flags);
    let started = Instant::now();
    let mut child = apo(&sim)
        .env("APO_NOW", &clock)
        .stdout(Stdio::piped())
        .stderr(log("sim.log"))
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("apo sim did not end within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let logs = ["sim.log", "run.log", "actuate.log"]
        .iter()
        .map(|n| {
            format!(
                "--- {n}\n{}",
                std::fs::read_to_string(dir.path().join(n)).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(status.success(), "apo sim failed:\n{logs}");
    let windows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let audit: Vec<ActionRecord> = consume(&actions, usize::MAX, Duration::from_secs(3))
        .iter()
        .map(|r| ActionRecord::decode(Some(&r.payload)).expect("an action record"))
        .collect();
    let decided: Vec<String> = consume(&decisions, usize::MAX, Duration::from_secs(1))
        .iter()
        .map(|r| {
            let d: serde_json::Value = serde_json::from_slice(&r.payload).unwrap_or_default();
            format!("{} {}", d["params"], d["reason"])
        })
        .collect();
    let edges = match &t.traces {
        Some(tt) => consume(&tt.service_map, usize::MAX, Duration::from_secs(3))
            .iter()
            .map(|r| serde_json::from_slice(&r.payload).expect("a service-map edge"))
            .collect(),
        None => Vec::new(),
    };
    drop(procs);
    Loop {
        windows,
        audit,
        decided,
        logs,
        edges,
    }
}

/// Runs the loop of a load step (20 to 100 requests/s two minutes in) under the HPA rule with
/// the policy `policy(control_url)`, checks that it scaled the step away, and returns the
/// sim's windows and the audit records.
fn closed_loop(
    name: &str,
    policy: impl Fn(&str, &Path) -> String,
) -> (Vec<serde_json::Value>, Vec<ActionRecord>) {
    let Loop {
        windows,
        audit,
        decided,
        logs,
        ..
    } = run_loop(
        name,
        &hpa_rules("checkout"),
        &[
            "--load",
            "step:20,100,2m",
            "--duration",
            "9m",
            "--seed",
            "7",
        ],
        policy,
    );
    let p95: Vec<f64> = windows
        .iter()
        .map(|w| w["p95_s"].as_f64().unwrap())
        .collect();
    let replicas: Vec<u64> = windows
        .iter()
        .map(|w| w["replicas"].as_u64().unwrap())
        .collect();
    eprintln!("p95 per minute: {p95:.3?}\nreplicas: {replicas:?}");
    let why = || {
        format!(
            "p95 {p95:.3?}, replicas {replicas:?}, decisions {decided:#?}, audit {audit:#?}\n{logs}"
        )
    };
    assert_eq!(windows.len(), 9, "{}", why());
    // before the step, 2 replicas keep up; the step overloads them
    assert!(p95[1] < 0.5 && p95[2] > 0.5, "{}", why());
    // scaled up by executed decisions, and back under the objective 5 minutes after the step
    assert!(
        audit.iter().any(|a| a.outcome == ActionOutcome::Succeeded),
        "{}",
        why()
    );
    assert!(replicas[7] >= 4, "{}", why());
    assert!(p95[7] < 0.5 && p95[8] < 0.5, "{}", why());
    // every decision carried out while the sim ran (none stale: the planner scales from the
    // count asked for, not from the replicas ready yet); one after its end finds no sim
    let end_ms = windows[8]["start_ms"].as_i64().unwrap() + 60_000;
    assert!(
        audit
            .iter()
            .filter(|a| a.executed_at < end_ms)
            .all(|a| a.outcome == ActionOutcome::Succeeded),
        "every decision carried out: {}",
        why()
    );
    (windows, audit)
}

#[test]
fn a_load_step_is_scaled_away_through_the_webhook_executor() {
    let (_, audit) = closed_loop("simhook", |url, secret| {
        format!(
            "[targets.checkout]\nexecutor = \"webhook\"\ndry_run = false\nmax_replicas = 10\n\
             [targets.checkout.webhook]\nurl = \"{url}/hooks/checkout\"\nsecret_file = \"{}\"\n",
            secret.display()
        )
    });
    assert!(audit.iter().all(|a| a.actor == "webhook"), "{audit:?}");
}

#[test]
fn a_load_step_is_scaled_away_through_the_kubernetes_executor() {
    let (_, audit) = closed_loop("simkube", |url, _| {
        format!(
            "[targets.checkout]\nexecutor = \"kubernetes\"\ndry_run = false\nmax_replicas = 10\n\
             [targets.checkout.kubernetes]\nkind = \"Deployment\"\nnamespace = \"shop\"\n\
             api_server = \"{url}\"\n"
        )
    });
    assert!(audit.iter().all(|a| a.actor == "kubernetes"), "{audit:?}");
}

#[test]
fn a_pool_too_small_is_grown_by_a_pool_decision_and_verified() {
    // one replica whose requests each make a 50 ms database call through a pool of 2
    // connections: 2 / 0.0523 s = 38 calls a second at most. 20 requests/s, then 45 from two
    // minutes in: the pool is the bottleneck (32 workers and 32 database servers are not);
    // the planner's pool rule sizes it by Little's law, the webhook executor tunes it, and
    // the actuator's effect check compares the p95 before and after
    let rules = r#"
window_seconds = 60
decision_ttl = "1h"
[[pool]]
target = "checkout"
min_size = 2
max_size = 20
"#;
    let run = run_loop(
        "simpool",
        rules,
        &[
            "--replicas",
            "1",
            "--max-replicas",
            "1",
            "--workers",
            "32",
            "--service-time",
            "10ms",
            "--db-pool",
            "2",
            "--db-servers",
            "32",
            "--db-time",
            "50ms",
            "--load",
            "step:20,45,2m",
            "--duration",
            "9m",
            "--seed",
            "7",
        ],
        |url, secret| tune_policy("db.client.connection.max", 1, 20, "90s", url, secret),
    );
    let p95 = run.p95();
    run.show();
    let why = || run.why();
    assert_eq!(p95.len(), 9, "{}", why());
    // the pool holds the step back; once grown, the p95 is back under 500 ms
    assert!(p95[1] < 0.5 && p95[2] > 0.5, "{}", why());
    assert!(p95[7] < 0.5 && p95[8] < 0.5, "{}", why());
    // and served: a timed-out line fails every request while its p95 (of those served) says
    // nothing
    run.served_from(7, 2000);
    // grown by a tune carried out through the webhook, and its effect verified
    let tunes: Vec<&ActionRecord> = run.audit.iter().filter(|a| a.action == "tune").collect();
    assert!(
        tunes.iter().any(|a| a.outcome == ActionOutcome::Succeeded
            && a.detail
                .as_deref()
                .is_some_and(|d| d.contains("db.client.connection.max"))),
        "{}",
        why()
    );
    run.verified_without_revert();
}

#[test]
fn a_cache_too_small_is_grown_by_cache_decisions_and_verified() {
    // 60 requests/s; a cache miss makes a 50 ms database call, the database serving 2 at once
    // (38 calls/s at most); 100 000 objects of Zipf(0.9) popularity. A cache of 1 000 answers
    // 34 % (39.5 misses/s: the database's line grows); the cache rule climbs by x3 steps
    // (3 000: 46 %, 9 000: 59 %), each tuned through the webhook and checked by the effect check
    let rules = r#"
window_seconds = 60
decision_ttl = "1h"
[[cache]]
target = "checkout"
hits_metric = "cache.hits"
misses_metric = "cache.misses"
size_metric = "cache.max_size"
max_size = 9000
step = 3
windows = 2
"#;
    let run = run_loop(
        "simcache",
        rules,
        &[
            "--replicas",
            "1",
            "--max-replicas",
            "1",
            "--workers",
            "64",
            "--service-time",
            "10ms",
            "--db-pool",
            "64",
            "--db-servers",
            "2",
            "--db-time",
            "50ms",
            "--cache-size",
            "1000",
            "--load",
            "step:60,60,0s",
            "--duration",
            "12m",
            "--seed",
            "7",
        ],
        |url, secret| tune_policy("cache.max_size", 100, 9000, "30s", url, secret),
    );
    let p95 = run.p95();
    run.show();
    let why = || run.why();
    assert_eq!(p95.len(), 12, "{}", why());
    assert!(p95[1] > 0.5, "{}", why());
    assert!(p95[10] < 0.5 && p95[11] < 0.5, "{}", why());
    run.served_from(10, 3000);
    let tunes = run
        .audit
        .iter()
        .filter(|a| a.action == "tune" && a.outcome == ActionOutcome::Succeeded)
        .count();
    assert!(tunes >= 2, "1 000 -> 3 000 -> 9 000: {}", why());
    run.verified_without_revert();
}

#[test]
fn a_pool_shrunk_into_a_slower_service_is_reverted_by_the_effect_check() {
    // 30 requests/s through a pool of 4 (50 ms calls: 1.6 connections in use). The pool rule
    // keeps the pool at most 80 % busy: 2 connections, which it asks for once two windows
    // allow it; at 78 % busy the calls wait for connections and the p95 grows by more than
    // the policy's 20 %, so the actuator's effect check sets the pool back
    let rules = r#"
window_seconds = 60
decision_ttl = "1h"
[[pool]]
target = "checkout"
max_size = 20
lookback = 2
"#;
    let run = run_loop(
        "simshrink",
        rules,
        &[
            "--replicas",
            "1",
            "--max-replicas",
            "1",
            "--workers",
            "32",
            "--service-time",
            "10ms",
            "--db-pool",
            "4",
            "--db-servers",
            "32",
            "--db-time",
            "50ms",
            "--load",
            "step:30,30,0s",
            "--duration",
            "9m",
            "--seed",
            "7",
        ],
        |url, secret| tune_policy("db.client.connection.max", 1, 20, "30s", url, secret),
    );
    run.show();
    let why = || run.why();
    assert!(
        run.audit
            .iter()
            .any(|a| a.action == "tune" && a.outcome == ActionOutcome::Succeeded),
        "{}",
        why()
    );
    // the shrink reverted: the verdict, and the pool set back through the webhook
    assert!(
        run.audit
            .iter()
            .any(|a| a.action == "verify" && a.outcome == ActionOutcome::Reverted),
        "{}",
        why()
    );
    // and not asked again (the rule holds its shrinks after one was set back)
    assert_eq!(
        run.audit.iter().filter(|a| a.action == "tune").count(),
        1,
        "{}",
        why()
    );
}

/// A canary `checkout-canary` of median service time `canary_time` (its stable version's
/// 100 ms) beside its baseline `checkout` (100 ms), 30 requests/s each on 4 replicas, judged
/// by the rollback rule on their p95 over 6 windows.
fn canary_loop(name: &str, canary_time: &str) -> Loop {
    let rules = r#"
window_seconds = 60
decision_ttl = "1h"
[[rollback]]
canary = "checkout-canary"
baseline = "checkout"
lookback = 6
min_windows = 6
[[rollback.metrics]]
name = "http.server.request.duration"
statistic = "p95"
direction = "increase"
critical = true
"#;
    let load = [
        "--replicas",
        "4",
        "--load",
        "step:30,30,0s",
        "--duration",
        "11m",
        "--seed",
        "7",
    ];
    let canary: Vec<&str> = [
        "--service",
        "checkout-canary",
        "--service-time",
        canary_time,
        "--stable-service-time",
        "100ms",
    ]
    .into_iter()
    .chain(load)
    .collect();
    let baseline: Vec<&str> = ["--service", "checkout", "--service-time", "100ms"]
        .into_iter()
        .chain(load)
        .collect();
    run_loop_beside(name, rules, &canary, &[&baseline], false, |url, secret| {
        format!(
            "[targets.checkout-canary]\nexecutor = \"webhook\"\ndry_run = false\n\
             [targets.checkout-canary.webhook]\nurl = \"{url}/hooks/checkout-canary\"\n\
             secret_file = \"{}\"\n",
            secret.display()
        )
    })
}

#[test]
fn a_slower_canary_is_rolled_back_and_a_good_one_is_not() {
    // twice the service time: the judge fails it on its p95 and the webhook executor rolls
    // it back to the stable version, whose p95 is the baseline's again
    let bad = canary_loop("simcanary", "200ms");
    bad.show();
    let p95 = bad.p95();
    let rolled: Vec<&ActionRecord> = bad
        .audit
        .iter()
        .filter(|a| a.action == "rollback" && a.outcome == ActionOutcome::Succeeded)
        .collect();
    assert_eq!(rolled.len(), 1, "{}", bad.why());
    assert_eq!(rolled[0].target, "checkout-canary");
    assert!(p95[..5].iter().all(|p| *p > 0.25), "{}", bad.why());
    assert!(p95[9] < 0.25 && p95[10] < 0.25, "{}", bad.why());
    // the same version as the baseline: judged, not rolled back
    let good = canary_loop("simgoodcanary", "100ms");
    good.show();
    assert!(
        !good.audit.iter().any(|a| a.action == "rollback"),
        "{}",
        good.why()
    );
    assert!(good.p95().iter().all(|p| *p < 0.25), "{}", good.why());
}

/// The cells of the report's table row that starts with `label`.
fn row(table: &str, label: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("no row `{label}` in:\n{table}"));
    line.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

/// `apo sim --report` with `extra` flags, at 60x with 15 s start-ups and the committed
/// models, into `out`: its stdout (the table), after asserting it succeeded.
fn run_report(out: &Path, extra: &[&str]) -> String {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/artifacts");
    let (out, models) = (out.display().to_string(), models.display().to_string());
    let mut args: Vec<String> = ["sim", "--report", "--speed", "60", "--startup", "15s"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--out".into(), out, "--models-dir".into(), models]);
    let o = run_to_end(&args, Duration::from_secs(300));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    stdout
}

#[test]
fn the_report_runs_one_load_three_ways_through_the_whole_system() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let bench = dir.path().join("BENCHMARKS.md");
    std::fs::write(&bench, "# Benchmarks\n\nkept\n").unwrap();
    let stdout = run_report(
        &out,
        &[
            "--load",
            "step:20,100,5m",
            "--duration",
            "15m",
            "--benchmarks",
            &bench.display().to_string(),
        ],
    );
    eprintln!("{stdout}");
    // fixed: the mean, (5 x 20 + 10 x 100) / 15 = 73.3 requests/s, at 60 % of the 38.2 a
    // replica serves (4 workers, mean service time 0.1 e^(0.3^2 / 2) s): 3.2, so 4 replicas,
    // 60 replica-minutes, never scaled
    let fixed = row(&stdout, "fixed capacity");
    assert_eq!(fixed[1], "0 of 15", "{stdout}");
    assert_eq!(
        (fixed[6].as_str(), fixed[7].as_str()),
        ("60", "0"),
        "{stdout}"
    );
    // the HPA rule and APO were scaled through the webhook, to carry the step (100
    // requests/s needs 5 replicas at 60 %)
    let minutes = std::fs::read_to_string(out.join("minutes.csv")).unwrap();
    for (label, service) in [("HPA rule", "hpa"), ("APO, all rules", "apo")] {
        let r = row(&stdout, label);
        let actions: u32 = r[7].parse().unwrap();
        assert!(actions >= 1, "{label}: {stdout}");
        let rows: Vec<Vec<&str>> = minutes
            .lines()
            .filter(|l| l.starts_with(&format!("{service},")))
            .map(|l| l.split(',').collect())
            .collect();
        assert_eq!(rows.len(), 15, "{service}: {minutes}");
        let last = rows.last().unwrap();
        let (p95, replicas): (f64, u32) = (last[5].parse().unwrap(), last[6].parse().unwrap());
        assert!(
            replicas >= 5 && p95 < 0.5,
            "{label} ends at {replicas} replicas, p95 {p95}: {minutes}"
        );
    }
    let svg = std::fs::read_to_string(out.join("report.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("APO, all rules"),
        "{svg}"
    );
    let md = std::fs::read_to_string(&bench).unwrap();
    assert!(md.starts_with("# Benchmarks\n\nkept\n"), "{md}");
    assert!(
        md.contains("<!-- apo sim --report: step:20,100,5m -->") && md.contains("| HPA rule |"),
        "{md}"
    );
    // the decisions that scaled them are in the system's tables
    let decided = sql_csv(
        &out.join("data"),
        "SELECT target, count(*) FROM decisions GROUP BY target ORDER BY target",
    );
    let targets: Vec<&str> = decided.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(targets, vec!["checkout-apo", "checkout-hpa"], "{decided:?}");
}

#[test]
fn the_report_runs_the_web_shop_three_ways_each_service_at_its_share() {
    // The shop, 50 then 170 requests/s three minutes in: the mean is exactly 140/s. Each
    // service of ours is sized at its share on its own replicas' capacity at 60 %: frontend
    // 140 / (64 / (0.01 e^0.045)) -> 1, product-catalog 126 / 1 530 -> 1, recommendation
    // 84 / (0.6 x 4 / (0.08 e^0.125)) = 84 / 26.5 = 3.17 -> 4, cart, checkout, payment 1 each,
    // email 14 / 38.2 at 60 % -> 1: 10 replicas, 120 replica-minutes over 12 minutes.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let stdout = run_report(
        &out,
        &[
            "--topology",
            "shop",
            "--load",
            "step:50,170,3m",
            "--duration",
            "12m",
        ],
    );
    let fixed = row(&stdout, "fixed capacity");
    assert_eq!(
        (fixed[6].as_str(), fixed[7].as_str()),
        ("120", "0"),
        "{stdout}"
    );
    for label in ["HPA rule", "APO, all rules"] {
        let r = row(&stdout, label);
        assert!(r[7].parse::<u32>().unwrap() >= 1, "{label}: {stdout}");
    }
    // every service of ours in both scaled runs, APO's with its pool and cache rules
    let rules = std::fs::read_to_string(out.join("planner.toml")).unwrap();
    for service in [
        "frontend",
        "product-catalog",
        "recommendation",
        "cart",
        "checkout",
        "payment",
        "email",
    ] {
        for run in ["hpa", "apo"] {
            assert!(
                rules.contains(&format!("target = \"{service}-{run}\"")),
                "{service}-{run}: {rules}"
            );
        }
    }
    assert!(
        !rules.contains("stripe-api"),
        "an external service is not ours: {rules}"
    );
    assert!(
        rules.contains("[[pool]]\ntarget = \"product-catalog-apo\""),
        "{rules}"
    );
    assert!(
        rules.contains("[[cache]]\ntarget = \"product-catalog-apo\""),
        "{rules}"
    );
    // recommendation, which the step overloads, was scaled in both runs
    let decided = sql_csv(
        &out.join("data"),
        "SELECT DISTINCT target FROM decisions ORDER BY target",
    );
    let targets: Vec<&str> = decided.iter().map(|r| r[0].as_str()).collect();
    for t in ["recommendation-apo", "recommendation-hpa"] {
        assert!(targets.contains(&t), "{t}: {decided:?}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("step:50,170,3m, shop") && md.contains("recommendation 4"),
        "{md}"
    );
}

#[test]
fn the_shop_scales_the_backend_that_slows_its_frontend_and_its_spans_draw_the_map() {
    // The web shop (`--topology shop`), 50 then 170 requests/s two minutes in: 60 % of the
    // frontend's requests call recommendation (2 replicas: about 88 calls/s at most), which
    // the step overloads; the frontend, waiting, slows down while its own replicas are nearly
    // idle. The HPA rule on recommendation's utilisation scales it, through the webhook, and
    // the frontend's p95 comes back; 5 % of the requests traced draw the service map.
    let run = run_loop_beside(
        "simshop",
        &hpa_rules("recommendation"),
        &[
            "--topology",
            "shop",
            "--load",
            "step:50,170,2m",
            "--duration",
            "9m",
            "--seed",
            "7",
            "--trace-sample",
            "0.05",
        ],
        &[],
        true,
        |url, secret| {
            format!(
                "[targets.recommendation]\nexecutor = \"webhook\"\ndry_run = false\n\
                 max_replicas = 10\n[targets.recommendation.webhook]\n\
                 url = \"{url}/hooks/recommendation\"\nsecret_file = \"{}\"\n",
                secret.display()
            )
        },
    );
    run.show();
    let p95 = run.p95();
    assert_eq!(run.windows.len(), 9, "{}", run.why());
    assert!(p95[1] < 0.5 && p95[3] > 0.5, "{}", run.why());
    let scaled: Vec<&ActionRecord> = run
        .audit
        .iter()
        .filter(|a| a.outcome == ActionOutcome::Succeeded)
        .collect();
    assert!(
        !scaled.is_empty() && scaled.iter().all(|a| a.target == "recommendation"),
        "{}",
        run.why()
    );
    // the frontend itself was never scaled: its replicas are the two it started with
    assert!(
        run.windows.iter().all(|w| w["replicas"] == 2),
        "{}",
        run.why()
    );
    assert!(p95[7] < 0.5 && p95[8] < 0.5, "{}", run.why());
    run.served_from(7, 5000);
    // the map the spans drew: calls, a message, a database, the external API
    let edges: std::collections::BTreeSet<(String, String, String)> = run
        .edges
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("client"), s("server"), s("connection_type"))
        })
        .collect();
    for (client, server, kind) in [
        ("user", "frontend", ""),
        ("frontend", "recommendation", ""),
        ("frontend", "product-catalog", ""),
        ("checkout", "payment", ""),
        ("payment", "stripe-api", "virtual_node"),
        ("checkout", "email", "messaging_system"),
        ("product-catalog", "product-catalog_db", "database"),
    ] {
        assert!(
            edges.contains(&(client.into(), server.into(), kind.into())),
            "{client} -> {server} ({kind}) not in {edges:#?}"
        );
    }
}

#[test]
fn long_gc_pauses_are_ended_by_a_heap_decision_and_verified() {
    // one replica of 8 workers (50 ms median) at 40 requests/s on a 480 MiB heap, 400 MiB of
    // it live: a collection every half second pauses it 120 ms (20 ms / (1 - 400/480)) and
    // the p95 is twice what the work takes. The planner's GC rule sees pauses over 100 ms on
    // a heap 83 % live, over G1's 45 %: a heap of 889 MiB; the webhook executor sets it, the
    // pauses drop to 36 ms, and the actuator's effect check finds the p95 lower
    let rules = "window_seconds = 60\ndecision_ttl = \"1h\"\n[[gc]]\ntarget = \"checkout\"\n\
                 max_heap = 2147483648\n";
    let run = run_loop(
        "simgc",
        rules,
        &[
            "--replicas",
            "1",
            "--max-replicas",
            "1",
            "--workers",
            "8",
            "--service-time",
            "50ms",
            "--heap-mib",
            "480",
            "--heap-live-mib",
            "400",
            "--request-live-mib",
            "0.5",
            "--load",
            "step:40,40,1m",
            "--duration",
            "8m",
            "--seed",
            "7",
        ],
        |url, secret| tune_policy("jvm.memory.limit", 1, 2_147_483_647, "90s", url, secret),
    );
    let p95 = run.p95();
    run.show();
    let why = || run.why();
    assert_eq!(p95.len(), 8, "{}", why());
    let tunes: Vec<&ActionRecord> = run
        .audit
        .iter()
        .filter(|a| a.action == "tune" && a.outcome == ActionOutcome::Succeeded)
        .collect();
    assert_eq!(tunes.len(), 1, "one heap decision: {}", why());
    assert!(
        tunes[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("jvm.memory.limit")),
        "{}",
        why()
    );
    assert!(
        run.decided.iter().any(|d| d.contains("GcPause")),
        "{}",
        why()
    );
    // before: the pauses double the p95; after: the work's own
    assert!(p95[0] > 0.15 && p95[6] < 0.1 && p95[7] < 0.1, "{}", why());
    run.verified_without_revert();
}
