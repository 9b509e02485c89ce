//! From assembled traces to critical-path records, and from those to each (service, operation)'s
//! share of the critical-path time per window — the "20 % of code that costs 80 %" view.
//!
//! A trace belongs to the window holding its end. Shares are ranked, largest first; past
//! `max_rows` contributors the rest are folded into one [`OTHER`] row (and while a window is
//! open at most `HOLD_FACTOR × max_rows` contributors are held; later ones go to it at once).

use std::collections::BTreeMap;

use apo_schemas::critical_path::{
    CriticalPathRecord, CriticalPathShare, PathSegment, OTHER, UNTRACED,
};
use serde::{Deserialize, Serialize};

use crate::ops::aggregate::WindowId;
use crate::traces::assembly::AssembledTrace;
use crate::traces::critical_path::critical_path;
use crate::traces::red::HOLD_FACTOR;

/// The critical-path record of an assembled trace.
pub fn path_record(trace: &AssembledTrace) -> CriticalPathRecord {
    let spans = &trace.spans;
    let ids: std::collections::HashSet<u64> = spans.iter().map(|s| s.span_id.0).collect();
    // The root: a span without a parent in the trace, earliest start, then latest end.
    let root = spans
        .iter()
        .filter(|s| s.parent_span_id.is_none_or(|p| !ids.contains(&p.0)))
        .min_by(|a, b| {
            a.start_ns
                .cmp(&b.start_ns)
                .then(b.end_ns.cmp(&a.end_ns))
                .then(a.span_id.cmp(&b.span_id))
        });
    let path = critical_path(spans);
    let segments: Vec<PathSegment> = path
        .iter()
        .map(|seg| match seg.span {
            Some(i) => PathSegment {
                span_id: Some(spans[i].span_id.to_string()),
                service: spans[i].service.clone(),
                operation: spans[i].name.clone(),
                start_ns: seg.start_ns,
                end_ns: seg.end_ns,
            },
            None => PathSegment {
                span_id: None,
                service: UNTRACED.into(),
                operation: UNTRACED.into(),
                start_ns: seg.start_ns,
                end_ns: seg.end_ns,
            },
        })
        .collect();
    let (start_ns, end_ns) = match (segments.first(), segments.last()) {
        (Some(f), Some(l)) => (f.start_ns, l.end_ns),
        _ => root.map_or((0, 0), |r| (r.start_ns, r.end_ns)),
    };
    CriticalPathRecord {
        trace_id: trace.trace_id.to_string(),
        fragment: trace.fragment,
        complete: trace.complete,
        emitted: trace.emitted.as_str().to_string(),
        root_service: root.map(|r| r.service.clone()).unwrap_or_default(),
        root_operation: root.map(|r| r.name.clone()).unwrap_or_default(),
        spans: spans.len() as u64,
        start_ns,
        end_ns,
        duration_ms: (end_ns - start_ns) as f64 / 1e6,
        segments,
    }
}

/// Identity of one window of critical-path shares.
pub type ShareWindow = WindowId;

/// (service, operation).
type Operation = (String, String);
/// (critical-path ns, traces through it).
type Contribution = (i64, u64);

/// Critical-path time per (service, operation) of some of one window's traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharePartial {
    /// The window.
    pub key: ShareWindow,
    /// Contributors with rows of their own.
    pub max_rows: usize,
    /// (service, operation) → (critical-path ns, traces through it).
    pub by: BTreeMap<Operation, Contribution>,
    /// Traces counted.
    pub traces: u64,
}

impl SharePartial {
    /// An empty partial of `key`.
    pub fn new(key: ShareWindow, max_rows: usize) -> Self {
        SharePartial {
            key,
            max_rows: max_rows.max(1),
            by: BTreeMap::new(),
            traces: 0,
        }
    }

    /// The window of `size_s` seconds holding the record (by its end).
    pub fn window_of(r: &CriticalPathRecord, size_s: u32) -> ShareWindow {
        WindowId::containing(r.end_ns.div_euclid(1_000_000), size_s)
    }

    fn entry(&mut self, service: &str, operation: &str) -> &mut (i64, u64) {
        let k = (service.to_string(), operation.to_string());
        if self.by.contains_key(&k) || self.by.len() < self.max_rows * HOLD_FACTOR {
            self.by.entry(k).or_default()
        } else {
            self.by.entry((OTHER.into(), OTHER.into())).or_default()
        }
    }

    /// Adds one trace's critical path.
    pub fn add(&mut self, r: &CriticalPathRecord) {
        self.traces += 1;
        let mut per: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for s in &r.segments {
            *per.entry((&s.service, &s.operation)).or_default() += s.end_ns - s.start_ns;
        }
        for ((service, operation), ns) in per {
            let e = self.entry(service, operation);
            e.0 += ns;
            e.1 += 1;
        }
    }

    /// Adds another partial of the same window.
    pub fn merge(&mut self, o: &SharePartial) {
        self.traces += o.traces;
        for ((service, operation), (ns, n)) in &o.by {
            let e = self.entry(service, operation);
            e.0 += ns;
            e.1 += n;
        }
    }

    /// Rows, largest contributor first (ties: by service, operation).
    pub fn finish(&self, revision: u32) -> Vec<CriticalPathShare> {
        let total: i64 = self.by.values().map(|v| v.0).sum();
        let mut ranked: Vec<(&Operation, &Contribution)> = self
            .by
            .iter()
            .filter(|(k, _)| k.0 != OTHER || k.1 != OTHER)
            .collect();
        ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        let kept = ranked.len().min(self.max_rows);
        let mut other = self
            .by
            .get(&(OTHER.to_string(), OTHER.to_string()))
            .copied()
            .unwrap_or_default();
        for (_, v) in &ranked[kept..] {
            other.0 += v.0;
            other.1 += v.1;
        }
        let row = |rank: usize, service: &str, operation: &str, v: (i64, u64)| CriticalPathShare {
            window_seconds: self.key.window_seconds,
            window_start: self.key.window_start,
            window_end: self.key.window_end(),
            service: service.to_string(),
            operation: operation.to_string(),
            rank: rank as u32 + 1,
            critical_ms: v.0 as f64 / 1e6,
            share: if total > 0 {
                v.0 as f64 / total as f64
            } else {
                0.0
            },
            traces: v.1,
            window_traces: self.traces,
            revision,
        };
        let mut out: Vec<CriticalPathShare> = ranked[..kept]
            .iter()
            .enumerate()
            .map(|(i, (k, v))| row(i, &k.0, &k.1, **v))
            .collect();
        if other.1 > 0 {
            out.push(row(kept, OTHER, OTHER, other));
        }
        out
    }
}

crate::ops::window::windowed_by_key!(SharePartial, ShareWindow, CriticalPathShare);
