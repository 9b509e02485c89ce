//! The trace pipeline end to end through the worker loop (from memory): RED equals the direct
//! computation, SLO states equal burn trackers fed exact per-window counts, every trace gets
//! one complete critical path, the service map has the topology's edges, shares add up, every
//! RED row's windows are scored as the forest scores them here, and one worker equals two.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use apo_dataflow::{default_objectives, BurnConfig, BurnTracker};
use apo_dataflow::{red_series_name, ModelConfig, Scorable};
use apo_dataflow::{RedAnomalies, SpanConfig, SpanJob, SpanSinks};
use apo_dataflow::{RedPartial, RedWindow};
use apo_ingest::trace_generator::{TraceGenerator, TraceGeneratorConfig};
use apo_models::alerting::{AlertConfig, AlertState};
use apo_models::context::{ContextConfig, ContextDetector};
use apo_models::features::{KeyHistory, MIN_HISTORY};
use apo_models::IsolationForest;
use apo_schemas::critical_path::{CriticalPathRecord, CriticalPathShare};
use apo_schemas::model_output::AnomalyRecord;
use apo_schemas::red::RedStats;
use apo_schemas::service_map::ServiceMapEdge;
use apo_schemas::slo::SloState;
use apo_schemas::Span;

use apo_dataflow::testing::run_from_memory;
use apo_dataflow::MemorySink;

type Out<R> = Arc<Mutex<Vec<R>>>;

struct Outputs {
    red: Out<RedStats>,
    paths: Out<CriticalPathRecord>,
    shares: Out<CriticalPathShare>,
    edges: Out<ServiceMapEdge>,
    slo: Out<SloState>,
    anomalies: Out<AnomalyRecord>,
}

fn iforest() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/artifacts/iforest.onnx")
}

fn traces() -> Vec<Vec<Span>> {
    let now = apo_core::clock::now_ms();
    let mut g = TraceGenerator::new(&TraceGeneratorConfig {
        start_ms: (now - 3_600_000) / 60_000 * 60_000,
        rate: 20.0,
        ..Default::default()
    });
    (0..2_000).map(|_| g.next_trace()).collect()
}

fn run(workers: usize, traces: &[Vec<Span>]) -> Outputs {
    let out = Outputs {
        red: Default::default(),
        paths: Default::default(),
        shares: Default::default(),
        edges: Default::default(),
        slo: Default::default(),
        anomalies: Default::default(),
    };
    let payloads: Vec<Vec<u8>> = traces
        .iter()
        .map(|t| serde_json::to_vec(t).unwrap())
        .collect();
    let (r, p, s, e, o, a) = (
        out.red.clone(),
        out.paths.clone(),
        out.shares.clone(),
        out.edges.clone(),
        out.slo.clone(),
        out.anomalies.clone(),
    );
    run_from_memory(workers, payloads, move || {
        let sinks = SpanSinks {
            red: vec![Box::new(MemorySink::sharing(r.clone()))],
            critical_path: vec![Box::new(MemorySink::sharing(p.clone()))],
            critical_path_share: vec![Box::new(MemorySink::sharing(s.clone()))],
            service_map: vec![Box::new(MemorySink::sharing(e.clone()))],
            slo: vec![Box::new(MemorySink::sharing(o.clone()))],
            service_map_current: Vec::new(),
        };
        SpanJob::new(
            SpanConfig {
                window_seconds: 10,
                ..Default::default()
            },
            sinks,
        )
        .with_anomalies(RedAnomalies {
            config: ModelConfig {
                anomaly_model: Some(iforest()),
                alert: test_alert(),
                ..ModelConfig::default()
            },
            sinks: vec![Box::new(MemorySink::sharing(a.clone()))],
            inputs: Default::default(),
        })
    });
    out
}

fn sorted<R: Clone>(v: &Out<R>, key: impl Fn(&R) -> String) -> Vec<R> {
    let mut rows = v.lock().unwrap().clone();
    rows.sort_by_key(|r| key(r));
    rows
}

#[test]
fn spans_to_red_paths_shares_and_map() {
    let t = traces();
    let one = run(1, &t);
    let all: Vec<Span> = t.iter().flatten().cloned().collect();

    // RED: the direct computation over all spans.
    let mut parts: BTreeMap<RedWindow, RedPartial> = BTreeMap::new();
    for s in &all {
        let w = RedPartial::window_of(s, 10);
        parts
            .entry(w.clone())
            .or_insert_with(|| RedPartial::new(w, 0.01, 100))
            .add(s);
    }
    let mut want: Vec<RedStats> = parts.values().flat_map(|p| p.finish(1)).collect();
    want.sort_by_key(|r| r.key());
    let red = sorted(&one.red, |r| r.key());
    assert_eq!(red.len(), want.len());
    for (g, w) in red.iter().zip(&want) {
        assert_eq!(
            (g.key(), g.calls, g.operation_errors),
            (w.key(), w.calls, w.operation_errors)
        );
        assert_eq!(
            (g.duration_p99_ms, g.duration_max_ms),
            (w.duration_p99_ms, w.duration_max_ms)
        );
    }

    // SLOs: per (objective, service), exact counts of each 10 s window with covered spans,
    // fed to a burn tracker in window order.
    let objectives = default_objectives();
    let mut counts: BTreeMap<(usize, String, i64), (u64, u64)> = BTreeMap::new();
    for s in &all {
        let w = RedPartial::window_of(s, 10);
        for (i, o) in objectives.iter().enumerate() {
            if o.covers(s) {
                let c = counts
                    .entry((i, s.service.clone(), w.window_start))
                    .or_default();
                c.0 += 1;
                c.1 += o.is_bad(s) as u64;
            }
        }
    }
    let mut trackers: BTreeMap<(usize, String), BurnTracker> = BTreeMap::new();
    let mut want_slo: Vec<SloState> = Vec::new();
    for ((i, service, start), (events, bad)) in &counts {
        let t = trackers.entry((*i, service.clone())).or_insert_with(|| {
            BurnTracker::new(objectives[*i].clone(), service, 10, BurnConfig::default())
        });
        want_slo.push(t.push(*start, *events, *bad));
    }
    want_slo.sort_by_key(|r| r.key());
    let slo = sorted(&one.slo, |r| r.key());
    assert!(want_slo.iter().any(|s| s.bad_events > 0));
    assert_eq!(slo, want_slo);

    // One complete critical path per trace.
    let paths = sorted(&one.paths, |r| r.key());
    assert_eq!(paths.len(), t.len());
    assert!(paths.iter().all(|p| p.complete && p.fragment == 0));

    // Shares add up to 1 per window; the map has the topology's edges.
    let shares = sorted(&one.shares, |r| r.key());
    let mut per_window: BTreeMap<i64, f64> = BTreeMap::new();
    for s in &shares {
        *per_window.entry(s.window_start).or_default() += s.share;
    }
    assert!(
        per_window.values().all(|v| (v - 1.0).abs() < 1e-9),
        "{per_window:?}"
    );
    let edges: BTreeSet<(String, String)> = one
        .edges
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.client.clone(), e.server.clone()))
        .collect();
    assert_eq!(edges.len(), 12, "{edges:?}");

    // Anomalies: every RED row's windows past the first MIN_HISTORY, scored as here.
    let model = IsolationForest::load(&iforest()).unwrap();
    let alert = test_alert();
    let mut series: BTreeMap<(String, String), Vec<&RedStats>> = BTreeMap::new();
    for r in &red {
        series
            .entry((r.service_name.clone(), red_series_name(r)))
            .or_default()
            .push(r);
    }
    // per (service, series, window start): forest score, in alert, contextual score
    type Want = (f64, bool, Option<f64>);
    let mut want_a: BTreeMap<(String, String, i64), Want> = BTreeMap::new();
    for (k, rows) in series.iter_mut() {
        rows.sort_by_key(|r| r.window_start);
        let (mut hist, mut state) = (KeyHistory::default(), AlertState::default());
        let mut context = ContextDetector::default();
        for r in rows.iter() {
            // the contextual detector follows the duration p95
            let c = context.step(&alert.context, r.duration_p95_ms);
            if let Some(f) = hist.push(r.signals()) {
                let s = f64::from(model.score(&[f.map(|x| x as f32)]).unwrap()[0]);
                let o = state.step(&alert, model.meta().threshold, r.window_end, s, c);
                want_a.insert(
                    (k.0.clone(), k.1.clone(), r.window_start),
                    (s, o.is_anomaly, c),
                );
            }
        }
    }
    let anomalies = sorted(&one.anomalies, |r| r.key());
    assert!(
        want_a.len() > 10,
        "enough RED series with {MIN_HISTORY} windows of history: {}",
        want_a.len()
    );
    assert_eq!(
        anomalies.len(),
        want_a.len(),
        "one score per RED window past the history"
    );
    let with_context = anomalies
        .iter()
        .filter(|a| a.context_score.is_some())
        .count();
    assert!(
        with_context > 10,
        "RED windows past the contextual detector's learning: {with_context}"
    );
    for a in &anomalies {
        let (s, active, context) = want_a[&(a.service.clone(), a.metric.clone(), a.window_start)];
        assert_eq!(a.context_score, context, "{}: contextual score", a.key());
        assert!(
            (a.score - s).abs() < 1e-6,
            "{}: {} vs {s}",
            a.key(),
            a.score
        );
        assert_eq!(a.is_anomaly, active, "{}", a.key());
        assert!(a.metric.starts_with("red{span.name=\""), "{}", a.metric);
        assert_eq!(a.window_seconds, 10);
    }

    // Two workers: the same rows.
    let two = run(2, &t);
    assert_eq!(sorted(&two.paths, |r| r.key()), paths);
    assert_eq!(sorted(&two.shares, |r| r.key()).len(), shares.len());
    assert_eq!(sorted(&two.slo, |r| r.key()), slo);
    let red2 = sorted(&two.red, |r| r.key());
    assert_eq!(
        red2.iter().map(|r| (r.key(), r.calls)).collect::<Vec<_>>(),
        red.iter().map(|r| (r.key(), r.calls)).collect::<Vec<_>>()
    );
    assert_eq!(sorted(&two.anomalies, |r| r.key()), anomalies);
}

/// The alert settings of this test: defaults, but a learning period short enough for the
/// contextual detector to score the test's RED series (100 s of traces: 10 windows; the
/// default, 750 windows, would leave them all learning).
fn test_alert() -> AlertConfig {
    AlertConfig {
        context: ContextConfig {
            learn_windows: 4,
            ..ContextConfig::default()
        },
        ..AlertConfig::default()
    }
}
