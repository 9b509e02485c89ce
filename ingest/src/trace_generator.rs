//! Synthetic traces of a web shop, so every trace output (RED, SLOs, critical paths, the service
//! map) has something to show.
//!
//! The topology, per request type (weights 6 : 3 : 1):
//!
//! ```text
//! user → frontend  GET /product → product-catalog ListProducts → postgresql SELECT products
//!                                → recommendation ListRecommendations   (in parallel)
//!                  GET /cart    → cart GetCart → redis (uninstrumented, peer.service)
//!                  POST /checkout → cart GetCart
//!                                 → checkout PlaceOrder → payment Charge → stripe-api (external)
//!                                                      → shipping GetQuote
//!                                                      → postgresql INSERT orders
//!                                                      → kafka orders publish ⇒ email SendConfirmation
//! ```
//!
//! `⇒` is asynchronous: the producer span returns at once, the consumer runs later in the same
//! trace (it does not block the checkout). Durations are log-normal around per-operation
//! medians, 0.5 % of database and external calls fail (and fail their callers), and incidents
//! slow one dependency (the database, the payment API or recommendation) 5–10× for a few
//! minutes of event time. Seeded: the same seed gives the same traces.

use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

/// What to generate.
#[derive(Debug, Clone)]
pub struct TraceGeneratorConfig {
    /// Traces per second of event time.
    pub rate: f64,
    /// Event time of the first trace, ms.
    pub start_ms: i64,
    /// Mean latency incidents per hour of event time.
    pub incidents_per_hour: f64,
    /// Random seed: the same seed gives the same traces.
    pub seed: u64,
}

impl Default for TraceGeneratorConfig {
    fn default() -> Self {
        TraceGeneratorConfig {
            rate: 100.0,
            start_ms: 0,
            incidents_per_hour: 6.0,
            seed: 1,
        }
    }
}

/// Dependencies an incident can slow down.
const SLOWABLE: &[&str] = &["postgresql", "stripe-api", "recommendation"];

/// An endless, seeded stream of traces in start-time order.
pub struct TraceGenerator {
    rng: SmallRng,
    step_ns: f64,
    clock_ns: f64,
    next_span: u64,
    /// (dependency, until ns, factor)
    incident: Option<(&'static str, i64, f64)>,
    incident_chance_per_ns: f64,
}

/// Builds the spans of one trace.
struct Builder<'a> {
    g: &'a mut TraceGenerator,
    trace: TraceId,
    spans: Vec<Span>,
    /// The trace failed somewhere below: its callers report errors too.
    failed: bool,
}

impl Builder<'_> {
    fn id(&mut self) -> SpanId {
        self.g.next_span += 1;
        // Spread ids over the 64-bit space (a bijection of the counter), never zero.
        SpanId(self.g.next_span.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A log-normal duration around `median_ms`, slowed by an incident on `dep`.
    fn duration(&mut self, dep: &str, median_ms: f64) -> i64 {
        let ln = LogNormal::new(median_ms.ln(), 0.5).unwrap_or_else(|_| {
            LogNormal::new(0.0, 0.5).unwrap_or_else(|_| unreachable!("valid parameters"))
        });
        let mut ms = ln.sample(&mut self.g.rng);
        if let Some((slow, _, factor)) = self.g.incident {
            if slow == dep {
                ms *= factor;
            }
        }
        (ms * 1e6) as i64
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        parent: Option<SpanId>,
        service: &str,
        name: &str,
        kind: SpanKind,
        start: i64,
        end: i64,
        attrs: &[(&str, &str)],
    ) -> SpanId {
        let id = self.id();
        self.spans.push(Span {
            links: Vec::new(),
            trace_id: self.trace,
            span_id: id,
            parent_span_id: parent,
            service: service.into(),
            name: name.into(),
            kind,
            start_ns: start,
            end_ns: end,
            status: SpanStatus::Unset,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            follows_from: false,
            adjusted_count: 1,
        });
        id
    }

    fn fail_last(&mut self) {
        if let Some(s) = self.spans.last_mut() {
            s.status = SpanStatus::Error;
        }
        self.failed = true;
    }

    #[allow(clippy::too_many_arguments)]
    /// A call from `client` (CLIENT span) to an instrumented `server` (SERVER span) starting at
    /// `start`; `work` adds the server's children and returns when it finished. Returns the end.
    fn call(
        &mut self,
        parent: SpanId,
        client: &str,
        server: &str,
        op: &str,
        start: i64,
        own_ms: f64,
        work: &mut dyn FnMut(&mut Self, SpanId, i64) -> i64,
    ) -> i64 {
        let net = self.duration("network", 0.3);
        let client_id = self.span(
            Some(parent),
            client,
            op,
            SpanKind::Client,
            start,
            start,
            &[],
        );
        let s_start = start + net;
        let server_id = self.span(
            Some(client_id),
            server,
            op,
            SpanKind::Server,
            s_start,
            s_start,
            &[],
        );
        let own = self.duration(server, own_ms);
        // Whether this call failed is whether something under it failed.
        let before = std::mem::replace(&mut self.failed, false);
        let done = work(self, server_id, s_start + own / 2);
        let s_end = done.max(s_start + own / 2) + own / 2;
        let end = s_end + net;
        let failed = self.failed;
        self.failed |= before;
        for s in self.spans.iter_mut() {
            if s.span_id == server_id {
                s.end_ns = s_end;
                if failed {
                    s.status = SpanStatus::Error;
                }
            } else if s.span_id == client_id {
                s.end_ns = end;
                if failed {
                    s.status = SpanStatus::Error;
                }
            }
        }
        end
    }

    /// A call to something not instrumented: only the client span, naming the peer.
    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &mut self,
        parent: SpanId,
        client: &str,
        dep: &str,
        op: &str,
        start: i64,
        median_ms: f64,
        attrs: &[(&str, &str)],
    ) -> i64 {
        let end = start + self.duration(dep, median_ms);
        self.span(
            Some(parent),
            client,
            op,
            SpanKind::Client,
            start,
            end,
            attrs,
        );
        if self.g.rng.random_bool(0.005) {
            self.fail_last();
        }
        end
    }
}

impl Builder<'_> {
    /// frontend → cart GetCart → redis.
    fn get_cart(&mut self, root: SpanId, start: i64) -> i64 {
        self.call(
            root,
            "frontend",
            "cart",
            "GetCart",
            start,
            1.0,
            &mut |b, p, t| {
                b.leaf(
                    p,
                    "cart",
                    "redis",
                    "HGETALL",
                    t,
                    0.5,
                    &[("peer.service", "redis")],
                )
            },
        )
    }
}

fn db(name: &str) -> [(&'static str, &str); 2] {
    [("db.system", "postgresql"), ("db.name", name)]
}

impl TraceGenerator {
    /// A generator of `cfg`'s traces.
    pub fn new(cfg: &TraceGeneratorConfig) -> Self {
        TraceGenerator {
            rng: SmallRng::seed_from_u64(cfg.seed),
            step_ns: 1e9 / cfg.rate.max(1e-6),
            clock_ns: cfg.start_ms as f64 * 1e6,
            next_span: 0,
            incident: None,
            incident_chance_per_ns: cfg.incidents_per_hour / 3.6e12,
        }
    }

    /// Start time (ms) of the next trace.
    pub fn clock_ms(&self) -> i64 {
        (self.clock_ns / 1e6) as i64
    }

    /// The dependency slowed down now, if any.
    pub fn incident(&self) -> Option<&'static str> {
        self.incident.map(|(d, _, _)| d)
    }

    /// The next trace (its spans in creation order).
    pub fn next_trace(&mut self) -> Vec<Span> {
        let start = self.clock_ns as i64;
        self.clock_ns += self.step_ns;
        if let Some((_, until, _)) = self.incident {
            if start >= until {
                self.incident = None;
            }
        }
        if self.incident.is_none()
            && self
                .rng
                .random_bool((self.incident_chance_per_ns * self.step_ns).min(1.0))
        {
            let dep = SLOWABLE[self.rng.random_range(0..SLOWABLE.len())];
            let minutes = self.rng.random_range(1.0..5.0);
            let factor = self.rng.random_range(5.0..10.0);
            self.incident = Some((dep, start + (minutes * 6e10) as i64, factor));
        }
        let trace = TraceId(self.rng.random::<u128>() | 1);
        let kind = self.rng.random_range(0..10);
        let mut b = Builder {
            g: self,
            trace,
            spans: Vec::new(),
            failed: false,
        };
        let (route, method) = match kind {
            0..=5 => ("/product", "GET"),
            6..=8 => ("/cart", "GET"),
            _ => ("/checkout", "POST"),
        };
        let name = format!("{method} {route}");
        let root = b.span(
            None,
            "frontend",
            &name,
            SpanKind::Server,
            start,
            start,
            &[("http.route", route)],
        );
        let t0 = start + b.duration("frontend", 1.0);
        let end = match route {
            "/product" => {
                // Catalog and recommendations in parallel.
                let a = b.call(
                    root,
                    "frontend",
                    "product-catalog",
                    "ListProducts",
                    t0,
                    2.0,
                    &mut |b, p, t| {
                        b.leaf(
                            p,
                            "product-catalog",
                            "postgresql",
                            "SELECT products",
                            t,
                            8.0,
                            &db("catalog"),
                        )
                    },
                );
                let r = b.call(
                    root,
                    "frontend",
                    "recommendation",
                    "ListRecommendations",
                    t0,
                    15.0,
                    &mut |_, _, t| t,
                );
                a.max(r)
            }
            "/cart" => b.get_cart(root, t0),
            _ => {
                let c = b.get_cart(root, t0);
                b.call(
                    root,
                    "frontend",
                    "checkout",
                    "PlaceOrder",
                    c,
                    3.0,
                    &mut |b, p, t| {
                        let paid = b.call(
                            p,
                            "checkout",
                            "payment",
                            "Charge",
                            t,
                            2.0,
                            &mut |b, p, t| {
                                b.leaf(
                                    p,
                                    "payment",
                                    "stripe-api",
                                    "POST /v1/charges",
                                    t,
                                    120.0,
                                    &[("peer.service", "stripe-api")],
                                )
                            },
                        );
                        let quoted = b.call(
                            p,
                            "checkout",
                            "shipping",
                            "GetQuote",
                            paid,
                            4.0,
                            &mut |_, _, t| t,
                        );
                        let stored = b.leaf(
                            p,
                            "checkout",
                            "postgresql",
                            "INSERT orders",
                            quoted,
                            12.0,
                            &db("orders"),
                        );
                        // Publish, then the consumer runs later, asynchronously.
                        let produced = stored + b.duration("kafka", 1.0);
                        let prod = b.span(
                            Some(p),
                            "checkout",
                            "orders publish",
                            SpanKind::Producer,
                            stored,
                            produced,
                            &[("messaging.system", "kafka")],
                        );
                        let c_start = produced + b.duration("kafka", 20.0);
                        let c_end = c_start + b.duration("email", 30.0);
                        b.span(
                            Some(prod),
                            "email",
                            "orders process",
                            SpanKind::Consumer,
                            c_start,
                            c_end,
                            &[("messaging.system", "kafka")],
                        );
                        produced
                    },
                )
            }
        };
        let root_end = end + b.duration("frontend", 1.0);
        let failed = b.failed;
        let mut spans = b.spans;
        if let Some(r) = spans.first_mut() {
            r.end_ns = root_end;
            if failed {
                r.status = SpanStatus::Error;
            }
        }
        spans
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_well_formed_and_reproducible() {
        let cfg = TraceGeneratorConfig {
            start_ms: 1_764_115_200_000,
            ..Default::default()
        };
        let mut g = TraceGenerator::new(&cfg);
        let mut again = TraceGenerator::new(&cfg);
        for _ in 0..2_000 {
            let t = g.next_trace();
            assert_eq!(t, again.next_trace());
            let roots: Vec<&Span> = t.iter().filter(|s| s.parent_span_id.is_none()).collect();
            assert_eq!(roots.len(), 1);
            assert_eq!(roots[0].service, "frontend");
            for s in &t {
                s.validate().unwrap();
                assert_eq!(s.trace_id, t[0].trace_id);
                if let Some(p) = s.parent_span_id {
                    let parent = t.iter().find(|x| x.span_id == p).unwrap();
                    // Synchronous children lie within their parent; the consumer may not.
                    if s.kind != SpanKind::Consumer {
                        assert!(
                            s.start_ns >= parent.start_ns && s.end_ns <= parent.end_ns,
                            "{} outside {}",
                            s.name,
                            parent.name
                        );
                    }
                }
            }
        }
    }
}
