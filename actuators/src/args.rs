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
    /// Where the actuator keeps its claims with --local-claims (which decisions were
    /// started, done and audited), so a decision is executed at most once across restarts.
    #[arg(long, env = "APO_ACTUATE_STATE_DIR", default_value = "apo-actuator")]
    pub state_dir: PathBuf,
    /// Where the `actions` Parquet table is written (one file per audit record; `apo sql
    /// --data-dir` reads it): `apo run`'s data directory when they share a disk.
    #[arg(long, env = "APO_DATA_DIR", default_value = "apo-data")]
    pub data_dir: PathBuf,
    /// Topic of the claims (which decisions were started, done and audited, and by whom),
    /// shared by every actuator of `--group`: a decision is executed at most once across
    /// restarts and across rebalances of the group's partitions. Created compacted when
    /// missing (with --create-topics).
    #[arg(long, env = "APO_CLAIMS_TOPIC", default_value = "apo.claims")]
    pub claims_topic: String,
    /// Keep the claims in a file under --state-dir instead, and read every partition of the
    /// decisions topic without sharing them: then run exactly one actuator per decisions
    /// topic.
    #[arg(long, env = "APO_LOCAL_CLAIMS")]
    pub local_claims: bool,
    /// This actuator's name among those of its group (in Kubernetes, the pod's name of a
    /// StatefulSet): a restart under the same name takes over its own unfinished claims at
    /// once; another actuator's wait for `--claim-lease`. Default: the host's name.
    #[arg(long, env = "APO_ACTUATOR_ID")]
    pub actor_id: Option<String>,
    /// How long a decision another actuator started or finished stays its own before this
    /// one takes it over (it may still be executing it). Longer than the slowest executor.
    #[arg(long, env = "APO_CLAIM_LEASE", default_value = "2m", value_parser = humantime::parse_duration)]
    pub claim_lease: std::time::Duration,
    /// Carry out what the topic holds, wait for the verdicts on the actions it verifies (each
    /// at most its policy's `wait`), then exit (otherwise: until SIGINT or SIGTERM).
    #[arg(long, env = "APO_ACTUATE_DRAIN")]
    pub drain: bool,
}
