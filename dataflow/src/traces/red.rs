//! RED (rate, errors, duration) of one service over one window, from its spans.
//!
//! A [`RedPartial`] holds, per operation (span name), per (kind, status): calls and a duration
//! sketch with exact sum, min and max. Partials built on different workers merge exactly.
//!
//! Cardinality is bounded twice. At the window's close only the `max_operations` operations
//! with the most calls (ties: by name) get rows of their own; the rest are folded into rows named
//! [`OVERFLOW_OPERATION`] that say how many operations they fold. While the window is open, at
//! most `HOLD_FACTOR × max_operations` operations are held; spans of further operations go to
//! the overflow rows at once (only their name hashes are kept, to count them).

use std::collections::{BTreeMap, BTreeSet};

use apo_schemas::red::{RedStats, OVERFLOW_OPERATION};
use apo_schemas::{Span, SpanKind, SpanStatus};
use serde::{Deserialize, Serialize};

use crate::ops::aggregate::window_start;
use crate::ops::exact_sum::ExactSum;
use crate::ops::sketch::DDSketch;

/// How many operations per service a partial holds while its window is open, as a multiple of
/// the number that get rows of their own.
pub const HOLD_FACTOR: usize = 8;

/// Identity of one service's RED window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RedWindow {
    /// The service.
    pub service: String,
    /// The window's size, seconds.
    pub window_seconds: u32,
    /// Its start, ms since the epoch.
    pub window_start: i64,
}

impl RedWindow {
    /// Its end (exclusive), ms since the epoch.
    pub fn window_end(&self) -> i64 {
        self.window_start + self.window_seconds as i64 * 1000
    }

    /// The worker that owns the service (stable across processes and compiler versions).
    pub fn route(&self) -> u64 {
        hash_str(&self.service)
    }
}

fn hash_str(s: &str) -> u64 {
    crate::ops::route::route_strs(&[s])
}

/// Calls and durations (ms) of one (operation, kind, status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    pub calls: u64,
    /// Kept exactly ([`ExactSum`]): the same however spans were grouped and merged.
    pub sum_ms: ExactSum,
    pub min_ms: f64,
    pub max_ms: f64,
    pub sketch: DDSketch,
}

impl Durations {
    pub fn new(alpha: f64) -> Self {
        Durations {
            calls: 0,
            sum_ms: ExactSum::new(),
            min_ms: f64::INFINITY,
            max_ms: f64::NEG_INFINITY,
            sketch: DDSketch::new(alpha),
        }
    }

    pub fn add(&mut self, ms: f64) {
        self.add_n(ms, 1);
    }

    /// Counts `n` calls of `ms` (a sampled span standing for `n`).
    pub fn add_n(&mut self, ms: f64, n: u64) {
        self.calls += n;
        self.sum_ms.add(ms * n as f64);
        self.min_ms = self.min_ms.min(ms);
        self.max_ms = self.max_ms.max(ms);
        self.sketch.add_n(ms, n);
    }

    pub fn merge(&mut self, o: &Durations) {
        self.calls += o.calls;
        self.sum_ms.merge(&o.sum_ms);
        self.min_ms = self.min_ms.min(o.min_ms);
        self.max_ms = self.max_ms.max(o.max_ms);
        if let Err(e) = self.sketch.merge(&o.sketch) {
            tracing::error!(error = %e, "sketch merge skipped");
        }
    }

    /// The `q` quantile in ms, clamped to the exact min and max (NaN when empty).
    pub fn quantile(&self, q: f64) -> f64 {
        self.sketch
            .quantile(q)
            .map(|v| v.clamp(self.min_ms, self.max_ms))
            .unwrap_or(f64::NAN)
    }
}

type ByKindStatus = BTreeMap<(SpanKind, SpanStatus), Durations>;

fn merge_into(into: &mut ByKindStatus, from: &ByKindStatus, alpha: f64) {
    for (k, d) in from {
        into.entry(*k)
            .or_insert_with(|| Durations::new(alpha))
            .merge(d);
    }
}

/// RED of some of the spans of one service's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedPartial {
    /// The window.
    pub key: RedWindow,
    /// Relative accuracy of the duration sketches.
    pub alpha: f64,
    /// Operations with rows of their own.
    pub max_operations: usize,
    /// Per operation, its spans by kind and status.
    pub ops: BTreeMap<String, ByKindStatus>,
    /// Spans of operations past the hold limit, and the hashes of those operations' names.
    pub overflow: ByKindStatus,
    /// Hashes of the operations folded into the overflow.
    pub overflow_names: BTreeSet<u64>,
}

impl RedPartial {
    /// An empty partial of `key`.
    pub fn new(key: RedWindow, alpha: f64, max_operations: usize) -> Self {
        RedPartial {
            key,
            alpha,
            max_operations: max_operations.max(1),
            ops: BTreeMap::new(),
            overflow: BTreeMap::new(),
            overflow_names: BTreeSet::new(),
        }
    }

    /// The window of `size_s` seconds holding `span` (by its end: a span counts when it ends).
    pub fn window_of(span: &Span, size_s: u32) -> RedWindow {
        let size_ms = size_s as i64 * 1000;
        RedWindow {
            service: span.service.clone(),
            window_seconds: size_s,
            window_start: window_start(span.event_time_ms(), size_ms),
        }
    }

    fn hold_limit(&self) -> usize {
        self.max_operations.saturating_mul(HOLD_FACTOR)
    }

    /// Adds one validated span of this service and window, as many calls as it stands for.
    pub fn add(&mut self, span: &Span) {
        let ms = span.duration_ns() as f64 / 1e6;
        let k = (span.kind, span.status);
        let alpha = self.alpha;
        let by = if self.ops.contains_key(&span.name) || self.ops.len() < self.hold_limit() {
            self.ops.entry(span.name.clone()).or_default()
        } else {
            self.overflow_names.insert(hash_str(&span.name));
            &mut self.overflow
        };
        by.entry(k)
            .or_insert_with(|| Durations::new(alpha))
            .add_n(ms, span.adjusted_count.max(1));
    }

    /// Folds another partial of the same window into this one.
    pub fn merge(&mut self, o: &RedPartial) {
        let alpha = self.alpha;
        for (name, by) in &o.ops {
            if self.ops.contains_key(name) || self.ops.len() < self.hold_limit() {
                merge_into(self.ops.entry(name.clone()).or_default(), by, alpha);
            } else {
                self.overflow_names.insert(hash_str(name));
                merge_into(&mut self.overflow, by, alpha);
            }
        }
        merge_into(&mut self.overflow, &o.overflow, alpha);
        self.overflow_names.extend(o.overflow_names.iter().copied());
    }

    /// The rows of this window at `revision`, in (operation, kind, status) order with the
    /// overflow rows last.
    pub fn finish(&self, revision: u32) -> Vec<RedStats> {
        let calls = |by: &ByKindStatus| by.values().map(|d| d.calls).sum::<u64>();
        let mut ranked: Vec<(&String, &ByKindStatus)> = self.ops.iter().collect();
        ranked.sort_by(|a, b| calls(b.1).cmp(&calls(a.1)).then(a.0.cmp(b.0)));
        let kept = ranked.len().min(self.max_operations);
        let mut overflow = self.overflow.clone();
        for (_, by) in &ranked[kept..] {
            merge_into(&mut overflow, by, self.alpha);
        }
        let folded = (ranked.len() - kept) as u64 + self.overflow_names.len() as u64;
        let mut keep: Vec<(&String, &ByKindStatus)> = ranked[..kept].to_vec();
        keep.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::new();
        for (name, by) in keep {
            self.rows(name, by, false, 0, revision, &mut out);
        }
        if !overflow.is_empty() {
            self.rows(
                OVERFLOW_OPERATION,
                &overflow,
                true,
                folded,
                revision,
                &mut out,
            );
        }
        out
    }

    fn rows(
        &self,
        name: &str,
        by: &ByKindStatus,
        overflow: bool,
        folded: u64,
        revision: u32,
        out: &mut Vec<RedStats>,
    ) {
        // Error count and ratio are per (operation, kind), over its statuses.
        let mut per_kind: BTreeMap<SpanKind, (u64, u64)> = BTreeMap::new();
        for ((kind, status), d) in by {
            let e = per_kind.entry(*kind).or_default();
            e.0 += d.calls;
            if *status == SpanStatus::Error {
                e.1 += d.calls;
            }
        }
        for ((kind, status), d) in by {
            let (op_calls, op_errors) = per_kind.get(kind).copied().unwrap_or_default();
            out.push(RedStats {
                service_name: self.key.service.clone(),
                span_name: name.to_string(),
                span_kind: kind.otel_name().to_string(),
                status_code: status.otel_name().to_string(),
                window_seconds: self.key.window_seconds,
                window_start: self.key.window_start,
                window_end: self.key.window_end(),
                calls: d.calls,
                rate: d.calls as f64 / self.key.window_seconds.max(1) as f64,
                operation_errors: op_errors,
                operation_calls: op_calls,
                error_ratio: if op_calls > 0 {
                    op_errors as f64 / op_calls as f64
                } else {
                    0.0
                },
                duration_sum_ms: d.sum_ms.value(),
                duration_min_ms: d.min_ms,
                duration_max_ms: d.max_ms,
                duration_mean_ms: d.sum_ms.value() / d.calls.max(1) as f64,
                duration_p50_ms: d.quantile(0.5),
                duration_p90_ms: d.quantile(0.9),
                duration_p95_ms: d.quantile(0.95),
                duration_p99_ms: d.quantile(0.99),
                duration_p999_ms: d.quantile(0.999),
                relative_accuracy: self.alpha,
                overflow,
                overflow_operations: folded,
                revision,
            });
        }
    }
}

crate::ops::window::windowed_by_key!(RedPartial, RedWindow, RedStats);
