//! The current service map: every edge's totals over a sliding horizon, maintained with
//! differential dataflow.
//!
//! Each closed edge window enters a collection of (edge, window) when it closes and leaves it
//! a horizon later: its retraction is an update scheduled at that future time, so nothing has
//! to remember to expire it. Each window carries its latency sketch's bins; the totals merge
//! them, so the current map's percentiles are over every call within the horizon (within the
//! sketch's relative accuracy), not a maximum of per-window figures. A revision (late spans) retracts the window's old value and adds
//! the new one. A `reduce` per edge sums the windows present; every change of that sum becomes
//! a [`ServiceMapCurrent`] row — `upsert` with the new totals, or `retract` once the edge's last
//! window has left the horizon (traffic on it stopped).

use std::collections::{BTreeMap, HashMap};

use apo_schemas::service_map::ServiceMapCurrent;
use differential_dataflow::AsCollection;
use serde::{Deserialize, Serialize};

use crate::engine::checkpoint::OperatorCheckpoint;
use crate::ops::sketch::{DDSketch, SketchBins};
use crate::ops::stash::{next_passed, stash_input, Stash};
use crate::traces::service_map::EdgeWindow;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// client, server, connection type.
type Edge = (String, String, String);

/// A window present in the map: (edge, window start) → its value and when it retires.
type Present = ((Edge, i64), (WindowCalls, u64));

/// A change of an edge's totals: +1 for the new value, −1 for the old.
type Change = ((Edge, EdgeTotals), isize);

/// One closed window of an edge, in whole microseconds (ordered, as differential needs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowCalls {
    pub window_start: i64,
    pub calls: u64,
    pub failed: u64,
    pub sum_us: u64,
    pub max_us: u64,
    pub p95_us: u64,
    /// The window's latency sketch (ms).
    pub latency: SketchBins,
}

/// An edge's totals over the windows in the horizon.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EdgeTotals {
    pub windows: u32,
    pub calls: u64,
    pub failed: u64,
    pub sum_us: u64,
    pub max_us: u64,
    pub worst_p95_us: u64,
    /// The latency sketches of the windows present, merged.
    pub latency: SketchBins,
}

fn us(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1000.0).round() as u64
    } else {
        0
    }
}

impl WindowCalls {
    pub fn of(w: &EdgeWindow) -> Self {
        let e = &w.edge;
        WindowCalls {
            latency: w.latency.clone(),
            window_start: e.window_start,
            calls: e.calls,
            failed: e.failed,
            sum_us: us(e.latency_mean_ms * e.calls as f64),
            max_us: us(e.latency_max_ms),
            p95_us: us(e.latency_p95_ms),
        }
    }
}

impl EdgeTotals {
    /// Totals of the windows present (multiplicity > 0).
    pub fn of<'a>(windows: impl Iterator<Item = (&'a WindowCalls, isize)>) -> Self {
        let mut t = EdgeTotals::default();
        for (w, n) in windows {
            if n <= 0 {
                continue;
            }
            let n = n as u64;
            t.windows += n as u32;
            t.calls += w.calls * n;
            t.failed += w.failed * n;
            t.sum_us += w.sum_us * n;
            t.max_us = t.max_us.max(w.max_us);
            t.worst_p95_us = t.worst_p95_us.max(w.p95_us);
            t.latency = t.latency.merged(&w.latency, n);
        }
        t
    }
}

/// The current map's changes from closed edge windows. `horizon_ms`: how long a window stays
/// in the map after it closes.
/// `alpha`: the relative accuracy of the edges' latency sketches.
///
/// With checkpoints (`windows_checkpoint` for the windows present, `changes_checkpoint` for the
/// totals last given per edge), a restored run puts the windows present back into the
/// collection at the checkpoint's time, with their retractions where they were, and gives
/// rows at that time only for edges whose totals differ from the ones last given before it:
/// the same rows as a run that was never stopped.
pub fn current_map<'s>(
    edges: StreamVec<'s, u64, EdgeWindow>,
    horizon_ms: i64,
    alpha: f64,
    mut windows_checkpoint: Option<OperatorCheckpoint>,
    mut changes_checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'s, u64, ServiceMapCurrent> {
    let horizon = horizon_ms.max(1) as u64;
    let scope = edges.scope();
    // 1. Windows in and (later) out of the collection.
    let updates = edges.unary_frontier(Pipeline, "MapWindows", move |cap, info| {
        if let Some(c) = &windows_checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        // Present value and retirement time of each (edge, window).
        let mut present: HashMap<(Edge, i64), (WindowCalls, u64)> = HashMap::new();
        // The windows of the restored checkpoint, given back at its time on the first run.
        let mut restore: Option<(Capability<u64>, Vec<Present>)> = None;
        if let Some(bytes) = windows_checkpoint.as_ref().and_then(|c| c.restored()) {
            type Kept = (u64, Vec<Present>);
            match bincode::deserialize::<Kept>(bytes) {
                Ok((t, kept)) => restore = Some((cap.delayed(&t), kept)),
                Err(e) => tracing::error!(error = %e, "current service map in the checkpoint unreadable; starting empty"),
            }
        }
        drop(cap);
        let mut stash: Stash<EdgeWindow> = Stash::new();
        move |(input, frontier), output| {
            if let Some((cap, kept)) = restore.take() {
                let t = *cap.time();
                let mut session = output.session(&cap);
                for (slot, (value, retire)) in kept {
                    session.give(((slot.0.clone(), value.clone()), t, 1isize));
                    session.give(((slot.0.clone(), value.clone()), retire, -1isize));
                    present.insert(slot, (value, retire));
                }
            }
            stash_input(input, &mut stash);
            let f = frontier.frontier();
            let mut deposit_before = |next: u64, present: &HashMap<(Edge, i64), (WindowCalls, u64)>| {
                if let Some(c) = windows_checkpoint.as_mut() {
                    c.deposit_due(next, |time| {
                        // In window order, without those retired by then.
                        let mut kept: Vec<_> = present
                            .iter()
                            .filter(|(_, (_, retire))| *retire > time)
                            .collect();
                        kept.sort_by(|a, b| a.0.cmp(b.0));
                        bincode::serialize(&(time, kept))
                    });
                }
            };
            while let Some(&t) = stash.keys().next() {
                if f.less_equal(&t) {
                    break;
                }
                deposit_before(t, &present);
                let Some((cap, batch)) = next_passed(&mut stash, f) else {
                    break;
                };
                let mut session = output.session(&cap);
                for w in batch {
                    let e = &w.edge;
                    let edge = (
                        e.client.clone(),
                        e.server.clone(),
                        e.connection_type.clone(),
                    );
                    let value = WindowCalls::of(&w);
                    let slot = (edge.clone(), e.window_start);
                    let retire = match present.remove(&slot) {
                        Some((old, retire)) => {
                            if t >= retire {
                                // Already out of the horizon: the revision changes nothing.
                                continue;
                            }
                            session.give(((edge.clone(), old.clone()), t, -1isize));
                            session.give(((edge.clone(), old), retire, 1isize));
                            retire
                        }
                        None => t + horizon,
                    };
                    session.give(((edge.clone(), value.clone()), t, 1isize));
                    session.give(((edge, value.clone()), retire, -1isize));
                    present.insert(slot, (value, retire));
                }
            }
            let upto = f.first().copied().unwrap_or(u64::MAX);
            deposit_before(upto, &present);
            present.retain(|_, (_, retire)| *retire > upto);
        }
    });
    // 2. Totals per edge over the windows present.
    let totals = updates.as_collection().reduce(|_edge, windows, out| {
        out.push((
            EdgeTotals::of(windows.iter().map(|(w, n)| (*w, *n))),
            1isize,
        ));
    });
    // 3. Changes of the totals as rows, once their time is complete.
    let scope = totals.inner.scope();
    totals
        .inner
        .unary_frontier(Pipeline, "MapChanges", move |cap, info| {
            if let Some(c) = &changes_checkpoint {
                c.wake_with(scope.activator_for(info.address.clone()));
            }
            // The totals last given per edge.
            let mut current: BTreeMap<Edge, EdgeTotals> = BTreeMap::new();
            // Restored: the checkpoint's time (a capability at it) and the totals given before
            // it, against which the first changes at that time are judged.
            let mut restored: Option<(Capability<u64>, BTreeMap<Edge, EdgeTotals>)> = None;
            if let Some(bytes) = changes_checkpoint.as_ref().and_then(|c| c.restored()) {
                match bincode::deserialize::<(u64, BTreeMap<Edge, EdgeTotals>)>(bytes) {
                    Ok((t, before)) => {
                        current = before.clone();
                        restored = Some((cap.delayed(&t), before));
                    }
                    Err(e) => tracing::error!(error = %e, "current service map totals in the checkpoint unreadable; starting empty"),
                }
            }
            drop(cap);
            let mut stash: BTreeMap<u64, (Capability<u64>, Vec<Change>)> = BTreeMap::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    for (d, t, r) in data.drain(..) {
                        stash
                            .entry(t)
                            .or_insert_with(|| (cap.delayed(&t, 0), Vec::new()))
                            .1
                            .push((d, r));
                    }
                });
                let f = frontier.frontier();
                loop {
                    let next = stash.first_key_value().map(|(&t, _)| t);
                    // The restored time passed without changes: every edge given before it
                    // has left the map.
                    if let Some((rcap, before)) = restored.as_ref() {
                        let t = *rcap.time();
                        if next.is_none_or(|n| n > t) && !f.less_equal(&t) {
                            let rows: Vec<ServiceMapCurrent> = before
                                .keys()
                                .map(|edge| row(edge.clone(), None, t, horizon, alpha))
                                .collect();
                            current.clear();
                            output.session(rcap).give_iterator(rows.into_iter());
                            restored = None;
                            continue;
                        }
                    }
                    let Some(t) = next.filter(|t| !f.less_equal(t)) else {
                        break;
                    };
                    if let Some(c) = changes_checkpoint.as_mut() {
                        c.deposit_due(t, |time| bincode::serialize(&(time, &current)));
                    }
                    let Some((cap, changes)) = stash.remove(&t) else {
                        break;
                    };
                    let mut by_edge: BTreeMap<Edge, (Option<EdgeTotals>, bool)> = BTreeMap::new();
                    for ((edge, totals), r) in changes {
                        let e = by_edge.entry(edge).or_insert((None, false));
                        if r > 0 {
                            e.0 = Some(totals);
                        } else {
                            e.1 = true;
                        }
                    }
                    // At the restored time, the collection was rebuilt: an edge's totals are a
                    // change only where they differ from those given before it.
                    if let Some((rcap, before)) = restored.take_if(|(c, _)| *c.time() == t) {
                        drop(rcap);
                        for (edge, was) in before {
                            match by_edge.get(&edge) {
                                Some((Some(now), _)) if *now == was => {
                                    by_edge.remove(&edge);
                                }
                                Some(_) => {}
                                None => {
                                    by_edge.insert(edge, (None, true));
                                }
                            }
                        }
                    }
                    let rows: Vec<ServiceMapCurrent> = by_edge
                        .into_iter()
                        .map(|(edge, (now, _))| {
                            match &now {
                                Some(totals) => current.insert(edge.clone(), totals.clone()),
                                None => current.remove(&edge),
                            };
                            row(edge, now, t, horizon, alpha)
                        })
                        .collect();
                    output.session(&cap).give_iterator(rows.into_iter());
                }
                if let Some(c) = changes_checkpoint.as_mut() {
                    let upto = f.first().copied().unwrap_or(u64::MAX);
                    c.deposit_due(upto, |time| bincode::serialize(&(time, &current)));
                }
            }
        })
}

fn row(
    edge: Edge,
    totals: Option<EdgeTotals>,
    t: u64,
    horizon: u64,
    alpha: f64,
) -> ServiceMapCurrent {
    let change = if totals.is_some() {
        "upsert"
    } else {
        "retract"
    };
    let x = totals.unwrap_or_default();
    let ms = |v: u64| v as f64 / 1000.0;
    let mut sketch = DDSketch::new(alpha);
    sketch.add_bins(&x.latency);
    // Clamped to what was observed: a sketch's bin value may lie above the largest latency.
    let q = |q: f64| {
        sketch
            .quantile(q)
            .map_or(0.0, |v| v.clamp(0.0, ms(x.max_us)))
    };
    ServiceMapCurrent {
        latency_p50_ms: q(0.5),
        latency_p95_ms: q(0.95),
        latency_p99_ms: q(0.99),
        relative_accuracy: alpha,
        client: edge.0,
        server: edge.1,
        connection_type: edge.2,
        change: change.into(),
        horizon_seconds: (horizon / 1000) as u32,
        as_of: t as i64,
        windows: x.windows,
        calls: x.calls,
        failed: x.failed,
        error_ratio: if x.calls == 0 {
            0.0
        } else {
            x.failed as f64 / x.calls as f64
        },
        latency_mean_ms: if x.calls == 0 {
            0.0
        } else {
            ms(x.sum_us) / x.calls as f64
        },
        latency_max_ms: ms(x.max_us),
        worst_window_p95_ms: ms(x.worst_p95_us),
        revision: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_clamped_to_the_largest_latency_observed() {
        // DDSketch at 1 % keeps 100 ms in a bin whose value is about 100.49 ms.
        let mut sketch = DDSketch::new(0.01);
        for _ in 0..10 {
            sketch.add(100.0);
        }
        assert!(sketch.quantile(0.99).unwrap() > 100.0);
        let totals = EdgeTotals {
            windows: 1,
            calls: 10,
            failed: 0,
            sum_us: 1_000_000,
            max_us: 100_000,
            worst_p95_us: 100_000,
            latency: sketch.bins(),
        };
        let edge = ("a".to_string(), "b".to_string(), String::new());
        let r = row(edge, Some(totals), 60_000, 900_000, 0.01);
        assert_eq!(r.latency_p50_ms, 100.0);
        assert_eq!(r.latency_p99_ms, 100.0);
        assert_eq!(r.latency_max_ms, 100.0);
    }
}
