//! The durable sink operator: hands window statistics to the configured sinks and holds a
//! timely capability for everything not yet durable, so a probe after it tells the source which
//! input offsets are safe to commit (DESIGN.md §3: offsets follow durability).
//!
//! Sinks never block the worker on the network: the operator numbers its writes (every sink gets
//! every write, in the same order) and asks each sink, without waiting, how many of them are
//! durable ([`RowSink::poll_durable`]): the Kafka sink when the broker acknowledged them, the
//! Parquet sink when the file holding them was renamed into place. A write's capability is
//! released once every sink has it durable; its rows are reported (counters, latency) as soon
//! as the first sink does, which is when a reader can first see them. A sink error stops
//! commits and is reported to the worker, which exits without committing: a restart replays.
//! A row a sink can never store is the sink's to dead-letter ([`RowSink::dead_lettered`]); it
//! is counted here and is no error.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use apo_core::{RowSink, SinkError};
use apo_schemas::{OutputRow, WindowStats};

use crate::engine::context::BuildContext;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

/// Called with rows as soon as one sink has made them durable — the moment a reader can see
/// them (progress counters, close-to-output latency) — with when they were handed to the sinks
/// and when they became durable. Every row is reported once.
pub type RowsCallback<R = WindowStats> = Rc<dyn Fn(&[R], Instant, Instant)>;

/// What the worker loop needs to know of the sink operator.
#[derive(Default)]
pub struct SinkState {
    /// The first sink error; nothing more may be reported durable after it.
    pub failure: RefCell<Option<SinkError>>,
    /// Some write has waited longer than the sinks' backpressure bound
    /// ([`RowSink::backpressure_after`]) to become durable anywhere:
    /// the worker stops reading until it is (backpressure that keeps close-to-output latency
    /// low when the broker is the bottleneck; throughput is bounded by the broker anyway).
    pub behind: Cell<bool>,
    /// Rows the sinks sent to the dead-letter topic because they could never store them
    /// ([`RowSink::dead_lettered`], summed over the sinks), so far.
    pub dead_lettered: Cell<u64>,
}

/// Writes the stream to every sink. The returned stream carries no data; its frontier is the
/// durability frontier. The first sink error is stored in `state.failure`.
///
/// Rows of any type reach every sink; a probe on the returned stream passes a time only once
/// every sink has made everything before it durable (here a sink that is durable one poll after
/// each write):
///
/// ```
/// use std::rc::Rc;
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// use apo_dataflow::{sink_operator, RowSink, RowsCallback, SinkError, SinkState};
/// use timely::dataflow::operators::Probe;
/// use timely::dataflow::{InputHandleVec, ProbeHandle};
///
/// /// Durable one poll after each write.
/// #[derive(Clone, Default)]
/// struct Slow(Arc<Mutex<Vec<String>>>, u64, u64);
///
/// impl RowSink<String> for Slow {
///     fn name(&self) -> &str {
///         "slow"
///     }
///     fn write(&mut self, rows: &[String]) -> Result<(), SinkError> {
///         self.0.lock().unwrap().extend_from_slice(rows);
///         self.1 += 1;
///         Ok(())
///     }
///     fn poll_durable(&mut self, _finish: bool) -> Result<u64, SinkError> {
///         let durable = self.2;
///         self.2 = self.1;
///         Ok(durable)
///     }
///     fn next_poll(&self) -> Option<Duration> {
///         (self.2 < self.1).then_some(Duration::from_millis(1))
///     }
/// }
///
/// let sink = Slow::default();
/// let rows = sink.0.clone();
/// timely::execute_directly(move |worker| {
///     let mut input: InputHandleVec<u64, String> = InputHandleVec::new();
///     let probe = ProbeHandle::new();
///     let state = Rc::new(SinkState::default());
///     let on_rows: RowsCallback<String> = Rc::new(|_, _, _| {});
///     worker.dataflow::<u64, _, _>(|scope| {
///         sink_operator(input.to_stream(scope), vec![Box::new(sink)], state.clone(), on_rows)
///             .probe_with(&probe);
///     });
///     input.send("a row".to_string());
///     input.advance_to(1);
///     worker.step_while(|| probe.less_than(input.time()));
///     assert!(state.failure.borrow().is_none());
/// });
/// assert_eq!(*rows.lock().unwrap(), ["a row"]);
/// ```
pub fn sink_operator<'scope, R: Clone + 'static>(
    stats: StreamVec<'scope, u64, R>,
    mut sinks: Vec<Box<dyn RowSink<R>>>,
    state: Rc<SinkState>,
    on_rows: RowsCallback<R>,
) -> StreamVec<'scope, u64, ()> {
    let scope = stats.scope();
    stats.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        Pipeline,
        "DurableSinks",
        move |cap, info| {
            drop(cap);
            let activator = scope.activator_for(info.address.clone());
            let mut stash: BTreeMap<u64, (Capability<u64>, Vec<R>)> = BTreeMap::new();
            // Writes made so far, and per write: its capability until every sink has it
            // durable, its rows until one sink has.
            let mut written = 0u64;
            let mut caps: VecDeque<(u64, Capability<u64>)> = VecDeque::new();
            let mut unreported: VecDeque<(u64, Vec<R>, Instant)> = VecDeque::new();
            let bound = sinks.iter().filter_map(|s| s.backpressure_after()).min();
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
                if state.failure.borrow().is_some() {
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
                    for sink in sinks.iter_mut() {
                        if let Err(e) = sink.write(&rows) {
                            fail(&state.failure, sink.as_ref(), e);
                            return;
                        }
                    }
                    written += 1;
                    caps.push_back((written, cap));
                    unreported.push_back((written, rows, Instant::now()));
                }
                let finished = f.is_empty();
                let (mut least, mut most) = (written, if sinks.is_empty() { written } else { 0 });
                let now = Instant::now();
                // Per sink: writes durable and since when (at the latest).
                let mut durable: Vec<(u64, Instant)> = Vec::with_capacity(sinks.len());
                for sink in sinks.iter_mut() {
                    match sink.poll_durable(finished) {
                        Ok(d) => {
                            least = least.min(d);
                            most = most.max(d);
                            durable.push((d, sink.durable_at().map_or(now, |at| at.min(now))));
                        }
                        Err(e) => {
                            fail(&state.failure, sink.as_ref(), e);
                            return;
                        }
                    }
                }
                state
                    .dead_lettered
                    .set(sinks.iter().map(|s| s.dead_lettered()).sum());
                while caps.front().is_some_and(|(n, _)| *n <= least) {
                    caps.pop_front();
                }
                while unreported.front().is_some_and(|(n, _, _)| *n <= most) {
                    if let Some((n, rows, at)) = unreported.pop_front() {
                        // The first sink to make it durable shows it to readers.
                        let seen = durable
                            .iter()
                            .filter(|(d, _)| *d >= n)
                            .map(|(_, t)| *t)
                            .min()
                            .unwrap_or(now)
                            .max(at);
                        on_rows(&rows, at, seen);
                    }
                }
                state.behind.set(
                    unreported
                        .front()
                        .zip(bound)
                        .is_some_and(|((_, _, at), b)| at.elapsed() > b),
                );
                if !caps.is_empty() {
                    let wake = sinks
                        .iter()
                        .filter_map(|s| s.next_poll())
                        .min()
                        .unwrap_or(Duration::from_millis(10));
                    activator.activate_after(wake);
                }
            }
        },
    )
}

fn fail<R>(failure: &RefCell<Option<SinkError>>, sink: &dyn RowSink<R>, e: SinkError) {
    *failure.borrow_mut() = Some(SinkError(format!("{}: {}", sink.name(), e)));
}

/// Sink operator with progress counting for any windowed row; rows close `delay_ms` after
/// their window's end (close-to-output latency counts from then).
pub fn tracked_sink<'s, R: OutputRow + Clone + 'static>(
    rows: StreamVec<'s, u64, R>,
    sinks: Vec<Box<dyn RowSink<R>>>,
    delay_ms: i64,
    ctx: &BuildContext,
    states: &mut Vec<Rc<SinkState>>,
) -> StreamVec<'s, u64, ()> {
    let state = Rc::new(SinkState::default());
    states.push(state.clone());
    let progress = ctx.progress.clone();
    let on_rows: RowsCallback<R> = Rc::new(move |rows: &[R], written: Instant, seen: Instant| {
        progress.record_output(
            rows.iter()
                .map(|r| (r.window_end().saturating_add(delay_ms), r.revision())),
            written,
            seen,
        );
    });
    sink_operator(rows, sinks, state, on_rows)
}
