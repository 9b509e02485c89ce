//! The loop of `apo actuate`: each decision read is verified, checked against the policy,
//! executed at most once (the claims), and audited with exactly one record on `apo.actions`;
//! its offset is committed after the audit record is acknowledged.
//!
//! One actuator reads every partition of the decisions topic (assigned, not subscribed):
//! run one per decisions topic. Claims live on the actuator's disk.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use apo_pipeline::signals::stop_on_signals;
use apo_pipeline::Broker;
use apo_schemas::action::{ActionOutcome, ActionRecord};
use apo_schemas::decision::{Decision, SigningKey};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::args::ActuateArgs;
use crate::audit::AuditWriter;
use crate::claims::{Claims, Step};
use crate::executors::Executors;
use crate::overrides::reader::OverridesReader;
use crate::policy::Policy;
use crate::verify::{self, Rejection};
use crate::ActuateError;

/// The audit record's actor when the actuator itself decided the outcome.
const ACTOR: &str = "apo-actuate";

/// What a run of `apo actuate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActuateReport {
    /// Messages read from the decisions topic.
    pub received: u64,
    /// Audit records written, by outcome.
    pub outcomes: BTreeMap<String, u64>,
}

/// Everything one decision needs.
struct Actuator {
    keys: Vec<SigningKey>,
    policy: Policy,
    claims: Claims,
    audit: AuditWriter,
    executors: Executors,
    topic: String,
    report: ActuateReport,
    /// Per target, when its actions (and dry runs) were recorded: the pacing's history.
    history: BTreeMap<String, Vec<i64>>,
    /// The manual overrides.
    overrides: OverridesReader,
}

/// How long reading the overrides to their end may take before a decision; past it the
/// decision is refused.
const OVERRIDES_WAIT: Duration = Duration::from_secs(5);

/// Whether a record counts for the pacing: carried out (a failure may have changed the
/// target, an interrupted execution may have happened), or would have been (a dry run).
fn paced(r: &ActionRecord) -> bool {
    matches!(
        r.outcome,
        ActionOutcome::Succeeded | ActionOutcome::Failed | ActionOutcome::DryRun
    )
}

/// Runs `apo actuate` until SIGINT / SIGTERM, or with `--drain` until the topic is read.
pub fn actuate(a: ActuateArgs) -> Result<ActuateReport, ActuateError> {
    apo_core::clock::check().map_err(|e| ActuateError::Config(e.to_string()))?;
    let broker = Broker::required(&a.kafka, "(the broker `apo run` writes decisions to)")?;
    let stop = stop_on_signals()?;
    broker.prepare_topics(
        &[&a.decisions_topic, &a.actions_topic],
        a.kafka.create_topics,
        a.kafka.partitions,
    )?;
    crate::overrides::command::prepare(&broker, &a.overrides_topic, a.kafka.create_topics)?;
    let mut overrides = OverridesReader::open(broker.client(), &a.overrides_topic)?;
    overrides
        .catch_up(Duration::from_secs(30))
        .map_err(|e| ActuateError::kafka(format!("reading {}", a.overrides_topic), e))?;
    let keys = verify::keys_from(&a.decision_keys)?;
    let policy = match &a.policy {
        Some(p) => Policy::load(p)?,
        None => {
            tracing::warn!("no --policy: every decision is recorded as a dry run");
            Policy::default()
        }
    };
    let executors = Executors::for_policy(&policy)
        .map_err(|e| ActuateError::Config(format!("--policy: {e}")))?;
    let claims = Claims::open(&a.state_dir)?;
    let mut history: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in claims.records().filter(|r| paced(r)) {
        history
            .entry(r.target.clone())
            .or_default()
            .push(r.executed_at);
    }
    let mut act = Actuator {
        keys,
        policy,
        claims,
        history,
        overrides,
        audit: AuditWriter::new(broker.client(), &a.actions_topic)?,
        executors,
        topic: a.decisions_topic.clone(),
        report: ActuateReport::default(),
    };
    let mut c = broker.client().clone();
    c.set("group.id", &a.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = c
        .create()
        .map_err(|e| ActuateError::kafka("a consumer of decisions", e))?;
    let count = apo_core::kafka::partition_count(broker.client(), &a.decisions_topic)
        .map_err(|e| ActuateError::kafka(format!("reading {}", a.decisions_topic), e))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..count {
        tpl.add_partition_offset(&a.decisions_topic, p, Offset::Stored)
            .map_err(|e| ActuateError::kafka("assigning partitions", e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| ActuateError::kafka("assigning partitions", e))?;
    let key_ids: Vec<&str> = act.keys.iter().map(|k| k.id.as_str()).collect();
    tracing::info!(
        topic = %a.decisions_topic,
        brokers = %broker.address(),
        keys = ?key_ids,
        state = %a.state_dir.display(),
        "carrying out decisions; audit records to {}",
        a.actions_topic
    );
    let mut at_end: HashSet<i32> = HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(200)) {
            None => {
                if a.drain && at_end.len() == count as usize {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, topic = %a.decisions_topic, "reading decisions")
            }
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                act.report.received += 1;
                act.handle(&m)?;
                let mut done = TopicPartitionList::new();
                done.add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))
                    .map_err(|e| ActuateError::kafka("committing", e))?;
                consumer.commit(&done, CommitMode::Sync).map_err(|e| {
                    ActuateError::kafka(format!("committing {}", a.decisions_topic), e)
                })?;
            }
        }
    }
    tracing::info!(received = act.report.received, outcomes = ?act.report.outcomes, "actuator stopped");
    Ok(act.report)
}

/// An audit record of `d` by `actor`.
fn record(d: &Decision, actor: &str, outcome: ActionOutcome, detail: String) -> ActionRecord {
    ActionRecord {
        decision_id: d.id.clone(),
        target: d.target.clone(),
        action: d.action.as_str().to_string(),
        executed_at: apo_core::clock::now_ms(),
        actor: actor.to_string(),
        outcome,
        detail: Some(detail),
    }
}

fn outcome_name(o: ActionOutcome) -> &'static str {
    match o {
        ActionOutcome::Succeeded => "succeeded",
        ActionOutcome::Failed => "failed",
        ActionOutcome::Rejected => "rejected",
        ActionOutcome::DryRun => "dry_run",
    }
}

impl Actuator {
    fn write(&mut self, r: &ActionRecord) -> Result<(), ActuateError> {
        self.audit.write(r)?;
        if paced(r) {
            self.history
                .entry(r.target.clone())
                .or_default()
                .push(r.executed_at);
        }
        *self
            .report
            .outcomes
            .entry(outcome_name(r.outcome).to_string())
            .or_default() += 1;
        tracing::info!(
            decision = %r.decision_id,
            target = %r.target,
            outcome = outcome_name(r.outcome),
            detail = r.detail.as_deref().unwrap_or(""),
            "audited"
        );
        Ok(())
    }

    /// One message of the decisions topic: exactly one audit record (none when a restart
    /// finds its record already acknowledged).
    fn handle(&mut self, m: &BorrowedMessage<'_>) -> Result<(), ActuateError> {
        let (p, o) = (m.partition(), m.offset());
        let d = match Decision::decode(m.payload()) {
            Ok(d) => d,
            Err(e) => {
                let target = m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .filter(|k| !k.trim().is_empty())
                    .unwrap_or_else(|| "unknown".into());
                let r = ActionRecord {
                    decision_id: format!("{}/{p}/{o}", self.topic),
                    target,
                    action: "unknown".into(),
                    executed_at: apo_core::clock::now_ms(),
                    actor: ACTOR.into(),
                    outcome: ActionOutcome::Rejected,
                    detail: Some(Rejection::Unreadable(e.to_string()).to_string()),
                };
                return self.write(&r);
            }
        };
        if let Some(c) = self.claims.get(&d.id).cloned() {
            if (c.partition, c.offset) != (p, o) {
                let why = Rejection::Replayed {
                    partition: c.partition,
                    offset: c.offset,
                };
                return self.write(&record(&d, ACTOR, ActionOutcome::Rejected, why.to_string()));
            }
            match c.step {
                Step::Audited => return Ok(()),
                Step::Done => {
                    if let Some(r) = c.record {
                        if self.audit.already_written(&d.id)? {
                            tracing::info!(
                                decision = %d.id,
                                "its audit record was acknowledged before the restart"
                            );
                        } else {
                            self.write(&r)?;
                        }
                        return self.claims.mark(&d.id, p, o, Step::Audited, None);
                    }
                }
                Step::Started => {
                    let r = record(
                        &d,
                        ACTOR,
                        ActionOutcome::Failed,
                        "interrupted during execution (the actuator stopped): carried out or \
                         not, it is not tried again"
                            .into(),
                    );
                    self.claims.mark(&d.id, p, o, Step::Done, Some(&r))?;
                    self.write(&r)?;
                    return self.claims.mark(&d.id, p, o, Step::Audited, None);
                }
            }
        }
        let now = apo_core::clock::now_ms();
        let overridden = match self.overrides.catch_up(OVERRIDES_WAIT) {
            Err(e) => Some(format!("the overrides are unknown ({e}): not acting")),
            Ok(()) => self.overrides.view.stops(&d, now),
        };
        let stopped = overridden.map_or(Ok(()), |why| Err(Rejection::Overridden(why)));
        let r = match verify::check(&d, &self.keys, now).and(stopped) {
            Err(why) => record(&d, ACTOR, ActionOutcome::Rejected, why.to_string()),
            Ok(()) => match self.policy.judge(&d).and_then(|allowed| {
                let history = self.history.get(&d.target).map_or(&[][..], Vec::as_slice);
                self.policy.pace(&d.target, history, now).map(|()| allowed)
            }) {
                Err(why) => record(
                    &d,
                    ACTOR,
                    ActionOutcome::Rejected,
                    Rejection::Policy(why).to_string(),
                ),
                Ok(allowed) if allowed.dry_run => {
                    let change = match (d.replicas_from, allowed.replicas_to) {
                        (Some(f), Some(t)) => format!(" {f} -> {t}"),
                        _ => String::new(),
                    };
                    let note = allowed.note.map(|n| format!("; {n}")).unwrap_or_default();
                    record(
                        &d,
                        &allowed.executor,
                        ActionOutcome::DryRun,
                        format!(
                            "dry run: would {} {}{change}{note}",
                            d.action.as_str(),
                            d.target
                        ),
                    )
                }
                Ok(allowed) => {
                    self.claims.mark(&d.id, p, o, Step::Started, None)?;
                    let ex = self.executors.of(&d.target);
                    let name = ex.name();
                    match ex.execute(&d, &allowed) {
                        Ok(msg) => {
                            let note = allowed.note.map(|n| format!("; {n}")).unwrap_or_default();
                            record(&d, name, ActionOutcome::Succeeded, format!("{msg}{note}"))
                        }
                        Err(e) => record(&d, name, ActionOutcome::Failed, e.to_string()),
                    }
                }
            },
        };
        self.claims.mark(&d.id, p, o, Step::Done, Some(&r))?;
        self.write(&r)?;
        self.claims.mark(&d.id, p, o, Step::Audited, None)
    }
}
