//! The planner's flags of `apo run`: its rules file, the decisions' topic and the signing key.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug, Clone)]
/// The planner's flags.
pub struct PlannerArgs {
    /// The planner's rules and targets (TOML: `[[scale]]` targets for the HPA rule,
    /// `[[rollback]]` canaries for the rollback rule; see the README). With it, closed windows become signed decisions on --decisions-topic, which
    /// `apo actuate` carries out; without it nothing is decided.
    #[arg(long = "planner", env = "APO_PLANNER")]
    pub file: Option<PathBuf>,
    /// Topic of the planner's decisions.
    #[arg(long, env = "APO_DECISIONS_TOPIC", default_value = "apo.decisions")]
    pub decisions_topic: String,
    /// File holding the secret that signs decisions (at least 16 bytes, e.g. from `openssl
    /// rand -hex 32`); without it, the APO_DECISION_KEY environment variable is the secret.
    #[arg(long, env = "APO_DECISION_KEY_FILE")]
    pub decision_key_file: Option<PathBuf>,
    /// The signing key's id, written into every decision so keys can rotate (default: `k-`
    /// and the first 8 hex digits of the secret's SHA-256).
    #[arg(long, env = "APO_DECISION_KEY_ID")]
    pub decision_key_id: Option<String>,
}
