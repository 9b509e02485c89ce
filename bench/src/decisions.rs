//! `apo bench`'s decisions section (issue 16), each figure with its baseline from the same run:
//!
//! 1. **The planner alone**: its operator fed closed windows and forecasts from memory, every
//!    metrics rule on (HPA with the predictive rule, pool, cache, rollback), one worker: windows in and
//!    decisions out per second; baseline: the same windows through an operator that only
//!    routes and counts them (what any stage of the dataflow costs).
//! 2. **The planner in the pipeline**: the metrics pipeline from memory (forecaster on, the
//!    predictive rule's input) with the planner on, against the same pipeline with it off.
//! 3. **The actuator**: signed decisions produced at a steady pace to the broker, `apo actuate`
//!    (this binary, as a process, log executor) carrying them out; decision sent → its audit
//!    record read back, p50/p99, and the rate it sustains when flooded; baseline: a relay that
//!    takes the same two hops (consume, produce and wait for the acknowledgement, commit)
//!    without the actuator's work (verification, claims, policy, execution, the actions
//!    table). Twice: claims on the broker (the default: shared by a group's actuators) and in a
//!    file (`--local-claims`).
//!
//! The circuit rule runs in the trace pipeline and is not in these figures.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use apo_core::kafka::{flush_within, send_with_backpressure, DeliveryTracker};
use apo_core::MemorySink;
use apo_dataflow::{
    percentile, planner_operator, LaneConfig, MetricsConfig, MetricsJob, ModelConfig, ModelStage,
    PlannerConfig, PlannerStage,
};
use apo_ingest::dlq::MemoryDeadLetters;
use apo_ingest::source::MemorySource;
use apo_models::DEFAULT_ARTIFACTS;
use apo_pipeline::Broker;
use apo_schemas::action::ActionRecord;
use apo_schemas::decision::{Decision, DecisionAction, SigningKey};
use apo_schemas::model_output::ForecastRecord;
use apo_schemas::{MetricPoint, WindowStats};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

use crate::phase::run_phase;

/// The secret the bench's decisions are signed with.
const SECRET: &[u8] = b"apo-bench-decisions-0123456789abcdef";

/// Minutes of one window.
const MIN: i64 = 60_000;

/// How many of each: scale targets (HPA and predictive), pools, caches, canaries.
type Sizes = (usize, usize, usize, usize);

/// The rules file for `sizes`.
fn planner_config((scale, pools, caches, canaries): Sizes) -> Result<PlannerConfig> {
    let mut t = String::from("window_seconds = 60\ndecision_ttl = \"1h\"\n");
    for i in 0..scale {
        let _ = write!(
            t,
            "[[scale]]\ntarget = \"svc-{i}\"\nmax_replicas = 1000\n\
             metrics = [{{ name = \"cpu.utilization\", average_value = 0.75 }}]\n\
             [scale.predictive]\nmetric = \"app.load\"\ncapacity_per_replica = 100\n"
        );
    }
    for i in 0..pools {
        let _ = write!(t, "[[pool]]\ntarget = \"db-{i}\"\nmax_size = 100\n");
    }
    for i in 0..caches {
        let _ = write!(
            t,
            "[[cache]]\ntarget = \"cache-{i}\"\nhits_metric = \"cache.hits\"\n\
             misses_metric = \"cache.misses\"\nsize_metric = \"cache.max_size\"\n\
             max_size = 1000000000\n"
        );
    }
    for i in 0..canaries {
        let _ = write!(
            t,
            "[[rollback]]\ncanary = \"canary-{i}\"\nbaseline = \"base-{i}\"\n\
             group_weights = {{ latency = 100 }}\n\
             metrics = [{{ name = \"latency\", statistic = \"p99\", direction = \"increase\", \
             group = \"latency\" }}]\n"
        );
    }
    PlannerConfig::from_toml(&t).map_err(|e| anyhow::anyhow!("the bench's rules: {e}"))
}

/// A closed 60 s window of `service`'s `metric` starting at `start`, every statistic `v`,
/// `count` values.
fn window(service: &str, metric: &str, start: i64, v: f64, count: u64) -> WindowStats {
    WindowStats {
        attributes: Default::default(),
        service: service.into(),
        metric: metric.into(),
        unit: if metric.ends_with("use_time") {
            "ms"
        } else {
            ""
        }
        .into(),
        window_seconds: 60,
        window_start: start,
        window_end: start + MIN,
        count,
        sum: v * count as f64,
        min: v,
        max: v,
        mean: v,
        p50: v,
        p90: v,
        p95: v,
        p99: v,
        p999: v,
        relative_accuracy: 0.01,
        revision: 1,
    }
}

/// One window's rows and the forecasts issued at its end: every scale target at 90 % CPU on 10
/// replicas (the HPA rule asks for 12) with a load forecast at 1 100 in 15 minutes (the
/// predictive rule asks for 16); every pool 8 connections in use of 5 (asks for 10); every
/// cache at 80 % hits, growing by half each time it shows its new size; every canary 1.6
/// times slower than its baseline (rolled back, then quiet for its lookback).
fn planner_window(
    k: i64,
    start: i64,
    (scale, pools, caches, canaries): Sizes,
) -> (Vec<WindowStats>, Vec<ForecastRecord>) {
    let s = start + k * MIN;
    let (mut rows, mut forecasts) = (Vec::new(), Vec::new());
    for i in 0..scale {
        let svc = format!("svc-{i}");
        rows.push(window(&svc, "cpu.utilization", s, 0.9, 4));
        rows.push(window(&svc, "k8s.deployment.available_pods", s, 10.0, 1));
        rows.push(window(&svc, "app.load", s, 700.0, 4));
        forecasts.push(ForecastRecord {
            attributes: Default::default(),
            service: svc,
            metric: "app.load".into(),
            signal: "mean".into(),
            window_seconds: 60,
            window_start: s,
            window_end: s + MIN,
            horizon_seconds: 900,
            target_time: s + MIN + 15 * MIN,
            value: 900.0,
            lower: 700.0,
            upper: 1_100.0,
            model_version: "bench".into(),
            revision: 1,
        });
    }
    for i in 0..pools {
        let db = format!("db-{i}");
        rows.push(window(
            &db,
            "db.client.connection.use_time",
            s,
            400.0,
            1_200,
        ));
        rows.push(window(&db, "db.client.connection.max", s, 5.0, 1));
    }
    for i in 0..caches {
        let cache = format!("cache-{i}");
        let mut hits = window(&cache, "cache.hits", s, 1.0, 800);
        hits.sum = 800.0;
        let mut misses = window(&cache, "cache.misses", s, 1.0, 200);
        misses.sum = 200.0;
        rows.push(hits);
        rows.push(misses);
        // the size the cache shows: grown by half every 4 windows
        let size = 1_000.0 * 1.5f64.powi((k / 4) as i32);
        rows.push(window(&cache, "cache.max_size", s, size.ceil(), 1));
    }
    for i in 0..canaries {
        let wobble = (k % 7) as f64;
        rows.push(window(
            &format!("base-{i}"),
            "latency",
            s,
            100.0 + wobble,
            50,
        ));
        rows.push(window(
            &format!("canary-{i}"),
            "latency",
            s,
            160.0 + wobble,
            50,
        ));
    }
    (rows, forecasts)
}

/// Part 1: windows in and decisions out per second through the planner operator (`planner`
/// true) or through an operator that only routes and counts (false), one worker.
fn planner_alone(planner: bool, windows: i64, sizes: Sizes) -> Result<(f64, u64, u64)> {
    let cfg = Arc::new(planner_config(sizes)?);
    let start = (chrono::Utc::now().timestamp_millis() / MIN - windows - 30) * MIN;
    let data: Vec<(Vec<WindowStats>, Vec<ForecastRecord>)> = (0..windows)
        .map(|k| planner_window(k, start, sizes))
        .collect();
    let rows: u64 = data.iter().map(|(r, _)| r.len() as u64).sum();
    let data = Arc::new(Mutex::new(Some(data)));
    let decided = Arc::new(Mutex::new(0u64));
    let out = decided.clone();
    let started = Instant::now();
    timely::execute(timely::Config::thread(), move |worker| {
        let data = data
            .lock()
            .ok()
            .and_then(|mut d| d.take())
            .unwrap_or_default();
        let mut stats: InputHandleVec<u64, WindowStats> = InputHandleVec::new();
        let mut forecasts: InputHandleVec<u64, ForecastRecord> = InputHandleVec::new();
        let probe = ProbeHandle::new();
        let (cfg, out) = (cfg.clone(), out.clone());
        worker.dataflow::<u64, _, _>(|scope| {
            let key = SigningKey::new(Some("bench"), SECRET).unwrap_or_else(|_| unreachable!());
            let (s, f) = (stats.to_stream(scope), forecasts.to_stream(scope));
            if planner {
                planner_operator(s, f, cfg, key, None)
                    .inspect(move |_: &Decision| {
                        if let Ok(mut n) = out.lock() {
                            *n += 1;
                        }
                    })
                    .probe_with(&probe);
            } else {
                use timely::dataflow::operators::Exchange as _;
                let _ = f;
                s.exchange(|w: &WindowStats| w.window_start as u64)
                    .inspect(|_| {})
                    .probe_with(&probe);
            }
        });
        for (k, (rows, fs)) in data.into_iter().enumerate() {
            let at = (start + (k as i64 + 1) * MIN) as u64;
            stats.advance_to(at);
            forecasts.advance_to(at);
            rows.into_iter().for_each(|r| stats.send(r));
            fs.into_iter().for_each(|f| forecasts.send(f));
            worker.step_while(|| probe.less_than(stats.time()));
        }
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let seconds = started.elapsed().as_secs_f64();
    let decisions = decided.lock().map(|n| *n).unwrap_or(0);
    Ok((seconds, rows, decisions))
}

/// A point of `service`'s `metric` at `ts`.
fn point(ts: i64, service: &str, metric: &str, value: f64, unit: &str) -> MetricPoint {
    MetricPoint {
        timestamp: ts,
        service: service.into(),
        name: metric.into(),
        value,
        unit: unit.into(),
        tags: Default::default(),
        histogram: None,
        cumulative: None,
        resource: None,
    }
}

/// Part 2's points, APO JSON arrays of 200: per window two of each scaling series, two pool
/// uses of 400 ms and its size, two latencies of each canary and baseline.
fn pipeline_payloads(
    windows: i64,
    start: i64,
    (scale, pools, caches, canaries): Sizes,
) -> Vec<Vec<u8>> {
    let mut pts = Vec::new();
    for k in 0..windows {
        let s = start + k * MIN;
        for j in 0..2 {
            let ts = s + 10_000 + j * 20_000;
            for i in 0..scale {
                let svc = format!("svc-{i}");
                pts.push(point(ts, &svc, "cpu.utilization", 0.9, ""));
                pts.push(point(
                    ts,
                    &svc,
                    "app.load",
                    600.0 + (k % 11) as f64 * 10.0,
                    "",
                ));
            }
            for i in 0..pools {
                pts.push(point(
                    ts,
                    &format!("db-{i}"),
                    "db.client.connection.use_time",
                    400.0,
                    "ms",
                ));
            }
            for i in 0..caches {
                let cache = format!("cache-{i}");
                pts.push(point(ts, &cache, "cache.hits", 400.0, ""));
                pts.push(point(ts, &cache, "cache.misses", 100.0, ""));
            }
            for i in 0..canaries {
                let w = (k % 7) as f64;
                pts.push(point(ts, &format!("base-{i}"), "latency", 100.0 + w, "ms"));
                pts.push(point(
                    ts,
                    &format!("canary-{i}"),
                    "latency",
                    160.0 + w,
                    "ms",
                ));
            }
        }
        for i in 0..scale {
            pts.push(point(
                s + 5_000,
                &format!("svc-{i}"),
                "k8s.deployment.available_pods",
                10.0,
                "",
            ));
        }
        for i in 0..caches {
            let cache = format!("cache-{i}");
            pts.push(point(s + 5_000, &cache, "cache.max_size", 1_000.0, ""));
        }
        for i in 0..pools {
            pts.push(point(
                s + 5_000,
                &format!("db-{i}"),
                "db.client.connection.max",
                5.0,
                "",
            ));
        }
    }
    pts.sort_by_key(|p| p.timestamp);
    pts.chunks(200)
        .map(|c| serde_json::to_vec(c).unwrap_or_default())
        .collect()
}

/// Part 2: the metrics pipeline from memory, forecaster on, planner `on` or off: (points/s,
/// seconds, decisions).
fn planner_in_pipeline(
    on: bool,
    workers: usize,
    windows: i64,
    sizes: Sizes,
) -> Result<(f64, f64, usize)> {
    let lstm = Path::new(DEFAULT_ARTIFACTS).join("lstm.onnx");
    if !lstm.exists() {
        bail!(
            "the decisions section runs from the repository root (no {})",
            lstm.display()
        );
    }
    let cfg = Arc::new(planner_config(sizes)?);
    let start = (chrono::Utc::now().timestamp_millis() / MIN - windows - 30) * MIN;
    let payloads = Arc::new(pipeline_payloads(windows, start, sizes));
    let decisions: MemorySink<Decision> = MemorySink::default();
    let rows = decisions.rows.clone();
    let lane = LaneConfig {
        drain: true,
        idle_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let r = run_phase(workers, lane, move |i, n| {
        let mine: Vec<Vec<u8>> = payloads.iter().skip(i).step_by(n).cloned().collect();
        let metrics = MetricsConfig {
            window_seconds: vec![60],
            ..MetricsConfig::default()
        };
        let mut job = MetricsJob::from_config(&metrics, vec![Box::new(MemorySink::default())])
            .map_err(|e| e.to_string())?
            .with_models(ModelStage {
                config: ModelConfig {
                    anomaly_model: None,
                    forecast_model: Some(lstm.clone()),
                    ..ModelConfig::default()
                },
                anomaly_sinks: vec![],
                forecast_sinks: vec![Box::new(MemorySink::default())],
                anomaly_inputs: Default::default(),
                forecast_past: None,
            });
        if on {
            job = job.with_planner(PlannerStage {
                config: (*cfg).clone(),
                key: SigningKey::new(Some("bench"), SECRET).map_err(|e| e.to_string())?,
                sinks: vec![Box::new(decisions.clone())],
            });
        }
        Ok((
            Box::new(MemorySource::new("memory", mine)) as _,
            Box::new(MemoryDeadLetters::default()) as _,
            job,
        ))
    })?;
    let decided = rows.lock().map(|v| v.len()).unwrap_or(0);
    Ok((r.points as f64 / r.seconds, r.seconds, decided))
}

/// A signed scale decision `id` of the target `bench` (1 → 2 replicas), issued now, expiring
/// in 10 minutes.
fn decision(id: &str, key: &SigningKey) -> Decision {
    let now = chrono::Utc::now().timestamp_millis();
    let mut d = Decision {
        id: id.into(),
        target: "bench".into(),
        action: DecisionAction::Scale,
        rule: "bench".into(),
        replicas_from: Some(1),
        replicas_to: Some(2),
        circuit: None,
        tune: None,
        reason: "apo bench".into(),
        evidence: vec![],
        window_seconds: 60,
        window_start: now - MIN,
        window_end: now,
        issued_at: now,
        expires_at: now + 10 * MIN,
        revision: 1,
        key_id: String::new(),
        signature: String::new(),
    };
    d.sign(key);
    d
}

/// Follows `topic` from its beginning on a thread, noting when the record of each decision
/// id (what `id_of` finds in a payload) is first seen.
struct Seen {
    at: Arc<Mutex<HashMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Seen {
    fn follow(
        client: &ClientConfig,
        topic: &str,
        id_of: fn(&[u8]) -> Option<String>,
    ) -> Result<Seen> {
        let mut c = client.clone();
        c.set("group.id", format!("{topic}.bench-reader"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "5");
        let consumer: BaseConsumer = c.create().context("a consumer of the audit records")?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let at = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (at.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
                    let now = Instant::now();
                    if let Some(id) = m.payload().and_then(id_of) {
                        if let Ok(mut s) = seen.lock() {
                            s.entry(id).or_insert(now);
                        }
                    }
                }
            }
        });
        Ok(Seen {
            at,
            stop,
            thread: Some(thread),
        })
    }

    fn get(&self, id: &str) -> Option<Instant> {
        self.at.lock().ok().and_then(|s| s.get(id).copied())
    }

    /// Waits until every id of `ids` was seen, at most `limit`.
    fn wait_for(&self, ids: &[String], limit: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let missing = ids.iter().filter(|id| self.get(id).is_none()).count();
            if missing == 0 {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!(
                    "{missing} of {} decisions not seen after {limit:?}",
                    ids.len()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The relay of the baseline: the actuator's two hops (consume a decision; produce a record
/// and wait for its acknowledgement; commit the decision's offset) and nothing else.
fn relay(
    client: &ClientConfig,
    from: &str,
    to: &str,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let mut c = client.clone();
    // as the actuator's consumer: assigned (no group rebalances), its fetch wait
    // (`DECISIONS_FETCH_WAIT_MS`), offsets stored in the group and committed one by one
    c.set("group.id", format!("{from}.relay"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    let consumer: BaseConsumer = c.create().context("the relay's consumer")?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(from, 0, Offset::Stored)?;
    consumer.assign(&tpl)?;
    // as the actuator's audit writer: delivery reports tracked, waited for one by one
    let mut p = client.clone();
    p.set("linger.ms", "0");
    let producer: BaseProducer<DeliveryTracker> = p
        .create_with_context(DeliveryTracker::default())
        .context("the relay's producer")?;
    let to = to.to_string();
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) else {
                continue;
            };
            let payload = m.payload().unwrap_or_default();
            let record = BaseRecord::to(&to).payload(payload);
            if send_with_backpressure(&producer, record).is_ok() {
                flush_within(&producer, Duration::from_secs(10));
            }
            let mut done = TopicPartitionList::new();
            if done
                .add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1))
                .is_ok()
            {
                let _ = consumer.commit(&done, CommitMode::Sync);
            }
        }
    }))
}

/// Sends `ids`' decisions to `topic`, `per_second` of them a second (0: all at once); the
/// moment each was handed to the producer.
fn send_decisions(
    producer: &BaseProducer,
    topic: &str,
    ids: &[String],
    key: &SigningKey,
    per_second: f64,
) -> Result<HashMap<String, Instant>> {
    let mut sent = HashMap::new();
    let started = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        if per_second > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / per_second);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let payload = serde_json::to_vec(&decision(id, key))?;
        let record = BaseRecord::to(topic).key("bench").payload(&payload);
        sent.insert(id.clone(), Instant::now());
        producer
            .send(record)
            .map_err(|(e, _)| anyhow::anyhow!("sending a decision: {e}"))?;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(sent)
}

/// What one path (the actuator, or the relay) measured: p50 and p99 of sent → seen at a
/// steady pace (ms), and decisions per second when `flood` were sent at once.
struct PathResult {
    p50: f64,
    p99: f64,
    paced: usize,
    flood_rate: f64,
}

fn measure(
    producer: &BaseProducer,
    topic: &str,
    seen: &Seen,
    key: &SigningKey,
    prefix: &str,
    (paced, rate, flood): (usize, f64, usize),
) -> Result<PathResult> {
    let warm = vec![format!("{prefix}-warm")];
    send_decisions(producer, topic, &warm, key, 0.0)?;
    seen.wait_for(&warm, Duration::from_secs(120))?;
    let ids: Vec<String> = (0..paced).map(|i| format!("{prefix}-paced-{i}")).collect();
    let sent = send_decisions(producer, topic, &ids, key, rate)?;
    seen.wait_for(&ids, Duration::from_secs(300))?;
    let mut ms: Vec<f64> = ids
        .iter()
        .filter_map(|id| Some(seen.get(id)?.duration_since(*sent.get(id)?).as_secs_f64() * 1e3))
        .collect();
    let ids: Vec<String> = (0..flood).map(|i| format!("{prefix}-flood-{i}")).collect();
    let started = Instant::now();
    send_decisions(producer, topic, &ids, key, 0.0)?;
    seen.wait_for(&ids, Duration::from_secs(600))?;
    let last = ids
        .iter()
        .filter_map(|id| seen.get(id))
        .max()
        .unwrap_or(started);
    Ok(PathResult {
        p50: percentile(&mut ms, 0.5),
        p99: percentile(&mut ms, 0.99),
        paced: ms.len(),
        flood_rate: flood as f64 / last.duration_since(started).as_secs_f64().max(1e-9),
    })
}

/// Part 3, through `broker`: the actuator (a child process of this binary) with its claims on
/// the broker (shared by a group's actuators) and in a file (`--local-claims`, one actuator),
/// and the relay.
fn actuator_latency(
    broker: &Broker,
    dir: &Path,
    stamp: i64,
    (paced, rate, flood): (usize, f64, usize),
) -> Result<(PathResult, PathResult, PathResult)> {
    let client = broker.client().clone();
    let t = |what: &str| format!("apo.bench.{stamp}.{what}");
    let (relay_in, relay_out) = (t("relay-in"), t("relay-out"));
    broker.prepare_topics(&[&relay_in, &relay_out], true, 1)?;
    let key = SigningKey::new(None, SECRET).map_err(|e| anyhow::anyhow!(e))?;
    let mut p = client.clone();
    p.set("linger.ms", "0");
    let producer: BaseProducer = p.create().context("a producer of decisions")?;
    let mut actuators = Vec::new();
    for local in [false, true] {
        let name = if local { "local" } else { "shared" };
        eprintln!("decision → audited action through `apo actuate` (claims: {name})…");
        actuators.push(actuate_path(
            broker,
            &dir.join(format!("actuator-{stamp}-{name}")),
            &|what: &str| t(&format!("{name}.{what}")),
            local,
            &producer,
            &key,
            (paced, rate, flood),
        )?);
    }
    let local = actuators.pop().context("the local run")?;
    let shared = actuators.pop().context("the shared run")?;

    // The relay.
    let stop = Arc::new(AtomicBool::new(false));
    let thread = relay(&client, &relay_in, &relay_out, stop.clone())?;
    let relayed = Seen::follow(&client, &relay_out, |b| {
        Decision::decode(Some(b)).ok().map(|d| d.id)
    })?;
    eprintln!("the same two hops through a relay…");
    let baseline = measure(
        &producer,
        &relay_in,
        &relayed,
        &key,
        "r",
        (paced, rate, flood),
    );
    stop.store(true, Ordering::Relaxed);
    let _ = thread.join();
    Ok((shared, local, baseline?))
}

/// One run of `apo actuate` (claims in a file when `local`) in `work`, on topics named by `t`:
/// decision sent → its audit record read back.
fn actuate_path(
    broker: &Broker,
    work: &Path,
    t: &dyn Fn(&str) -> String,
    local: bool,
    producer: &BaseProducer,
    key: &SigningKey,
    (paced, rate, flood): (usize, f64, usize),
) -> Result<PathResult> {
    let client = broker.client().clone();
    let (decisions, actions, overrides) = (t("decisions"), t("actions"), t("overrides"));
    broker.prepare_topics(&[&decisions, &actions], true, 1)?;
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let key_file = work.join("decisions.key");
    std::fs::write(&key_file, SECRET)?;
    let policy = work.join("policy.toml");
    std::fs::write(
        &policy,
        "[targets.bench]\nexecutor = \"log\"\ndry_run = false\n",
    )?;

    // The actuator.
    let exe = std::env::current_exe().context("finding this binary to run `apo actuate`")?;
    let log = std::fs::File::create(work.join("actuate.log"))?;
    let mut command = Command::new(exe);
    command.args(["actuate", "--brokers", broker.address()]);
    if local {
        command.arg("--local-claims");
    }
    let mut child: Child = command
        .args(["--decisions-topic", &decisions, "--actions-topic", &actions])
        .args(["--overrides-topic", &overrides, "--group", &t("actuators")])
        .args(["--claims-topic", &t("claims")])
        .arg("--policy")
        .arg(&policy)
        .arg("--decision-key-file")
        .arg(&key_file)
        .arg("--state-dir")
        .arg(work.join("state"))
        .arg("--data-dir")
        .arg(work.join("data"))
        .env("APO_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting `apo actuate`")?;
    let audited = Seen::follow(&client, &actions, |b| {
        ActionRecord::decode(Some(b)).ok().map(|r| r.decision_id)
    })?;
    let actuator = measure(
        producer,
        &decisions,
        &audited,
        key,
        "a",
        (paced, rate, flood),
    );
    let _ = child.kill();
    let _ = child.wait();
    let actuator = actuator.with_context(|| {
        format!(
            "the actuator (its log: {})",
            work.join("actuate.log").display()
        )
    })?;
    Ok(actuator)
}

/// The section's Markdown.
pub fn decisions_section(
    broker: &Broker,
    dir: &Path,
    workers: usize,
    decisions: usize,
) -> Result<String> {
    let stamp = chrono::Utc::now().timestamp_millis();
    let mut out = String::new();
    let sizes = (1_000, 1_000, 1_000, 50);
    let windows = 60;
    eprintln!("the planner alone…");
    let (base_s, rows, _) = planner_alone(false, windows, sizes)?;
    let (plan_s, _, decided) = planner_alone(true, windows, sizes)?;
    let _ = writeln!(
        out,
        "The planner alone, one worker, every metrics rule on ({} scale targets with the \
         predictive rule, {} pools, {} caches, {} canaries; {windows} one-minute windows, {rows} \
         window rows and {} forecasts from memory):\n",
        sizes.0,
        sizes.1,
        sizes.2,
        sizes.3,
        sizes.0 as i64 * windows
    );
    let _ = writeln!(out, "| operator | window rows/s | decisions/s | time |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| route and count (baseline) | {:.0} | – | {base_s:.2} s |",
        rows as f64 / base_s
    );
    let _ = writeln!(
        out,
        "| planner (decides, signs) | {:.0} | {:.0} | {plan_s:.2} s |\n",
        rows as f64 / plan_s,
        decided as f64 / plan_s
    );
    let _ = writeln!(out, "{decided} decisions, each signed (HMAC-SHA256).\n");

    let psizes = (200, 200, 200, 20);
    let pwindows = 80;
    let mut runs = Vec::new();
    for on in [false, true] {
        eprintln!(
            "the metrics pipeline from memory, planner {}…",
            if on { "on" } else { "off" }
        );
        runs.push((on, planner_in_pipeline(on, workers, pwindows, psizes)?));
    }
    let _ = writeln!(
        out,
        "The metrics pipeline from memory, forecaster on, {workers} worker(s) ({} scale \
         targets, {} pools, {} caches, {} canaries, {pwindows} one-minute windows):\n",
        psizes.0, psizes.1, psizes.2, psizes.3
    );
    let _ = writeln!(out, "| planner | points/s | time | decisions |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (on, (pps, s, d)) in &runs {
        let _ = writeln!(
            out,
            "| {} | {pps:.0} | {s:.2} s | {d} |",
            if *on { "on" } else { "off (baseline)" }
        );
    }
    if let [(_, (off, ..)), (_, (on, ..))] = runs.as_slice() {
        let _ = writeln!(
            out,
            "\nWith the planner on the pipeline runs at {:.0} % of its speed with it off.\n",
            100.0 * on / off
        );
    }

    if decisions > 0 {
        let rate = 10.0;
        let (a, l, r) = actuator_latency(broker, dir, stamp, (decisions, rate, decisions))?;
        let _ = writeln!(
            out,
            "Decision sent → its audit record read back from the broker, {rate} decisions/s \
             for {} (then {decisions} at once for the rate sustained); `apo actuate` as a \
             process, log executor:\n",
            a.paced
        );
        let _ = writeln!(out, "| path | p50 | p99 | sustained when flooded |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| relay: the same two hops, no actuator work (baseline) | {:.1} ms | {:.1} ms | {:.0}/s |",
            r.p50, r.p99, r.flood_rate
        );
        let _ = writeln!(
            out,
            "| `apo actuate --local-claims` (verify, claim synced to a file, policy, execute, audit + table) | {:.1} ms | {:.1} ms | {:.0}/s |",
            l.p50, l.p99, l.flood_rate
        );
        let _ = writeln!(
            out,
            "| `apo actuate`, claims on the broker (each step acknowledged and read back) | {:.1} ms | {:.1} ms | {:.0}/s |",
            a.p50, a.p99, a.flood_rate
        );
    }
    Ok(out)
}
