//! The current service map over a sliding horizon: totals are the sum of the windows closed
//! within the horizon, a revision replaces its window's value, and an edge whose traffic
//! stopped is retracted exactly one horizon after its last window closed.

use std::sync::{Arc, Mutex};

use apo_dataflow::map_view::current_map;
use apo_schemas::service_map::{ServiceMapCurrent, ServiceMapEdge};
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

const MIN: i64 = 60_000;

fn edge(server: &str, window_start: i64, calls: u64, failed: u64, revision: u32) -> ServiceMapEdge {
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
        latency_max_ms: 4.0,
        critical_path_ms: 0.0,
        relative_accuracy: 0.01,
        revision,
    }
}

/// (as_of, server, change, windows, calls, failed, worst p95)
type Seen = (i64, String, String, u32, u64, u64, f64);

#[test]
fn sums_over_the_horizon_revises_and_retracts() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let out = seen.clone();
    timely::execute_directly(move |worker| {
        let mut input: InputHandleVec<u64, ServiceMapEdge> = InputHandleVec::new();
        let probe: ProbeHandle<u64> = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            current_map(input.to_stream(scope), 2 * MIN)
                .inspect(move |r: &ServiceMapCurrent| {
                    out.lock().unwrap().push((
                        r.as_of,
                        r.server.clone(),
                        r.change.clone(),
                        r.windows,
                        r.calls,
                        r.failed,
                        r.worst_window_p95_ms,
                    ))
                })
                .probe_with(&probe);
        });
        // Windows are fed at their close: cart's traffic stops after the first window.
        let steps: Vec<(i64, Vec<ServiceMapEdge>)> = vec![
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
    let mut got = seen.lock().unwrap().clone();
    got.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
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
}
