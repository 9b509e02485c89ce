//! What the worker loop runs. A [`Job`] says how a message decodes into records, how records
//! are buffered per watermark tick before they enter the dataflow, and which dataflow (ending
//! in durable sinks) consumes them. The loop itself (the lane and the worker loop) owns the
//! source, watermarks, late data, dead letters, backpressure and offset commits, the same for
//! every job.

use std::rc::Rc;

use apo_schemas::SchemaError;
use timely::dataflow::StreamVec;

use crate::engine::context::BuildContext;
use crate::engine::sink::SinkState;

pub use apo_schemas::Decoded;

/// A pipeline the worker loop can run.
///
/// The metrics job run from memory on one worker, to the end of its input (drain mode), its
/// window statistics collected by a sink of the example's own:
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use std::sync::{Arc, Mutex};
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
///
/// use apo_dataflow::{run_job, LaneConfig, MetricsConfig, MetricsJob, Progress, RowSink, SinkError};
/// use apo_ingest::dlq::MemoryDeadLetters;
/// use apo_ingest::source::MemorySource;
/// use apo_schemas::WindowStats;
///
/// /// Keeps every row; each write is durable at once.
/// #[derive(Clone, Default)]
/// struct Rows(Arc<Mutex<Vec<WindowStats>>>, u64);
///
/// impl RowSink for Rows {
///     fn name(&self) -> &str {
///         "rows"
///     }
///     fn write(&mut self, rows: &[WindowStats]) -> Result<(), SinkError> {
///         self.0.lock().unwrap().extend_from_slice(rows);
///         self.1 += 1;
///         Ok(())
///     }
///     fn poll_durable(&mut self, _finish: bool) -> Result<u64, SinkError> {
///         Ok(self.1)
///     }
///     fn next_poll(&self) -> Option<Duration> {
///         None
///     }
/// }
///
/// // Three points of one series, a minute ago, in one 10 s window.
/// let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
/// let t = (now - 60_000) / 10_000 * 10_000;
/// let payload = format!(
///     r#"[{{"timestamp":{},"service":"checkout","name":"latency","value":10}},
///        {{"timestamp":{},"service":"checkout","name":"latency","value":20}},
///        {{"timestamp":{},"service":"checkout","name":"latency","value":30}}]"#,
///     t + 1_000,
///     t + 2_000,
///     t + 3_000
/// );
/// let rows = Rows::default();
/// let sink = rows.clone();
/// timely::execute_directly(move |worker| {
///     let cfg = LaneConfig { drain: true, ..Default::default() };
///     let metrics = MetricsConfig::default(); // windows of 10 s and 1 min, 1 % accuracy
///     let job = MetricsJob::from_config(&metrics, vec![Box::new(sink.clone())]).unwrap();
///     let source = MemorySource::new("apo.metrics", vec![payload.clone().into_bytes()]);
///     let dlq = MemoryDeadLetters::default();
///     let progress = Arc::new(Progress::default());
///     let stop = Arc::new(AtomicBool::new(false));
///     run_job(worker, &cfg, job, Box::new(source), Box::new(dlq), progress, stop).unwrap();
/// });
/// let rows = rows.0.lock().unwrap();
/// let ten = rows.iter().find(|r| r.window_seconds == 10).unwrap();
/// assert_eq!((ten.count, ten.sum, ten.max), (3, 60.0, 30.0));
/// ```
pub trait Job: 'static {
    /// A decoded, validated record.
    type Item;
    /// What enters the dataflow.
    type Input: timely::ExchangeData + Clone;
    /// Decodes one message and validates its records (against the clock, `clock_ms`).
    fn decode(
        &self,
        payload: Option<&[u8]>,
        clock_ms: i64,
    ) -> Result<Decoded<Self::Item>, SchemaError>;
    /// Event time, ms.
    fn event_time(&self, item: &Self::Item) -> i64;
    /// The latest time (ms) an output this record contributes to closes (the end of its
    /// largest window): a commit cut is clean once everything read before it closed.
    fn closes_at(&self, item: &Self::Item) -> i64;
    /// Adds a record to what goes into the dataflow at the current tick.
    fn buffer(&mut self, item: Self::Item);
    /// How long after its window's end an output may close (the largest window for
    /// tumbling windows; more for outputs delayed behind assembly): latency bookkeeping
    /// forgets close times older than the durability frontier less this.
    fn close_delay_ms(&self) -> i64;
    /// Whether advancing the input time from `from` to `to` closes an output (the worker
    /// then hands it on before reading more). Default: any advance may.
    fn closes_between(&self, from: u64, to: u64) -> bool {
        let _ = (from, to);
        true
    }
    /// Records buffered since the last drain.
    fn buffered(&self) -> usize;
    /// Moves what was buffered into `out`, for the dataflow's input at the current tick.
    fn drain(&mut self, out: &mut Vec<Self::Input>);
    /// Builds the dataflow on `input`; returns the stream whose frontier is the durability
    /// frontier, and the state of every sink operator in it.
    fn build<'scope>(
        &mut self,
        input: StreamVec<'scope, u64, Self::Input>,
        ctx: &BuildContext,
    ) -> (StreamVec<'scope, u64, ()>, Vec<Rc<SinkState>>);
}

/// Whether a time `offset` past a multiple of `size` lies in `(from, to]` (ms): a window of
/// `size` whose outputs close `offset` after its end closes when the time goes from `from`
/// to `to`.
pub fn crosses(from: u64, to: u64, size: u64, offset: u64) -> bool {
    if size == 0 {
        return true;
    }
    let at = |t: u64| (i128::from(t) - i128::from(offset)).div_euclid(i128::from(size));
    to > from && at(to) > at(from)
}

#[cfg(test)]
mod tests {
    use super::crosses;

    #[test]
    fn crosses_finds_window_ends_in_the_half_open_interval() {
        // Ends of 10 s windows: 0, 10 000, 20 000, …
        assert!(
            crosses(9_000, 10_000, 10_000, 0),
            "reaching an end closes it"
        );
        assert!(
            !crosses(10_000, 11_000, 10_000, 0),
            "leaving an end does not"
        );
        assert!(!crosses(11_000, 19_000, 10_000, 0));
        assert!(crosses(11_000, 35_000, 10_000, 0), "several ends at once");
        assert!(
            !crosses(5_000, 5_000, 10_000, 0),
            "no advance, nothing closes"
        );
        // Closing 3 s after each end: 3 000, 13 000, …
        assert!(crosses(12_000, 13_000, 10_000, 3_000));
        assert!(!crosses(9_000, 10_000, 10_000, 3_000));
        // An offset beyond the size wraps around.
        assert!(crosses(12_000, 13_000, 10_000, 23_000));
        // Exhaustive against a direct scan of every millisecond.
        for from in (0..2_000).step_by(7) {
            for to in (from..2_000).step_by(13) {
                let direct = (from + 1..=to).any(|t| (t + 1_000 - 300) % 1_000 == 0);
                assert_eq!(crosses(from, to, 1_000, 300), direct, "{from}..{to}");
            }
        }
    }
}
