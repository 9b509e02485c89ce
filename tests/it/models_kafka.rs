//! End to end against the real broker: `apo run` scores every closed window (of metric series
//! and of RED rows from spans) with the isolation forest and forecasts the 60 s series with the LSTM; the records on
//! `apo.anomalies` and `apo.forecasts` (and in the Parquet tables) are checked against the
//! models run here over the window statistics the same run wrote; an action carried out on a
//! service (`apo.actions`) suppresses the alert it explains. That action is the whole loop's:
//! window statistics that call for a scale-up → the planner's decision → `apo actuate`
//! carries it out → its audit record → the models' alert on that service suppressed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use apo_dataflow::{red_series_name, Scorable};
use apo_ingest::trace_generator::{TraceGenerator, TraceGeneratorConfig};
use apo_models::alerting::{AlertConfig, AlertState};
use apo_models::context::{ContextConfig, ContextDetector};
use apo_models::features::{KeyHistory, MIN_HISTORY};
use apo_models::{Forecaster, IsolationForest};
use apo_schemas::model_output::{AnomalyRecord, ForecastRecord};
use apo_schemas::red::RedStats;
use apo_schemas::{MetricPoint, Span, WindowStats};

/// 4 series, 2 points a second each for 70 minutes, latency-like values with a slow cycle
/// and a 3-minute incident on two series (svc-1 and svc-2) at minute 40.
fn points(base: i64) -> Vec<MetricPoint> {
    let mut rng = Rng(7);
    let mut out = Vec::new();
    for s in 0..4_i64 {
        for i in 0..(70 * 60 * 2) {
            let ts = base + i * 500 + s;
            let t = i as f64 / 120.0;
            let mut value = 50.0
                * (1.0 + 0.2 * (t / 9.0).sin())
                * (0.8 + 0.4 * (rng.below(1000) as f64 / 1000.0));
            if (s == 1 || s == 2) && (40.0..43.0).contains(&t) {
                value *= 6.0;
            }
            out.push(MetricPoint {
                timestamp: ts,
                service: format!("svc-{s}"),
                name: "latency".into(),
                value,
                unit: "ms".into(),
                tags: Default::default(),
                histogram: None,
                cumulative: None,
                resource: None,
            });
        }
    }
    out.sort_by_key(|p| p.timestamp);
    out
}

type Key = (String, String, u32);

#[test]
fn anomaly_scores_and_forecasts_for_every_closed_window() {
    let t = trace_topics("models", 2);
    let anomalies = unique("models.anomalies");
    let forecasts = unique("models.forecasts");
    let actions = unique("models.actions");
    apo_ingest::kafka::ensure_topics(&client(), &[&anomalies, &forecasts, &actions], 2).unwrap();
    let base = (now_ms() - 2 * 3_600_000) / 3_600_000 * 3_600_000;
    let pts = points(base);
    produce(&t.metrics, &messages(&pts, 2, 200));
    // and web-shop traces over the same 70 minutes: their RED rows are scored too
    let traces = trace_messages(base, 2, |_| true);
    produce(&t.traces.as_ref().unwrap().spans, &traces);
    // half a minute before both incidents: a scale-up of svc-2, decided by the planner and
    // carried out by the actuator (it explains svc-2's incident), a dry run on svc-1 (changes
    // nothing: svc-1 still alerts), and a record that is no action
    let dir = tempfile::tempdir().unwrap();
    let decided_at = base + 39 * 60_000 + 30_000;
    let acted_at = scale_up_through_the_loop(dir.path(), "svc-2", decided_at, &actions);
    assert!(
        (decided_at..decided_at + 60_000).contains(&acted_at),
        "carried out on the decision's clock: {acted_at} vs {decided_at}"
    );
    let dry_run = format!(
        r#"{{"decision_id":"d-svc-1","target":"svc-1","action":"rollback","executed_at":{acted_at},"actor":"test","outcome":"dry_run"}}"#
    );
    produce(
        &actions,
        &[(1, dry_run.into_bytes()), (1, b"{not an action".to_vec())],
    );
    let iforest = artifacts().join("iforest.onnx");
    let lstm = artifacts().join("lstm.onnx");
    drain_with_models(
        &t,
        dir.path(),
        &anomalies,
        &forecasts,
        &["--actions-topic", &actions, "-w", "2"],
    );

    // the window statistics this run wrote, per series in window order
    let mut series: BTreeMap<Key, Vec<WindowStats>> = BTreeMap::new();
    for w in window_stats(&consume(&t.stats, usize::MAX, Duration::from_secs(10))) {
        series
            .entry((w.service.clone(), w.metric.clone(), w.window_seconds))
            .or_default()
            .push(w);
    }
    assert_eq!(series.len(), 8, "4 series x 2 window sizes");
    for v in series.values_mut() {
        v.sort_by_key(|w| w.window_start);
    }

    // anomalies: one per window past the first MIN_HISTORY of each series, scored as here
    let model = IsolationForest::load(&iforest).unwrap();
    let alert = test_alert();
    // forest score, in alert, likelihood, suppressed, contextual score
    type Want = (f64, bool, f64, bool, Option<f64>);
    let mut want: BTreeMap<(Key, i64), Want> = BTreeMap::new();
    for (k, windows) in &series {
        let mut hist = KeyHistory::default();
        let mut state = AlertState::default();
        let mut context = ContextDetector::default();
        for w in windows {
            // the contextual detector follows the window's p95
            let c = context.step(&alert.context, w.p95);
            let f = hist.push([
                w.p50,
                w.p95,
                w.p99,
                w.count as f64 / f64::from(w.window_seconds),
                0.0,
            ]);
            if let Some(f) = f {
                let s = f64::from(model.score(&[f.map(|x| x as f32)]).unwrap()[0]);
                if k.0 == "svc-2" && acted_at < w.window_end {
                    state.decision(&alert, acted_at);
                }
                let o = state.step(&alert, model.meta().threshold, w.window_end, s, c);
                want.insert(
                    (k.clone(), w.window_start),
                    (s, o.is_anomaly, o.likelihood, o.suppressed, c),
                );
            }
        }
    }
    let (got_red, got): (Vec<AnomalyRecord>, Vec<AnomalyRecord>) =
        consume(&anomalies, usize::MAX, Duration::from_secs(10))
            .iter()
            .map(|r| serde_json::from_slice::<AnomalyRecord>(&r.payload).expect("anomaly JSON"))
            .partition(|a| a.metric.starts_with("red{"));
    assert_eq!(
        got.len(),
        want.len(),
        "one score per window with {MIN_HISTORY} windows of history"
    );
    let mut raised_in_incident = false;
    let mut suppressed_in_incident = false;
    for a in &got {
        let k = (a.service.clone(), a.metric.clone(), a.window_seconds);
        let (s, active, likelihood, suppressed, context) = want[&(k, a.window_start)];
        assert!(
            same_context(a.context_score, context),
            "{}: contextual score {:?} vs here {context:?}",
            a.key(),
            a.context_score
        );
        assert!(
            (a.score - s).abs() < 1e-6,
            "{}: stream {} vs here {s}",
            a.key(),
            a.score
        );
        assert_eq!(a.is_anomaly, active, "{}", a.key());
        assert_eq!(a.suppressed, suppressed, "{}", a.key());
        assert!(
            (a.likelihood - likelihood).abs() < 1e-6,
            "{}: likelihood {} vs here {likelihood}",
            a.key(),
            a.likelihood
        );
        assert_eq!(a.model_version, model.version());
        assert!(a.drivers.len() <= 3);
        let minute = (a.window_start - base) as f64 / 60_000.0;
        if a.service == "svc-1" && a.raised && (40.0..44.0).contains(&minute) {
            raised_in_incident = true;
        }
        if a.service == "svc-2" {
            assert!(
                !(a.raised && (39.0..50.0).contains(&minute)),
                "svc-2's incident follows its rollback: not raised ({})",
                a.key()
            );
            suppressed_in_incident |= a.suppressed && (40.0..44.0).contains(&minute);
        }
    }
    assert!(raised_in_incident, "the incident on svc-1 raised an alert");
    let with_context = got.iter().filter(|a| a.context_score.is_some()).count();
    assert!(
        with_context > 100,
        "windows past the contextual detector's learning: {with_context}"
    );

    // RED rows: every one's windows past the first MIN_HISTORY, scored as here
    let mut red: BTreeMap<Key, Vec<RedStats>> = BTreeMap::new();
    for r in consume(
        &t.traces.as_ref().unwrap().red,
        usize::MAX,
        Duration::from_secs(10),
    ) {
        let r: RedStats = serde_json::from_slice(&r.payload).expect("RED JSON");
        red.entry((
            r.service_name.clone(),
            red_series_name(&r),
            r.window_seconds,
        ))
        .or_default()
        .push(r);
    }
    let mut want_red: BTreeMap<(Key, i64), (f64, Option<f64>)> = BTreeMap::new();
    for (k, rows) in red.iter_mut() {
        rows.sort_by_key(|r| r.window_start);
        let (mut hist, mut state) = (KeyHistory::default(), AlertState::default());
        let mut context = ContextDetector::default();
        for r in rows.iter() {
            let c = context.step(&alert.context, r.duration_p95_ms);
            if let Some(f) = hist.push(r.signals()) {
                let s = f64::from(model.score(&[f.map(|x| x as f32)]).unwrap()[0]);
                state.step(&alert, model.meta().threshold, r.window_end, s, c);
                want_red.insert((k.clone(), r.window_start), (s, c));
            }
        }
    }
    assert!(
        want_red.len() > 100,
        "RED windows scored: {}",
        want_red.len()
    );
    assert_eq!(
        got_red.len(),
        want_red.len(),
        "one score per RED window past the history"
    );
    for a in &got_red {
        let k = (a.service.clone(), a.metric.clone(), a.window_seconds);
        let (s, context) = want_red[&(k, a.window_start)];
        assert!(
            same_context(a.context_score, context),
            "{}: contextual score {:?} vs here {context:?}",
            a.key(),
            a.context_score
        );
        assert!(
            (a.score - s).abs() < 1e-6,
            "{}: stream {} vs here {s}",
            a.key(),
            a.score
        );
    }
    assert!(
        suppressed_in_incident,
        "the same incident on svc-2, after its rollback, is suppressed"
    );
    let dead: Vec<Record> = consume(&t.dlq, usize::MAX, Duration::from_secs(3))
        .into_iter()
        .filter(|d| d.headers["apo.dlq.topic"] == actions)
        .collect();
    assert_eq!(
        dead.len(),
        1,
        "the record that is no action is dead-lettered"
    );
    assert_eq!(dead[0].headers["apo.dlq.reason"], "invalid_json");
    assert_eq!(dead[0].payload, b"{not an action");

    // forecasts: 60 s series only (10 s windows cannot reach 15 minutes in 15 steps), from the
    // 48th window on, each the model's forecast of the previous 48 means
    let fm = Forecaster::load(&lstm).unwrap();
    let got: Vec<ForecastRecord> = consume(&forecasts, usize::MAX, Duration::from_secs(10))
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("forecast JSON"))
        .collect();
    let mut expected = 0;
    for (k, windows) in series.iter().filter(|(k, _)| k.2 == 60) {
        let means: Vec<f64> = windows.iter().map(|w| w.mean).collect();
        for end in fm.seq_len()..=means.len() {
            expected += 1;
            let w = &windows[end - 1];
            let f = fm.forecast(&means[end - fm.seq_len()..end], 15).unwrap();
            let g = got
                .iter()
                .find(|g| {
                    g.service == k.0 && g.window_seconds == 60 && g.window_start == w.window_start
                })
                .unwrap_or_else(|| panic!("no forecast for {k:?} at {}", w.window_start));
            assert!((g.value - f.value).abs() < 1e-9 * f.value.abs().max(1.0));
            assert!(g.lower <= g.value && g.value <= g.upper);
            assert_eq!(g.target_time, w.window_end + 900_000);
            assert_eq!(g.signal, "mean");
        }
    }
    assert_eq!(got.len(), expected);

    // the same records in Parquet
    let out = apo(&[
        "sql".into(),
        "--data-dir".into(),
        dir.path().display().to_string(),
        "--format".into(),
        "csv".into(),
        "SELECT (SELECT count(*) FROM anomalies) AS a, (SELECT count(*) FROM forecasts) AS f"
            .into(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{},{}", want.len() + want_red.len(), expected)),
        "{text}"
    );
}

#[test]
fn a_model_that_does_not_load_is_a_startup_error() {
    let t = topics("models-bad", 1);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("iforest.onnx");
    std::fs::write(&bad, b"not a model").unwrap();
    let b = bad.display().to_string();
    let out = apo(&apo_run_args(
        &t,
        dir.path(),
        &["--drain", "--models", "true", "--anomaly-model", &b],
    ))
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("loading the models") && err.contains("iforest.json"),
        "{err}"
    );
}

/// Web-shop traces over the 70 minutes from `base` (2 100 traces, those `keep` keeps), one
/// message each, over `partitions` partitions by trace id.
fn trace_messages(
    base: i64,
    partitions: u128,
    keep: impl Fn(&[Span]) -> bool,
) -> Vec<(i32, Vec<u8>)> {
    let mut g = TraceGenerator::new(&TraceGeneratorConfig {
        rate: 0.5,
        start_ms: base,
        ..Default::default()
    });
    (0..2_100)
        .map(|_| g.next_trace())
        .filter(|t| keep(t))
        .map(|t| {
            let p = (t[0].trace_id.0 % partitions) as i32;
            (p, serde_json::to_vec(&t).unwrap())
        })
        .collect()
}

fn span_end_ms(s: &Span) -> i64 {
    s.end_ns / 1_000_000
}

/// The loop, up to the audit record: window statistics of `service` (CPU at 90 % of 50 ready
/// replicas against a 75 % target, in the 10 s window ending at `decided_at`) → `apo run
/// --planner` → one signed scale decision → `apo actuate` (log executor, its clock set to the
/// decision's time with APO_NOW, as when the data is live) → one `succeeded` record on
/// `actions`. Returns the record's `executed_at`.
fn scale_up_through_the_loop(
    dir: &std::path::Path,
    service: &str,
    decided_at: i64,
    actions: &str,
) -> i64 {
    use apo_schemas::action::{ActionOutcome, ActionRecord};
    let t = topics("loop", 1);
    let decisions = unique("loop.decisions");
    apo_ingest::kafka::ensure_topics(&client(), &[&decisions], 1).unwrap();
    let start = decided_at - 10_000;
    let mut pts: Vec<MetricPoint> = Vec::new();
    for i in 0..10 {
        for (name, value) in [
            ("cpu.utilization", 0.9),
            ("k8s.deployment.available_pods", 50.0),
        ] {
            pts.push(MetricPoint {
                timestamp: start + i * 1_000,
                service: service.into(),
                name: name.into(),
                value,
                unit: String::new(),
                tags: Default::default(),
                histogram: None,
                cumulative: None,
                resource: None,
            });
        }
    }
    produce(&t.metrics, &messages(&pts, 1, 50));
    let key = dir.join("decisions.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    let planner = dir.join("planner.toml");
    std::fs::write(
        &planner,
        format!(
            "window_seconds = 10\n[[scale]]\ntarget = \"{service}\"\nmax_replicas = 100\n\
             metrics = [{{ name = \"cpu.utilization\", average_value = 0.75 }}]\n"
        ),
    )
    .unwrap();
    let key_arg = key.display().to_string();
    let issued = run_planner(
        &t,
        &dir.join("loop-data"),
        &planner,
        &key_arg,
        &decisions,
        &["--windows", "10s"],
    );
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(
        (issued[0].replicas_from, issued[0].replicas_to),
        (Some(50), Some(60))
    );
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!("[targets.{service}]\nexecutor = \"log\"\ndry_run = false\n"),
    )
    .unwrap();
    let clock = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(decided_at as u64),
    )
    .to_string();
    let args = actuate_drain_args(
        &decisions,
        actions,
        &unique("loop.actuators"),
        &policy,
        &key_arg,
        &dir.join("actuator"),
    );
    let out = apo(&args).env("APO_NOW", &clock).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit: Vec<ActionRecord> = consume(actions, usize::MAX, Duration::from_secs(3))
        .iter()
        .map(|r| ActionRecord::decode(Some(&r.payload)).unwrap())
        .collect();
    assert_eq!(audit.len(), 1, "{audit:?}");
    let a = &audit[0];
    assert_eq!(
        (a.decision_id.as_str(), a.target.as_str(), a.outcome),
        (issued[0].id.as_str(), service, ActionOutcome::Succeeded)
    );
    a.executed_at
}

/// One `apo run --drain` of both pipelines with the models (10 s and 60 s windows), writing
/// scores to `anomalies` and forecasts to `forecasts`; `extra` flags last (they win).
fn drain_with_models(
    t: &Topics,
    dir: &std::path::Path,
    anomalies: &str,
    forecasts: &str,
    extra: &[&str],
) {
    let mut args = vec!["--drain"];
    args.extend_from_slice(extra);
    run_to_end(
        &run_with_models(t, dir, anomalies, forecasts, &args),
        Duration::from_secs(600),
    );
}

/// The arguments of `apo run` with the models (10 s and 60 s windows), writing scores to
/// `anomalies` and forecasts to `forecasts`; `extra` flags last (they win).
fn run_with_models(
    t: &Topics,
    dir: &std::path::Path,
    anomalies: &str,
    forecasts: &str,
    extra: &[&str],
) -> Vec<String> {
    let (iforest, lstm) = (
        artifacts().join("iforest.onnx").display().to_string(),
        artifacts().join("lstm.onnx").display().to_string(),
    );
    let mut args = vec![
        "--windows",
        "10s,60s",
        "--models",
        "true",
        "--anomaly-model",
        &iforest,
        "--forecast-model",
        &lstm,
        "--anomalies-topic",
        anomalies,
        "--forecasts-topic",
        forecasts,
        "--context-learn-windows",
        TEST_LEARN_WINDOWS,
    ];
    args.extend_from_slice(extra);
    apo_run_args(t, dir, &args)
}

fn records<R: serde::de::DeserializeOwned>(topic: &str, key: impl Fn(&R) -> String) -> Vec<R> {
    let mut v: Vec<R> = consume(topic, usize::MAX, Duration::from_secs(10))
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).expect("JSON record"))
        .collect();
    v.sort_by_key(|r| key(r));
    v
}

#[test]
fn a_restart_scores_and_forecasts_as_an_uninterrupted_run() {
    let base = (now_ms() - 2 * 3_600_000) / 3_600_000 * 3_600_000;
    let cut = base + 40 * 60_000;
    let pts = points(base);
    // traces that straddle the cut would split a RED window between the two runs
    let whole = |t: &[Span]| {
        t.iter().all(|s| span_end_ms(s) < cut) || t.iter().all(|s| span_end_ms(s) >= cut)
    };
    let spans = trace_messages(base, 1, whole);
    let before = |p: &(i32, Vec<u8>)| {
        let t: Vec<Span> = serde_json::from_slice(&p.1).unwrap();
        span_end_ms(&t[0]) < cut
    };

    // once, all of it
    let once = trace_topics("warm-once", 1);
    let (a1, f1) = (unique("warm-once.anomalies"), unique("warm-once.forecasts"));
    apo_ingest::kafka::ensure_topics(&client(), &[&a1, &f1], 1).unwrap();
    produce(&once.metrics, &messages(&pts, 1, 200));
    produce(&once.traces.as_ref().unwrap().spans, &spans);
    let dir1 = tempfile::tempdir().unwrap();
    drain_with_models(&once, dir1.path(), &a1, &f1, &["--actions-topic", ""]);

    // in two runs of the same group and data directory, split at minute 40
    let twice = trace_topics("warm-twice", 1);
    let (a2, f2) = (
        unique("warm-twice.anomalies"),
        unique("warm-twice.forecasts"),
    );
    apo_ingest::kafka::ensure_topics(&client(), &[&a2, &f2], 1).unwrap();
    let (early, late): (Vec<MetricPoint>, Vec<MetricPoint>) =
        pts.iter().cloned().partition(|p| p.timestamp < cut);
    let (early_spans, late_spans): (Vec<_>, Vec<_>) = spans.iter().cloned().partition(before);
    let dir2 = tempfile::tempdir().unwrap();
    produce(&twice.metrics, &messages(&early, 1, 200));
    produce(&twice.traces.as_ref().unwrap().spans, &early_spans);
    drain_with_models(&twice, dir2.path(), &a2, &f2, &["--actions-topic", ""]);
    produce(&twice.metrics, &messages(&late, 1, 200));
    produce(&twice.traces.as_ref().unwrap().spans, &late_spans);
    drain_with_models(&twice, dir2.path(), &a2, &f2, &["--actions-topic", ""]);

    let anomalies_once: Vec<AnomalyRecord> = records(&a1, AnomalyRecord::key);
    let anomalies_twice: Vec<AnomalyRecord> = records(&a2, AnomalyRecord::key);
    assert!(
        anomalies_once
            .iter()
            .any(|a| a.window_start >= cut && a.raised),
        "alerts after the cut, so the alert state is compared too"
    );
    assert!(anomalies_once
        .iter()
        .any(|a| a.metric.starts_with("red{") && a.window_start >= cut));
    assert_eq!(anomalies_twice.len(), anomalies_once.len());
    for (t, o) in anomalies_twice.iter().zip(&anomalies_once) {
        assert_eq!(t, o, "the restarted run differs");
    }
    let forecasts_once: Vec<ForecastRecord> = records(&f1, |f: &ForecastRecord| f.key());
    let forecasts_twice: Vec<ForecastRecord> = records(&f2, |f: &ForecastRecord| f.key());
    assert!(forecasts_once.iter().any(|f| f.window_start >= cut));
    assert_eq!(forecasts_twice, forecasts_once);
}

/// With the models on, the metrics job checkpoints their state (issue 30): each series'
/// feature history and alert state, its contextual detector and the forecaster's last values.
/// A run killed after a checkpoint, without the warm start from Parquet (so only the
/// checkpoint can carry that state), resumes from it, and every anomaly and forecast record it
/// writes, the replayed ones included, equals an uninterrupted run's.
#[test]
fn a_killed_run_with_the_models_resumes_their_state_from_a_checkpoint() {
    let base = (now_ms() - 2 * 3_600_000) / 3_600_000 * 3_600_000;
    let pts = points(base);
    let part = |from: i64, to: i64| -> Vec<MetricPoint> {
        pts.iter()
            .filter(|p| p.timestamp >= base + from * 60_000 && p.timestamp < base + to * 60_000)
            .cloned()
            .collect()
    };
    let no_actions = ["--actions-topic", ""];

    let once = topics("ckpt-models-once", 1);
    let (a1, f1) = (unique("ckpt-models-once.a"), unique("ckpt-models-once.f"));
    apo_ingest::kafka::ensure_topics(&client(), &[&a1, &f1], 1).unwrap();
    produce(&once.metrics, &messages(&pts, 1, 200));
    let dir1 = tempfile::tempdir().unwrap();
    drain_with_models(&once, dir1.path(), &a1, &f1, &no_actions);

    let twice = topics("ckpt-models-twice", 1);
    let (a2, f2) = (unique("ckpt-models-twice.a"), unique("ckpt-models-twice.f"));
    apo_ingest::kafka::ensure_topics(&client(), &[&a2, &f2], 1).unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let flags = [
        "--actions-topic",
        "",
        "--warm-start",
        "false",
        "--checkpoint-interval",
        "1s",
    ];
    let early = messages(&part(0, 38), 1, 200);
    produce(&twice.metrics, &early);
    let log = dir2.path().join("first.log");
    let mut first = apo(&run_with_models(&twice, dir2.path(), &a2, &f2, &flags))
        .env("APO_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // A checkpoint of everything read so far, then more input and a kill in its middle.
    let started = std::time::Instant::now();
    loop {
        let at = newest_manifest(dir2.path(), "metrics")
            .and_then(|m| m["lanes"][0]["positions"][0][1].as_i64());
        if at == Some(early.len() as i64) {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = first.kill();
            panic!(
                "no checkpoint of the {} messages read with the models on (newest at {at:?}): {}",
                early.len(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    produce(&twice.metrics, &messages(&part(38, 50), 1, 200));
    std::thread::sleep(Duration::from_millis(700));
    first.kill().unwrap();
    first.wait().unwrap();
    produce(&twice.metrics, &messages(&part(50, 70), 1, 200));
    let mut drain = run_with_models(&twice, dir2.path(), &a2, &f2, &flags);
    drain.push("--drain".into());
    let out = apo(&drain).env("APO_LOG", "info").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the restart: {said}");
    assert!(
        said.contains("resuming from the checkpoint"),
        "the restart did not resume from the checkpoint: {said}"
    );

    let anomalies_once: Vec<AnomalyRecord> = records(&a1, AnomalyRecord::key);
    let forecasts_once: Vec<ForecastRecord> = records(&f1, |f: &ForecastRecord| f.key());
    let cut = base + 38 * 60_000;
    assert!(
        anomalies_once
            .iter()
            .any(|a| a.window_start >= cut && a.raised && a.context_score.is_some()),
        "alerts and contextual scores after the checkpoint, so their state is compared too"
    );
    assert!(forecasts_once.iter().any(|f| f.window_start >= cut));
    // Every copy of a record (the replay writes some again) equals the uninterrupted run's.
    let check = |what: &str, once: Vec<(String, String)>, twice: Vec<(String, String)>| {
        let once: BTreeMap<String, String> = once.into_iter().collect();
        let mut seen = BTreeMap::new();
        for (k, v) in &twice {
            assert_eq!(
                once.get(k),
                Some(v),
                "{what} {k}: the restarted run differs"
            );
            *seen.entry(k.clone()).or_insert(0) += 1;
        }
        assert_eq!(
            seen.len(),
            once.len(),
            "{what}: every record, and only those"
        );
        let again = seen.values().filter(|n| **n > 1).count();
        println!("{what}: {} records, {again} written twice", once.len());
    };
    let as_pairs = |v: Vec<AnomalyRecord>| -> Vec<(String, String)> {
        v.iter()
            .map(|a| (a.key(), serde_json::to_string(a).unwrap()))
            .collect()
    };
    check(
        "anomaly",
        as_pairs(anomalies_once),
        as_pairs(records(&a2, AnomalyRecord::key)),
    );
    let as_pairs = |v: Vec<ForecastRecord>| -> Vec<(String, String)> {
        v.iter()
            .map(|f| {
                let k = format!("{}|{}s", f.key(), f.horizon_seconds);
                (k, serde_json::to_string(f).unwrap())
            })
            .collect()
    };
    check(
        "forecast",
        as_pairs(forecasts_once),
        as_pairs(records(&f2, |f: &ForecastRecord| f.key())),
    );
}

/// Contextual scores equal but for the last bits a JSON round trip may change.
/// The contextual detector's learning period in these runs: short enough that the 10 s series
/// of 70 minutes (420 windows) are scored after it (the default, 750, would leave them all
/// learning).
const TEST_LEARN_WINDOWS: &str = "100";

/// The alert settings of the runs here: defaults, but for the learning period.
fn test_alert() -> AlertConfig {
    AlertConfig {
        context: ContextConfig {
            learn_windows: TEST_LEARN_WINDOWS.parse().expect("a number"),
            ..ContextConfig::default()
        },
        ..AlertConfig::default()
    }
}

fn same_context(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-12,
        (a, b) => a.is_none() && b.is_none(),
    }
}
