//! `apo override`: pause, resume or pin a target by hand, and list what is in force.
//!
//! ```sh
//! apo override pause checkout --reason "incident 4711" --for 2h
//! apo override pin checkout --replicas 12 --reason "load test"
//! apo override pause --all --reason "change freeze"
//! apo override resume checkout
//! apo override list
//! ```

use std::time::Duration;

use apo_core::kafka::{ensure_topics_with, flush_within, send_with_backpressure, DeliveryTracker};
use apo_pipeline::args::KafkaArgs;
use apo_pipeline::Broker;
use apo_schemas::overrides::{Override, OverrideMode, ALL_TARGETS};
use clap::{Args, Subcommand, ValueEnum};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::reader::OverridesReader;
use super::rfc3339;
use crate::ActuateError;

/// `apo override`.
#[derive(Args, Debug, Clone)]
pub struct OverrideArgs {
    #[command(flatten)]
    /// The broker (required: the actuators').
    pub kafka: KafkaArgs,
    /// The overrides topic (compacted; created so when missing).
    #[arg(
        long,
        env = "APO_OVERRIDES_TOPIC",
        default_value = "apo.overrides",
        global = true
    )]
    pub overrides_topic: String,
    /// What to do.
    #[command(subcommand)]
    pub action: OverrideAction,
}

/// Which target(s).
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// The target (a decision's `target`: the service).
    pub target: Option<String>,
    /// Every target.
    #[arg(long)]
    pub all: bool,
}

impl Which {
    fn key(&self) -> String {
        match (&self.target, self.all) {
            (_, true) => ALL_TARGETS.to_string(),
            (Some(t), false) => t.clone(),
            (None, false) => ALL_TARGETS.to_string(),
        }
    }
}

/// Who and why.
#[derive(Args, Debug, Clone)]
pub struct Said {
    /// Why (shown in every decision it stops).
    #[arg(long)]
    pub reason: String,
    /// Ends by itself after this long (`30m`, `2h`); otherwise until resumed.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Who sets it.
    #[arg(long, env = "USER", default_value = "unknown")]
    pub by: String,
}

/// The list's format.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// Aligned columns.
    Table,
    /// One JSON record per line.
    Json,
}

/// An override command.
#[derive(Subcommand, Debug, Clone)]
pub enum OverrideAction {
    /// Stop carrying out decisions on a target (or --all): they are audited as rejected.
    Pause {
        #[command(flatten)]
        /// Which.
        which: Which,
        #[command(flatten)]
        /// Who and why.
        said: Said,
    },
    /// Hold a target's replicas: its scale decisions are rejected.
    Pin {
        /// The target.
        target: String,
        /// The replicas it holds (for the record: the actuator does not scale to it).
        #[arg(long)]
        replicas: u32,
        #[command(flatten)]
        /// Who and why.
        said: Said,
    },
    /// End a target's (or --all's) override.
    Resume {
        #[command(flatten)]
        /// Which.
        which: Which,
    },
    /// The overrides in force.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

/// Runs `apo override`; returns what to print.
pub fn run(a: OverrideArgs) -> Result<String, ActuateError> {
    apo_core::clock::check().map_err(|e| ActuateError::Config(e.to_string()))?;
    let broker = Broker::required(&a.kafka, "(the broker the actuators read)")?;
    let topic = a.overrides_topic.as_str();
    prepare(&broker, topic, a.kafka.create_topics)?;
    let now = apo_core::clock::now_ms();
    let (key, value, said) = match &a.action {
        OverrideAction::List { format } => return list(&broker, topic, *format, now),
        OverrideAction::Pause { which, said } => {
            let key = which.key();
            let o = record(&key, OverrideMode::Pause, None, said, now)?;
            (key, Some(o), format!("paused {}", shown(&which.key())))
        }
        OverrideAction::Pin {
            target,
            replicas,
            said,
        } => {
            let o = record(target, OverrideMode::Pin, Some(*replicas), said, now)?;
            (
                target.clone(),
                Some(o),
                format!("pinned `{target}` at {replicas} replicas"),
            )
        }
        OverrideAction::Resume { which } => (
            which.key(),
            None,
            format!("resumed {}", shown(&which.key())),
        ),
    };
    write(&broker, topic, &key, value.as_ref())?;
    Ok(format!("{said} (on {topic} at {})", broker.address()))
}

fn shown(key: &str) -> String {
    if key == ALL_TARGETS {
        "every target".into()
    } else {
        format!("`{key}`")
    }
}

fn record(
    target: &str,
    mode: OverrideMode,
    replicas: Option<u32>,
    said: &Said,
    now: i64,
) -> Result<Override, ActuateError> {
    if said.reason.trim().is_empty() {
        return Err(ActuateError::Config(
            "--reason must say why (it is shown in every decision the override stops)".into(),
        ));
    }
    if target.trim().is_empty() {
        return Err(ActuateError::Config("the target is empty".into()));
    }
    Ok(Override {
        target: target.to_string(),
        mode,
        replicas,
        reason: said.reason.clone(),
        by: said.by.clone(),
        at: now,
        until: said
            .duration
            .map(|d| now.saturating_add(d.as_millis() as i64)),
    })
}

/// Creates the overrides topic (one partition, compacted) when asked to, else checks it.
pub fn prepare(broker: &Broker, topic: &str, create: bool) -> Result<(), ActuateError> {
    if create {
        ensure_topics_with(
            broker.client(),
            &[topic],
            1,
            &[("cleanup.policy", "compact")],
        )
        .map_err(|e| ActuateError::kafka(format!("creating {topic}"), e))?;
    }
    apo_core::kafka::partition_count(broker.client(), topic)
        .map_err(|e| ActuateError::kafka(format!("checking {topic}"), e))?;
    Ok(())
}

fn write(
    broker: &Broker,
    topic: &str,
    key: &str,
    value: Option<&Override>,
) -> Result<(), ActuateError> {
    let ctx = || format!("writing the override of `{key}` to {topic}");
    let producer: BaseProducer<DeliveryTracker> = broker
        .client()
        .clone()
        .set("linger.ms", "0")
        .create_with_context(DeliveryTracker::default())
        .map_err(|e| ActuateError::kafka(ctx(), e))?;
    let payload = value
        .map(serde_json::to_vec)
        .transpose()
        .map_err(|e| ActuateError::kafka(ctx(), e))?;
    let mut rec = BaseRecord::<[u8], [u8]>::to(topic).key(key.as_bytes());
    if let Some(p) = &payload {
        rec = rec.payload(p.as_slice());
    }
    send_with_backpressure(&producer, rec).map_err(|e| ActuateError::kafka(ctx(), e))?;
    if !flush_within(&producer, Duration::from_secs(30)) {
        return Err(ActuateError::kafka(
            ctx(),
            format!(
                "the broker at {} acknowledged nothing in 30 s",
                broker.address()
            ),
        ));
    }
    producer
        .context()
        .check(topic)
        .map_err(|e| ActuateError::kafka(ctx(), e))
}

fn list(
    broker: &Broker,
    topic: &str,
    format: ListFormat,
    now: i64,
) -> Result<String, ActuateError> {
    let mut reader = OverridesReader::open(broker.client(), topic)?;
    reader
        .catch_up(Duration::from_secs(30))
        .map_err(|e| ActuateError::kafka(format!("reading {topic}"), e))?;
    let active: Vec<&Override> = reader.view.active(now).collect();
    if format == ListFormat::Json {
        return active
            .iter()
            .map(|o| serde_json::to_string(o).map_err(|e| ActuateError::kafka("encoding", e)))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join("\n"));
    }
    if active.is_empty() {
        return Ok(format!("no overrides in force ({topic})"));
    }
    let mut rows = vec![[
        "TARGET".to_string(),
        "MODE".into(),
        "REPLICAS".into(),
        "BY".into(),
        "SINCE".into(),
        "UNTIL".into(),
        "REASON".into(),
    ]];
    for o in active {
        rows.push([
            o.target.clone(),
            o.mode.as_str().into(),
            o.replicas
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            o.by.clone(),
            rfc3339(o.at),
            o.until
                .map(rfc3339)
                .unwrap_or_else(|| "resumed by hand".into()),
            o.reason.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    Ok(rows
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n"))
}
