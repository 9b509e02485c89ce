//! The trace generator's web shop through the analyses: the service map has exactly the
//! topology's edges, every critical path covers its trace, and the slow external payment API
//! leads the critical-path shares.

use std::collections::BTreeSet;

use apo_dataflow::{path_record, SharePartial, ShareWindow};
use apo_dataflow::{trace_edges, Edge};
use apo_dataflow::{AssembledTrace, Emitted};
use apo_ingest::trace_generator::{TraceGenerator, TraceGeneratorConfig};

#[test]
fn the_web_shop_topology_and_its_critical_paths() {
    let mut g = TraceGenerator::new(&TraceGeneratorConfig {
        start_ms: 1_764_115_200_000,
        incidents_per_hour: 0.0,
        ..Default::default()
    });
    let mut edges = BTreeSet::new();
    let mut shares = SharePartial::new(
        ShareWindow {
            window_seconds: 3600,
            window_start: 1_764_115_200_000,
        },
        5,
    );
    for _ in 0..3_000 {
        let spans = g.next_trace();
        for c in trace_edges(&spans) {
            edges.insert(c.edge);
        }
        let t = AssembledTrace {
            trace_id: spans[0].trace_id,
            spans,
            complete: true,
            emitted: Emitted::Idle,
            fragment: 0,
        };
        let r = path_record(&t);
        let covered: i64 = r.segments.iter().map(|s| s.end_ns - s.start_ns).sum();
        let root = &t.spans[0];
        assert_eq!(
            covered,
            root.end_ns - root.start_ns,
            "the path covers the root span"
        );
        assert!(
            r.segments.iter().all(|s| s.operation != "orders process"),
            "async consumer never blocks"
        );
        shares.add(&r);
    }
    let e = |c: &str, s: &str, t: &str| Edge {
        client: c.into(),
        server: s.into(),
        connection_type: t.into(),
    };
    let want: BTreeSet<Edge> = [
        e("user", "frontend", ""),
        e("frontend", "product-catalog", ""),
        e("frontend", "recommendation", ""),
        e("frontend", "cart", ""),
        e("frontend", "checkout", ""),
        e("product-catalog", "catalog", "database"),
        e("cart", "redis", "virtual_node"),
        e("checkout", "payment", ""),
        e("payment", "stripe-api", "virtual_node"),
        e("checkout", "shipping", ""),
        e("checkout", "orders", "database"),
        e("checkout", "email", "messaging_system"),
    ]
    .into_iter()
    .collect();
    assert_eq!(edges, want);
    let rows = shares.finish(1);
    let top: Vec<(String, String)> = rows
        .iter()
        .take(2)
        .map(|r| (r.service.clone(), r.operation.clone()))
        .collect();
    assert!(
        top.contains(&("payment".to_string(), "POST /v1/charges".to_string())),
        "{rows:#?}"
    );
}
