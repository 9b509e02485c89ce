//! Shared helpers of the end-to-end tests: they talk to the real broker started by
//! `scripts/test.sh` (APO_TEST_BROKERS) and run the real `apo` binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use apo_schemas::{MetricPoint, WindowStats};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

thread_local! {
    /// A broker of the test's own ([`OwnBroker`]) for every helper called on this thread.
    static OWN_BROKER: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The model files the repository ships (`models/artifacts`).
pub fn artifacts() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/artifacts")
}

/// The broker the helpers talk to: the test's own when it started one on this thread, the
/// shared test broker otherwise.
pub fn brokers() -> String {
    if let Some(b) = OWN_BROKER.with(|b| b.borrow().clone()) {
        return b;
    }
    std::env::var("APO_TEST_BROKERS").expect(
        "APO_TEST_BROKERS is not set: run the tests with scripts/test.sh, which starts the broker",
    )
}

/// Makes every helper called on this thread use the broker at `addr` (one a test started).
pub fn use_broker_on_this_thread(addr: &str) {
    OWN_BROKER.with(|b| *b.borrow_mut() = Some(addr.to_string()));
}

/// A broker of a test's own, for tests that stop or restart it (the shared one must stay up
/// for the others): `apo broker` from the build under test (the tansu broker `apo run`
/// embeds, as a process of its own), storing its log in a directory of the test's. Killed on
/// drop.
pub struct OwnBroker {
    child: Option<Child>,
    dir: std::path::PathBuf,
    /// `apo broker --schemas`: the directory of topic schemas it validates records against.
    schemas: Option<std::path::PathBuf>,
    /// `127.0.0.1:port`.
    pub addr: String,
}

impl OwnBroker {
    /// Starts one on a free port with its storage in `dir`.
    pub fn start(dir: &std::path::Path) -> Self {
        Self::start_with_schemas(dir, None)
    }

    /// [`OwnBroker::start`], validating records against the topic schemas in `schemas`.
    pub fn start_with_schemas(dir: &std::path::Path, schemas: Option<&std::path::Path>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut b = OwnBroker {
            child: None,
            dir: dir.to_path_buf(),
            schemas: schemas.map(std::path::Path::to_path_buf),
            addr: format!("127.0.0.1:{port}"),
        };
        b.spawn();
        b
    }

    /// Makes every helper called on this thread use this broker.
    pub fn use_on_this_thread(&self) {
        OWN_BROKER.with(|b| *b.borrow_mut() = Some(self.addr.clone()));
    }

    /// Kills it (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let port = self.addr.rsplit(':').next().unwrap_or_default().to_string();
        let data_dir = self.dir.join("broker");
        let mut broker = Command::new(env!("CARGO_BIN_EXE_apo"));
        broker
            .args(["broker", "--port", &port, "--data-dir"])
            .arg(&data_dir);
        if let Some(s) = &self.schemas {
            broker.arg("--schemas").arg(s);
        }
        let child = broker
            .env("APO_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the apo binary under test runs");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(&self.addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "apo broker did not listen on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
        OWN_BROKER.with(|b| *b.borrow_mut() = None);
    }
}

pub fn client() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers());
    c
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    )
}

pub struct Topics {
    pub metrics: String,
    pub stats: String,
    pub dlq: String,
    pub group: String,
    /// The trace pipeline's topics; without them the run has `--traces false`.
    pub traces: Option<TraceTopics>,
}

pub struct TraceTopics {
    pub spans: String,
    pub red: String,
    pub critical_path: String,
    pub critical_path_share: String,
    pub service_map: String,
    pub slo: String,
    pub current: String,
}

/// Topics for a run of both pipelines.
pub fn trace_topics(name: &str, partitions: i32) -> Topics {
    let mut t = topics(name, partitions);
    let tt = TraceTopics {
        spans: unique(&format!("{name}.spans")),
        red: unique(&format!("{name}.red")),
        critical_path: unique(&format!("{name}.cp")),
        critical_path_share: unique(&format!("{name}.cps")),
        service_map: unique(&format!("{name}.map")),
        slo: unique(&format!("{name}.slo")),
        current: unique(&format!("{name}.current")),
    };
    apo_ingest::kafka::ensure_topics(
        &client(),
        &[
            &tt.spans,
            &tt.red,
            &tt.critical_path,
            &tt.critical_path_share,
            &tt.service_map,
            &tt.slo,
            &tt.current,
        ],
        partitions,
    )
    .unwrap();
    t.traces = Some(tt);
    t
}

pub fn topics(name: &str, partitions: i32) -> Topics {
    let t = Topics {
        metrics: unique(&format!("{name}.metrics")),
        stats: unique(&format!("{name}.stats")),
        dlq: unique(&format!("{name}.dlq")),
        group: unique(&format!("{name}.group")),
        traces: None,
    };
    apo_ingest::kafka::ensure_topics(&client(), &[&t.metrics, &t.stats, &t.dlq], partitions)
        .unwrap();
    t
}

/// A point of metric `latency` (ms) of `service`.
pub fn point(ts: i64, service: &str, value: f64) -> MetricPoint {
    MetricPoint {
        timestamp: ts,
        service: service.into(),
        name: "latency".into(),
        value,
        unit: "ms".into(),
        tags: Default::default(),
        histogram: None,
        cumulative: None,
        resource: None,
    }
}

/// A minute boundary an hour ago: old enough for any window, young enough for the time bounds.
pub fn base() -> i64 {
    (now_ms() - 3_600_000) / 60_000 * 60_000
}

/// Asserts that nothing reached `t`'s dead-letter topic, naming the first dead letter's headers.
pub fn assert_no_dead_letters(t: &Topics) {
    let dlq = consume(&t.dlq, usize::MAX, Duration::from_secs(3));
    assert!(
        dlq.is_empty(),
        "{} dead letters, the first: {:?}",
        dlq.len(),
        dlq.first().map(|d| &d.headers)
    );
}

/// The latest revision of each window.
pub fn latest(stats: &[WindowStats]) -> BTreeMap<String, WindowStats> {
    let mut m: BTreeMap<String, WindowStats> = BTreeMap::new();
    for s in stats {
        match m.get(&s.key()) {
            Some(x) if x.revision >= s.revision => {}
            _ => {
                m.insert(s.key(), s.clone());
            }
        }
    }
    m
}

/// Now, on the clock apo judges event times against (`APO_NOW` moves both: the clock guard of
/// `scripts/test.sh` runs the clock-sensitive tests a month ahead).
pub fn now_ms() -> i64 {
    apo_core::clock::now_ms()
}

/// The overrides topic of an actuator test reading `decisions` (its own, created empty: the
/// tests run actuators with `--create-topics false`).
pub fn overrides_topic(decisions: &str) -> String {
    let topic = format!("{decisions}.overrides");
    apo_ingest::kafka::ensure_topics(&client(), &[&topic], 1).unwrap();
    topic
}

/// `apo run --drain` over `t` writing Parquet to `data`, with the planner file `planner`
/// signing with the key file `key`, decisions to `decisions`, and `extra` flags (`--windows`,
/// …); asserts that it succeeded and returns the decisions on the topic, in window order.
pub fn run_planner(
    t: &Topics,
    data: &std::path::Path,
    planner: &std::path::Path,
    key: &str,
    decisions: &str,
    extra: &[&str],
) -> Vec<apo_schemas::decision::Decision> {
    let planner = planner.display().to_string();
    let mut flags = vec![
        "--drain",
        "--planner",
        &planner,
        "--decision-key-file",
        key,
        "--decisions-topic",
        decisions,
    ];
    flags.extend_from_slice(extra);
    let run = run_to_end(&apo_run_args(t, data, &flags), Duration::from_secs(300));
    assert!(
        run.status.success(),
        "apo run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut issued: Vec<apo_schemas::decision::Decision> =
        consume(decisions, usize::MAX, Duration::from_secs(3))
            .iter()
            .map(|r| apo_schemas::decision::Decision::decode(Some(&r.payload)).expect("a decision"))
            .collect();
    issued.sort_by_key(|d| d.window_start);
    issued
}

/// The data directory of the `actions` table `apo actuate` writes with `state` as its claims
/// directory (by [`actuate_drain_args`]).
pub fn actuate_data_dir(state: &std::path::Path) -> std::path::PathBuf {
    state.join("data")
}

/// `apo sql --data-dir DATA_DIR --format csv QUERY`: its rows (the header left out), asserting
/// success.
pub fn sql_csv(data_dir: &std::path::Path, query: &str) -> Vec<Vec<String>> {
    let args: Vec<String> = [
        "sql",
        "--data-dir",
        &data_dir.display().to_string(),
        "--format",
        "csv",
        query,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_to_end(&args, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "apo sql {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    csv::Reader::from_reader(out.stdout.as_slice())
        .records()
        .map(|r| r.expect("a CSV row").iter().map(str::to_string).collect())
        .collect()
}

/// The claims topic of an actuator test reading `decisions` (its own, created empty, two
/// partitions).
pub fn claims_topic(decisions: &str) -> String {
    let topic = format!("{decisions}.claims");
    apo_ingest::kafka::ensure_topics(&client(), &[&topic], 2).unwrap();
    topic
}

/// `apo actuate --drain` of `decisions` to `actions` in consumer group `group` (made the
/// test's own: `group` + `decisions`), with `policy`, the decision key `key` (`PATH` or
/// `ID=PATH`), its claims on `decisions`' own claims topic and its table under `state`. A
/// member of the group that vanishes is given up after 6 s (the broker's least).
pub fn actuate_drain_args(
    decisions: &str,
    actions: &str,
    group: &str,
    policy: &std::path::Path,
    key: &str,
    state: &std::path::Path,
) -> Vec<String> {
    [
        "actuate",
        "--brokers",
        &brokers(),
        "--decisions-topic",
        decisions,
        "--actions-topic",
        actions,
        "--group",
        &format!("{group}.{decisions}"),
        "--claims-topic",
        &claims_topic(decisions),
        "-X",
        "session.timeout.ms=6000",
        "-X",
        "heartbeat.interval.ms=1000",
        "--policy",
        &policy.display().to_string(),
        "--decision-key-file",
        key,
        "--state-dir",
        &state.display().to_string(),
        "--data-dir",
        &actuate_data_dir(state).display().to_string(),
        "--create-topics",
        "false",
        "--overrides-topic",
        &overrides_topic(decisions),
        "--drain",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Produces (partition, payload) messages in order and waits for every acknowledgement.
pub fn produce(topic: &str, messages: &[(i32, Vec<u8>)]) {
    let producer: BaseProducer = client().set("linger.ms", "5").create().unwrap();
    for (p, payload) in messages {
        loop {
            match producer.send(
                BaseRecord::<[u8], [u8]>::to(topic)
                    .partition(*p)
                    .payload(payload),
            ) {
                Ok(()) => break,
                Err((_, _)) => {
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Reads `topic` from the beginning until `want` records arrived or nothing came for `quiet`.
pub fn consume(topic: &str, want: usize, quiet: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = client()
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut last = Instant::now();
    while out.len() < want && last.elapsed() < quiet {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut headers = BTreeMap::new();
            if let Some(h) = m.headers() {
                for x in h.iter() {
                    headers.insert(
                        x.key.to_string(),
                        String::from_utf8_lossy(x.value.unwrap_or_default()).to_string(),
                    );
                }
            }
            out.push(Record {
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
            });
            last = Instant::now();
        }
    }
    out
}

pub fn window_stats(records: &[Record]) -> Vec<WindowStats> {
    records
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("window stats JSON"))
        .collect()
}

/// `apo run --drain` over the test topics; returns its output (asserting success).
pub fn apo_run_args(t: &Topics, data_dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--brokers".into(),
        brokers(),
        "--metrics-topic".into(),
        t.metrics.clone(),
        "--window-stats-topic".into(),
        t.stats.clone(),
        "--dlq-topic".into(),
        t.dlq.clone(),
        "--group".into(),
        t.group.clone(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--idle-timeout".into(),
        "2s".into(),
        "--create-topics".into(),
        "false".into(),
    ];
    match &t.traces {
        None => args.extend(["--traces".into(), "false".into()]),
        Some(tt) => {
            for (flag, topic) in [
                ("--spans-topic", &tt.spans),
                ("--red-topic", &tt.red),
                ("--critical-path-topic", &tt.critical_path),
                ("--critical-path-share-topic", &tt.critical_path_share),
                ("--service-map-topic", &tt.service_map),
                ("--slo-topic", &tt.slo),
                ("--service-map-current-topic", &tt.current),
            ] {
                args.extend([flag.to_string(), topic.clone()]);
            }
        }
    }
    if !extra.contains(&"--progress-interval") {
        args.extend(["--progress-interval".into(), "0s".into()]);
    }
    if !extra.contains(&"--models") {
        args.extend(["--models".into(), "false".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The newest complete checkpoint's manifest of `job` under `data_dir`.
pub fn newest_manifest(data_dir: &std::path::Path, job: &str) -> Option<serde_json::Value> {
    let dir = data_dir.join("checkpoints").join(job);
    let mut epochs: Vec<_> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_none())
        .collect();
    epochs.sort();
    let text = std::fs::read(epochs.last()?.join("manifest.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// `apo` with `args`, logging at warn (`APO_TEST_CHILD_LOG` sets another filter, to debug a
/// test whose runs' output it shows).
pub fn apo(args: &[String]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_apo"));
    let log = std::env::var("APO_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into());
    c.args(args).env_remove("APO_CONFIG").env("APO_LOG", log);
    c
}

pub fn run_to_end(args: &[String], limit: Duration) -> Output {
    run_to_end_watching(args, limit, |_| {})
}

/// [`run_to_end`], returning the highest resident memory the process had (`VmRSS`, bytes,
/// sampled every 50 ms).
pub fn run_to_end_peak_rss(args: &[String], limit: Duration) -> (Output, u64) {
    let mut peak = 0u64;
    let out = run_to_end_watching(args, limit, |pid| {
        if let Some(rss) = resident_bytes_of(pid) {
            peak = peak.max(rss);
        }
    });
    (out, peak)
}

/// `VmRSS` of process `pid`, bytes (`None` once it has gone).
pub fn resident_bytes_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

fn run_to_end_watching(args: &[String], limit: Duration, mut watch: impl FnMut(u32)) -> Output {
    let mut child: Child = apo(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr as it comes: a chatty run must not block on a full pipe.
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let started = Instant::now();
    loop {
        watch(child.id());
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = reader.join().unwrap_or_default();
            panic!(
                "apo did not finish within {limit:?}: {}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = child.wait_with_output().unwrap();
    out.stderr = reader.join().unwrap_or_default();
    assert!(
        out.status.success(),
        "apo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Exact statistics per (service, metric, window seconds, window start).
pub type Exact = BTreeMap<(String, String, u32, i64), Vec<f64>>;

pub fn exact(points: &[MetricPoint], sizes: &[u32]) -> Exact {
    let mut m = Exact::new();
    for p in points {
        for &s in sizes {
            let ms = s as i64 * 1000;
            let start = p.timestamp.div_euclid(ms) * ms;
            m.entry((p.service.clone(), p.name.clone(), s, start))
                .or_default()
                .push(p.value);
        }
    }
    for v in m.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    m
}

/// Asserts one window's statistics against the exact values of its window in `want`.
pub fn check_exact(w: &WindowStats, want: &Exact) {
    let key = (
        w.service.clone(),
        w.metric.clone(),
        w.window_seconds,
        w.window_start,
    );
    let v = want
        .get(&key)
        .unwrap_or_else(|| panic!("unexpected window {}", w.key()));
    check_window(w, v);
}

/// The exact sum of `v` rounded once to the nearest f64 (ties to even), for values from 2^-62
/// to 2^64 in magnitude (each a whole multiple of 2^-62, summed as an integer): the reference
/// for a window's `sum`, independent of the ExactSum it checks.
pub fn exact_sum(v: &[f64]) -> f64 {
    const SCALE: f64 = 4_611_686_018_427_387_904.0; // 2^62
    let total: i128 = v
        .iter()
        .map(|&x| {
            let scaled = x * SCALE;
            assert!(
                scaled.fract() == 0.0 && scaled.abs() < 2f64.powi(126),
                "{x} is not a whole multiple of 2^-62 in range"
            );
            scaled as i128
        })
        .sum();
    // i128 → f64 rounds to nearest, ties to even; the power of two is exact.
    total as f64 / SCALE
}

/// `points` with every value divided by 1 000 (milliseconds as seconds): values no f64 holds
/// exactly, whose sums change in the last bits with the order of their additions.
pub fn in_seconds(mut points: Vec<MetricPoint>) -> Vec<MetricPoint> {
    for p in &mut points {
        p.value /= 1000.0;
        p.unit = "s".into();
    }
    points
}

/// Asserts one window's statistics against the exact values.
pub fn check_window(w: &WindowStats, v: &[f64]) {
    assert_eq!(w.count, v.len() as u64, "count of {}", w.key());
    assert_eq!(w.sum, exact_sum(v), "sum of {}", w.key());
    assert_eq!(w.min, v[0], "min of {}", w.key());
    assert_eq!(w.max, v[v.len() - 1], "max of {}", w.key());
    for (q, got) in [
        (0.5, w.p50),
        (0.9, w.p90),
        (0.95, w.p95),
        (0.99, w.p99),
        (0.999, w.p999),
    ] {
        let want = v[(q * (v.len() - 1) as f64).floor() as usize];
        let err = ((got - want) / want).abs();
        assert!(
            err <= w.relative_accuracy + 1e-9,
            "{} q={q}: got {got}, exact {want}, error {err}",
            w.key()
        );
    }
}

/// Deterministic pseudo-random numbers (SplitMix64).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` integer-valued points over `keys` series, 1 ms apart on average starting at `base`,
/// shuffled within `jitter_ms` (keep it below the lateness).
pub fn dataset(
    n: usize,
    keys: usize,
    base: i64,
    spacing_ms: i64,
    jitter_ms: i64,
    seed: u64,
) -> Vec<MetricPoint> {
    let mut rng = Rng(seed);
    let mut pts: Vec<(i64, MetricPoint)> = (0..n)
        .map(|i| {
            let k = rng.below(keys as u64) as usize;
            let ts = base + i as i64 * spacing_ms;
            // log-ish spread of values: 1 .. ~100k
            let mag = rng.below(5) as u32;
            let value = (1 + rng.below(10u64.pow(mag + 1))) as f64;
            let order = ts + rng.below(jitter_ms as u64 + 1) as i64;
            (
                order,
                MetricPoint {
                    timestamp: ts,
                    service: format!("svc-{}", k % 10),
                    name: format!("metric-{}", k / 10),
                    value,
                    unit: "ms".into(),
                    tags: Default::default(),
                    histogram: None,
                    cumulative: None,
                    resource: None,
                },
            )
        })
        .collect();
    pts.sort_by_key(|(o, _)| *o);
    pts.into_iter().map(|(_, p)| p).collect()
}

/// Splits points into JSON messages of `batch` points over `partitions`, by service, keeping order.
pub fn messages(points: &[MetricPoint], partitions: i32, batch: usize) -> Vec<(i32, Vec<u8>)> {
    let mut per: BTreeMap<i32, Vec<&MetricPoint>> = BTreeMap::new();
    let mut out = Vec::new();
    for p in points {
        let part = (p.service.bytes().map(|b| b as u32).sum::<u32>() % partitions as u32) as i32;
        let v = per.entry(part).or_default();
        v.push(p);
        if v.len() >= batch {
            out.push((part, serde_json::to_vec(&std::mem::take(v)).unwrap()));
        }
    }
    for (part, v) in per {
        if !v.is_empty() {
            out.push((part, serde_json::to_vec(&v).unwrap()));
        }
    }
    out
}

/// Polls `outputs()` until it counts at least `at_least` while `child` runs; returns the count.
/// Panics when the child stops by itself or the count is not reached within five minutes,
/// killing the child first so that no `apo run` outlives its test.
fn wait_for_output(
    child: &mut Child,
    at_least: usize,
    outputs: &mut impl FnMut() -> usize,
    what: &str,
) -> usize {
    let started = Instant::now();
    let mut seen = 0;
    while seen < at_least {
        if child.try_wait().unwrap().is_some() {
            panic!("{what} stopped by itself with {seen} of {at_least} outputs");
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} gave {seen} of {at_least} outputs in five minutes");
        }
        seen = outputs();
    }
    seen
}

/// Waits until `outputs()` counts at least `at_least` records while `child` is still running,
/// then kills it (SIGKILL); returns the last count. Panics when the child stops by itself or
/// nothing comes within five minutes.
pub fn kill_after_output(
    child: &mut Child,
    at_least: usize,
    mut outputs: impl FnMut() -> usize,
) -> usize {
    let seen = wait_for_output(child, at_least, &mut outputs, "the first run");
    child.kill().unwrap();
    child.wait().unwrap();
    seen
}

/// Waits until `outputs()` reaches `at_least`, then stops `child` with SIGTERM and waits for it
/// to exit (asserting a clean exit within 60 s); returns the last count seen.
pub fn stop_after_output(
    child: &mut Child,
    at_least: usize,
    mut outputs: impl FnMut() -> usize,
) -> usize {
    let seen = wait_for_output(child, at_least, &mut outputs, "the run");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "apo run did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "a clean exit on SIGTERM");
    seen
}

/// Asserts that `t`'s window statistics, de-duplicated by key, are an uninterrupted run's over
/// in-order data: every window of `want` and only those, each exact, revision 1, and no two
/// different records under one key.
pub fn assert_uninterrupted_output(t: &Topics, want: &Exact) {
    let records = window_stats(&consume(&t.stats, usize::MAX, Duration::from_secs(5)));
    let mut by_key: BTreeMap<String, Vec<WindowStats>> = BTreeMap::new();
    for r in records {
        by_key.entry(r.key()).or_default().push(r);
    }
    assert_eq!(by_key.len(), want.len(), "every window, and only those");
    for (k, v) in &by_key {
        assert!(
            v.iter().all(|x| x == &v[0]),
            "{k}: two different records under one key: {v:?}"
        );
        assert_eq!(v[0].revision, 1, "{k}: in-order data never revise");
        check_exact(&v[0], want);
    }
}

/// Window statistics records by key, each copy's bytes as written (a replay's copies must be
/// byte for byte the first).
pub fn copies_by_key(records: Vec<Record>) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_key: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for r in records {
        let w: WindowStats = serde_json::from_slice(&r.payload).expect("window stats JSON");
        by_key.entry(w.key()).or_default().push(r.payload);
    }
    by_key
}

/// A timely hostfile in `dir` for `processes` processes on free loopback ports.
pub fn cluster_hostfile(dir: &std::path::Path, processes: usize) -> std::path::PathBuf {
    let hosts: String = (0..processes)
        .map(|_| {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            format!("127.0.0.1:{port}\n")
        })
        .collect();
    let path = dir.join("hosts");
    std::fs::write(&path, hosts).unwrap();
    path
}
