//! Event-time tumbling windows with revisions for late data (DESIGN.md §3).
//!
//! Timely times are watermarks (ms). A batch of partials arriving at time `t` was read when the
//! watermark was `t`: partials of windows ending after `t` are on time, the others are late. The
//! operator applies batches strictly in time order once the frontier has passed them, closing
//! windows in between, so its output depends only on what was read at which watermark, never on
//! how batches were cut or scheduled:
//!
//! 1. for each complete batch time `t`, in order: close (emit revision 1 of) every window with
//!    end ≤ `t`, then apply the batch; a late partial for an emitted window marks it for a new
//!    revision, emitted at `t`;
//! 2. close every window with end ≤ frontier;
//! 3. drop windows whose end + horizon ≤ frontier: nothing can revise them any more (ingest
//!    sends records older than watermark − horizon to the dead-letter topic).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use apo_schemas::WindowStats;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Stream, StreamVec};

use crate::engine::checkpoint::OperatorCheckpoint;
use crate::ops::aggregate::{Partial, WindowKey};
use crate::ops::held::Held;
use crate::ops::stash::MergedStash;

/// A mergeable aggregate of one window of one key: what the window operator holds and closes.
pub trait Windowed: timely::ExchangeData {
    type Key: Clone + Eq + Hash + serde::Serialize + serde::de::DeserializeOwned + 'static;
    /// The output record(s) of a window.
    type Row: Clone + 'static;
    fn key(&self) -> &Self::Key;
    /// Exclusive end of the window, ms.
    fn window_end(&self) -> i64;
    /// Which worker owns the key (stable across processes of one build).
    fn route(&self) -> u64;
    fn merge(&mut self, other: &Self);
    /// Bytes the partial holds on the heap, for the memory budget (its key's included). The
    /// default, 0, suits partials whose number is bounded by another limit and which hold
    /// little (RED by operation, SLOs, edges, shares): only their inline size is counted.
    fn heap_bytes(&self) -> usize {
        0
    }
    /// The part of [`Windowed::heap_bytes`] that is the key's (copied into the window indexes).
    fn key_heap_bytes(&self) -> usize {
        0
    }
    /// Memory an open window's row takes on its way out once it closes, reserved while it is
    /// open: every open window of a size closes at once, and their rows then exist together in
    /// several forms (the row, its JSON, the Kafka client's copy, the Parquet writer's buffers,
    /// the copy kept until durable). 0 for partials whose number another limit bounds.
    const OUTPUT_BYTES: usize = 0;
    /// Appends the window's rows at `revision`.
    fn finish(&self, revision: u32, out: &mut Vec<Self::Row>);
}

/// Implements [`Windowed`] for a partial with a `key` field (having `window_end()` and
/// `route()`) and inherent `merge(&mut self, &Self)` and `finish(&self, u32) -> Vec<Row>`.
macro_rules! windowed_by_key {
    ($t:ty, $key:ty, $row:ty) => {
        impl $crate::ops::window::Windowed for $t {
            type Key = $key;
            type Row = $row;
            fn key(&self) -> &$key {
                &self.key
            }
            fn window_end(&self) -> i64 {
                self.key.window_end()
            }
            fn route(&self) -> u64 {
                self.key.route()
            }
            fn merge(&mut self, other: &Self) {
                <$t>::merge(self, other)
            }
            fn finish(&self, revision: u32, out: &mut Vec<$row>) {
                out.extend(<$t>::finish(self, revision));
            }
        }
    };
}
pub(crate) use windowed_by_key;

impl Windowed for Partial {
    type Key = WindowKey;
    type Row = WindowStats;
    fn key(&self) -> &WindowKey {
        &self.key
    }
    fn window_end(&self) -> i64 {
        self.key.window_end()
    }
    fn route(&self) -> u64 {
        self.key.route()
    }
    fn merge(&mut self, other: &Self) {
        Partial::merge(self, other)
    }
    fn heap_bytes(&self) -> usize {
        Partial::heap_bytes(self)
    }
    fn key_heap_bytes(&self) -> usize {
        use crate::ops::held::block_bytes;
        block_bytes(self.key.service.capacity())
            + block_bytes(self.key.metric.capacity())
            + crate::ops::aggregate::attributes_bytes(&self.key.attributes)
    }
    /// Measured with 200 000 series against the real broker (`tests/it/memory_budget.rs`, the
    /// run the value was chosen on): a burst of 60 000 to 130 000 closing windows raised the
    /// resident memory by 5 to 8 KB a row until it was durable and its Parquet file written
    /// (with 4 KB reserved, the process went 30 % over its budget at such a burst).
    const OUTPUT_BYTES: usize = 8192;
    fn finish(&self, revision: u32, out: &mut Vec<WindowStats>) {
        out.push(Partial::finish(self, revision));
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Window<P> {
    partial: P,
    /// Revisions emitted so far (0: still open).
    revision: u32,
    dirty: bool,
}

/// The windows of the keys one worker owns; pure state, driven by [`window_operator`].
pub struct WindowState<P: Windowed> {
    windows: HashMap<P::Key, Window<P>>,
    /// Not yet emitted windows by end.
    open: BTreeMap<i64, Vec<P::Key>>,
    /// Emitted windows by the time they may be dropped (end + horizon).
    retired: BTreeMap<i64, Vec<P::Key>>,
    horizon_ms: i64,
    /// Windows close this long after their end (0 for records read in event time; the idle
    /// time of trace assembly for outputs of assembled traces, which arrive that much later).
    delay_ms: i64,
    rows: Vec<P::Row>,
    /// Estimated bytes of every window held.
    bytes: usize,
}

impl<P: Windowed> WindowState<P> {
    /// What one window takes: its entry (key and window, with the hash table's slack: its
    /// capacity is a power of two, half again the entries on average), the key again in the
    /// open and the retired index, and what its partial holds on the heap, the key's names
    /// counted twice more for those copies.
    fn window_bytes(p: &P) -> usize {
        let entry = std::mem::size_of::<(P::Key, Window<P>)>() * 3 / 2;
        entry + 2 * std::mem::size_of::<P::Key>() + p.heap_bytes() + 2 * p.key_heap_bytes()
    }
    #[cfg(test)]
    pub fn new(horizon_ms: i64) -> Self {
        Self::with_delay(horizon_ms, 0)
    }

    /// Windows that close `delay_ms` after their end.
    pub fn with_delay(horizon_ms: i64, delay_ms: i64) -> Self {
        WindowState {
            windows: HashMap::new(),
            open: BTreeMap::new(),
            retired: BTreeMap::new(),
            horizon_ms,
            delay_ms,
            rows: Vec::new(),
            bytes: 0,
        }
    }

    /// The state as bytes for a checkpoint: every window held (open, or emitted and still
    /// within the horizon) with its revision.
    pub fn snapshot(&self) -> Result<Vec<u8>, bincode::Error> {
        let windows: Vec<(&P, u32, bool)> = self
            .windows
            .values()
            .map(|w| (&w.partial, w.revision, w.dirty))
            .collect();
        let retired: Vec<(&i64, &Vec<P::Key>)> = self.retired.iter().collect();
        let open: Vec<(&i64, &Vec<P::Key>)> = self.open.iter().collect();
        bincode::serialize(&(windows, open, retired))
    }

    /// The state a [`WindowState::snapshot`] took, for windows that close `delay_ms` after
    /// their end.
    pub fn restore(bytes: &[u8], horizon_ms: i64, delay_ms: i64) -> Result<Self, bincode::Error> {
        type Taken<P, K> = (Vec<(P, u32, bool)>, Vec<(i64, Vec<K>)>, Vec<(i64, Vec<K>)>);
        let (windows, open, retired): Taken<P, P::Key> = bincode::deserialize(bytes)?;
        let mut st = Self::with_delay(horizon_ms, delay_ms);
        for (partial, revision, dirty) in windows {
            st.bytes += Self::window_bytes(&partial);
            if revision == 0 && !dirty {
                st.bytes += P::OUTPUT_BYTES;
            }
            st.windows.insert(
                partial.key().clone(),
                Window {
                    partial,
                    revision,
                    dirty,
                },
            );
        }
        st.open = open.into_iter().collect();
        st.retired = retired.into_iter().collect();
        Ok(st)
    }

    /// Estimated bytes of the windows held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Windows held in memory.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The earliest close (end + delay) of a window not emitted yet.
    pub fn next_close(&self) -> Option<i64> {
        self.open.keys().next().copied()
    }

    /// Emits revision 1 of every open window closing at or before `upto`, with its close time.
    pub fn close_until(&mut self, upto: i64, out: &mut Vec<(i64, P::Row)>) {
        while let Some((&end, _)) = self.open.first_key_value() {
            if end > upto {
                break;
            }
            let Some((_, keys)) = self.open.pop_first() else {
                break;
            };
            for k in keys {
                if let Some(w) = self.windows.get_mut(&k) {
                    self.bytes = self.bytes.saturating_sub(P::OUTPUT_BYTES);
                    w.revision = 1;
                    w.dirty = false;
                    w.partial.finish(1, &mut self.rows);
                    out.extend(self.rows.drain(..).map(|r| (end, r)));
                    self.retired
                        .entry(end + self.horizon_ms)
                        .or_default()
                        .push(k);
                }
            }
        }
    }

    /// Applies partials read at watermark `t`; revisions they cause are pushed to `out`.
    pub fn apply(&mut self, t: i64, partials: Vec<P>, out: &mut Vec<P::Row>) {
        let mut touched = Vec::new();
        for p in partials {
            // Below, `end` is when the window closes.
            let end = p.window_end() + self.delay_ms;
            match self.windows.get_mut(p.key()) {
                Some(w) => {
                    let before = w.partial.heap_bytes();
                    w.partial.merge(&p);
                    self.bytes = (self.bytes + w.partial.heap_bytes()).saturating_sub(before);
                    if w.revision > 0 && !w.dirty {
                        w.dirty = true;
                        touched.push(p.key().clone());
                    }
                }
                None => {
                    let key = p.key().clone();
                    self.bytes += Self::window_bytes(&p);
                    if end <= t {
                        // Late, and the first data of this window: it was never emitted.
                        self.windows.insert(
                            key.clone(),
                            Window {
                                partial: p,
                                revision: 0,
                                dirty: true,
                            },
                        );
                        touched.push(key.clone());
                        self.retired
                            .entry(end + self.horizon_ms)
                            .or_default()
                            .push(key);
                    } else {
                        self.bytes += P::OUTPUT_BYTES;
                        self.windows.insert(
                            key.clone(),
                            Window {
                                partial: p,
                                revision: 0,
                                dirty: false,
                            },
                        );
                        self.open.entry(end).or_default().push(key);
                    }
                }
            }
        }
        for k in touched {
            if let Some(w) = self.windows.get_mut(&k) {
                w.revision += 1;
                w.dirty = false;
                w.partial.finish(w.revision, out);
            }
        }
    }

    /// Forgets windows whose end + horizon ≤ `frontier`.
    pub fn evict_until(&mut self, frontier: i64) {
        while let Some((&at, _)) = self.retired.first_key_value() {
            if at > frontier {
                break;
            }
            if let Some((_, keys)) = self.retired.pop_first() {
                for k in keys {
                    if let Some(w) = self.windows.remove(&k) {
                        self.bytes = self.bytes.saturating_sub(Self::window_bytes(&w.partial));
                    }
                }
            }
        }
    }
}

/// What a new window of `p`'s series will take in a [`WindowState`], its row's way out included:
/// what the series limit charges a series it admits against the memory budget's room.
pub fn new_window_bytes(p: &Partial) -> usize {
    WindowState::<Partial>::window_bytes(p) + <Partial as Windowed>::OUTPUT_BYTES
}

/// The windowing operator: exchanges partials by series, merges them per window, emits window
/// statistics at their close (time = window end − 1 ms, see [`emit_time`]) and revisions at the
/// time of the late batch.
///
/// RED partials of two spans in one 10 s window: the window closes when the input time (the
/// watermark) passes its end, and emits revision 1; a late span within the horizon emits
/// revision 2.
///
/// ```
/// use std::rc::Rc;
/// use std::sync::{Arc, Mutex};
///
/// use apo_dataflow::{window_operator, Held, RedPartial};
/// use apo_schemas::red::RedStats;
/// use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};
/// use timely::dataflow::operators::{Inspect, Probe};
/// use timely::dataflow::{InputHandleVec, ProbeHandle};
///
/// let span = |id: u64, end_ms: i64| Span {
///     trace_id: TraceId(u128::from(id)),
///     span_id: SpanId(id),
///     parent_span_id: None,
///     service: "checkout".into(),
///     name: "PlaceOrder".into(),
///     kind: SpanKind::Server,
///     start_ns: (end_ms - 5) * 1_000_000,
///     end_ns: end_ms * 1_000_000,
///     status: SpanStatus::Ok,
///     attributes: Default::default(),
///     follows_from: false,
///     adjusted_count: 1,
///     links: Vec::new(),
/// };
/// let partial = |s: &Span| {
///     let mut p = RedPartial::new(RedPartial::window_of(s, 10), 0.01, 10);
///     p.add(s);
///     p
/// };
/// let out: Arc<Mutex<Vec<RedStats>>> = Arc::default();
/// let seen = out.clone();
/// timely::execute_directly(move |worker| {
///     let mut input: InputHandleVec<u64, RedPartial> = InputHandleVec::new();
///     let probe = ProbeHandle::new();
///     worker.dataflow::<u64, _, _>(|scope| {
///         let held = Rc::new(Held::default());
///         window_operator(input.to_stream(scope), 300_000, held)
///             .inspect(move |r: &RedStats| seen.lock().unwrap().push(r.clone()))
///             .probe_with(&probe);
///     });
///     input.send(partial(&span(1, 1_000)));
///     input.send(partial(&span(2, 2_000)));
///     input.advance_to(10_000); // the watermark passes the window's end
///     worker.step_while(|| probe.less_than(input.time()));
///     input.send(partial(&span(3, 3_000))); // late, within the 300 s horizon
///     input.advance_to(11_000);
///     worker.step_while(|| probe.less_than(input.time()));
/// });
/// let out = out.lock().unwrap();
/// assert_eq!(out.len(), 2);
/// assert_eq!((out[0].revision, out[0].calls), (1, 2));
/// assert_eq!((out[1].revision, out[1].calls), (2, 3));
/// ```
pub fn window_operator<'scope, P: Windowed>(
    partials: StreamVec<'scope, u64, P>,
    horizon_ms: i64,
    windows_held: std::rc::Rc<Held>,
) -> StreamVec<'scope, u64, P::Row> {
    delayed_window_operator(partials, horizon_ms, 0, windows_held)
}

/// [`window_operator`] for partials that reach the dataflow up to `delay_ms` after their
/// window's end (outputs of assembled traces): windows close `delay_ms` after their end.
pub fn delayed_window_operator<'scope, P: Windowed>(
    partials: StreamVec<'scope, u64, P>,
    horizon_ms: i64,
    delay_ms: i64,
    windows_held: std::rc::Rc<Held>,
) -> StreamVec<'scope, u64, P::Row> {
    checkpointed_window_operator(partials, horizon_ms, delay_ms, windows_held, None)
}

/// [`delayed_window_operator`] whose windows go into the job's checkpoints (`checkpoint`):
/// restored from the checkpoint it was started from, deposited at each checkpoint's time as
/// they stand with every batch before that time applied and every window ending by it closed.
pub fn checkpointed_window_operator<'scope, P: Windowed>(
    partials: StreamVec<'scope, u64, P>,
    horizon_ms: i64,
    delay_ms: i64,
    windows_held: std::rc::Rc<Held>,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'scope, u64, P::Row> {
    let pact = Exchange::new(|p: &P| p.route());
    let scope = partials.scope();
    let stream: Stream<'scope, u64, Vec<P::Row>> =
        partials.unary_frontier(pact, "Windows", move |cap, info| {
            if let Some(c) = &checkpoint {
                c.wake_with(scope.activator_for(info.address.clone()));
            }
            let mut held: Option<Capability<u64>> = Some(cap);
            let restored = checkpoint.as_ref().and_then(|c| c.restored()).map(|bytes| {
                WindowState::<P>::restore(bytes, horizon_ms, delay_ms)
            });
            let mut state = match restored {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    // The bytes passed the checkpoint's CRC: only another build's layout gets
                    // here, and its fingerprint is refused before. Start empty, loudly.
                    tracing::error!(error = %e, "window state in the checkpoint unreadable; starting empty");
                    WindowState::<P>::with_delay(horizon_ms, delay_ms)
                }
                None => WindowState::<P>::with_delay(horizon_ms, delay_ms),
            };
            let mut stash: MergedStash<P> = MergedStash::default();
            let mut closed = Vec::new();
            let mut revised = Vec::new();
            move |(input, frontier), output| {
                stash.take(input);
                let f = frontier.frontier();
                let done = |t: u64| !f.less_equal(&t);
                let upto = f.first().map_or(i64::MAX, |&t| t as i64);
                // A checkpoint due before the next batch (or by the frontier): its state is
                // every batch before its time applied and every window ending by it closed.
                let mut deposit_before = |next: i64,
                                          state: &mut WindowState<P>,
                                          closed: &mut Vec<(i64, P::Row)>| {
                    if let Some(c) = checkpoint.as_mut() {
                        c.deposit_due(next.max(0) as u64, |time| {
                            state.close_until(time as i64, closed);
                            state.snapshot()
                        });
                    }
                };
                // 1. complete batches in time order, closing windows before each.
                while let Some(t) = stash.first_time() {
                    if !done(t) {
                        break;
                    }
                    deposit_before(t as i64, &mut state, &mut closed);
                    emit_closed(&mut closed, held.as_ref(), output);
                    let Some((cap, batch)) = stash.pop_first() else {
                        break;
                    };
                    state.close_until(t as i64, &mut closed);
                    emit_closed(&mut closed, held.as_ref(), output);
                    state.apply(t as i64, batch, &mut revised);
                    if !revised.is_empty() {
                        output.session(&cap).give_iterator(revised.drain(..));
                    }
                }
                // 2. and 3.: close and evict up to the frontier.
                deposit_before(upto, &mut state, &mut closed);
                emit_closed(&mut closed, held.as_ref(), output);
                state.close_until(upto, &mut closed);
                emit_closed(&mut closed, held.as_ref(), output);
                state.evict_until(upto.saturating_sub(horizon_ms));
                if f.is_empty() {
                    state.evict_until(i64::MAX);
                }
                // What waits for the frontier counts too (behind a held watermark, all of it).
                windows_held.set(state.len() + stash.len(), state.bytes() + stash.bytes());
                // Hold a capability for the next window to close, no later than the frontier.
                match (state.next_close(), f.first()) {
                    (Some(end), Some(&ft)) => {
                        if let Some(h) = held.as_mut() {
                            h.downgrade(&emit_time(end).min(ft).max(*h.time()));
                        }
                    }
                    (None, Some(&ft)) => {
                        if let Some(h) = held.as_mut() {
                            h.downgrade(&ft.max(*h.time()));
                        }
                    }
                    (_, None) => held = None,
                }
            }
        });
    stream
}

/// The time a window ending at `end` is emitted at: just before its end. It closes when the
/// input frontier reaches `end`; at a time below that frontier, the sinks can release it in the
/// same round instead of waiting for the watermark's next tick.
fn emit_time(end: i64) -> u64 {
    (end.max(1) - 1) as u64
}

fn emit_closed<R: Clone + 'static>(
    closed: &mut Vec<(i64, R)>,
    held: Option<&Capability<u64>>,
    output: &mut timely::dataflow::operators::generic::OutputBuilderSession<
        '_,
        u64,
        timely::container::CapacityContainerBuilder<Vec<R>>,
    >,
) {
    let Some(held) = held else {
        // No capability means the input is finished and every window was already emitted.
        closed.clear();
        return;
    };
    for (end, stats) in closed.drain(..) {
        let t = emit_time(end).max(*held.time());
        output.session(&held.delayed(&t)).give(stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::aggregate::{window_start, Partial, WindowKey};
    use apo_schemas::MetricPoint;

    fn partial(ts: i64, v: f64) -> Partial {
        let key = WindowKey {
            attributes: Default::default(),
            service: "s".into(),
            metric: "m".into(),
            window_seconds: 10,
            window_start: window_start(ts, 10_000),
        };
        let mut p = Partial::new(key, "ms".into(), 0.01);
        p.add(&MetricPoint {
            timestamp: ts,
            service: "s".into(),
            name: "m".into(),
            value: v,
            unit: "ms".into(),
            tags: Default::default(),
            histogram: None,
            cumulative: None,
            resource: None,
        });
        p
    }

    #[test]
    fn closes_then_revises_then_forgets() {
        let mut st = WindowState::<Partial>::new(30_000);
        let mut closed = Vec::new();
        let mut revised = Vec::new();
        st.apply(
            0,
            vec![partial(1_000, 1.0), partial(2_000, 3.0)],
            &mut revised,
        );
        assert!(revised.is_empty());
        st.close_until(10_000, &mut closed);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].0, 10_000);
        assert_eq!(
            (closed[0].1.count, closed[0].1.sum, closed[0].1.revision),
            (2, 4.0, 1)
        );
        // A late partial within the horizon: revision 2 with the corrected values.
        st.apply(15_000, vec![partial(3_000, 5.0)], &mut revised);
        assert_eq!(revised.len(), 1);
        assert_eq!(
            (
                revised[0].count,
                revised[0].sum,
                revised[0].max,
                revised[0].revision
            ),
            (3, 9.0, 5.0, 2)
        );
        // A late partial for a window that never had data is emitted as revision 1.
        revised.clear();
        st.apply(15_000, vec![partial(-5_000, 2.0)], &mut revised);
        assert_eq!(revised[0].revision, 1);
        st.evict_until(40_000);
        assert!(st.is_empty());
    }

    /// A state restored from its snapshot closes, revises and forgets exactly as the original
    /// does, and holds the same bytes.
    #[test]
    fn a_restored_snapshot_goes_on_as_the_original() {
        let mut a = WindowState::<Partial>::new(30_000);
        let mut rows = Vec::new();
        a.apply(
            0,
            vec![partial(1_000, 1.0), partial(12_000, 3.0)],
            &mut rows,
        );
        let mut closed = Vec::new();
        a.close_until(10_000, &mut closed);
        let bytes = a.snapshot().unwrap();
        let mut b = WindowState::<Partial>::restore(&bytes, 30_000, 0).unwrap();
        // The same windows; their bytes as the restored copies hold them (vectors read back
        // are no larger than they need be).
        assert_eq!(b.len(), a.len());
        assert!(b.bytes() <= a.bytes() && b.bytes() * 100 >= a.bytes() * 99);
        let mut runs = Vec::new();
        for st in [&mut a, &mut b] {
            let mut revised = Vec::new();
            st.apply(
                15_000,
                vec![partial(2_000, 0.1), partial(13_000, 0.2)],
                &mut revised,
            );
            let mut closed = Vec::new();
            st.close_until(20_000, &mut closed);
            st.evict_until(45_000);
            runs.push((revised, closed, st.len()));
        }
        assert_eq!(runs[0], runs[1]);
        assert_eq!(runs[0].0[0].revision, 2, "the closed window revised");
        assert_eq!(runs[0].1.len(), 1, "the open window closed");
    }

    #[test]
    fn bytes_held_follow_every_insert_merge_and_eviction() {
        let mut st = WindowState::<Partial>::new(30_000);
        // Open windows also reserve their row's way out.
        let recount = |st: &WindowState<Partial>| -> usize {
            st.windows
                .values()
                .map(|w| {
                    WindowState::<Partial>::window_bytes(&w.partial)
                        + if w.revision == 0 {
                            Partial::OUTPUT_BYTES
                        } else {
                            0
                        }
                })
                .sum()
        };
        let mut revised = Vec::new();
        st.apply(0, vec![partial(1_000, 1.0)], &mut revised);
        let one = st.bytes();
        assert!(one > std::mem::size_of::<Partial>(), "{one}");
        assert_eq!(one, recount(&st));
        // Values far apart grow the sketch's bins: the estimate grows with them.
        let spread: Vec<Partial> = (0..200)
            .map(|i| partial(2_000 + i, 1.5f64.powi(i as i32 % 60)))
            .collect();
        st.apply(0, spread, &mut revised);
        assert!(st.bytes() > one + 8 * 50, "{} vs {one}", st.bytes());
        assert_eq!(st.bytes(), recount(&st));
        st.apply(0, vec![partial(12_000, 1.0)], &mut revised);
        assert_eq!(st.bytes(), recount(&st));
        let mut closed = Vec::new();
        st.close_until(20_000, &mut closed);
        st.evict_until(40_000);
        assert_eq!(st.bytes(), recount(&st));
        st.evict_until(50_000);
        assert_eq!((st.len(), st.bytes()), (0, 0));
    }
}
