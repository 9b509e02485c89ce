//! Service-map edges from the spans of one trace, in the shape of the OpenTelemetry
//! `servicegraph` connector (client, server, connection type; failed; latency).
//!
//! 1. A CLIENT or PRODUCER span with a SERVER or CONSUMER child in another service: an edge
//!    from the client's service to the child's (`messaging_system` for producer → consumer).
//!    A CONSUMER span linked to a PRODUCER span of another trace is paired with it across
//!    traces ([`crate::traces::links`]).
//! 2. A parent and child in different services where (1) does not apply (kinds missing): an
//!    edge from the parent's service to the child's.
//! 3. A CLIENT or PRODUCER span with no such child: the peer is not instrumented. A database
//!    client span (`db.name`, `db.namespace` or `db.system`) makes an edge to the database, named
//!    as the `servicegraph` connector names it, by its `db.name` (or `db.namespace`; by its
//!    `db.system` without either), connection type `database`. Any other becomes a virtual node
//!    named by the first of the peer attributes it carries (configurable; by default
//!    `peer.service`, `rpc.service`, `server.address`, `net.peer.name`, `net.sock.peer.addr`,
//!    `net.sock.peer.name`, `http.url`, `http.target`), connection type `virtual_node`. Spans
//!    naming none of these make no edge.
//! 4. Root spans: an edge from the virtual node `user` to the root's service (for a root
//!    CONSUMER span linked into another trace, only when its producer does not come).
//!
//! A sampled span stands for as many calls as its adjusted count (OpenTelemetry's `ot=th:`
//! threshold): calls, failures and the latency sketches count it that many times.
//!
//! A call failed when either side of it has status error (as the connector has it). Its
//! latency is the span that describes it (the client span, else the callee's); its server-side
//! latency the callee's span (for a database or a virtual node, the client span, as the
//! connector has it).

use std::collections::HashMap;

use apo_schemas::critical_path::PathSegment;
use apo_schemas::{Span, SpanKind, SpanStatus};

use crate::ops::exact_sum::ExactSum;
use crate::traces::red::Durations;
use serde::{Deserialize, Serialize};

/// The virtual node for callers outside the traced system.
pub const USER: &str = "user";

/// The attributes that name an uninstrumented peer, first found first (the `servicegraph`
/// connector's `virtual_node_peer_attributes`, with `peer.service` and `server.address` of the
/// current semantic conventions ahead of the older names).
pub const DEFAULT_PEER_ATTRIBUTES: &[&str] = &[
    "peer.service",
    "rpc.service",
    "server.address",
    "net.peer.name",
    "net.sock.peer.addr",
    "net.sock.peer.name",
    "http.url",
    "http.target",
];

/// [`DEFAULT_PEER_ATTRIBUTES`], owned.
pub fn default_peer_attributes() -> Vec<String> {
    DEFAULT_PEER_ATTRIBUTES
        .iter()
        .map(|a| a.to_string())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
/// A directed edge of the service map.
pub struct Edge {
    /// The calling service (or `user`).
    pub client: String,
    /// The called service, database or queue.
    pub server: String,
    /// `""` between instrumented services, `messaging_system`, `database` or `virtual_node`.
    pub connection_type: String,
}

/// One call over an edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeCall {
    /// The edge.
    pub edge: Edge,
    /// Whether either side failed.
    pub failed: bool,
    /// The client side's latency (the span describing the call), ms.
    pub duration_ms: f64,
    /// The server side's latency: the callee span's duration, ms.
    pub server_duration_ms: f64,
    /// How many calls it stands for (the sampling's adjusted count of the span describing it).
    pub weight: u64,
    /// When the call ended (ms): its event time.
    pub end_ms: i64,
    /// The span whose subtree is the server side of the call (the server span; the client span
    /// itself for an uninstrumented peer or a root).
    pub callee: u64,
    /// Time (ms) of the trace's critical path inside the server side (see [`attribute_critical`]).
    pub critical_ms: f64,
}

fn edge(client: &str, server: &str, connection_type: &str) -> Edge {
    Edge {
        client: client.to_string(),
        server: server.to_string(),
        connection_type: connection_type.to_string(),
    }
}

/// A call measured on `s` (the client span where there is one), served by `callee`'s subtree.
fn call(e: Edge, s: &Span, callee: &Span) -> EdgeCall {
    EdgeCall {
        edge: e,
        failed: s.status == SpanStatus::Error,
        duration_ms: s.duration_ns() as f64 / 1e6,
        server_duration_ms: callee.duration_ns() as f64 / 1e6,
        weight: s.adjusted_count.max(1),
        end_ms: s.event_time_ms(),
        callee: callee.span_id.0,
        critical_ms: 0.0,
    }
}

/// Adds to each call the critical-path time spent on its server side: the segments whose span
/// is the callee or below it. This is the dependency view: how much of the caller's critical
/// path (its latency) an edge's server accounts for. Nested edges share the time (a database
/// call below payment counts for checkout → payment and for payment → the database).
pub fn attribute_critical(spans: &[Span], segments: &[PathSegment], calls: &mut [EdgeCall]) {
    if calls.is_empty() {
        return;
    }
    let parent: HashMap<u64, u64> = spans
        .iter()
        .filter_map(|s| s.parent_span_id.map(|p| (s.span_id.0, p.0)))
        .collect();
    let mut chain: Vec<u64> = Vec::new();
    for seg in segments {
        let Some(id) = seg
            .span_id
            .as_deref()
            .and_then(|h| apo_schemas::SpanId::parse(h).ok())
        else {
            continue;
        };
        chain.clear();
        let mut at = Some(id.0);
        while let Some(x) = at {
            if chain.contains(&x) || chain.len() > spans.len() {
                break; // a cycle of parent ids
            }
            chain.push(x);
            at = parent.get(&x).copied();
        }
        let ms = (seg.end_ns - seg.start_ns).max(0) as f64 / 1e6;
        for c in calls.iter_mut() {
            if chain.contains(&c.callee) {
                c.critical_ms += ms;
            }
        }
    }
}

/// The uninstrumented peer a client span names, with its connection type: its database, else
/// the first of `peers` it carries.
fn virtual_peer(s: &Span, peers: &[String]) -> Option<(String, &'static str)> {
    let a = &s.attributes;
    let named = |k: &str| a.get(k).filter(|v| !v.is_empty());
    if let Some(db) = named("db.name")
        .or_else(|| named("db.namespace"))
        .or_else(|| named("db.system"))
    {
        return Some((db.clone(), "database"));
    }
    peers
        .iter()
        .find_map(|k| named(k))
        .map(|p| (p.clone(), "virtual_node"))
}

/// The edge calls of one trace, in span order, peers named by [`DEFAULT_PEER_ATTRIBUTES`].
pub fn trace_edges(spans: &[Span]) -> Vec<EdgeCall> {
    trace_edges_with(spans, &default_peer_attributes())
}

/// The edge calls of one trace, in span order, uninstrumented peers named by the first of
/// `peers` a client span carries.
pub fn trace_edges_with(spans: &[Span], peers: &[String]) -> Vec<EdgeCall> {
    let by_id: HashMap<u64, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.0, i))
        .collect();
    // Children per span, in span order.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    for (i, s) in spans.iter().enumerate() {
        if let Some(p) = s.parent_span_id.and_then(|p| by_id.get(&p.0)) {
            if *p != i {
                children[*p].push(i);
            }
        }
    }
    let mut out = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        let parent = s
            .parent_span_id
            .and_then(|p| by_id.get(&p.0))
            .map(|&p| &spans[p]);
        if parent.is_none() && !crate::traces::links::links_out(s) {
            out.push(call(edge(USER, &s.service, ""), s, s));
        }
        let is_client = matches!(s.kind, SpanKind::Client | SpanKind::Producer);
        if is_client {
            let served: Vec<&Span> = children[i]
                .iter()
                .map(|&c| &spans[c])
                .filter(|c| matches!(c.kind, SpanKind::Server | SpanKind::Consumer))
                .collect();
            if served.is_empty() {
                if let Some((peer, kind)) = virtual_peer(s, peers) {
                    out.push(call(edge(&s.service, &peer, kind), s, s));
                }
            }
            for c in served {
                if c.service != s.service {
                    let kind = if s.kind == SpanKind::Producer {
                        "messaging_system"
                    } else {
                        ""
                    };
                    let mut both = call(edge(&s.service, &c.service, kind), s, c);
                    both.failed |= c.status == SpanStatus::Error;
                    out.push(both);
                }
            }
        }
        // Across a change of service without a client span above: the parent is the caller.
        if let Some(p) = parent {
            let paired = matches!(p.kind, SpanKind::Client | SpanKind::Producer)
                && matches!(s.kind, SpanKind::Server | SpanKind::Consumer);
            if !paired && p.service != s.service {
                out.push(call(edge(&p.service, &s.service, ""), s, s));
            }
        }
    }
    out
}

/// Identity of one window of the service map.
pub type MapWindow = crate::ops::aggregate::WindowId;

impl EdgeCall {
    /// The window of `size_s` seconds holding the call.
    pub fn window(&self, size_s: u32) -> MapWindow {
        MapWindow::containing(self.end_ms, size_s)
    }
}

/// Calls, failures and latency of one edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeStats {
    pub failed: u64,
    pub latency: Durations,
    /// The server side's latency.
    pub server: Durations,
    /// Kept exactly ([`ExactSum`]): the same however calls were grouped and merged.
    pub critical_ms: ExactSum,
}

/// The edges of some of one window's traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgePartial {
    /// The window.
    pub key: MapWindow,
    /// Relative accuracy of the latency sketches.
    pub alpha: f64,
    /// Each edge's calls.
    pub edges: std::collections::BTreeMap<Edge, EdgeStats>,
}

impl EdgePartial {
    /// An empty partial of `key`.
    pub fn new(key: MapWindow, alpha: f64) -> Self {
        EdgePartial {
            key,
            alpha,
            edges: Default::default(),
        }
    }

    /// Counts one call.
    pub fn add(&mut self, c: &EdgeCall) {
        let alpha = self.alpha;
        let e = self
            .edges
            .entry(c.edge.clone())
            .or_insert_with(|| EdgeStats {
                failed: 0,
                latency: Durations::new(alpha),
                server: Durations::new(alpha),
                critical_ms: ExactSum::new(),
            });
        let n = c.weight.max(1);
        e.failed += c.failed as u64 * n;
        e.critical_ms.add(c.critical_ms * n as f64);
        e.latency.add_n(c.duration_ms, n);
        e.server.add_n(c.server_duration_ms, n);
    }

    /// Adds another partial of the same window.
    pub fn merge(&mut self, o: &EdgePartial) {
        for (edge, s) in &o.edges {
            match self.edges.get_mut(edge) {
                Some(e) => {
                    e.failed += s.failed;
                    e.latency.merge(&s.latency);
                    e.server.merge(&s.server);
                    e.critical_ms.merge(&s.critical_ms);
                }
                None => {
                    self.edges.insert(edge.clone(), s.clone());
                }
            }
        }
    }

    /// One row per edge, in (client, server, type) order, each with its latency sketch.
    pub fn finish(&self, revision: u32) -> Vec<EdgeWindow> {
        self.edges
            .iter()
            .map(|(edge, s)| {
                let (d, server) = (&s.latency, &s.server);
                let record = apo_schemas::service_map::ServiceMapEdge {
                    client: edge.client.clone(),
                    server: edge.server.clone(),
                    connection_type: edge.connection_type.clone(),
                    window_seconds: self.key.window_seconds,
                    window_start: self.key.window_start,
                    window_end: self.key.window_end(),
                    calls: d.calls,
                    failed: s.failed,
                    latency_mean_ms: d.sum_ms.value() / d.calls.max(1) as f64,
                    latency_p50_ms: d.quantile(0.5),
                    latency_p95_ms: d.quantile(0.95),
                    latency_p99_ms: d.quantile(0.99),
                    latency_max_ms: d.max_ms,
                    server_latency_mean_ms: server.sum_ms.value() / server.calls.max(1) as f64,
                    server_latency_p50_ms: server.quantile(0.5),
                    server_latency_p95_ms: server.quantile(0.95),
                    server_latency_p99_ms: server.quantile(0.99),
                    server_latency_max_ms: server.max_ms,
                    critical_path_ms: s.critical_ms.value(),
                    relative_accuracy: self.alpha,
                    revision,
                };
                EdgeWindow {
                    edge: record,
                    latency: d.sketch.bins(),
                }
            })
            .collect()
    }
}

/// A closed edge window: its record, and the bins of its latency sketch (the current map
/// merges them over its horizon).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeWindow {
    /// The edge's record.
    pub edge: apo_schemas::service_map::ServiceMapEdge,
    /// Its latency sketch's bins.
    pub latency: crate::ops::sketch::SketchBins,
}

impl EdgeWindow {
    /// The record alone.
    pub fn into_edge(self) -> apo_schemas::service_map::ServiceMapEdge {
        self.edge
    }
}

crate::ops::window::windowed_by_key!(EdgePartial, MapWindow, EdgeWindow);
