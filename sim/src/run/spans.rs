//! The sampled requests as spans, the way the services' OpenTelemetry instrumentation reports
//! them: a SERVER span per request a service served (CONSUMER for a message), a CLIENT span
//! per synchronous call its caller made (PRODUCER per message sent, which ends when the
//! message is handed over), and a CLIENT span per database call (`db.system` `postgresql`,
//! `db.namespace` the service's name with `_db`: the service map's database node). An external service
//! has no spans of its own: its callers' client spans name it in `peer.service`.
//!
//! Times are nanoseconds since the run's start (the telemetry adds the run's start). Ids are
//! deterministic: a trace's id and each span's come from counters spread over their bit
//! space, never zero.

use std::collections::BTreeMap;

use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};

use crate::events::Nanos;

/// A request's place in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Traced {
    /// The trace.
    pub trace: TraceId,
    /// Its server (or consumer) span.
    pub span: SpanId,
    /// The caller's client (or producer) span, and the caller's own span it is a child of;
    /// `None` for a user request (a root span).
    pub client: Option<(SpanId, SpanId)>,
    /// A message (its spans are a producer and a consumer).
    pub message: bool,
}

/// Where ids come from.
#[derive(Debug, Default)]
pub(super) struct Ids {
    spans: u64,
    traces: u64,
}

/// Spreads a counter over 64 bits (a bijection), never zero.
fn spread(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

impl Ids {
    fn span(&mut self) -> SpanId {
        self.spans += 1;
        SpanId(spread(self.spans))
    }

    /// A new trace's root request.
    pub fn root(&mut self, seed: u64) -> Traced {
        self.traces += 1;
        let hi = spread(seed ^ 0xA5A5_5A5A_0F0F_F0F0);
        Traced {
            trace: TraceId((u128::from(hi) << 64) | u128::from(spread(self.traces))),
            span: self.span(),
            client: None,
            message: false,
        }
    }

    /// A call `caller` makes (a message when `message`).
    pub fn call(&mut self, caller: &Traced, message: bool) -> Traced {
        let client = self.span();
        Traced {
            trace: caller.trace,
            span: self.span(),
            client: Some((client, caller.span)),
            message,
        }
    }

    /// A span of `t`'s request's own (a database call), a child of its server span.
    pub fn inner(&mut self, t: &Traced) -> (SpanId, SpanId) {
        (self.span(), t.span)
    }
}

fn status(ok: bool) -> SpanStatus {
    if ok {
        SpanStatus::Unset
    } else {
        SpanStatus::Error
    }
}

fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The span `service` reports for request `t` it served from `start` to `end`.
pub(super) fn server(service: &str, t: &Traced, start: Nanos, end: Nanos, ok: bool) -> Span {
    let (kind, name) = if t.message {
        (SpanKind::Consumer, format!("{service} process"))
    } else {
        (SpanKind::Server, format!("GET /{service}"))
    };
    Span {
        links: Vec::new(),
        trace_id: t.trace,
        span_id: t.span,
        parent_span_id: t.client.map(|c| c.0),
        service: service.to_string(),
        name,
        kind,
        start_ns: start as i64,
        end_ns: end.max(start) as i64,
        status: status(ok),
        attributes: BTreeMap::new(),
        follows_from: t.message,
        adjusted_count: 1,
    }
}

/// The span `caller` reports for its call to `callee` (request `t`) from `start` to `end`;
/// `None` for a user request (no caller of ours).
pub(super) fn client(
    caller: &str,
    callee: &str,
    t: &Traced,
    start: Nanos,
    end: Nanos,
    ok: bool,
) -> Option<Span> {
    let (id, parent) = t.client?;
    let (kind, name, attrs) = if t.message {
        (
            SpanKind::Producer,
            format!("{callee} publish"),
            attributes(&[
                ("messaging.system", "kafka"),
                ("messaging.destination.name", callee),
            ]),
        )
    } else {
        (
            SpanKind::Client,
            format!("GET /{callee}"),
            attributes(&[("peer.service", callee)]),
        )
    };
    Some(Span {
        links: Vec::new(),
        trace_id: t.trace,
        span_id: id,
        parent_span_id: Some(parent),
        service: caller.to_string(),
        name,
        kind,
        start_ns: start as i64,
        end_ns: end.max(start) as i64,
        status: status(ok),
        attributes: attrs,
        follows_from: false,
        adjusted_count: 1,
    })
}

/// The span `service` reports for a database call (`ids` from [`Ids::inner`]) holding its
/// connection from `start` to `end`.
pub(super) fn database(
    service: &str,
    t: &Traced,
    ids: (SpanId, SpanId),
    start: Nanos,
    end: Nanos,
) -> Span {
    Span {
        links: Vec::new(),
        trace_id: t.trace,
        span_id: ids.0,
        parent_span_id: Some(ids.1),
        service: service.to_string(),
        name: "SELECT".into(),
        kind: SpanKind::Client,
        start_ns: start as i64,
        end_ns: end.max(start) as i64,
        status: SpanStatus::Unset,
        attributes: attributes(&[
            ("db.system", "postgresql"),
            ("db.namespace", &format!("{service}_db")),
        ]),
        follows_from: false,
        adjusted_count: 1,
    }
}
