//! The critical path of one trace: the chain of work that determined its end-to-end latency.
//!
//! Jaeger's algorithm (jaeger-ui, `TracePage/CriticalPath`), made iterative and total:
//!
//! 1. Children are clipped to their parent: a child starting before its parent starts at the
//!    parent's start, one ending after it ends at the parent's end, one covering its parent is
//!    cut to it; a child wholly outside its parent is dropped with all its descendants.
//! 2. Non-blocking children are dropped with their descendants: Jaeger's FOLLOWS_FROM (our
//!    `follows_from` flag), and a consumer span under a producer span.
//! 3. From the end of the top span, walk back: the span's last-finishing child that ended by the
//!    current point is on the path; the time between its end and the current point is the
//!    parent's own; continue inside that child from its end; when a span has no such child left,
//!    its remaining time back to its start is its own, and the walk continues in its parent from
//!    that span's start.
//!
//! Where Jaeger is silent or breaks, users complained; here:
//! - several roots (spans whose parent is absent, e.g. an uninstrumented caller): a virtual root
//!   spans them all; its own time on the path is time when no span ran ([`Segment::span`] =
//!   `None`);
//! - a child ending exactly where the current point is still counts (Jaeger requires a strict
//!   "ended before", which sends back-to-back sequential children's time to the parent);
//! - zero-duration spans never loop: each child is taken at most once (a cursor per span over
//!   its children sorted by end);
//! - ties are deterministic: latest end first, then earliest start, then lowest span id;
//! - no recursion: a trace of any depth is walked with an explicit stack;
//! - spans in a parent cycle (bad instrumentation) are unreachable from a root and ignored.

use std::collections::HashMap;

use apo_schemas::span::{Span, SpanKind};

/// One piece of the critical path: `span` (index into the trace's spans; `None` for time when
/// no span of a multi-root trace ran) was what the trace waited on from `start_ns` to `end_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the span in the trace's spans; `None`: no span ran.
    pub span: Option<usize>,
    /// Start of the piece, ns since the epoch.
    pub start_ns: i64,
    /// End of the piece, ns since the epoch.
    pub end_ns: i64,
}

impl Segment {
    /// Length of the piece, ns.
    pub fn duration_ns(&self) -> i64 {
        self.end_ns - self.start_ns
    }
}

/// A node of the clipped tree: a span (or the virtual root) with its clipped interval.
struct Node {
    span: Option<usize>,
    start: i64,
    end: i64,
    parent: usize,
    /// Children sorted by end descending, start ascending, span id ascending.
    children: Vec<usize>,
    /// Next child to consider in the walk.
    cursor: usize,
}

/// Whether the parent does not wait for this child.
fn non_blocking(child: &Span, parent: &Span) -> bool {
    child.follows_from || (child.kind == SpanKind::Consumer && parent.kind == SpanKind::Producer)
}

/// The critical path of a trace, in chronological order. Empty segments are left out; an empty
/// trace (or one of zero duration) has an empty path.
pub fn critical_path(spans: &[Span]) -> Vec<Segment> {
    if spans.is_empty() {
        return Vec::new();
    }
    // Span id → first span with it (later duplicates are ignored).
    let mut by_id: HashMap<u64, usize> = HashMap::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        by_id.entry(s.span_id.0).or_insert(i);
    }
    let mut kids: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        if by_id.get(&s.span_id.0) != Some(&i) {
            continue;
        }
        match s.parent_span_id.and_then(|p| by_id.get(&p.0).copied()) {
            Some(p) if p != i => {
                if !non_blocking(s, &spans[p]) {
                    kids[p].push(i);
                }
            }
            _ => roots.push(i),
        }
    }
    if roots.is_empty() {
        return Vec::new();
    }

    // Build the clipped tree top-down (breadth first, no recursion). Node 0 is the top: the
    // only root, or a virtual root over several.
    let mut nodes: Vec<Node> = Vec::with_capacity(spans.len() + 1);
    let mut queue: Vec<(usize, Vec<usize>)> = Vec::new();
    if let [only] = roots[..] {
        nodes.push(Node {
            span: Some(only),
            start: spans[only].start_ns,
            end: spans[only].end_ns,
            parent: 0,
            children: Vec::new(),
            cursor: 0,
        });
        queue.push((0, std::mem::take(&mut kids[only])));
    } else {
        let start = roots.iter().map(|&r| spans[r].start_ns).min().unwrap_or(0);
        let end = roots.iter().map(|&r| spans[r].end_ns).max().unwrap_or(0);
        nodes.push(Node {
            span: None,
            start,
            end,
            parent: 0,
            children: Vec::new(),
            cursor: 0,
        });
        queue.push((0, roots));
    }
    let mut next = 0;
    while next < queue.len() {
        let (parent, children) = std::mem::take(&mut queue[next]);
        next += 1;
        let (ps, pe) = (nodes[parent].start, nodes[parent].end);
        for c in children {
            let s = &spans[c];
            if s.start_ns >= pe || s.end_ns <= ps {
                continue; // wholly outside the parent: dropped with its descendants
            }
            let id = nodes.len();
            nodes.push(Node {
                span: Some(c),
                start: s.start_ns.max(ps),
                end: s.end_ns.min(pe),
                parent,
                children: Vec::new(),
                cursor: 0,
            });
            nodes[parent].children.push(id);
            queue.push((id, std::mem::take(&mut kids[c])));
        }
    }
    let span_id = |n: &Node| n.span.map_or(0, |i| spans[i].span_id.0);
    for i in 0..nodes.len() {
        let mut ch = std::mem::take(&mut nodes[i].children);
        ch.sort_by(|&a, &b| {
            let (x, y) = (&nodes[a], &nodes[b]);
            y.end
                .cmp(&x.end)
                .then(x.start.cmp(&y.start))
                .then(span_id(x).cmp(&span_id(y)))
                .then(a.cmp(&b))
        });
        nodes[i].children = ch;
    }

    // Walk back from the end of the top node.
    let mut path = Vec::new();
    let mut cur = 0;
    let mut bound = nodes[0].end;
    loop {
        // Children that end after the bound can never be taken later: the bound only falls.
        while nodes[cur].cursor < nodes[cur].children.len() && nodes_end(&nodes, cur) > bound {
            nodes[cur].cursor += 1;
        }
        let n = &nodes[cur];
        if n.cursor < n.children.len() {
            let child = n.children[n.cursor];
            let c_end = nodes[child].end;
            push(&mut path, n.span, c_end, bound);
            nodes[cur].cursor += 1;
            cur = child;
            bound = c_end;
        } else {
            push(&mut path, n.span, n.start, bound);
            if cur == 0 {
                break;
            }
            bound = n.start;
            cur = n.parent;
        }
    }
    path.reverse();
    path
}

/// End of the child of `node` under its cursor.
fn nodes_end(nodes: &[Node], node: usize) -> i64 {
    let n = &nodes[node];
    nodes[n.children[n.cursor]].end
}

fn push(path: &mut Vec<Segment>, span: Option<usize>, start: i64, end: i64) {
    if start < end {
        path.push(Segment {
            span,
            start_ns: start,
            end_ns: end,
        });
    }
}
