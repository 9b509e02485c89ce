//! The flags of `apo actuate`.

use std::path::PathBuf;

use apo_pipeline::args::KafkaArgs;
use clap::Args;

/// `apo actuate`: carry out the planner's decisions.
#[derive(Args, Debug, Clone)]
pub struct ActuateArgs {
    #[command(flatten)]
    /// The broker (required: the planner's).
    pub kafka: KafkaArgs,
    /// Topic of the decisions to carry out.
    #[arg(long, env = "APO_DECISIONS_TOPIC", default_value = "apo.decisions")]
    pub decisions_topic: String,
    /// Topic of the audit records: one per decision received.
    #[arg(long, env = "APO_ACTIONS_TOPIC", default_value = "apo.actions")]
    pub actions_topic: String,
    /// Topic of the manual overrides (`apo override`), read before every decision.
    #[arg(long, env = "APO_OVERRIDES_TOPIC", default_value = "apo.overrides")]
    pub overrides_topic: String,
    /// Topic of the window statistics (`apo run`'s) the verification of a target's scales reads
    /// its latency from (policy `[targets.NAME.verify]`).
    #[arg(long, env = "APO_WINDOWS_TOPIC", default_value = "apo.window_stats")]
    pub windows_topic: String,
    /// Topic of the SLO states the verification reads (`verify.slo = true`).
    #[arg(long, env = "APO_SLO_TOPIC", default_value = "apo.slo")]
    pub slo_topic: String,
    /// Consumer group of the decisions' offsets.
    #[arg(long, env = "APO_ACTUATE_GROUP", default_value = "apo-actuators")]
    pub group: String,
    /// Policy file (TOML, see the README): per target the executor, dry_run, allowed actions
    /// and bounds. Without it, or for a target it does not name, every decision is a dry run.
    #[arg(long, env = "APO_POLICY")]
    pub policy: Option<PathBuf>,
    /// A key that may have signed decisions, as a file holding its secret, `PATH` or
    /// `KEY_ID=PATH` (repeatable: keys rotate). Without any, the APO_DECISION_KEY environment
    /// variable is the secret. Decisions signed otherwise are rejected.
    #[arg(
        long = "decision-key-file",
        env = "APO_DECISION_KEY_FILE",
        value_delimiter = ','
    )]
    pub decision_keys: Vec<String>,
    /// Where the actuator keeps its claims (which decisions were started, done and audited),
    /// so a decision is executed at most once across restarts.
    #[arg(long, env = "APO_ACTUATE_STATE_DIR", default_value = "apo-actuator")]
    pub state_dir: PathBuf,
    /// Where the `actions` Parquet table is written (one file per audit record; `apo sql
    /// --data-dir` reads it): `apo run`'s data directory when they share a disk.
    #[arg(long, env = "APO_DATA_DIR", default_value = "apo-data")]
    pub data_dir: PathBuf,
    /// Carry out what the topic holds, wait for the verdicts on the actions it verifies (each
    /// at most its policy's `wait`), then exit (otherwise: until SIGINT or SIGTERM).
    #[arg(long, env = "APO_ACTUATE_DRAIN")]
    pub drain: bool,
}
