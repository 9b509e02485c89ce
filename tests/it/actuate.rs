//! `apo actuate` against the real broker and a real HTTP receiver (the `webhook` executor):
//! what it refuses and how it records that, and that a decision is executed at most once and
//! audited exactly once when the actuator is SIGKILLed at random points.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apo_actuators::claims::topic::ClaimsTopic;
use apo_actuators::claims::{Actor, Claims, Step};
use apo_schemas::action::{ActionOutcome, ActionRecord};
use apo_schemas::decision::{Decision, SigningKey};

use crate::common::*;

const PLANNER_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A real HTTP server on loopback standing for the system a webhook acts on: it answers 200
/// after `delay_ms` (from a seeded sequence) and counts the requests per `Idempotency-Key`,
/// keeping each body.
struct Receiver {
    url: String,
    seen: Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>>,
}

impl Receiver {
    fn start(max_delay_ms: u64, seed: u64) -> Receiver {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(BTreeMap::<String, Vec<serde_json::Value>>::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            let mut rng = Rng(seed);
            for mut req in server.incoming_requests() {
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let key = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Idempotency-Key"))
                    .map(|h| h.value.to_string())
                    .unwrap_or_default();
                let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                log.lock().unwrap().entry(key).or_default().push(value);
                if max_delay_ms > 0 {
                    std::thread::sleep(Duration::from_millis(rng.below(max_delay_ms)));
                }
                let _ = req.respond(tiny_http::Response::from_string("done"));
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/apo"),
            seen,
        }
    }

    fn requests(&self) -> BTreeMap<String, Vec<serde_json::Value>> {
        self.seen.lock().unwrap().clone()
    }
}

/// A scale decision of `target` from `from` to `to` on the 10 s before now, valid for an
/// hour, unsigned.
fn scale(id: &str, target: &str, from: u32, to: u32) -> Decision {
    let mut d = apo_actuators::testing::scale_now(id, target, from, to);
    d.window_seconds = 10;
    d.window_start = d.window_end - 10_000;
    d.reason = "test".into();
    d
}

fn planner_key() -> SigningKey {
    SigningKey::new(Some("planner-1"), PLANNER_SECRET).unwrap()
}

fn signed(mut d: Decision) -> Decision {
    d.sign(&planner_key());
    d
}

fn bytes(d: &Decision) -> Vec<u8> {
    serde_json::to_vec(d).unwrap()
}

/// The policy, key and webhook secret files of a test in `dir`.
fn setup(dir: &Path, receiver: &Receiver, extra_policy: &str) -> (String, String) {
    let key = dir.join("planner.key");
    std::fs::write(&key, PLANNER_SECRET).unwrap();
    let secret = dir.join("webhook.key");
    std::fs::write(&secret, "webhook-secret-0123456789abcdef").unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            r#"
[targets.checkout]
executor = "webhook"
dry_run = false
max_replicas = 8
out_of_bounds = "clamp"
[targets.checkout.webhook]
url = "{url}"
secret_file = "{secret}"
timeout = "5s"
retries = 0
{extra_policy}
"#,
            url = receiver.url,
            secret = secret.display()
        ),
    )
    .unwrap();
    (
        format!("planner-1={}", key.display()),
        policy.display().to_string(),
    )
}

fn actuate_args(
    decisions: &str,
    actions: &str,
    key: &str,
    policy: &str,
    state: &Path,
    drain: bool,
) -> Vec<String> {
    actuate_args_in(decisions, actions, key, policy, state, drain, "actuators")
}

#[allow(clippy::too_many_arguments)]
fn actuate_args_in(
    decisions: &str,
    actions: &str,
    key: &str,
    policy: &str,
    state: &Path,
    drain: bool,
    group: &str,
) -> Vec<String> {
    let mut args = actuate_drain_args(decisions, actions, group, Path::new(policy), key, state);
    if !drain {
        args.retain(|a| a != "--drain");
    }
    args
}

/// `apo override ARGS… --brokers … --overrides-topic TOPIC`: its standard output, asserting
/// success.
fn override_cmd(topic: &str, args: &[&str]) -> String {
    let mut all: Vec<String> = vec!["override".into()];
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend([
        "--brokers".to_string(),
        brokers(),
        "--overrides-topic".into(),
        topic.into(),
    ]);
    let out = run_to_end(&all, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "apo {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn audit_records(actions: &str, want: usize) -> Vec<ActionRecord> {
    consume(actions, want, Duration::from_secs(5))
        .iter()
        .map(|r| ActionRecord::decode(Some(&r.payload)).expect("an action record"))
        .collect()
}

/// Asserts that each of `issued` was executed at most once (by the receiver's count, `seen`)
/// and has exactly one record in `audit`: `succeeded` having been executed, or `failed` as
/// interrupted; how many were interrupted.
fn assert_each_once(
    issued: &[Decision],
    seen: &BTreeMap<String, Vec<serde_json::Value>>,
    audit: &[ActionRecord],
    seed: u64,
    logged: &str,
) -> usize {
    let mut by_id: BTreeMap<&str, Vec<&ActionRecord>> = BTreeMap::new();
    for r in audit {
        by_id.entry(r.decision_id.as_str()).or_default().push(r);
    }
    let mut interrupted = 0;
    for d in issued {
        let executions = seen.get(&d.id).map_or(0, Vec::len);
        assert!(
            executions <= 1,
            "{} executed {executions} times (seed {seed})\n{logged}",
            d.id
        );
        let records = by_id.get(d.id.as_str()).cloned().unwrap_or_default();
        assert_eq!(
            records.len(),
            1,
            "{}: {} audit records (seed {seed}): {records:#?}\n{logged}",
            d.id,
            records.len()
        );
        match records[0].outcome {
            ActionOutcome::Succeeded => assert_eq!(executions, 1, "{} (seed {seed})", d.id),
            ActionOutcome::Failed => {
                assert!(
                    records[0]
                        .detail
                        .as_deref()
                        .unwrap_or("")
                        .contains("interrupted"),
                    "{records:#?}"
                );
                interrupted += 1;
            }
            other => panic!("{}: {other:?} (seed {seed}): {records:#?}", d.id),
        }
    }
    interrupted
}

#[test]
fn untrusted_and_out_of_policy_decisions_are_rejected_and_each_is_audited_once() {
    let decisions = unique("act.decisions");
    let actions = unique("act.actions");
    apo_ingest::kafka::ensure_topics(&client(), &[&decisions], 1).unwrap();
    apo_ingest::kafka::ensure_topics(&client(), &[&actions], 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, 1);
    let (key, policy) = setup(
        dir.path(),
        &receiver,
        "[targets.cart]\nexecutor = \"log\"\ndry_run = false\nmax_replicas = 5\n",
    );

    let good = signed(scale("good", "checkout", 2, 4));
    let mut forged = signed(scale("forged", "checkout", 2, 4));
    forged.replicas_to = Some(7);
    let unsigned = scale("unsigned", "checkout", 2, 4);
    let other = SigningKey::new(Some("someone-else"), b"ffffffffffffffffffffffffffffffff").unwrap();
    let mut unknown_key = scale("unknown-key", "checkout", 2, 4);
    unknown_key.sign(&other);
    let wrong_secret =
        SigningKey::new(Some("planner-1"), b"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee").unwrap();
    let mut wrongly_keyed = scale("wrongly-keyed", "checkout", 2, 4);
    wrongly_keyed.sign(&wrong_secret);
    let mut expired = scale("expired", "checkout", 2, 4);
    expired.expires_at = now_ms() - 60_000;
    let expired = signed(expired);
    let too_big = signed(scale("too-big", "cart", 2, 9));
    let clamped = signed(scale("clamped", "checkout", 4, 20));
    let dry = signed(scale("dry", "search", 2, 3));
    let messages: Vec<(i32, Vec<u8>)> = vec![
        (0, bytes(&good)),
        (0, bytes(&forged)),
        (0, bytes(&unsigned)),
        (0, bytes(&unknown_key)),
        (0, bytes(&wrongly_keyed)),
        (0, bytes(&expired)),
        (0, bytes(&good)), // replayed
        (0, bytes(&too_big)),
        (0, bytes(&clamped)),
        (0, bytes(&dry)),
        (0, b"{not a decision".to_vec()),
    ];
    produce(&decisions, &messages);

    let out = run_to_end(
        &actuate_args(
            &decisions,
            &actions,
            &key,
            &policy,
            &dir.path().join("state"),
            true,
        ),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "apo actuate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = audit_records(&actions, usize::MAX);
    assert_eq!(
        audit.len(),
        messages.len(),
        "one record per message: {audit:#?}"
    );
    let by_id: BTreeMap<&str, Vec<&ActionRecord>> =
        audit.iter().fold(BTreeMap::new(), |mut m, r| {
            m.entry(r.decision_id.as_str()).or_default().push(r);
            m
        });
    let one = |id: &str, outcome: ActionOutcome, says: &str| {
        let rs = &by_id[id];
        let r = rs
            .iter()
            .find(|r| r.outcome == outcome && r.detail.as_deref().unwrap_or("").contains(says))
            .unwrap_or_else(|| panic!("{id}: no {outcome:?} record saying `{says}`: {rs:#?}"));
        r.actor.clone()
    };
    assert_eq!(
        one("good", ActionOutcome::Succeeded, "200 on attempt 1"),
        "webhook"
    );
    one(
        "good",
        ActionOutcome::Rejected,
        "replayed (decision already received at partition 0 offset 0)",
    );
    one(
        "forged",
        ActionOutcome::Rejected,
        "bad signature (forged or altered) for key `planner-1`",
    );
    one("unsigned", ActionOutcome::Rejected, "rejected: unsigned");
    one(
        "unknown-key",
        ActionOutcome::Rejected,
        "key `someone-else`, which this actuator does not hold",
    );
    one("wrongly-keyed", ActionOutcome::Rejected, "bad signature");
    one("expired", ActionOutcome::Rejected, "rejected: expired at");
    one(
        "too-big",
        ActionOutcome::Rejected,
        "out of policy: 9 replicas is outside 0..=5",
    );
    one("clamped", ActionOutcome::Succeeded, "clamped to 8");
    one(
        "dry",
        ActionOutcome::DryRun,
        "dry run: would scale search 2 -> 3",
    );
    one(
        &format!("{decisions}/0/10"),
        ActionOutcome::Rejected,
        "unreadable",
    );

    // The receiver saw exactly the two decisions carried out, once each, with the replicas
    // the policy allowed.
    let seen = receiver.requests();
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["clamped", "good"],
        "{seen:#?}"
    );
    assert_eq!(seen["good"].len(), 1);
    assert_eq!(seen["good"][0]["replicas_to"], 4);
    assert_eq!(seen["clamped"][0]["replicas_to"], 8);
}

/// The setting of a test that kills actuators: `n` signed scales of `checkout` (ids
/// `ID_PREFIX-000`…) spread over the `partitions` of a new decisions topic, a receiver that
/// answers within `max_delay_ms`, the policy and key files.
struct Killed {
    seed: u64,
    rng: Rng,
    decisions: String,
    actions: String,
    dir: tempfile::TempDir,
    receiver: Receiver,
    key: String,
    policy: String,
    issued: Vec<Decision>,
    partitions: i32,
}

impl Killed {
    fn setup(
        prefix: &str,
        partitions: i32,
        n: usize,
        id_prefix: &str,
        max_delay_ms: u64,
    ) -> Killed {
        // A failure names its seed; APO_TEST_SEED replays it.
        let seed = std::env::var("APO_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(now_ms() as u64);
        eprintln!("seed {seed}");
        let decisions = unique(&format!("{prefix}.decisions"));
        let actions = unique(&format!("{prefix}.actions"));
        apo_ingest::kafka::ensure_topics(&client(), &[&decisions, &actions], partitions).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::start(max_delay_ms, seed);
        let (key, policy) = setup(dir.path(), &receiver, "");
        let issued: Vec<Decision> = (0..n)
            .map(|i| {
                let id = format!("{id_prefix}-{i:03}");
                signed(scale(&id, "checkout", 2, 2 + (i % 6) as u32))
            })
            .collect();
        Killed {
            seed,
            rng: Rng(seed),
            decisions,
            actions,
            dir,
            receiver,
            key,
            policy,
            issued,
            partitions,
        }
    }

    /// Produces `issued[range]`, each to partition `index % partitions`.
    fn send(&self, range: std::ops::Range<usize>) {
        let messages: Vec<(i32, Vec<u8>)> = range
            .map(|i| ((i as i32 % self.partitions), bytes(&self.issued[i])))
            .collect();
        produce(&self.decisions, &messages);
    }
}

#[test]
fn sigkill_at_random_points_executes_each_decision_at_most_once_and_audits_it_once() {
    let k = Killed::setup("kill", 3, 90, "d", 40);
    k.send(0..k.issued.len());
    let Killed {
        seed,
        mut rng,
        decisions,
        actions,
        dir,
        receiver,
        key,
        policy,
        issued,
        ..
    } = k;
    let n = issued.len();

    let state = dir.path().join("state");
    let log = dir.path().join("actuate.log");
    let mut kills = 0;
    for round in 0..6 {
        let before = receiver.requests().len();
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = apo(&actuate_args(
            &decisions, &actions, &key, &policy, &state, false,
        ))
        .env("APO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
        // Wait until this run has executed something, then kill it a random moment later.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while receiver.requests().len() == before && receiver.requests().len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: nothing executed"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: the actuator exited"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if receiver.requests().len() >= n {
            break;
        }
    }
    let out = run_to_end(
        &actuate_args(&decisions, &actions, &key, &policy, &state, true),
        Duration::from_secs(180),
    );
    assert!(
        out.status.success(),
        "the last apo actuate: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let seen = receiver.requests();
    let audit = audit_records(&actions, usize::MAX);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let interrupted = assert_each_once(&issued, &seen, &audit, seed, &logged);
    assert_eq!(audit.len(), n, "no other records");
    // The `actions` table holds the same records, each once, kills or not.
    let mut want: Vec<Vec<String>> = audit
        .iter()
        .map(|r| {
            vec![
                r.decision_id.clone(),
                r.outcome.as_str().to_string(),
                r.executed_at.to_string(),
            ]
        })
        .collect();
    want.sort();
    let rows = sql_csv(
        &actuate_data_dir(&state),
        "SELECT decision_id, outcome, CAST(executed_at AS BIGINT) FROM actions \
         ORDER BY decision_id, outcome",
    );
    assert_eq!(
        rows, want,
        "the actions table against the topic (seed {seed})"
    );
    eprintln!(
        "{kills} kills, {} executed, {interrupted} interrupted (audited failed), seed {seed}",
        seen.len()
    );
    assert!(kills >= 2, "the actuator was killed more than once");
}

/// Two actuators (`a`, `b`) of one consumer group share a 4-partition decisions topic and
/// their claims topic; once both work, each is SIGKILLed at random points and restarted under
/// its name, so
/// the group's partitions move between them mid-decision; a third (`c`) finishes the topic,
/// taking over what the killed ones left once their lease ran out. Every decision is executed
/// at most once and audited exactly once. (Two actuators that did not share claims would each
/// execute every decision.)
#[test]
fn actuators_sharing_a_group_execute_each_decision_once_across_kills_and_rebalances() {
    let k = Killed::setup("group", 4, 120, "g", 100);
    let n = k.issued.len();
    let mut rng = Rng(k.seed);
    let seed = k.seed;
    let (decisions, actions) = (k.decisions.clone(), k.actions.clone());
    let (key, policy) = (k.key.clone(), k.policy.clone());
    let issued = k.issued.clone();
    let (dir, receiver) = (&k.dir, &k.receiver);
    let args = |name: &str, drain: bool| {
        let mut a = actuate_args(
            &decisions,
            &actions,
            &key,
            &policy,
            &dir.path().join(name),
            drain,
        );
        a.extend(["--actor-id", name, "--claim-lease", "3s"].map(String::from));
        a
    };
    let log = dir.path().join("actuate.log");
    let spawn = |name: &str| {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        apo(&args(name, false))
            .env("APO_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    };
    let mut running = [spawn("a"), spawn("b")];
    // Decisions one by one until the group has given both of them partitions (each has
    // audited one), then the rest at once, and the kills.
    let started = std::time::Instant::now();
    let mut sent = 0;
    while actors_in(&decisions, "audited").len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(90) && sent < n / 3,
            "the two did not both carry decisions out: {:?}\n{}",
            actors_in(&decisions, "audited"),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        k.send(sent..sent + 1);
        sent += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    k.send(sent..n);
    eprintln!(
        "both carried decisions out after {:?}, {sent} sent one by one",
        started.elapsed()
    );
    let mut kills = 0;
    for round in 0..6 {
        let before = receiver.requests().len();
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while receiver.requests().len() == before && receiver.requests().len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: nothing executed\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        let which = rng.below(2) as usize;
        running[which].kill().unwrap();
        running[which].wait().unwrap();
        kills += 1;
        if receiver.requests().len() >= n {
            break;
        }
        running[which] = spawn(["a", "b"][which]);
    }
    for mut child in running {
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = run_to_end(&args("c", true), Duration::from_secs(240));
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "the last apo actuate: {}\n{logged}",
        String::from_utf8_lossy(&out.stderr)
    );

    let seen = receiver.requests();
    let audit = audit_records(&actions, usize::MAX);
    let interrupted = assert_each_once(&issued, &seen, &audit, seed, &logged);
    assert_eq!(audit.len(), n, "no other records");
    // Both actuators of the group carried decisions out (their claims name them).
    let actors = actors_in(&decisions, "audited");
    let said = |what: &str| logged.matches(what).count();
    eprintln!(
        "{kills} kills, {} executed, {interrupted} interrupted, audited by {actors:?}; \
         lost a start to the other: {}, waited for the other: {}, seed {seed}",
        seen.len(),
        said("claimed it first"),
        said("another actuator holds this decision"),
    );
    assert!(actors.contains("a") && actors.contains("b"), "{actors:?}");
    assert!(kills >= 2, "the actuators were killed more than once");
}

/// The actors named by the claims of `decisions` at `step`.
fn actors_in(decisions: &str, step: &str) -> std::collections::BTreeSet<String> {
    consume(
        &claims_topic(decisions),
        usize::MAX,
        Duration::from_millis(500),
    )
    .iter()
    .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).ok())
    .filter(|c| c["step"] == step)
    .filter_map(|c| c["actor"]["id"].as_str().map(String::from))
    .collect()
}

/// The claims of `topic` as actor `name` sees them, read to the topic's end.
fn claims_as(topic: &str, name: &str) -> Claims {
    Claims::on_topic(
        ClaimsTopic::open(&client(), topic).unwrap(),
        Actor::new(name),
    )
    .unwrap()
}

/// Two actuators that both start the same decisions at the same moment, each on the claims as
/// it last read them: for every decision exactly one start applies (whichever the broker
/// ordered first), and both then read the same holder.
#[test]
fn of_two_actuators_starting_one_decision_at_once_exactly_one_does() {
    let topic = claims_topic(&unique("race.decisions"));
    let ids: Vec<String> = (0..30).map(|i| format!("race-{i}")).collect();
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = ["x", "y"]
        .into_iter()
        .map(|name| {
            let (topic, ids, barrier) = (topic.clone(), ids.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut claims = claims_as(&topic, name);
                let won: Vec<bool> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        barrier.wait();
                        claims.mark(id, 0, i as i64, Step::Started, None).unwrap()
                    })
                    .collect();
                barrier.wait();
                claims.refresh().unwrap();
                let holders: Vec<String> = ids
                    .iter()
                    .map(|id| {
                        let c = claims.get(id).unwrap();
                        assert_eq!(c.version, 1, "{id}: one start applied");
                        c.actor.as_ref().unwrap().id.clone()
                    })
                    .collect();
                (won, holders)
            })
        })
        .collect();
    let [(x_won, x_saw), (y_won, y_saw)]: [(Vec<bool>, Vec<String>); 2] = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    for (i, id) in ids.iter().enumerate() {
        assert!(
            x_won[i] != y_won[i],
            "{id}: x won {}, y won {}",
            x_won[i],
            y_won[i]
        );
        let winner = if x_won[i] { "x" } else { "y" };
        assert_eq!(
            (x_saw[i].as_str(), y_saw[i].as_str()),
            (winner, winner),
            "{id}"
        );
    }
    eprintln!(
        "x won {}, y won {}",
        x_won.iter().filter(|w| **w).count(),
        y_won.iter().filter(|w| **w).count()
    );
}

/// A decision another actuator (`x`) started is its own while its lease lasts: `apo actuate`
/// (`y`) waits for it; `x` finishing it (its audit record written) leaves `y` nothing to do,
/// and a start `x` never finishes is taken over once the lease is out and audited `failed`
/// (interrupted: it may have been carried out), not executed.
#[test]
fn another_actuators_unfinished_decision_is_waited_for_then_taken_over() {
    let decisions = unique("lease.decisions");
    let actions = unique("lease.actions");
    apo_ingest::kafka::ensure_topics(&client(), &[&decisions, &actions], 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, 1);
    let (key, policy) = setup(dir.path(), &receiver, "");
    let held = signed(scale("held", "checkout", 2, 3));
    let abandoned = signed(scale("abandoned", "checkout", 2, 4));
    produce(&decisions, &[(0, bytes(&held)), (0, bytes(&abandoned))]);
    let topic = claims_topic(&decisions);
    let mut x = claims_as(&topic, "x");
    assert!(x.mark("held", 0, 0, Step::Started, None).unwrap());
    assert!(x.mark("abandoned", 0, 1, Step::Started, None).unwrap());
    let lease = Duration::from_secs(4);
    let started = std::time::Instant::now();
    let mut args = actuate_args(
        &decisions,
        &actions,
        &key,
        &policy,
        &dir.path().join("y"),
        true,
    );
    args.extend(["--actor-id", "y", "--claim-lease", "4s"].map(String::from));
    let y = apo(&args)
        .env("APO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // x finishes `held` 1.5 s later: done, its audit record, audited.
    std::thread::sleep(Duration::from_millis(1500));
    let by_x = ActionRecord {
        decision_id: "held".into(),
        target: "checkout".into(),
        action: "scale".into(),
        executed_at: now_ms(),
        actor: "webhook".into(),
        outcome: ActionOutcome::Succeeded,
        detail: Some("carried out by x".into()),
    };
    assert!(x.mark("held", 0, 0, Step::Done, Some(&by_x)).unwrap());
    produce(&actions, &[(0, serde_json::to_vec(&by_x).unwrap())]);
    assert!(x.mark("held", 0, 0, Step::Audited, None).unwrap());
    let out = y.wait_with_output().unwrap();
    let took = started.elapsed();
    let logged = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logged}");
    let audit = audit_records(&actions, usize::MAX);
    assert_eq!(audit.len(), 2, "{audit:#?}\n{logged}");
    assert_eq!(audit[0], by_x, "held: only x's record");
    assert_eq!(audit[1].decision_id, "abandoned");
    assert_eq!(audit[1].outcome, ActionOutcome::Failed);
    assert!(
        audit[1]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("interrupted"),
        "{audit:#?}"
    );
    assert!(receiver.requests().is_empty(), "nothing executed");
    assert!(took >= lease, "y waited for x's lease: {took:?}");
    assert!(
        logged.contains("another actuator holds this decision"),
        "{logged}"
    );
    // and x, told nothing, finds that it lost `abandoned` when it tries to finish it
    assert!(!x.mark("abandoned", 0, 1, Step::Done, None).unwrap());
    x.refresh().unwrap();
    let c = x.get("abandoned").unwrap();
    assert_eq!(c.actor.as_ref().map(|a| a.id.as_str()), Some("y"));
    assert_eq!(c.step, Step::Audited);
}

#[test]
fn a_crash_after_the_audit_was_acknowledged_does_not_audit_again() {
    let decisions = unique("ack.decisions");
    let actions = unique("ack.actions");
    apo_ingest::kafka::ensure_topics(&client(), &[&decisions, &actions], 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, 1);
    let (key, policy) = setup(dir.path(), &receiver, "");
    let d = signed(scale("only", "checkout", 2, 3));
    produce(&decisions, &[(1, bytes(&d))]);
    let state = dir.path().join("state");
    let run = |group: &str| {
        let mut args = actuate_args_in(&decisions, &actions, &key, &policy, &state, true, group);
        args.push("--local-claims".into());
        let out = run_to_end(&args, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("first");
    assert_eq!(audit_records(&actions, usize::MAX).len(), 1);
    let table = actuate_data_dir(&state);
    let rows = |q: &str| sql_csv(&table, q);
    let query = "SELECT decision_id, outcome, CAST(executed_at AS BIGINT) FROM actions";
    let first_rows = rows(query);
    assert_eq!(first_rows.len(), 1, "{first_rows:?}");
    // The crash: the broker had acknowledged the audit record, the claims file had not yet
    // recorded that (its last line, `audited`, is lost) and the offset was not committed.
    let claims = state.join("claims.jsonl");
    let text = std::fs::read_to_string(&claims).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.last().unwrap().contains("\"audited\""), "{text}");
    std::fs::write(
        &claims,
        format!("{}\n", lines[..lines.len() - 1].join("\n")),
    )
    .unwrap();
    // ... and the table's row had not been written either.
    std::fs::remove_dir_all(table.join("actions")).unwrap();
    assert_eq!(rows(query).len(), 0);
    run("second");
    let audit = audit_records(&actions, usize::MAX);
    assert_eq!(audit.len(), 1, "audited once: {audit:#?}");
    assert_eq!(
        rows(query),
        first_rows,
        "the restart wrote the table's row again, once, as it was"
    );
    assert_eq!(audit[0].outcome, ActionOutcome::Succeeded);
    assert_eq!(receiver.requests()["only"].len(), 1, "executed once");
    let after = std::fs::read_to_string(&claims).unwrap();
    assert!(
        after.lines().last().unwrap().contains("\"audited\""),
        "{after}"
    );
}

#[test]
fn a_cooldown_holds_across_a_restart() {
    let decisions = unique("pace.decisions");
    let actions = unique("pace.actions");
    apo_ingest::kafka::ensure_topics(&client(), &[&decisions, &actions], 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, 1);
    let (key, policy) = setup(dir.path(), &receiver, "");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        text.replace(
            "[targets.checkout]\n",
            "[targets.checkout]\ncooldown = \"1h\"\n",
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let run = || {
        let out = run_to_end(
            &actuate_args(&decisions, &actions, &key, &policy, &state, true),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    produce(
        &decisions,
        &[
            (0, bytes(&signed(scale("first", "checkout", 2, 3)))),
            (0, bytes(&signed(scale("second", "checkout", 3, 4)))),
        ],
    );
    run();
    produce(
        &decisions,
        &[(0, bytes(&signed(scale("third", "checkout", 3, 5))))],
    );
    run();
    let audit = audit_records(&actions, usize::MAX);
    let outcome = |id: &str| {
        let r = audit.iter().find(|r| r.decision_id == id).unwrap();
        (r.outcome, r.detail.clone().unwrap_or_default())
    };
    assert_eq!(audit.len(), 3, "{audit:#?}");
    assert_eq!(outcome("first").0, ActionOutcome::Succeeded);
    for id in ["second", "third"] {
        let (o, detail) = outcome(id);
        assert_eq!(o, ActionOutcome::Rejected, "{id}");
        assert!(
            detail.contains("cooling down: the last action on `checkout` was")
                && detail.contains("(cooldown 1h)"),
            "{id}: {detail}"
        );
    }
    assert_eq!(receiver.requests().keys().collect::<Vec<_>>(), ["first"]);
}

#[test]
fn overrides_pause_pin_and_resume_targets() {
    let decisions = unique("ovr.decisions");
    let actions = unique("ovr.actions");
    let overrides = unique("ovr.overrides");
    apo_ingest::kafka::ensure_topics(&client(), &[&decisions, &actions], 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, 1);
    let (key, policy) = setup(
        dir.path(),
        &receiver,
        "[targets.cart]\nexecutor = \"log\"\ndry_run = false\n",
    );
    let said = override_cmd(
        &overrides,
        &[
            "pause",
            "checkout",
            "--reason",
            "incident 4711",
            "--by",
            "ana",
        ],
    );
    assert!(said.starts_with("paused `checkout`"), "{said}");
    override_cmd(
        &overrides,
        &[
            "pin",
            "cart",
            "--replicas",
            "5",
            "--reason",
            "load test",
            "--for",
            "2h",
            "--by",
            "bo",
        ],
    );
    let list = override_cmd(&overrides, &["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("TARGET"), "{list}");
    assert!(lines[1].starts_with("cart      pin    5"), "{list}");
    assert!(lines[2].starts_with("checkout  pause  -"), "{list}");
    assert!(
        lines[2].contains("resumed by hand") && lines[2].ends_with("incident 4711"),
        "{list}"
    );

    let args = |drain| {
        let mut a = actuate_args(
            &decisions,
            &actions,
            &key,
            &policy,
            &dir.path().join("state"),
            drain,
        );
        let at = a.iter().position(|x| x == "--overrides-topic").unwrap();
        a[at + 1] = overrides.clone();
        a
    };
    let actuate = || {
        let out = run_to_end(&args(true), Duration::from_secs(60));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    produce(
        &decisions,
        &[
            (0, bytes(&signed(scale("paused", "checkout", 2, 3)))),
            (0, bytes(&signed(scale("pinned", "cart", 5, 7)))),
        ],
    );
    actuate();
    override_cmd(&overrides, &["resume", "checkout"]);
    let list = override_cmd(&overrides, &["list", "--format", "json"]);
    assert_eq!(list.lines().count(), 1, "only the pin is left: {list}");
    produce(
        &decisions,
        &[(0, bytes(&signed(scale("resumed", "checkout", 2, 3))))],
    );
    actuate();
    override_cmd(
        &overrides,
        &["pause", "--all", "--reason", "change freeze", "--for", "1h"],
    );
    produce(
        &decisions,
        &[(0, bytes(&signed(scale("frozen", "checkout", 3, 4))))],
    );
    actuate();

    let audit = audit_records(&actions, usize::MAX);
    assert_eq!(audit.len(), 4, "{audit:#?}");
    let detail = |id: &str| {
        let r = audit.iter().find(|r| r.decision_id == id).unwrap();
        (r.outcome, r.detail.clone().unwrap_or_default())
    };
    let (o, d) = detail("paused");
    assert_eq!(o, ActionOutcome::Rejected);
    assert!(
        d.starts_with("rejected: overridden: `checkout` paused by ana at "),
        "{d}"
    );
    assert!(d.ends_with(": incident 4711"), "{d}");
    let (o, d) = detail("pinned");
    assert_eq!(o, ActionOutcome::Rejected);
    assert!(
        d.starts_with("rejected: overridden: `cart` pinned at 5 replicas by bo"),
        "{d}"
    );
    assert!(d.contains(", until "), "{d}");
    assert_eq!(detail("resumed").0, ActionOutcome::Succeeded);
    let (o, d) = detail("frozen");
    assert_eq!(o, ActionOutcome::Rejected);
    assert!(
        d.starts_with("rejected: overridden: every target paused by "),
        "{d}"
    );
    assert_eq!(receiver.requests().keys().collect::<Vec<_>>(), ["resumed"]);

    // a command without a target, or without a reason, is refused
    for bad in [vec!["pause", "--reason", "x"], vec!["pause", "checkout"]] {
        let mut all: Vec<String> = vec!["override".into()];
        all.extend(bad.iter().map(|s| s.to_string()));
        all.extend(["--brokers".to_string(), brokers()]);
        let out = apo(&all).output().unwrap();
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("required"),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A window-stats record of `service`'s `metric` on the 10 s window starting at `start` with
/// p99 `p99`.
fn latency_window(service: &str, metric: &str, start: i64, p99: f64) -> Vec<u8> {
    let s = apo_schemas::WindowStats {
        attributes: Default::default(),
        service: service.into(),
        metric: metric.into(),
        unit: "ms".into(),
        window_seconds: 10,
        window_start: start,
        window_end: start + 10_000,
        count: 100,
        sum: 100.0 * p99 / 2.0,
        min: 1.0,
        max: p99 * 1.5,
        mean: p99 / 2.0,
        p50: p99 / 2.0,
        p90: p99 * 0.8,
        p95: p99 * 0.9,
        p99,
        p999: p99 * 1.2,
        relative_accuracy: 0.01,
        revision: 1,
    };
    serde_json::to_vec(&s).unwrap()
}

/// An SLO record of `service`'s availability objective (99.9 %) on the 10 s window starting
/// at `start`: `bad` of 1000 events failed.
fn slo_window(service: &str, start: i64, bad: u64) -> Vec<u8> {
    let s = apo_schemas::slo::SloState {
        objective: format!("{service}-availability"),
        service: service.into(),
        description: "error rate < 0.1 %".into(),
        target: 0.999,
        window_seconds: 10,
        window_start: start,
        window_end: start + 10_000,
        events: 1000,
        bad_events: bad,
        sli: 1.0 - bad as f64 / 1000.0,
        compliant: bad <= 1,
        burn_fast_long: 0.0,
        burn_fast_short: 0.0,
        burn_slow_long: 0.0,
        burn_slow_short: 0.0,
        burn_ticket_long: 0.0,
        burn_ticket_short: 0.0,
        burn_ticket_slow_long: 0.0,
        burn_ticket_slow_short: 0.0,
        budget_remaining: 1.0,
        alert: "none".into(),
        revision: 1,
    };
    serde_json::to_vec(&s).unwrap()
}

/// Runs `apo ARGS` with the environment `env` until it exits (at most `limit`), its standard
/// error in `log`; asserts it succeeded.
fn run_with_env(args: &[String], env: &[(&str, &str)], log: &Path, limit: Duration) {
    let stderr = std::fs::File::create(log).unwrap();
    let mut c = apo(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .env("APO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "apo did not finish in {limit:?}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "apo {args:?}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn a_scale_that_made_things_worse_is_reverted_and_the_watch_survives_a_restart() {
    let decisions = unique("eff.decisions");
    let actions = unique("eff.actions");
    let stats = unique("eff.stats");
    let slo = unique("eff.slo");
    apo_ingest::kafka::ensure_topics(&client(), &[&decisions, &actions, &stats, &slo], 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0, 1);
    let verify = |name: &str, extra: &str| {
        format!(
            "[targets.{name}.verify]\nmetric = \"http.server.duration\"\nwindows = 3\n\
             worse_by = 0.2\n{extra}\n"
        )
    };
    let (key, policy) = setup(
        dir.path(),
        &receiver,
        &format!(
            "{}\n[targets.cart]\nexecutor = \"log\"\ndry_run = false\n{}\n\
             [targets.search]\nexecutor = \"log\"\ndry_run = false\n{}\n\
             [targets.orders]\nexecutor = \"log\"\ndry_run = false\n{}",
            verify("checkout", ""),
            verify("cart", "slo = true"),
            verify("search", "slo = true"),
            verify("orders", "wait = \"3s\""),
        ),
    );
    let mut args = actuate_args(
        &decisions,
        &actions,
        &key,
        &policy,
        &dir.path().join("state"),
        false,
    );
    args.extend(["--windows-topic".into(), stats.clone()]);
    args.extend(["--slo-topic".into(), slo.clone()]);
    // The actuator's clock runs 20 minutes behind: the windows after its actions are then
    // already in the past, produced by the test.
    let clock = [("APO_NOW", "-20m")];
    let before_end = now_ms() - 21 * 60_000;
    let after_start = now_ms() - 15 * 60_000;
    let w = |i: i64| i * 10_000;

    // Windows before: p99 100 ms for all; cart, search: 1 bad event in 1000 (0.1 %)
    let mut before = Vec::new();
    for t in ["checkout", "cart", "search", "orders"] {
        for i in 1..=3 {
            before.push((
                0,
                latency_window(t, "http.server.duration", before_end - w(i), 100.0),
            ));
        }
        before.push((0, latency_window(t, "other.metric", before_end - w(1), 5.0)));
    }
    let mut slo_before = Vec::new();
    for t in ["cart", "search"] {
        for i in 1..=3 {
            slo_before.push((0, slo_window(t, before_end - w(i), 1)));
        }
    }
    produce(&stats, &before);
    produce(&slo, &slo_before);
    let issued = [
        signed(scale("checkout-up", "checkout", 2, 4)),
        signed(scale("cart-up", "cart", 3, 5)),
        signed(scale("search-up", "search", 2, 3)),
        signed(scale("orders-up", "orders", 1, 2)),
    ];
    produce(
        &decisions,
        &issued.iter().map(|d| (0, bytes(d))).collect::<Vec<_>>(),
    );

    // First run: carries the four out and starts watching; killed before any window after.
    let log1 = dir.path().join("first.log");
    let mut child = apo(&args)
        .env("APO_NOW", "-20m")
        .env("APO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log1).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = audit_records(&actions, usize::MAX)
            .iter()
            .filter(|r| r.outcome == ActionOutcome::Succeeded)
            .count();
        if done == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the first run did not carry out the four: {}",
            std::fs::read_to_string(&log1).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let claims: Vec<String> = consume(
        &claims_topic(&decisions),
        usize::MAX,
        Duration::from_secs(3),
    )
    .iter()
    .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
    .collect();
    assert!(
        claims.iter().any(|c| c.contains("checkout-up/verify")),
        "{claims:#?}"
    );

    // Windows after: checkout's p99 doubles; cart's latency holds but its bad events go to
    // 2 %; search holds on both (p99 +10 %, still 0.1 % bad); orders gets no window at all.
    let mut after = Vec::new();
    for i in 0..3 {
        let at = after_start + w(i);
        after.push((
            0,
            latency_window("checkout", "http.server.duration", at, 200.0),
        ));
        after.push((0, latency_window("cart", "http.server.duration", at, 100.0)));
        after.push((
            0,
            latency_window("search", "http.server.duration", at, 110.0),
        ));
    }
    produce(&stats, &after);
    let slo_after: Vec<(i32, Vec<u8>)> = (0..3)
        .flat_map(|i| {
            let at = after_start + w(i);
            [
                (0, slo_window("cart", at, 20)),
                (0, slo_window("search", at, 1)),
            ]
        })
        .collect();
    produce(&slo, &slo_after);

    // Second run, draining: picks the watches up from the claims and concludes them.
    args.retain(|a| a != "--drain");
    args.push("--drain".into());
    run_with_env(
        &args,
        &clock,
        &dir.path().join("second.log"),
        Duration::from_secs(120),
    );

    let audit = audit_records(&actions, usize::MAX);
    assert_eq!(
        audit.len(),
        8,
        "one record per decision and one per verification: {audit:#?}"
    );
    let verdict = |id: &str| {
        let v: Vec<&ActionRecord> = audit
            .iter()
            .filter(|r| r.decision_id == id && r.action == "verify")
            .collect();
        assert_eq!(v.len(), 1, "{id}: {audit:#?}");
        (
            v[0].outcome,
            v[0].actor.clone(),
            v[0].detail.clone().unwrap_or_default(),
        )
    };
    let (o, actor, detail) = verdict("checkout-up");
    assert_eq!(
        (o, actor.as_str()),
        (ActionOutcome::Reverted, "webhook"),
        "{detail}"
    );
    assert!(
        detail.contains("p99 of http.server.duration: 100.0000 -> 200.0000 (+100.0 %"),
        "{detail}"
    );
    assert!(detail.contains("reverted 4 -> 2"), "{detail}");
    let (o, actor, detail) = verdict("cart-up");
    assert_eq!(
        (o, actor.as_str()),
        (ActionOutcome::Reverted, "log"),
        "{detail}"
    );
    assert!(
        detail.contains(
            "objective cart-availability: bad events 0.100 % -> 2.000 % (the objective allows 0.100 %)"
        ),
        "{detail}"
    );
    assert!(detail.contains("reverted 5 -> 3"), "{detail}");
    let (o, _, detail) = verdict("search-up");
    assert_eq!(o, ActionOutcome::Verified, "{detail}");
    assert!(detail.contains("100.0000 -> 110.0000 (+10.0 %"), "{detail}");
    let (o, _, detail) = verdict("orders-up");
    assert_eq!(o, ActionOutcome::Unverified, "{detail}");
    assert!(detail.contains("0 of 3 windows after"), "{detail}");

    // The receiver saw the scale and its revert, once each; the revert goes back from the
    // replicas applied to those the scale started from.
    let seen = receiver.requests();
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["checkout-up", "checkout-up-revert"],
        "{seen:#?}"
    );
    let back = &seen["checkout-up-revert"][0];
    assert_eq!(back["replicas_to"], 2, "{back}");
    assert_eq!(back["decision"]["replicas_from"], 4, "{back}");
    assert_eq!(back["decision"]["rule"], "verify", "{back}");
}
