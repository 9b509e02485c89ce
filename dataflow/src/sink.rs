//! The durable sink operator: hands window statistics to the configured sinks and holds a
//! timely capability for everything not yet durable, so a probe after it tells the source which
//! input offsets are safe to commit (DESIGN.md §3: offsets follow durability).
//!
//! A sink decides when to make its writes durable ([`StatsSink::commit_due`]): the Kafka sink on
//! every batch (low latency), the Parquet sink when its file is due to roll. A sink error stops
//! commits and is reported to the worker, which exits without committing: a restart replays.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use apo_schemas::WindowStats;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// Called with the rows each activation wrote, after the sinks due to commit have committed
/// (progress counters, close-to-output latency).
pub type RowsCallback = Rc<dyn Fn(&[WindowStats])>;

/// A sink failure; the message names the sink and the cause.
#[derive(Debug, thiserror::Error, Clone)]
#[error("{0}")]
pub struct SinkError(pub String);

/// Where window statistics go.
pub trait StatsSink {
    fn name(&self) -> &str;
    /// Accepts rows (may buffer or send asynchronously).
    fn write(&mut self, rows: &[WindowStats]) -> Result<(), SinkError>;
    /// Whether the sink wants its writes made durable now.
    fn commit_due(&self) -> bool;
    /// Makes every write so far durable; returns once it is.
    fn commit(&mut self) -> Result<(), SinkError>;
    /// How long until `commit_due` may turn true without new input (for time-based rolling).
    fn next_due(&self) -> Option<Duration> {
        None
    }
}

/// Writes the stream to every sink. The returned stream carries no data; its frontier is the
/// durability frontier. The first sink error is stored in `failure`.
pub fn sink_operator<'scope>(
    stats: StreamVec<'scope, u64, WindowStats>,
    mut sinks: Vec<Box<dyn StatsSink>>,
    failure: Rc<RefCell<Option<SinkError>>>,
    on_rows: RowsCallback,
) -> StreamVec<'scope, u64, ()> {
    let scope = stats.scope();
    stats.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Pipeline,
        "DurableSinks",
        move |cap, info| {
            drop(cap);
            let activator = scope.activator_for(info.address.clone());
            let mut stash: BTreeMap<u64, (Capability<u64>, Vec<WindowStats>)> = BTreeMap::new();
            let mut held: Vec<Option<Capability<u64>>> = sinks.iter().map(|_| None).collect();
            move |(input, frontier), _output| {
                input.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else {
                        return;
                    };
                    let e = stash
                        .entry(*cap.time())
                        .or_insert_with(|| (cap, Vec::new()));
                    for batch in data {
                        e.1.append(batch);
                    }
                });
                if failure.borrow().is_some() {
                    // Hold everything: nothing after a failure may be reported durable.
                    return;
                }
                let f = frontier.frontier();
                while let Some((&t, _)) = stash.first_key_value() {
                    if f.less_equal(&t) {
                        break;
                    }
                    let Some((_, (cap, rows))) = stash.pop_first() else {
                        break;
                    };
                    on_rows(&rows);
                    for (sink, h) in sinks.iter_mut().zip(held.iter_mut()) {
                        if let Err(e) = sink.write(&rows) {
                            *failure.borrow_mut() =
                                Some(SinkError(format!("{}: {}", sink.name(), e)));
                            return;
                        }
                        if h.is_none() {
                            *h = Some(cap.clone());
                        }
                    }
                }
                let finished = f.is_empty();
                let mut wake: Option<Duration> = None;
                for (sink, h) in sinks.iter_mut().zip(held.iter_mut()) {
                    if h.is_some() && (finished || sink.commit_due()) {
                        match sink.commit() {
                            Ok(()) => *h = None,
                            Err(e) => {
                                *failure.borrow_mut() =
                                    Some(SinkError(format!("{}: {}", sink.name(), e)));
                                return;
                            }
                        }
                    }
                    if h.is_some() {
                        if let Some(d) = sink.next_due() {
                            wake = Some(wake.map_or(d, |w: Duration| w.min(d)));
                        }
                    }
                }
                if let Some(d) = wake {
                    activator.activate_after(d);
                }
            }
        },
    )
}
