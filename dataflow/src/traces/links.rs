//! Messaging edges across traces (issue 15, item 5): a CONSUMER span linked (an OpenTelemetry
//! span link) to a PRODUCER span of another trace is a call from the producer's service to the
//! consumer's over a queue, connection type `messaging_system` as the `servicegraph` connector
//! names it. A batch consumer that starts a trace of its own per batch and links each message's
//! producer span is what the messaging semantic conventions describe.
//!
//! The two spans are in different traces, assembled on different workers at different times.
//! Each assembled trace gives one half per PRODUCER span that has no consumer in its own trace
//! and one per cross-trace link of a CONSUMER span ([`trace_links`]); the halves are exchanged
//! by the producer span's (trace, span) id and joined ([`link_operator`]). A half waits until
//! just before the service-map window of its trace closes (the window's end plus the trace
//! delay, less 1 ms): the join holds a capability there, so what it emits is never late for
//! that window. The pair's call is windowed by the later of the two traces' ends, like an
//! in-trace call by its trace's end; it failed when either span did; its latency is the
//! producer span's, its server-side latency the consumer span's; it counts the consumer span's
//! adjusted count.
//!
//! A root CONSUMER span with a cross-trace link makes no `user` edge in its trace (its caller
//! is the producer). When its first link's producer does not come in time (not sampled, not
//! traced, or its trace ended a window apart), the `user` edge is made then, as for any root:
//! no call is lost. A producer half that finds no consumer makes nothing (the producer's own
//! trace already counted what it could: a virtual node named by its peer attributes).

use std::collections::{BTreeMap, HashMap};

use apo_schemas::{Span, SpanKind, SpanStatus};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::engine::checkpoint::OperatorCheckpoint;
use crate::ops::aggregate::window_start;
use crate::ops::stash::{next_passed, stash_input, Stash};
use crate::traces::service_map::{Edge, EdgeCall, EdgePartial, MapWindow, USER};

/// The connection type of a producer → consumer edge.
pub const MESSAGING: &str = "messaging_system";

/// The producer span's ids: what a link names.
pub type LinkKey = (u128, u64);

/// One side of a producer → consumer pair, from one assembled trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkHalf {
    /// The producer span (its own ids, or what the consumer's link names).
    pub key: LinkKey,
    /// The end of the last span of the half's trace (ms): its service-map window.
    pub trace_end_ms: i64,
    /// Which side, and what it measured.
    pub side: LinkSide,
}

/// A side of a pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LinkSide {
    /// The PRODUCER span.
    Producer(Side),
    /// A CONSUMER span linking it.
    Consumer {
        /// What it measured.
        side: Side,
        /// Its id.
        span_id: u64,
        /// Its adjusted count.
        weight: u64,
        /// It is its trace's root and this is its first cross-trace link: unmatched, it is a
        /// call from `user`.
        entry: bool,
    },
}

/// What a span of a pair measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Its service.
    pub service: String,
    /// Its status is error.
    pub failed: bool,
    /// Its duration, ms.
    pub duration_ms: f64,
}

impl Side {
    fn of(s: &Span) -> Self {
        Side {
            service: s.service.clone(),
            failed: s.status == SpanStatus::Error,
            duration_ms: s.duration_ns() as f64 / 1e6,
        }
    }
}

/// Whether `s` is a CONSUMER span with a link into another trace (its trace then has no `user`
/// edge for it when it is a root: the link's producer is its caller).
pub fn links_out(s: &Span) -> bool {
    s.kind == SpanKind::Consumer && s.links.iter().any(|l| l.trace_id != s.trace_id)
}

/// The halves of one trace whose last span ended at `trace_end_ms`: each PRODUCER span with
/// no SERVER or CONSUMER child in the trace, and each cross-trace link of each CONSUMER span.
pub fn trace_links(spans: &[Span], trace_end_ms: i64) -> Vec<LinkHalf> {
    let mut out = Vec::new();
    // Most traces have neither: no index built for them.
    if !spans
        .iter()
        .any(|s| s.kind == SpanKind::Producer || links_out(s))
    {
        return out;
    }
    let served: std::collections::HashSet<u64> = spans
        .iter()
        .filter(|c| matches!(c.kind, SpanKind::Server | SpanKind::Consumer))
        .filter_map(|c| c.parent_span_id.map(|p| p.0))
        .collect();
    let ids: std::collections::HashSet<u64> = spans.iter().map(|s| s.span_id.0).collect();
    for s in spans {
        if s.kind == SpanKind::Producer && !served.contains(&s.span_id.0) {
            out.push(LinkHalf {
                key: (s.trace_id.0, s.span_id.0),
                trace_end_ms,
                side: LinkSide::Producer(Side::of(s)),
            });
        }
        if !links_out(s) {
            continue;
        }
        let root = s.parent_span_id.is_none_or(|p| !ids.contains(&p.0));
        let mut first = true;
        for l in s.links.iter().filter(|l| l.trace_id != s.trace_id) {
            out.push(LinkHalf {
                key: (l.trace_id.0, l.span_id.0),
                trace_end_ms,
                side: LinkSide::Consumer {
                    side: Side::of(s),
                    span_id: s.span_id.0,
                    weight: s.adjusted_count.max(1),
                    entry: root && first,
                },
            });
            first = false;
        }
    }
    out
}

/// A consumer half waiting for its producer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Waiting {
    side: Side,
    span_id: u64,
    weight: u64,
    entry: bool,
    trace_end_ms: i64,
    deadline: u64,
}

/// A producer half waiting for consumers (a message can be consumed by several groups).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Produced {
    side: Side,
    trace_end_ms: i64,
    deadline: u64,
}

/// The pairs of one worker's keys, waiting until their deadlines.
#[derive(Debug, Default)]
pub(crate) struct LinkJoin {
    size_ms: i64,
    delay_ms: i64,
    producers: HashMap<LinkKey, Produced>,
    consumers: HashMap<LinkKey, Vec<Waiting>>,
    /// Deadline → keys with a half due then.
    expiry: BTreeMap<u64, Vec<LinkKey>>,
}

impl LinkJoin {
    /// A join for service-map windows of `size_s` seconds that close `delay_ms` after their
    /// end.
    pub(crate) fn new(size_s: u32, delay_ms: i64) -> Self {
        LinkJoin {
            size_ms: i64::from(size_s) * 1000,
            delay_ms,
            ..Default::default()
        }
    }

    /// The last time a half of a trace ending at `trace_end_ms` may be emitted at and still be
    /// in its window: 1 ms before the window closes.
    pub(crate) fn deadline(&self, trace_end_ms: i64) -> u64 {
        let close = window_start(trace_end_ms, self.size_ms) + self.size_ms + self.delay_ms;
        close.saturating_sub(1).max(0) as u64
    }

    /// Takes half `h` read at time `t`: the calls it completes go to `out`; a half that must
    /// wait returns its deadline (at or after `t`).
    pub(crate) fn add(&mut self, t: u64, h: LinkHalf, out: &mut Vec<EdgeCall>) -> Option<u64> {
        let deadline = self.deadline(h.trace_end_ms);
        match h.side {
            LinkSide::Producer(side) => {
                let p = Produced {
                    side,
                    trace_end_ms: h.trace_end_ms,
                    deadline,
                };
                if let Some(waiting) = self.consumers.remove(&h.key) {
                    out.extend(waiting.iter().filter_map(|c| pair(&p, c)));
                }
                if deadline < t {
                    return None;
                }
                self.producers.insert(h.key, p);
                self.expiry.entry(deadline).or_default().push(h.key);
                Some(deadline)
            }
            LinkSide::Consumer {
                side,
                span_id,
                weight,
                entry,
            } => {
                let c = Waiting {
                    side,
                    span_id,
                    weight,
                    entry,
                    trace_end_ms: h.trace_end_ms,
                    deadline,
                };
                if let Some(p) = self.producers.get(&h.key) {
                    out.extend(pair(p, &c));
                    return None;
                }
                if deadline < t {
                    out.extend(unmatched(&c));
                    return None;
                }
                self.consumers.entry(h.key).or_default().push(c);
                self.expiry.entry(deadline).or_default().push(h.key);
                Some(deadline)
            }
        }
    }

    /// The halves waiting, as bytes for a checkpoint (in key order).
    pub(crate) fn snapshot(&self) -> Result<Vec<u8>, bincode::Error> {
        let mut producers: Vec<_> = self.producers.iter().collect();
        producers.sort_by_key(|p| p.0);
        let mut consumers: Vec<_> = self.consumers.iter().collect();
        consumers.sort_by_key(|c| c.0);
        bincode::serialize(&(producers, consumers, &self.expiry))
    }

    /// This (empty) join with the halves a [`Self::snapshot`] took.
    pub(crate) fn restored(mut self, bytes: &[u8]) -> Result<Self, bincode::Error> {
        type Kept = (
            Vec<(LinkKey, Produced)>,
            Vec<(LinkKey, Vec<Waiting>)>,
            BTreeMap<u64, Vec<LinkKey>>,
        );
        let (producers, consumers, expiry): Kept = bincode::deserialize(bytes)?;
        self.producers = producers.into_iter().collect();
        self.consumers = consumers.into_iter().collect();
        self.expiry = expiry;
        Ok(self)
    }

    /// The deadlines halves wait for.
    pub(crate) fn deadlines(&self) -> impl Iterator<Item = u64> + '_ {
        self.expiry.keys().copied()
    }

    /// The earliest deadline still held.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.expiry.keys().next().copied()
    }

    /// Forgets the halves due at deadline `d` (the earliest): unmatched entry consumers become
    /// calls from `user`, to `out`.
    pub(crate) fn expire(&mut self, d: u64, out: &mut Vec<EdgeCall>) {
        let Some(keys) = self.expiry.remove(&d) else {
            return;
        };
        for k in keys {
            if self.producers.get(&k).is_some_and(|p| p.deadline <= d) {
                self.producers.remove(&k);
            }
            if let Some(waiting) = self.consumers.get_mut(&k) {
                waiting.retain(|c| {
                    if c.deadline <= d {
                        out.extend(unmatched(c));
                        false
                    } else {
                        true
                    }
                });
                if waiting.is_empty() {
                    self.consumers.remove(&k);
                }
            }
        }
    }

    /// Halves waiting now (producers, consumers).
    #[cfg(test)]
    fn waiting(&self) -> (usize, usize) {
        (
            self.producers.len(),
            self.consumers.values().map(Vec::len).sum(),
        )
    }
}

/// The call of producer `p` to consumer `c` (none within one service, as in a trace).
fn pair(p: &Produced, c: &Waiting) -> Option<EdgeCall> {
    (p.side.service != c.side.service).then(|| EdgeCall {
        edge: Edge {
            client: p.side.service.clone(),
            server: c.side.service.clone(),
            connection_type: MESSAGING.to_string(),
        },
        failed: p.side.failed || c.side.failed,
        duration_ms: p.side.duration_ms,
        server_duration_ms: c.side.duration_ms,
        weight: c.weight,
        end_ms: p.trace_end_ms.max(c.trace_end_ms),
        callee: c.span_id,
        critical_ms: 0.0,
    })
}

/// What a consumer whose producer never came makes: the `user` edge of its trace's entry.
fn unmatched(c: &Waiting) -> Option<EdgeCall> {
    c.entry.then(|| EdgeCall {
        edge: Edge {
            client: USER.to_string(),
            server: c.side.service.clone(),
            connection_type: String::new(),
        },
        failed: c.side.failed,
        duration_ms: c.side.duration_ms,
        server_duration_ms: c.side.duration_ms,
        weight: c.weight,
        end_ms: c.trace_end_ms,
        callee: c.span_id,
        critical_ms: 0.0,
    })
}

/// The join as a dataflow stage: halves exchanged by their producer span, each batch taken in
/// time order once the frontier has passed it (sorted, so the same input gives the same
/// output), and edge partials of `size_s`-second windows with sketches of `alpha` out, each at
/// the time of the half that completed it or at its deadline.
pub fn link_operator<'s>(
    halves: StreamVec<'s, u64, LinkHalf>,
    size_s: u32,
    alpha: f64,
    delay_ms: i64,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'s, u64, EdgePartial> {
    let pact = Exchange::new(|h: &LinkHalf| (h.key.0 as u64) ^ ((h.key.0 >> 64) as u64) ^ h.key.1);
    let scope = halves.scope();
    halves.unary_frontier(pact, "SpanLinks", move |cap, info| {
        if let Some(c) = &checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        let mut join = LinkJoin::new(size_s, delay_ms);
        if let Some(bytes) = checkpoint.as_ref().and_then(|c| c.restored()) {
            match LinkJoin::new(size_s, delay_ms).restored(bytes) {
                Ok(j) => join = j,
                Err(e) => tracing::error!(error = %e, "span links in the checkpoint unreadable; starting empty"),
            }
        }
        let mut stash: Stash<LinkHalf> = Stash::new();
        // A capability at each deadline a half waits for (the restored ones' from the
        // operator's first capability).
        let mut held: BTreeMap<u64, Capability<u64>> =
            join.deadlines().map(|d| (d, cap.delayed(&d))).collect();
        drop(cap);
        let mut calls = Vec::new();
        let partials = move |calls: &mut Vec<EdgeCall>| -> Vec<EdgePartial> {
            calls
                .drain(..)
                .map(|c| {
                    let w: MapWindow = c.window(size_s);
                    let mut p = EdgePartial::new(w, alpha);
                    p.add(&c);
                    p
                })
                .collect()
        };
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            let f = frontier.frontier();
            loop {
                // The earliest of: the next passed batch, the next deadline passed.
                let batch_t = stash
                    .first_key_value()
                    .map(|(&t, _)| t)
                    .filter(|t| !f.less_equal(t));
                let due = join.next_deadline().filter(|d| !f.less_equal(d));
                // A checkpoint due before the next event: every earlier one applied.
                let next = match (batch_t, due) {
                    (Some(t), Some(d)) => Some(t.min(d)),
                    (t, d) => t.or(d),
                };
                if let (Some(c), Some(next)) = (checkpoint.as_mut(), next) {
                    c.deposit_due(next, |_| join.snapshot());
                }
                match (batch_t, due) {
                    (Some(t), d) if d.is_none_or(|d| t <= d) => {
                        let Some((cap, mut batch)) = next_passed(&mut stash, f) else {
                            break;
                        };
                        batch.sort_by(|a, b| {
                            (a.key, a.trace_end_ms)
                                .cmp(&(b.key, b.trace_end_ms))
                                .then_with(|| side_order(&a.side).cmp(&side_order(&b.side)))
                        });
                        for h in batch {
                            if let Some(d) = join.add(t, h, &mut calls) {
                                held.entry(d).or_insert_with(|| cap.delayed(&d));
                            }
                        }
                        if !calls.is_empty() {
                            output
                                .session(&cap)
                                .give_iterator(partials(&mut calls).into_iter());
                        }
                    }
                    (_, Some(d)) => {
                        join.expire(d, &mut calls);
                        if let Some(cap) = held.remove(&d) {
                            if !calls.is_empty() {
                                output
                                    .session(&cap)
                                    .give_iterator(partials(&mut calls).into_iter());
                            }
                        }
                        calls.clear();
                    }
                    _ => break,
                }
            }
            if let Some(c) = checkpoint.as_mut() {
                c.deposit_due(f.first().copied().unwrap_or(u64::MAX), |_| join.snapshot());
            }
            // Capabilities of deadlines no half waits for any more.
            held.retain(|d, _| join.expiry.contains_key(d));
        }
    })
}

/// Producers first within a key, so a consumer read with its producer pairs in any order.
fn side_order(s: &LinkSide) -> (u8, u64, &str) {
    match s {
        LinkSide::Producer(p) => (0, 0, &p.service),
        LinkSide::Consumer { span_id, side, .. } => (1, *span_id, &side.service),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apo_schemas::{SpanId, SpanLink, TraceId};

    fn span(trace: u128, id: u64, kind: SpanKind, service: &str, start_ms: i64, ms: i64) -> Span {
        Span {
            trace_id: TraceId(trace),
            span_id: SpanId(id),
            parent_span_id: None,
            service: service.into(),
            name: "op".into(),
            kind,
            start_ns: start_ms * 1_000_000,
            end_ns: (start_ms + ms) * 1_000_000,
            status: SpanStatus::Unset,
            attributes: Default::default(),
            follows_from: false,
            adjusted_count: 1,
            links: Vec::new(),
        }
    }

    /// A producer trace and a consumer trace linking it, 10 s windows closing 5 s late: the
    /// pair is one `messaging_system` call from the producer's service, with the producer's
    /// latency, the consumer's server-side latency and adjusted count, either's failure, in
    /// the window of the later trace; a consumer whose producer never comes is, at its
    /// deadline, its trace's `user` call.
    #[test]
    fn a_consumer_linked_to_a_producer_in_another_trace_is_a_messaging_call() {
        let producer = span(1, 11, SpanKind::Producer, "orders", 1_000, 4);
        let mut consumer = span(2, 21, SpanKind::Consumer, "billing", 12_000, 30);
        consumer.links.push(SpanLink {
            trace_id: TraceId(1),
            span_id: SpanId(11),
        });
        consumer.adjusted_count = 4;
        consumer.status = SpanStatus::Error;
        let p = trace_links(std::slice::from_ref(&producer), 1_004);
        let c = trace_links(std::slice::from_ref(&consumer), 12_030);
        assert_eq!(p.len(), 1);
        assert!(matches!(c[0].side, LinkSide::Consumer { entry: true, .. }));

        let mut join = LinkJoin::new(10, 5_000);
        assert_eq!(join.deadline(1_004), 14_999);
        let mut out = Vec::new();
        // the producer's trace is out first; the consumer's 11 s later, still in time
        assert_eq!(join.add(6_100, p[0].clone(), &mut out), Some(14_999));
        assert!(out.is_empty());
        assert_eq!(join.add(17_100, c[0].clone(), &mut out), None);
        assert_eq!(out.len(), 1);
        let call = &out[0];
        assert_eq!(
            call.edge,
            Edge {
                client: "orders".into(),
                server: "billing".into(),
                connection_type: MESSAGING.into()
            }
        );
        assert!(call.failed);
        assert_eq!((call.duration_ms, call.server_duration_ms), (4.0, 30.0));
        assert_eq!((call.weight, call.end_ms), (4, 12_030));

        // Another consumer of a producer that never comes: `user` at its deadline.
        let mut lone = consumer.clone();
        lone.links[0].span_id = SpanId(99);
        let h = trace_links(std::slice::from_ref(&lone), 12_030);
        out.clear();
        assert_eq!(join.add(17_100, h[0].clone(), &mut out), Some(24_999));
        assert_eq!(join.waiting(), (1, 1));
        join.expire(14_999, &mut out);
        assert!(out.is_empty(), "the producer's deadline expires only it");
        join.expire(24_999, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].edge.client, USER);
        assert_eq!(out[0].edge.server, "billing");
        assert_eq!(join.waiting(), (0, 0));
    }

    /// A producer with a consumer in its own trace is paired there (no half); a consumer's
    /// link into its own trace is not a cross-trace pair; a consumer that is not its trace's
    /// root is not its trace's entry.
    #[test]
    fn only_unpaired_producers_and_cross_trace_links_make_halves() {
        let producer = span(1, 11, SpanKind::Producer, "orders", 0, 4);
        let mut child = span(1, 12, SpanKind::Consumer, "billing", 5, 4);
        child.parent_span_id = Some(SpanId(11));
        child.links.push(SpanLink {
            trace_id: TraceId(1),
            span_id: SpanId(11),
        });
        assert!(trace_links(&[producer.clone(), child.clone()], 9).is_empty());

        let mut root = span(3, 1, SpanKind::Server, "billing", 0, 50);
        root.kind = SpanKind::Server;
        let mut consumer = span(3, 2, SpanKind::Consumer, "billing", 1, 4);
        consumer.parent_span_id = Some(SpanId(1));
        for s in [7u64, 8] {
            consumer.links.push(SpanLink {
                trace_id: TraceId(9),
                span_id: SpanId(s),
            });
        }
        let h = trace_links(&[root, consumer], 50);
        assert_eq!(h.len(), 2, "one half per link");
        assert!(h
            .iter()
            .all(|h| matches!(h.side, LinkSide::Consumer { entry: false, .. })));
    }

    /// A checkpoint of the join (issue 30): restored from its snapshot, it pairs, expires and
    /// reports unmatched entries exactly as the join that was never stopped.
    #[test]
    fn a_join_restored_from_its_snapshot_goes_on_as_the_original() {
        let producer = span(1, 11, SpanKind::Producer, "orders", 1_000, 4);
        let mut consumer = span(2, 21, SpanKind::Consumer, "billing", 2_000, 30);
        consumer.links.push(SpanLink {
            trace_id: TraceId(1),
            span_id: SpanId(11),
        });
        let mut orphan = span(3, 31, SpanKind::Consumer, "billing", 3_000, 7);
        orphan.links.push(SpanLink {
            trace_id: TraceId(9),
            span_id: SpanId(99),
        });
        let p = trace_links(std::slice::from_ref(&producer), 1_004);
        let c = trace_links(std::slice::from_ref(&consumer), 2_030);
        let o = trace_links(std::slice::from_ref(&orphan), 3_007);
        let mut original = LinkJoin::new(10, 5_000);
        let mut out = Vec::new();
        assert!(original.add(1_100, o[0].clone(), &mut out).is_some());
        assert!(original.add(1_200, p[0].clone(), &mut out).is_some());
        assert_eq!(original.waiting(), (1, 1));
        let bytes = original.snapshot().unwrap();
        let mut restored = LinkJoin::new(10, 5_000).restored(&bytes).unwrap();
        assert_eq!(restored.waiting(), (1, 1));
        assert_eq!(
            restored.deadlines().collect::<Vec<_>>(),
            original.deadlines().collect::<Vec<_>>()
        );
        let play = |j: &mut LinkJoin| {
            let mut out = Vec::new();
            j.add(2_500, c[0].clone(), &mut out);
            while let Some(d) = j.next_deadline() {
                j.expire(d, &mut out);
            }
            out.iter()
                .map(|e| {
                    (
                        e.edge.client.clone(),
                        e.edge.server.clone(),
                        e.weight,
                        e.end_ms,
                    )
                })
                .collect::<Vec<_>>()
        };
        let want = play(&mut original);
        assert_eq!(
            want,
            [
                ("orders".to_string(), "billing".to_string(), 1, 2_030),
                ("user".to_string(), "billing".to_string(), 1, 3_007),
            ]
        );
        assert_eq!(play(&mut restored), want);
    }
}
