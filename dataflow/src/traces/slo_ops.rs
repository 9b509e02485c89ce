//! SLOs in the stream. Per batch, each span counts as an event (and maybe a bad one) for every
//! objective covering it, in its service's window ([`SloPartial`], keyed like RED by service
//! and window); the window operator merges and closes them; then, on the worker owning the
//! service, a [`BurnTracker`] per (objective, service) takes the closed windows in window order
//! and gives each its [`SloState`]: compliance and the multi-window burn rates.
//!
//! A revision of a window (late spans) revises that window's state; states already given for
//! later windows keep the burn rates they had (a page or ticket is not taken back).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use apo_schemas::slo::SloState;
use apo_schemas::Span;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::engine::checkpoint::OperatorCheckpoint;
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

    /// The trackers as bytes, for a checkpoint: per (objective, service), in that order, the
    /// trailing windows and hours.
    pub fn snapshot(&self) -> Result<Vec<u8>, bincode::Error> {
        let mut kept: Vec<_> = self
            .trackers
            .iter()
            .map(|(k, t)| {
                let (history, hours) = t.history();
                (k, history, hours)
            })
            .collect();
        kept.sort_by(|a, b| a.0.cmp(b.0));
        bincode::serialize(&kept)
    }

    /// Trackers of the same objectives with the state a [`SloTrackers::snapshot`] took.
    pub fn restored(&self, bytes: &[u8]) -> Result<Self, bincode::Error> {
        let mut out = SloTrackers::new(self.objectives.clone(), self.window_s, self.cfg);
        type Kept = Vec<(
            (usize, String),
            VecDeque<(i64, u64, u64)>,
            VecDeque<(i64, u64, u64)>,
        )>;
        let kept: Kept = bincode::deserialize(bytes)?;
        for ((objective, service), history, hours) in kept {
            let Some(o) = self.objectives.get(objective) else {
                return Err(Box::new(bincode::ErrorKind::Custom(format!(
                    "objective {objective} of the checkpoint is not configured"
                ))));
            };
            let t = BurnTracker::new(o.clone(), &service, self.window_s, self.cfg)
                .with_history(history, hours);
            out.trackers.insert((objective, service), t);
        }
        Ok(out)
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
/// owning it. With `checkpoint`, the trackers are restored from the job's checkpoint and
/// deposited at each checkpoint's time with every batch before it applied.
pub fn burn_operator<'s>(
    counts: StreamVec<'s, u64, SloCounts>,
    trackers: SloTrackers,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'s, u64, SloState> {
    let scope = counts.scope();
    counts.unary_frontier(Pipeline, "SloBurn", move |_, info| {
        if let Some(c) = &checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        let mut trackers = match checkpoint.as_ref().and_then(|c| c.restored()) {
            None => trackers,
            Some(bytes) => match trackers.restored(bytes) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "SLO burn state in the checkpoint unreadable; starting empty");
                    trackers
                }
            },
        };
        let mut stash: Stash<SloCounts> = BTreeMap::new();
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            let mut deposit_before = |next: u64, trackers: &SloTrackers| {
                if let Some(c) = checkpoint.as_mut() {
                    c.deposit_due(next, |_| trackers.snapshot());
                }
            };
            while let Some(entry) = stash.first_entry() {
                if frontier.frontier().less_equal(entry.key()) {
                    break;
                }
                deposit_before(*entry.key(), &trackers);
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
            deposit_before(
                frontier.frontier().first().copied().unwrap_or(u64::MAX),
                &trackers,
            );
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

    /// A checkpoint of the burn trackers (issue 30): restored from their snapshot, they give
    /// the states (burn rates over the trailing windows, the budget left) the trackers that
    /// were never stopped give, for new windows and for revisions of old ones.
    #[test]
    fn trackers_restored_from_their_snapshot_go_on_as_the_originals() {
        let objectives = Rc::new(default_objectives());
        let counts = |objective: usize, i: i64, bad: u64, revision: u32| SloCounts {
            objective,
            service: format!("svc-{}", i % 3),
            window_start: 1_700_000_000_000 + i * 60_000,
            events: 1_000,
            bad,
            revision,
        };
        let mut original = SloTrackers::new(objectives.clone(), 60, BurnConfig::default());
        for i in 0..400 {
            for o in 0..objectives.len() {
                original.apply(&counts(o, i, (i as u64 * 7) % 50, 1));
            }
        }
        let bytes = original.snapshot().unwrap();
        let mut restored = original.restored(&bytes).unwrap();
        assert_eq!(restored.snapshot().unwrap(), bytes);
        let next: Vec<SloCounts> = (400..500)
            .flat_map(|i| (0..objectives.len()).map(move |o| (o, i)))
            .map(|(o, i)| counts(o, i, (i as u64 * 3) % 40, 1))
            .chain([counts(0, 450, 999, 2)])
            .collect();
        let want: Vec<SloState> = next.iter().filter_map(|c| original.apply(c)).collect();
        let got: Vec<SloState> = next.iter().filter_map(|c| restored.apply(c)).collect();
        assert_eq!(want.len(), next.len());
        assert_eq!(got, want);
        let fresh: Vec<SloState> = {
            let mut empty = SloTrackers::new(objectives.clone(), 60, BurnConfig::default());
            next.iter().filter_map(|c| empty.apply(c)).collect()
        };
        assert_ne!(
            fresh, want,
            "the history matters: an empty start gives other states"
        );
    }
}
