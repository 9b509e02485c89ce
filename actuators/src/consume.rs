//! The loop of `apo actuate`: each decision read is verified, checked against the policy,
//! executed at most once (the claims), and audited with exactly one record on `apo.actions`;
//! its offset is committed after the audit record is acknowledged.
//!
//! The actuators of a consumer group share the decisions topic's partitions and keep their
//! claims on a topic of the broker (`claims::topic`): a partition that moves to another
//! actuator mid-decision is taken up where the claims say it stopped, and a decision two of
//! them hold at once is executed by the one whose claim lands first. With `--local-claims`
//! one actuator reads every partition (assigned, not subscribed) and keeps its claims on its
//! disk.
//!
//! Between decisions it follows the windows of the targets whose policy verifies the effect
//! of their scales (`effect`), and concludes each verification with one more audit record
//! (reverting the scale through the same executor when it made things worse).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use apo_core::kafka::{QuietConsumer, QuietEof};
use apo_pipeline::signals::stop_on_signals;
use apo_pipeline::Broker;
use apo_schemas::action::{ActionOutcome, ActionRecord};
use apo_schemas::decision::{Decision, SigningKey};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::args::ActuateArgs;
use crate::audit::{AuditWriter, VERIFY_ACTION};
use crate::claims::topic::{self as claims_topic, ClaimsTopic};
use crate::claims::{verify_id, Actor, Claim, Claims, Holder, Step};
use crate::effect::judge::{judge, Verdict};
use crate::effect::watch::{Watch, WatchTopics, RETENTION};
use crate::effect::{self, Watching};
use crate::executors::Executors;
use crate::overrides::reader::OverridesReader;
use crate::policy::{Allowed, Policy};
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
    /// The windows of the verified targets (when the policy verifies any).
    watch: Option<Watch>,
    /// The actions whose effect is watched, by decision id, with where their decision was read.
    watching: BTreeMap<String, (i32, i64, Watching)>,
    /// How long another actuator's unfinished claim stays its own.
    lease: Duration,
}

/// How long reading the overrides to their end may take before a decision; past it the
/// decision is refused.
const OVERRIDES_WAIT: Duration = Duration::from_secs(5);

/// Whether a record counts for the pacing: carried out (a failure may have changed the
/// target, an interrupted execution may have happened), or would have been (a dry run).
fn paced(r: &ActionRecord) -> bool {
    matches!(
        r.outcome,
        ActionOutcome::Succeeded
            | ActionOutcome::Failed
            | ActionOutcome::DryRun
            | ActionOutcome::Reverted
    )
}

/// The decisions consumer's `fetch.wait.max.ms` (librdkafka's default is 500).
pub const DECISIONS_FETCH_WAIT_MS: &str = "100";

/// How long each turn of the loop may read windows for the verifications.
const WATCH_BUDGET: Duration = Duration::from_millis(50);

/// Runs `apo actuate` until SIGINT / SIGTERM, or with `--drain` until the topic is read.
pub fn actuate(a: ActuateArgs) -> Result<ActuateReport, ActuateError> {
    actuate_until(a, stop_on_signals()?)
}

/// The same until `stop` is set (an actuator inside another command, as the embedded
/// default's, stops with it).
pub fn actuate_until(
    a: ActuateArgs,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<ActuateReport, ActuateError> {
    apo_core::clock::check().map_err(|e| ActuateError::Config(e.to_string()))?;
    let broker = Broker::required(&a.kafka, "(the broker `apo run` writes decisions to)")?;
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
    let verified = policy.verified();
    let watch = if verified.is_empty() {
        None
    } else {
        let topics = WatchTopics {
            stats: a.windows_topic.clone(),
            slo: a.slo_topic.clone(),
        };
        broker.prepare_topics(
            &[&topics.stats, &topics.slo],
            a.kafka.create_topics,
            a.kafka.partitions,
        )?;
        tracing::info!(
            targets = ?verified.keys().collect::<Vec<_>>(),
            windows = %topics.stats,
            slo = %topics.slo,
            "verifying the effect of scales"
        );
        let from = apo_core::clock::now_ms() - RETENTION.as_millis() as i64;
        Some(Watch::open(broker.client(), topics, verified, from)?)
    };
    let me = Actor::new(&a.actor_id.clone().unwrap_or_else(host_name));
    let claims = if a.local_claims {
        Claims::in_file(&a.state_dir, me)?
    } else {
        claims_topic::prepare(
            &broker,
            &a.claims_topic,
            a.kafka.create_topics,
            a.kafka.partitions,
        )?;
        Claims::on_topic(ClaimsTopic::open(broker.client(), &a.claims_topic)?, me)?
    };
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
        audit: AuditWriter::new(broker.client(), &a.actions_topic, &a.data_dir)?,
        executors,
        topic: a.decisions_topic.clone(),
        report: ActuateReport::default(),
        watch,
        watching: BTreeMap::new(),
        lease: a.claim_lease,
    };
    // A verification another actuator watches stays its own (it resumes it after a restart).
    let verifications: Vec<(String, Claim)> = act
        .claims
        .all()
        .filter(|(id, c)| id.ends_with("/verify") && act.claims.holder(c) != Holder::Other)
        .map(|(id, c)| (id.clone(), c.clone()))
        .collect();
    for (id, c) in verifications {
        act.resume(&id, c)?;
    }
    let mut c = broker.client().clone();
    c.set("group.id", &a.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        // A decision waits at most this for a fetch the broker holds open (Kafka answers a
        // fetch as soon as data comes; a broker that does not waits this long): decisions are
        // few and late ones are worth less.
        .set("fetch.wait.max.ms", DECISIONS_FETCH_WAIT_MS);
    let consumer: QuietConsumer = c
        .create_with_context(QuietEof)
        .map_err(|e| ActuateError::kafka("a consumer of decisions", e))?;
    let shared = act.claims.shared();
    if shared {
        consumer
            .subscribe(&[&a.decisions_topic])
            .map_err(|e| ActuateError::kafka(format!("joining group {}", a.group), e))?;
    } else {
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
    }
    let key_ids: Vec<&str> = act.keys.iter().map(|k| k.id.as_str()).collect();
    tracing::info!(
        topic = %a.decisions_topic,
        brokers = %broker.address(),
        keys = ?key_ids,
        actor = %act.claims.me().id,
        claims = %if shared { format!("topic {}", a.claims_topic) } else { format!("{}", a.state_dir.display()) },
        group = %a.group,
        "carrying out decisions; audit records to {}",
        a.actions_topic
    );
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut told = false;
    let since = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        act.check_effects()?;
        match consumer.poll(Duration::from_millis(200)) {
            None => {
                if a.drain && drained(&consumer, &a.decisions_topic, &at_end, since) {
                    if act.watching.is_empty() {
                        break;
                    }
                    if !told {
                        told = true;
                        tracing::info!(
                            actions = act.watching.len(),
                            "decisions read: waiting for the verdicts on the actions watched \
                             (each at most its `wait`)"
                        );
                    }
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
                match consumer.commit(&done, CommitMode::Sync) {
                    Ok(()) => {}
                    // The partition moved to another actuator meanwhile: it reads the
                    // message again and finds its claim finished.
                    Err(e) if shared => tracing::warn!(
                        topic = %a.decisions_topic,
                        partition = m.partition(),
                        offset = m.offset(),
                        error = %e,
                        "the offset was not committed (a rebalance?); the claims hold the decision"
                    ),
                    Err(e) => {
                        return Err(ActuateError::kafka(
                            format!("committing {}", a.decisions_topic),
                            e,
                        ))
                    }
                }
            }
        }
    }
    tracing::info!(received = act.report.received, outcomes = ?act.report.outcomes, "actuator stopped");
    Ok(act.report)
}

/// The host's name (`--actor-id`'s default).
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "apo-actuate".into())
}

/// How long `--drain` waits to be given a partition of a shared topic before it concludes
/// the other actuators of the group hold them all.
const DRAIN_JOIN_WAIT: Duration = Duration::from_secs(15);

/// Whether every partition this actuator reads is read to its end (`--drain`). Of a shared
/// topic: those assigned to it, once it has some (or after [`DRAIN_JOIN_WAIT`] without).
fn drained(
    consumer: &QuietConsumer,
    topic: &str,
    at_end: &HashSet<i32>,
    since: std::time::Instant,
) -> bool {
    let Ok(assigned) = consumer.assignment() else {
        return false;
    };
    let mine: Vec<i32> = assigned
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect();
    if mine.is_empty() {
        return since.elapsed() > DRAIN_JOIN_WAIT;
    }
    mine.iter().all(|p| at_end.contains(p))
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
            .entry(r.outcome.as_str().to_string())
            .or_default() += 1;
        tracing::info!(
            decision = %r.decision_id,
            target = %r.target,
            outcome = r.outcome.as_str(),
            detail = r.detail.as_deref().unwrap_or(""),
            "audited"
        );
        Ok(())
    }

    /// After a restart, `r` (a record the claims hold as done but not audited; a
    /// verification's when `verification`): written to the topic unless the topic already has
    /// it, and its row to the table either way (the row replaces itself).
    fn write_again(&mut self, r: &ActionRecord, verification: bool) -> Result<(), ActuateError> {
        if self.audit.already_written(&r.decision_id, verification)? {
            tracing::info!(
                decision = %r.decision_id,
                "its audit record was acknowledged before the restart"
            );
            self.audit.table(r)
        } else {
            self.write(r)
        }
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
        // (on shared claims, one another actuator wrote since this one last read them is
        // found when a step of this one's does not apply: it reads up to its own line)
        if let Some(c) = self.claims.get(&d.id).cloned() {
            return self.claimed(&d, p, o, c);
        }
        let now = apo_core::clock::now_ms();
        let stopped = self
            .overridden(&d, now)
            .map_or(Ok(()), |why| Err(Rejection::Overridden(why)));
        let mut executed = false;
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
                    let change = allowed
                        .change(&d)
                        .map(|c| format!(" {c}"))
                        .unwrap_or_default();
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
                    if !self.claims.mark(&d.id, p, o, Step::Started, None)? {
                        return self.lost(&d, p, o);
                    }
                    executed = true;
                    let ex = self.executors.of(&d.target);
                    let name = ex.name();
                    let r = match ex.execute(&d, &allowed) {
                        Ok(msg) => {
                            let note = allowed.note.map(|n| format!("; {n}")).unwrap_or_default();
                            record(&d, name, ActionOutcome::Succeeded, format!("{msg}{note}"))
                        }
                        Err(e) => record(&d, name, ActionOutcome::Failed, e.to_string()),
                    };
                    if r.outcome == ActionOutcome::Succeeded {
                        let applied = (allowed.replicas_to, allowed.tune_to);
                        self.start_watching(&d, applied, r.executed_at, p, o)?;
                    }
                    r
                }
            },
        };
        if !self.settle(&d.id, p, o, &r, None)? {
            if !executed {
                return self.lost(&d, p, o);
            }
            if self.watching.remove(&d.id).is_some() {
                // not this actuator's to verify: its restart must not take it up either
                self.claims
                    .mark(&verify_id(&d.id), p, o, Step::Audited, None)?;
            }
            let holder = self.claims.get(&d.id).and_then(|c| c.actor.clone());
            tracing::warn!(
                decision = %d.id,
                outcome = r.outcome.as_str(),
                detail = r.detail.as_deref().unwrap_or(""),
                holder = ?holder,
                "another actuator took this decision over (its lease ran out, or it claimed it \
                 first): it writes the audit record, not this one"
            );
        }
        Ok(())
    }

    /// Done (a conditional step), the record written, audited: a claim's last three steps;
    /// `again` (`Some(verification)`) after a restart: the record written unless the topic has
    /// it. False, and nothing written, when another actuator's step of the claim came first.
    fn settle(
        &mut self,
        id: &str,
        p: i32,
        o: i64,
        r: &ActionRecord,
        again: Option<bool>,
    ) -> Result<bool, ActuateError> {
        if !self.claims.mark(id, p, o, Step::Done, Some(r))? {
            return Ok(false);
        }
        match again {
            Some(verification) => self.write_again(r, verification)?,
            None => self.write(r)?,
        }
        self.claims.mark(id, p, o, Step::Audited, None)?;
        Ok(true)
    }

    /// Decision `d` (read at `p`/`o`) whose claim `c` exists: a replay, or taken up where the
    /// claim says it stopped (after its holder's lease when that is another actuator).
    fn claimed(&mut self, d: &Decision, p: i32, o: i64, c: Claim) -> Result<(), ActuateError> {
        if (c.partition, c.offset) != (p, o) {
            let why = Rejection::Replayed {
                partition: c.partition,
                offset: c.offset,
            };
            return self.write(&record(d, ACTOR, ActionOutcome::Rejected, why.to_string()));
        }
        let Some(c) = self.wait_for_holder(&d.id)? else {
            return Ok(());
        };
        match c.step {
            Step::Audited => Ok(()),
            Step::Done => {
                let Some(r) = c.record else {
                    tracing::warn!(decision = %d.id, "a claim done without its audit record: left as it is");
                    return Ok(());
                };
                // taken over (a no-op in a file): unless another actuator did first
                self.settle(&d.id, p, o, &r, Some(false)).map(|_| ())
            }
            // (a decision's own claim is never `watching`: only its verification's is)
            Step::Started | Step::Watching => {
                let r = record(
                    d,
                    ACTOR,
                    ActionOutcome::Failed,
                    "interrupted during execution (the actuator stopped): carried out or \
                     not, it is not tried again"
                        .into(),
                );
                self.settle(&d.id, p, o, &r, None).map(|_| ())
            }
        }
    }

    /// A step of new decision `d` did not apply: another actuator's claim of it came first
    /// (now read), which says what is left to do.
    fn lost(&mut self, d: &Decision, p: i32, o: i64) -> Result<(), ActuateError> {
        tracing::info!(decision = %d.id, "another actuator claimed it first");
        match self.claims.get(&d.id).cloned() {
            Some(c) => self.claimed(d, p, o, c),
            None => Err(ActuateError::Claims {
                path: "the claims topic".into(),
                error: format!(
                    "a step of {} did not apply, yet no claim of it was read",
                    d.id
                ),
            }),
        }
    }

    /// Waits while claim `id` is another actuator's, unfinished and within its lease (it may
    /// still be working on it); the claim then, or `None` when it is gone.
    fn wait_for_holder(&mut self, id: &str) -> Result<Option<Claim>, ActuateError> {
        let mut told = false;
        loop {
            let Some(c) = self.claims.get(id).cloned() else {
                return Ok(None);
            };
            let until = c.at.saturating_add(self.lease.as_millis() as i64);
            let now = apo_core::clock::now_ms();
            if c.step == Step::Audited || self.claims.holder(&c) != Holder::Other || now >= until {
                return Ok(Some(c));
            }
            if !told {
                told = true;
                tracing::info!(
                    claim = id,
                    step = ?c.step,
                    holder = ?c.actor,
                    "another actuator holds this decision: waiting for it to finish, at most \
                     {:.1}s (its lease)",
                    (until - now) as f64 / 1000.0
                );
            }
            std::thread::sleep(Duration::from_millis(200));
            self.claims.refresh()?;
        }
    }
}

impl Actuator {
    /// Watches the effect of `d`, carried out at `executed_at` with `applied` replicas, when
    /// its target's policy verifies it (durably first: a restart goes on watching).
    fn start_watching(
        &mut self,
        d: &Decision,
        applied: (Option<u32>, Option<f64>),
        executed_at: i64,
        p: i32,
        o: i64,
    ) -> Result<(), ActuateError> {
        if self.watch.is_none()
            || !effect::verifiable(d)
            || self.policy.of(&d.target).verify.is_none()
        {
            return Ok(());
        }
        let w = Watching {
            decision: d.clone(),
            applied_replicas: applied.0,
            applied_value: applied.1,
            executed_at,
        };
        if !self.claims.watch(p, o, &w)? {
            return Ok(());
        }
        self.watching.insert(d.id.clone(), (p, o, w));
        Ok(())
    }

    /// Takes up a verification found in the claims at start, where it stopped.
    fn resume(&mut self, vid: &str, c: Claim) -> Result<(), ActuateError> {
        let Some(w) = c.watching else {
            tracing::warn!(
                claim = vid,
                "a verification claim without its action: skipped"
            );
            return Ok(());
        };
        let (p, o) = (c.partition, c.offset);
        match c.step {
            Step::Watching => {
                if self.watch.is_some() && self.policy.of(&w.decision.target).verify.is_some() {
                    self.watching.insert(w.decision.id.clone(), (p, o, w));
                    Ok(())
                } else {
                    let why = "the policy no longer verifies this target".to_string();
                    self.conclude(p, o, &w, Verdict::Unjudged(why))
                }
            }
            Step::Started => {
                let r = verify_record(
                    &w,
                    ACTOR,
                    ActionOutcome::Failed,
                    "worse; interrupted during the revert (the actuator stopped): carried out \
                     or not, it is not tried again"
                        .into(),
                );
                self.finish(vid, p, o, &r)
            }
            Step::Done => {
                if let Some(r) = c.record {
                    self.write_again(&r, true)?;
                }
                self.claims.mark(vid, p, o, Step::Audited, None)?;
                Ok(())
            }
            Step::Audited => Ok(()),
        }
    }

    /// Reads the windows that came in and concludes every verification that has a verdict.
    fn check_effects(&mut self) -> Result<(), ActuateError> {
        let Some(watch) = self.watch.as_mut() else {
            return Ok(());
        };
        watch.poll(WATCH_BUDGET);
        if self.watching.is_empty() {
            return Ok(());
        }
        let now = apo_core::clock::now_ms();
        let mut due = Vec::new();
        for (id, (_, _, w)) in &self.watching {
            let verdict = match self.policy.of(&w.decision.target).verify.as_ref() {
                Some(cfg) => judge(cfg, watch.signals(&w.decision.target), w.executed_at, now),
                None => Verdict::Unjudged("the policy does not verify this target".into()),
            };
            if verdict != Verdict::Wait {
                due.push((id.clone(), verdict));
            }
        }
        for (id, verdict) in due {
            if let Some((p, o, w)) = self.watching.remove(&id) {
                self.conclude(p, o, &w, verdict)?;
            }
        }
        Ok(())
    }

    /// The verification's record for `verdict`, reverting first when it says worse.
    fn conclude(
        &mut self,
        p: i32,
        o: i64,
        w: &Watching,
        verdict: Verdict,
    ) -> Result<(), ActuateError> {
        let vid = verify_id(&w.decision.id);
        let r = match verdict {
            Verdict::Wait => return Ok(()),
            Verdict::Held(t) => {
                verify_record(w, ACTOR, ActionOutcome::Verified, format!("held: {t}"))
            }
            Verdict::Unjudged(t) => verify_record(
                w,
                ACTOR,
                ActionOutcome::Unverified,
                format!("nothing undone: {t}"),
            ),
            Verdict::Worse(t) => match effect::inverse(w, &t) {
                None => verify_record(
                    w,
                    ACTOR,
                    ActionOutcome::Unverified,
                    format!("worse ({t}), but the action has no inverse: nothing undone"),
                ),
                Some(back) => self.revert(&vid, p, o, w, &t, &back)?,
            },
        };
        self.finish(&vid, p, o, &r)
    }

    /// Carries out `back`, the inverse of `w`'s action that made things worse (`worse` says
    /// how), unless an override stops it; the verification's record.
    fn revert(
        &mut self,
        vid: &str,
        p: i32,
        o: i64,
        w: &Watching,
        worse: &str,
        back: &Decision,
    ) -> Result<ActionRecord, ActuateError> {
        if let Some(why) = self.overridden(back, apo_core::clock::now_ms()) {
            let detail = format!("worse ({worse}); not reverted: {why}");
            return Ok(verify_record(w, ACTOR, ActionOutcome::Failed, detail));
        }
        if !self.claims.mark(vid, p, o, Step::Started, None)? {
            let detail = format!("worse ({worse}); another actuator holds this verification");
            return Ok(verify_record(w, ACTOR, ActionOutcome::Unverified, detail));
        }
        let allowed = Allowed {
            replicas_to: back.replicas_to,
            tune_to: back.tune.as_ref().map(|t| t.to),
            dry_run: false,
            executor: self.policy.of(&back.target).executor.clone(),
            note: None,
        };
        let change = allowed
            .change(back)
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        let ex = self.executors.of(&back.target);
        let name = ex.name();
        Ok(match ex.execute(back, &allowed) {
            Ok(msg) => verify_record(
                w,
                name,
                ActionOutcome::Reverted,
                format!("worse ({worse}); reverted{change}: {msg}"),
            ),
            Err(e) => verify_record(
                w,
                name,
                ActionOutcome::Failed,
                format!("worse ({worse}); the revert{change} failed: {e}"),
            ),
        })
    }

    /// Why an override stops `d` at `now`, read to the topic's end first (an unreadable topic
    /// stops it too).
    fn overridden(&mut self, d: &Decision, now: i64) -> Option<String> {
        match self.overrides.catch_up(OVERRIDES_WAIT) {
            Err(e) => Some(format!("the overrides are unknown ({e}): not acting")),
            Ok(()) => self.overrides.view.stops(d, now),
        }
    }

    /// Done, audited, audit-acknowledged: the verification's last three steps.
    /// (Nothing is written when another actuator holds the verification.)
    fn finish(&mut self, vid: &str, p: i32, o: i64, r: &ActionRecord) -> Result<(), ActuateError> {
        if !self.settle(vid, p, o, r, None)? {
            tracing::warn!(
                claim = vid,
                "another actuator holds this verification: not audited here"
            );
        }
        Ok(())
    }
}

/// A verification's audit record of `w` by `actor`.
fn verify_record(
    w: &Watching,
    actor: &str,
    outcome: ActionOutcome,
    detail: String,
) -> ActionRecord {
    ActionRecord {
        decision_id: w.decision.id.clone(),
        target: w.decision.target.clone(),
        action: VERIFY_ACTION.into(),
        executed_at: apo_core::clock::now_ms(),
        actor: actor.to_string(),
        outcome,
        detail: Some(detail),
    }
}
