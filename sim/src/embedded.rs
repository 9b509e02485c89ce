//! The embedded default's closed loop: `apo run` without `--brokers` runs, beside its
//! pipeline, a simulated `checkout` service as its metrics' traffic, the planner's HPA rule on
//! it, and an actuator whose webhook executor scales the sim (not a dry run). The load steps
//! up a minute in, so a newcomer sees the overload, the decision, the action and the recovery
//! within a few minutes, and `apo sql` finds the decisions and the actions beside the windows.
//!
//! Its files live under `DATA_DIR/loop/`: the keys (made once, kept), the planner's rules and
//! the actuator's policy (written at every start), and the actuator's state.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use apo_actuators::ActuateArgs;
use apo_pipeline::args::RunArgs;
use apo_pipeline::{Embedded, RunError, StartTraffic};

use crate::command::{parse_flags, Prepared, SimArgs};

/// The simulated service (the planner's and the policy's target).
pub const SERVICE: &str = "checkout";

/// The load: 20 requests/s, 100 from the first minute on (2 replicas carry about 80).
const LOAD: &str = "step:20,100,1m";

/// How long a silent partition holds the closed loop's watermark at most.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The sim's flags as the closed loop sets them; `--listen` on any free port.
const SIM_FLAGS: &[&str] = &[
    "--replicas",
    "2",
    "--max-replicas",
    "10",
    "--startup",
    "15s",
    "--scrape",
    "5s",
    "--duration",
    "3650d",
    "--listen",
    "127.0.0.1:0",
];

/// Prepares the closed loop of the run `run` (its planner and key set unless the user gave
/// them) and returns what starts it once the embedded broker is up.
pub fn closed_loop(run: &mut RunArgs) -> anyhow::Result<StartTraffic> {
    let dir = run.data_dir.join("loop");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let webhook_key = secret_file(&dir.join("webhook.key"))?;
    if run.planner.file.is_none() {
        let window = run
            .windows
            .iter()
            .map(|w| w.as_secs())
            .min()
            .context("--windows is empty")?;
        let planner = dir.join("planner.toml");
        std::fs::write(&planner, planner_rules(window))
            .with_context(|| format!("writing {}", planner.display()))?;
        run.planner.file = Some(planner);
    }
    let planner = run.planner.file.clone().unwrap_or_default();
    let decision_key = match &run.planner.decision_key_file {
        Some(k) => k.clone(),
        None if std::env::var_os("APO_DECISION_KEY").is_some() => {
            anyhow::bail!(
                "the embedded closed loop signs with a key file: pass --decision-key-file, or \
                 unset APO_DECISION_KEY"
            )
        }
        None => {
            let k = secret_file(&dir.join("decisions.key"))?;
            run.planner.decision_key_file = Some(k.clone());
            k
        }
    };
    // The sim's metrics are keyed by its service, so they fill one partition of the topic:
    // the silent others must not hold the watermark (the closed loop's windows would never
    // close), so they stop holding it after a few seconds.
    run.idle_advance = true;
    run.idle_timeout = run.idle_timeout.min(IDLE_TIMEOUT);
    let mut sim_args: Vec<String> = SIM_FLAGS.iter().map(|s| s.to_string()).collect();
    sim_args.extend([
        "--service".into(),
        SERVICE.into(),
        "--load".into(),
        LOAD.into(),
        "--metrics-topic".into(),
        run.metrics_topic.clone(),
        // the generated web shop's traces feed the trace pipeline beside the loop (with a
        // `checkout` of their own): the sim's would mix with them
        "--trace-sample".into(),
        "0".into(),
        "--webhook-secret-file".into(),
        webhook_key.display().to_string(),
    ]);
    let sim = Prepared::new(parse_flags::<SimArgs>(&sim_args)?)?;
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, policy_file(&sim.control_url(), &webhook_key))
        .with_context(|| format!("writing {}", policy.display()))?;
    let actuate_args: Vec<String> = vec![
        "--policy".into(),
        policy.display().to_string(),
        "--decision-key-file".into(),
        decision_key.display().to_string(),
        "--decisions-topic".into(),
        run.planner.decisions_topic.clone(),
        "--data-dir".into(),
        run.data_dir.display().to_string(),
        "--state-dir".into(),
        dir.join("actuator").display().to_string(),
    ];
    let mut actuate = parse_flags::<ActuateArgs>(&actuate_args)?;
    if !run.models.actions_topic.is_empty() {
        actuate.actions_topic = run.models.actions_topic.clone();
    }
    actuate.slo_topic = run.traces.slo_topic.clone();
    actuate.windows_topic = run.window_stats_topic.clone();
    eprintln!(
        "closed loop: the simulated `{SERVICE}` ({LOAD}: 20 requests/s, 100 from the first \
         minute), the planner's rules {} and an actuator (policy {}) scaling it through its \
         webhook; `apo run --open-loop` for the open-loop generator instead",
        planner.display(),
        policy.display()
    );
    Ok(Box::new(move |e: &Embedded| start(sim, actuate, e)))
}

/// Starts the sim and the actuator on threads of their own, both stopping with the run.
fn start(
    sim: Prepared,
    mut actuate: ActuateArgs,
    e: &Embedded,
) -> Result<Vec<std::thread::JoinHandle<()>>, RunError> {
    actuate.kafka.brokers = Some(e.address.clone());
    let (client, address, stop) = (e.client.clone(), e.address.clone(), e.stop.clone());
    let sim_stop = stop.clone();
    let sim_thread = std::thread::Builder::new()
        .name("sim".into())
        .spawn(move || {
            if let Err(e) = sim.run(&client, &address, &sim_stop) {
                tracing::error!(error = format!("{e:#}"), "the simulated service stopped");
            }
        })
        .map_err(|e| RunError::Config(format!("starting the sim: {e}")))?;
    let actuator = std::thread::Builder::new()
        .name("actuator".into())
        .spawn(move || {
            if let Err(e) = apo_actuators::actuate_until(actuate, Arc::clone(&stop)) {
                tracing::error!(error = %e, "the closed loop's actuator stopped");
            }
        })
        .map_err(|e| RunError::Config(format!("starting the actuator: {e}")))?;
    Ok(vec![sim_thread, actuator])
}

/// The planner's rules: the HPA rule on the sim's utilisation, 60 % a replica.
fn planner_rules(window_seconds: u64) -> String {
    format!(
        "# written by `apo run` (the embedded closed loop) at every start\n\
         window_seconds = {window_seconds}\n\
         decision_ttl = \"5m\"\n\
         [[scale]]\n\
         target = \"{SERVICE}\"\n\
         min_replicas = 2\n\
         max_replicas = 10\n\
         metrics = [{{ name = \"cpu.utilization\", average_value = 0.6 }}]\n"
    )
}

/// The actuator's policy: the webhook executor on the sim's endpoint, not a dry run.
fn policy_file(control_url: &str, secret: &Path) -> String {
    format!(
        "# written by `apo run` (the embedded closed loop) at every start\n\
         [targets.{SERVICE}]\n\
         executor = \"webhook\"\n\
         dry_run = false\n\
         max_replicas = 10\n\
         [targets.{SERVICE}.webhook]\n\
         url = \"{control_url}/hooks/{SERVICE}\"\n\
         secret_file = {:?}\n",
        secret.display().to_string()
    )
}

/// `path`, made with 32 random bytes as hex (readable by its owner only) unless it exists.
pub(crate) fn secret_file(path: &Path) -> anyhow::Result<PathBuf> {
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a new secret")?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, format!("{hex}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_files_parse_as_the_planner_and_the_actuator_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let key = secret_file(&dir.path().join("k")).unwrap();
        let text = std::fs::read_to_string(&key).unwrap();
        assert_eq!(text.trim().len(), 64);
        // made once, kept
        assert_eq!(secret_file(&key).unwrap(), key);
        assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
        let rules: apo_dataflow::PlannerConfig = toml::from_str(&planner_rules(10)).unwrap();
        assert_eq!(rules.window_seconds, 10);
        assert_eq!(rules.scale[0].target, SERVICE);
        let policy = dir.path().join("policy.toml");
        std::fs::write(&policy, policy_file("http://127.0.0.1:1", &key)).unwrap();
        apo_actuators::policy::Policy::load(&policy).unwrap();
    }
}
