//! The current service map over a sliding horizon: totals are the sum of the windows closed
//! within the horizon, a revision replaces its window's value, and an edge whose traffic
//! stopped is retracted exactly one horizon after its last window closed; the horizon's latency
//! percentiles are those of every call in it (the windows' sketches merged), against the exact
//! quantiles.

use std::sync::{Arc, Mutex};

use apo_dataflow::current_map;
use apo_dataflow::DDSketch;
use apo_dataflow::EdgeWindow;
use apo_schemas::service_map::{ServiceMapCurrent, ServiceMapEdge};
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

const MIN: i64 = 60_000;

/// A window with `calls` calls taking 1, 2, …, `calls` ms.
fn edge(server: &str, window_start: i64, calls: u64, failed: u64, revision: u32) -> EdgeWindow {
    let mut sketch = DDSketch::new(0.01);
    for ms in 1..=calls {
        sketch.add(ms as f64);
    }
    EdgeWindow {
        edge: record(server, window_start, calls, failed, revision),
        latency: sketch.bins(),
    }
}

fn record(
    server: &str,
    window_start: i64,
    calls: u64,
    failed: u64,
    revision: u32,
) -> ServiceMapEdge {
    ServiceMapEdge {
        client: "frontend".into(),
        server: server.into(),
        connection_type: String::new(),
        window_seconds: 60,
        window_start,
        window_end: window_start + MIN,
        calls,
        failed,
        latency_mean_ms: 2.0,
        latency_p50_ms: 2.0,
        latency_p95_ms: calls as f64,
        latency_p99_ms: 3.0,
        // The calls' latencies are 1..=calls ms (the sketch above): the largest is `calls`.
        latency_max_ms: calls as f64,
        server_latency_mean_ms: calls as f64,
        server_latency_p50_ms: calls as f64,
        server_latency_p95_ms: calls as f64,
        server_latency_p99_ms: calls as f64,
        server_latency_max_ms: calls as f64,
        critical_path_ms: 0.0,
        relative_accuracy: 0.01,
        revision,
    }
}

/// (as_of, server, change, windows, calls, failed, worst p95), and the horizon's p95
type Seen = ((i64, String, String, u32, u64, u64, f64), f64);

#[test]
fn sums_over_the_horizon_revises_and_retracts() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let out = seen.clone();
    timely::execute_directly(move |worker| {
        let mut input: InputHandleVec<u64, EdgeWindow> = InputHandleVec::new();
        let probe: ProbeHandle<u64> = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            current_map(input.to_stream(scope), 2 * MIN, 0.01, None, None)
                .inspect(move |r: &ServiceMapCurrent| {
                    out.lock().unwrap().push((
                        (
                            r.as_of,
                            r.server.clone(),
                            r.change.clone(),
                            r.windows,
                            r.calls,
                            r.failed,
                            r.worst_window_p95_ms,
                        ),
                        r.latency_p95_ms,
                    ))
                })
                .probe_with(&probe);
        });
        // Windows are fed at their close: cart's traffic stops after the first window.
        let steps: Vec<(i64, Vec<EdgeWindow>)> = vec![
            (
                MIN,
                vec![edge("checkout", 0, 10, 1, 1), edge("cart", 0, 5, 0, 1)],
            ),
            (2 * MIN, vec![edge("checkout", MIN, 7, 0, 1)]),
            // Late spans revise checkout's second window.
            (2 * MIN + 30_000, vec![edge("checkout", MIN, 9, 2, 2)]),
        ];
        for (t, rows) in steps {
            input.advance_to(t as u64);
            for r in rows {
                input.send(r);
            }
            worker.step_while(|| probe.less_than(input.time()));
        }
        input.advance_to(10 * MIN as u64);
        worker.step_while(|| probe.less_than(input.time()));
    });
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by(|a, b| (a.0 .0, &a.0 .1).cmp(&(b.0 .0, &b.0 .1)));
    let got: Vec<_> = seen.iter().map(|s| s.0.clone()).collect();
    let r = |t: i64, s: &str, c: &str, w: u32, calls: u64, failed: u64, p95: f64| {
        (t, s.to_string(), c.to_string(), w, calls, failed, p95)
    };
    assert_eq!(
        got,
        vec![
            r(MIN, "cart", "upsert", 1, 5, 0, 5.0),
            r(MIN, "checkout", "upsert", 1, 10, 1, 10.0),
            r(2 * MIN, "checkout", "upsert", 2, 17, 1, 10.0),
            r(2 * MIN + 30_000, "checkout", "upsert", 2, 19, 3, 10.0),
            // One horizon after the first windows closed: cart is gone, checkout keeps its second.
            r(3 * MIN, "cart", "retract", 0, 0, 0, 0.0),
            r(3 * MIN, "checkout", "upsert", 1, 9, 2, 9.0),
            r(4 * MIN, "checkout", "retract", 0, 0, 0, 0.0),
        ]
    );
    // The horizon's p95: the exact p95 of every call in the windows present (1..=n ms each),
    // within the sketch's 1 %.
    let exact = |windows: &[u64]| {
        let mut v: Vec<f64> = windows
            .iter()
            .flat_map(|&n| (1..=n).map(|x| x as f64))
            .collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f64::total_cmp);
        v[(0.95 * (v.len() - 1) as f64).floor() as usize]
    };
    let present: [&[u64]; 7] = [&[5], &[10], &[10, 7], &[10, 9], &[], &[9], &[]];
    for (s, windows) in seen.iter().zip(present) {
        let want = exact(windows);
        assert!(
            (s.1 - want).abs() <= 0.01 * want,
            "{:?}: p95 {} vs exact {want}",
            s.0,
            s.1
        );
    }
}
