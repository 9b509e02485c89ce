//! SLOs in the stream. Per batch, each span counts as an event (and maybe a bad one) for every
//! objective covering it, in its service's window ([`SloPartial`], keyed like RED by service
//! and window); the window operator merges and closes them; then, on the worker owning the
//! service, a [`BurnTracker`] per (objective, service) takes the closed windows in window order
//! and gives each its [`SloState`]: compliance and the multi-window burn rates.
//!
//! A revision of a window (late spans) revises that window's state; states already given for
//! later windows keep the burn rates they had (a page or ticket is not taken back).

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use apo_schemas::slo::SloState;
use apo_schemas::Span;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::ops::stash::{stash_input, Stash};
use crate::traces::red::RedWindow;
use crate::traces::slo::{BurnConfig, BurnTracker, Objective};

/// Events and bad events per objective (by index) of some spans of one service's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloPartial {
    pub key: RedWindow,
    pub counts: BTreeMap<usize, (u64, u64)>,
}

/// A closed window's counts for one objective.
#[derive(Debug, Clone, PartialEq)]
pub struct SloCounts {
    pub objective: usize,
    pub service: String,
    pub window_start: i64,
    pub events: u64,
    pub bad: u64,
    pub revision: u32,
}

impl SloPartial {
    pub fn new(key: RedWindow) -> Self {
        SloPartial {
            key,
            counts: BTreeMap::new(),
        }
    }

    /// Counts `span` (as many events as it stands for) for every objective covering it.
    pub fn add(&mut self, span: &Span, objectives: &[Objective]) {
        let n = span.adjusted_count.max(1);
        for (i, o) in objectives.iter().enumerate() {
            if o.covers(span) {
                let c = self.counts.entry(i).or_default();
                c.0 += n;
                c.1 += o.is_bad(span) as u64 * n;
            }
        }
    }

    pub fn merge(&mut self, other: &Self) {
        for (i, (e, b)) in &other.counts {
            let c = self.counts.entry(*i).or_default();
            c.0 += e;
            c.1 += b;
        }
    }

    pub fn finish(&self, revision: u32) -> Vec<SloCounts> {
        self.counts
            .iter()
            .map(|(&objective, &(events, bad))| SloCounts {
                objective,
                service: self.key.service.clone(),
                window_start: self.key.window_start,
                events,
                bad,
                revision,
            })
            .collect()
    }
}

crate::ops::window::windowed_by_key!(SloPartial, RedWindow, SloCounts);

/// The burn trackers of the (objective, service) pairs a worker owns, fed closed windows.
pub struct SloTrackers {
    objectives: Rc<Vec<Objective>>,
    window_s: u32,
    cfg: BurnConfig,
    trackers: HashMap<(usize, String), BurnTracker>,
}

impl SloTrackers {
    pub fn new(objectives: Rc<Vec<Objective>>, window_s: u32, cfg: BurnConfig) -> Self {
        SloTrackers {
            objectives,
            window_s,
            cfg,
            trackers: HashMap::new(),
        }
    }

    /// The state of a closed window (revision 1, in window order per pair) or of a revision.
    pub fn apply(&mut self, c: &SloCounts) -> Option<SloState> {
        let objective = self.objectives.get(c.objective)?.clone();
        let (window_s, cfg) = (self.window_s, self.cfg);
        let t = self
            .trackers
            .entry((c.objective, c.service.clone()))
            .or_insert_with(|| BurnTracker::new(objective, &c.service, window_s, cfg));
        if c.revision <= 1 {
            Some(t.push(c.window_start, c.events, c.bad))
        } else {
            t.revise(c.window_start, c.events, c.bad, c.revision)
        }
    }
}

/// States of the closed windows' counts, applied in time order (and window order within a
/// time). Pipelined after the window operator: a service's windows all close on the worker
/// owning it.
pub fn burn_operator<'s>(
    counts: StreamVec<'s, u64, SloCounts>,
    mut trackers: SloTrackers,
) -> StreamVec<'s, u64, SloState> {
    counts.unary_frontier(Pipeline, "SloBurn", move |_, _| {
        let mut stash: Stash<SloCounts> = BTreeMap::new();
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            while let Some(entry) = stash.first_entry() {
                if frontier.frontier().less_equal(entry.key()) {
                    break;
                }
                let (cap, mut batch) = entry.remove();
                batch.sort_by(|a, b| {
                    (a.window_start, a.revision, a.objective, &a.service).cmp(&(
                        b.window_start,
                        b.revision,
                        b.objective,
                        &b.service,
                    ))
                });
                let states: Vec<SloState> =
                    batch.iter().filter_map(|c| trackers.apply(c)).collect();
                output.session(&cap).give_iterator(states.into_iter());
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::slo::default_objectives;
    use apo_schemas::{SpanId, SpanKind, SpanStatus, TraceId};

    #[test]
    fn a_sampled_span_is_as_many_events_as_it_stands_for() {
        let objectives = default_objectives();
        let errors = objectives
            .iter()
            .position(|o| o.name == "api-errors")
            .unwrap();
        let mut p = SloPartial::new(RedWindow {
            service: "s".into(),
            window_seconds: 60,
            window_start: 0,
        });
        let span = |status, adjusted_count| Span {
            links: Vec::new(),
            trace_id: TraceId(1),
            span_id: SpanId(1),
            parent_span_id: None,
            service: "s".into(),
            name: "GET /".into(),
            kind: SpanKind::Server,
            start_ns: 0,
            end_ns: 1_000_000,
            status,
            attributes: Default::default(),
            follows_from: false,
            adjusted_count,
        };
        p.add(&span(SpanStatus::Error, 10), &objectives);
        p.add(&span(SpanStatus::Ok, 4), &objectives);
        p.add(&span(SpanStatus::Ok, 1), &objectives);
        assert_eq!(p.counts[&errors], (15, 10));
    }
}
