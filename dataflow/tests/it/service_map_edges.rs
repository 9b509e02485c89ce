//! Service-map edges of a known topology.

use std::collections::BTreeMap;

use apo_dataflow::{trace_edges, trace_edges_with, Edge, EdgePartial, USER};
use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};

fn span(id: u64, parent: Option<u64>, svc: &str, kind: SpanKind, attrs: &[(&str, &str)]) -> Span {
    Span {
        links: Vec::new(),
        trace_id: TraceId(1),
        span_id: SpanId(id),
        parent_span_id: parent.map(SpanId),
        service: svc.into(),
        name: format!("op{id}"),
        kind,
        start_ns: 0,
        end_ns: 1_000_000 * id as i64,
        status: if id == 4 {
            SpanStatus::Error
        } else {
            SpanStatus::Unset
        },
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        follows_from: false,
        adjusted_count: 1,
    }
}

#[test]
fn edges_of_a_known_topology() {
    use SpanKind::*;
    let spans = vec![
        // user → frontend
        span(1, None, "frontend", Server, &[]),
        // frontend → cart (client/server pair)
        span(2, Some(1), "frontend", Client, &[]),
        span(3, Some(2), "cart", Server, &[]),
        // cart → orders (uninstrumented database, named by its db.name), failed
        span(
            4,
            Some(3),
            "cart",
            Client,
            &[("db.system", "postgresql"), ("db.name", "orders")],
        ),
        // cart → kafka → shipping (producer/consumer)
        span(5, Some(3), "cart", Producer, &[]),
        span(6, Some(5), "shipping", Consumer, &[]),
        // shipping → payments-api (peer.service, uninstrumented)
        span(
            7,
            Some(6),
            "shipping",
            Client,
            &[("peer.service", "payments-api")],
        ),
        // shipping → email, kinds missing (internal spans across a service change)
        span(8, Some(6), "email", Internal, &[]),
        // an internal span in the same service: no edge
        span(9, Some(8), "email", Internal, &[]),
        // a client span naming no peer: no edge
        span(10, Some(9), "email", Client, &[]),
    ];
    let mut got: BTreeMap<Edge, (u64, u64)> = BTreeMap::new();
    for c in trace_edges(&spans) {
        let e = got.entry(c.edge).or_default();
        e.0 += 1;
        e.1 += c.failed as u64;
    }
    let e = |c: &str, s: &str, t: &str| Edge {
        client: c.into(),
        server: s.into(),
        connection_type: t.into(),
    };
    let want: BTreeMap<Edge, (u64, u64)> = [
        (e(USER, "frontend", ""), (1, 0)),
        (e("frontend", "cart", ""), (1, 0)),
        (e("cart", "orders", "database"), (1, 1)),
        (e("cart", "shipping", "messaging_system"), (1, 0)),
        (e("shipping", "payments-api", "virtual_node"), (1, 0)),
        (e("shipping", "email", ""), (1, 0)),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
}

#[test]
fn edge_windows_sum_calls_failures_and_latency_exactly() {
    use SpanKind::*;
    // 50 traces frontend → cart, every 5th failing at the client, 1..50 ms.
    let mut calls = Vec::new();
    for i in 1..=50u64 {
        let mut client = span(2, Some(1), "frontend", Client, &[]);
        client.start_ns = 0;
        client.end_ns = i as i64 * 1_000_000;
        client.status = if i % 5 == 0 {
            SpanStatus::Error
        } else {
            SpanStatus::Ok
        };
        let server = span(3, Some(2), "cart", Server, &[]);
        calls.extend(
            trace_edges(&[span(1, None, "frontend", Server, &[]), client, server])
                .into_iter()
                .filter(|c| c.edge.client == "frontend"),
        );
    }
    let w = calls[0].window(10);
    let (mut a, mut b) = (EdgePartial::new(w.clone(), 0.01), EdgePartial::new(w, 0.01));
    for (i, c) in calls.iter().enumerate() {
        if i % 2 == 0 {
            a.add(c)
        } else {
            b.add(c)
        }
    }
    a.merge(&b);
    let rows = a.finish(1);
    assert_eq!(rows.len(), 1);
    let r = &rows[0].edge;
    assert_eq!((r.client.as_str(), r.server.as_str()), ("frontend", "cart"));
    assert_eq!((r.calls, r.failed), (50, 10));
    assert_eq!(r.latency_mean_ms, 25.5);
    assert_eq!(r.latency_max_ms, 50.0);
    // Exact p50 of 1..50 ms at rank floor(0.5 · 49) = 24 is 25 ms; within 1 %.
    assert!(
        (r.latency_p50_ms - 25.0).abs() <= 0.25,
        "{}",
        r.latency_p50_ms
    );
}

/// Dependency view: each edge gets the critical-path time spent on its server side. Written
/// out by hand: root R (frontend, 0–100 ms) → client C (frontend, 10–90) → server S (checkout,
/// 12–88) → database client D (checkout, 20–80). The critical path is R 0–10, C 10–12,
/// S 12–20, D 20–80, S 80–88, C 88–90, R 90–100.
#[test]
fn critical_path_time_is_attributed_to_the_edges_it_waits_on() {
    use apo_dataflow::attribute_critical;
    use apo_dataflow::path_record;
    use apo_dataflow::{AssembledTrace, Emitted};
    use SpanKind::*;
    let ms = 1_000_000i64;
    let timed = |id: u64, parent: Option<u64>, svc: &str, kind, from: i64, to: i64, db: bool| {
        let attrs: &[(&str, &str)] = if db {
            &[("db.system", "postgresql"), ("db.name", "orders")]
        } else {
            &[]
        };
        Span {
            start_ns: from * ms,
            end_ns: to * ms,
            status: SpanStatus::Unset,
            ..span(id, parent, svc, kind, attrs)
        }
    };
    let spans = vec![
        timed(1, None, "frontend", Server, 0, 100, false),
        timed(2, Some(1), "frontend", Client, 10, 90, false),
        timed(3, Some(2), "checkout", Server, 12, 88, false),
        timed(4, Some(3), "checkout", Client, 20, 80, true),
    ];
    let record = path_record(&AssembledTrace {
        trace_id: TraceId(1),
        spans: spans.clone(),
        complete: true,
        emitted: Emitted::Idle,
        fragment: 0,
    });
    let mut calls = trace_edges(&spans);
    attribute_critical(&spans, &record.segments, &mut calls);
    let got: BTreeMap<(String, String), f64> = calls
        .iter()
        .map(|c| {
            (
                (c.edge.client.clone(), c.edge.server.clone()),
                c.critical_ms,
            )
        })
        .collect();
    let want: BTreeMap<(String, String), f64> = [
        ((USER, "frontend"), 100.0),
        (("frontend", "checkout"), 76.0),
        (("checkout", "orders"), 60.0),
    ]
    .into_iter()
    .map(|((a, b), v)| ((a.to_string(), b.to_string()), v))
    .collect();
    assert_eq!(got, want);
}

/// The edges from `frontend` of a root span and one client span with `attrs` (no callee).
fn peer_of(attrs: &[(&str, &str)], peers: Option<&[&str]>) -> Vec<(String, String)> {
    use SpanKind::*;
    let spans = [
        span(1, None, "frontend", Server, &[]),
        span(2, Some(1), "frontend", Client, attrs),
    ];
    let calls = match peers {
        None => trace_edges(&spans),
        Some(p) => {
            let p: Vec<String> = p.iter().map(|a| a.to_string()).collect();
            trace_edges_with(&spans, &p)
        }
    };
    calls
        .into_iter()
        .filter(|c| c.edge.client == "frontend")
        .map(|c| (c.edge.server, c.edge.connection_type))
        .collect()
}

#[test]
fn uninstrumented_peers_are_named_as_the_servicegraph_connector_names_them() {
    let v = |a: &str, b: &str| vec![(a.to_string(), b.to_string())];
    // a gRPC client span: rpc.service before the address
    assert_eq!(
        peer_of(
            &[
                ("rpc.service", "shop.CartService"),
                ("server.address", "cart:8080")
            ],
            None
        ),
        v("shop.CartService", "virtual_node")
    );
    assert_eq!(
        peer_of(&[("server.address", "cart:8080")], None),
        v("cart:8080", "virtual_node")
    );
    // the attributes are configurable: the address first
    assert_eq!(
        peer_of(
            &[
                ("rpc.service", "shop.CartService"),
                ("server.address", "cart:8080")
            ],
            Some(&["server.address", "rpc.service"])
        ),
        v("cart:8080", "virtual_node")
    );
    // databases by their name, whatever the peer attributes say; by their system without one
    assert_eq!(
        peer_of(
            &[
                ("db.system", "postgresql"),
                ("db.namespace", "orders"),
                ("peer.service", "pg")
            ],
            None
        ),
        v("orders", "database")
    );
    assert_eq!(
        peer_of(&[("db.system", "redis")], None),
        v("redis", "database")
    );
    // nothing that names it: no edge
    assert!(peer_of(&[("http.method", "GET")], None).is_empty());
}

#[test]
fn a_call_failed_when_either_side_failed() {
    use SpanKind::*;
    let mut server = span(3, Some(2), "cart", Server, &[]);
    server.status = SpanStatus::Error;
    let mut client = span(2, Some(1), "frontend", Client, &[]);
    client.status = SpanStatus::Ok;
    let calls = trace_edges(&[span(1, None, "frontend", Server, &[]), client, server]);
    let c = calls
        .iter()
        .find(|c| c.edge.client == "frontend")
        .expect("frontend -> cart");
    assert_eq!(c.edge.server, "cart");
    assert!(c.failed, "the server side failed");
}

#[test]
fn server_side_latency_is_the_callee_spans_and_the_client_spans_for_a_database() {
    use SpanKind::*;
    // span k lasts k ms (see `span`)
    let spans = vec![
        span(1, None, "frontend", Server, &[]),
        span(2, Some(1), "frontend", Client, &[]),
        span(5, Some(2), "cart", Server, &[]),
        span(
            6,
            Some(5),
            "cart",
            Client,
            &[("db.system", "postgresql"), ("db.name", "orders")],
        ),
    ];
    let calls = trace_edges(&spans);
    let by_edge: BTreeMap<(String, String), (f64, f64)> = calls
        .iter()
        .map(|c| {
            (
                (c.edge.client.clone(), c.edge.server.clone()),
                (c.duration_ms, c.server_duration_ms),
            )
        })
        .collect();
    assert_eq!(by_edge[&("frontend".into(), "cart".into())], (2.0, 5.0));
    assert_eq!(by_edge[&("cart".into(), "orders".into())], (6.0, 6.0));
    assert_eq!(by_edge[&(USER.into(), "frontend".into())], (1.0, 1.0));
    // a window of them: the server side's own statistics
    let w = calls[0].window(10);
    let mut p = EdgePartial::new(w, 0.01);
    for c in &calls {
        p.add(c);
    }
    let rows = p.finish(1);
    let fc = rows
        .iter()
        .find(|r| r.edge.client == "frontend")
        .expect("frontend -> cart");
    assert_eq!(
        (fc.edge.latency_max_ms, fc.edge.server_latency_max_ms),
        (2.0, 5.0)
    );
    assert_eq!(fc.edge.server_latency_mean_ms, 5.0);
    assert!((fc.edge.server_latency_p50_ms - 5.0).abs() <= 5.0 * 0.01);
}

#[test]
fn a_sampled_trace_counts_as_the_traces_it_stands_for() {
    use SpanKind::*;
    let trace = |adjusted: u64| {
        let mut spans = vec![
            span(1, None, "frontend", Server, &[]),
            span(2, Some(1), "frontend", Client, &[]),
            span(4, Some(2), "cart", Server, &[]), // span 4 is an error (see `span`)
        ];
        for s in &mut spans {
            s.adjusted_count = adjusted;
        }
        trace_edges(&spans)
    };
    let rows = |calls: Vec<apo_dataflow::EdgeCall>| {
        let mut p = EdgePartial::new(calls[0].window(10), 0.01);
        for c in &calls {
            p.add(c);
        }
        p.finish(1)
    };
    // one trace sampled at 1/5 against five unsampled ones: the same edges
    let sampled = rows(trace(5));
    let five = rows((0..5).flat_map(|_| trace(1)).collect());
    assert_eq!(sampled.len(), 2);
    for (a, b) in sampled.iter().zip(&five) {
        assert_eq!(a.edge, b.edge);
        assert_eq!(a.latency, b.latency);
    }
    let fc = sampled
        .iter()
        .find(|r| r.edge.client == "frontend")
        .unwrap();
    assert_eq!((fc.edge.calls, fc.edge.failed), (5, 5));
}
