//! Cumulative OTLP points become deltas before they are counted: the metrics job's stage
//! between the input and the series limit.
//!
//! The OpenTelemetry SDKs export cumulative temporality by default: each export repeats a
//! stream's totals since its start. The Collector's Kafka exporter does not key its messages
//! by stream, so consecutive points of one stream can reach different partitions and workers:
//! the stage exchanges cumulative points by their stream's id, so that one worker owns each
//! stream, and takes each batch once the frontier has passed it, a stream's points in event
//! time order ([`streams`] says what each point counts). The deltas are pre-aggregated per
//! (series, window) as the points read by a worker are, and join them.
//!
//! Order: a stream's points are differenced in the order of the batches they reach the stage
//! in (the watermark of the worker that read them), in event-time order within one. A point
//! that arrives after a later point of its stream (two partitions read by workers whose
//! watermarks are more than a tick apart) is stale: not counted, and shown on the progress
//! line. A stream's points in one partition (the exporter's
//! `partition_metrics_by_resource_attributes: true`) are always in order.
//!
//! State: one entry per live stream, forgotten after `silence` without a point; rebuilt by
//! replay as the rest of the pipeline's state is (a replay differences the same points in the
//! same order).

pub mod streams;

use std::sync::Arc;

use apo_schemas::attributes::SeriesAttributeKeys;
use apo_schemas::cumulative::Cumulative;
use apo_schemas::MetricPoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::engine::checkpoint::OperatorCheckpoint;
use crate::engine::progress::Progress;
use crate::metrics::preaggregate::PreAggregator;
use crate::ops::aggregate::Partial;
use crate::ops::stash::{next_passed, stash_input, Stash};
use streams::{Outcome, StreamSettings, Streams};

/// The stage's settings (`[cumulative]` in the metrics settings).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CumulativeConfig {
    /// A stream with no point for this long is forgotten (its next point is a first point).
    #[serde(with = "humantime_serde")]
    pub silence: Duration,
    /// A stream's first point counts from the stream's start when that is at most this long
    /// before it (a process that just started); otherwise it is only a baseline.
    #[serde(with = "humantime_serde")]
    pub first_within: Duration,
}

impl Default for CumulativeConfig {
    fn default() -> Self {
        CumulativeConfig {
            silence: Duration::from_secs(600),
            // two of the SDKs' default export intervals (60 s)
            first_within: Duration::from_secs(120),
        }
    }
}

impl CumulativeConfig {
    fn settings(&self) -> StreamSettings {
        StreamSettings {
            silence_ms: self.silence.as_millis() as i64,
            first_within_ms: self.first_within.as_millis() as i64,
        }
    }
}

/// A cumulative point as it crosses workers (a [`MetricPoint`] keeps its totals out of its
/// serialised form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningPoint {
    pub timestamp: i64,
    pub service: String,
    pub name: String,
    pub unit: String,
    pub tags: BTreeMap<String, String>,
    pub cumulative: Cumulative,
}

impl RunningPoint {
    /// Point `p` with its totals `cumulative` (taken out of it).
    pub fn new(p: MetricPoint, cumulative: Cumulative) -> Self {
        RunningPoint {
            timestamp: p.timestamp,
            service: p.service,
            name: p.name,
            unit: p.unit,
            tags: p.tags,
            cumulative,
        }
    }

    fn into_point(self) -> MetricPoint {
        MetricPoint {
            timestamp: self.timestamp,
            service: self.service,
            name: self.name,
            value: 0.0,
            unit: self.unit,
            tags: self.tags,
            histogram: None,
            cumulative: Some(Box::new(self.cumulative)),
            resource: None,
        }
    }
}

/// The least time between two warnings of stale points.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The stage: cumulative points, exchanged by stream, made deltas and pre-aggregated into
/// partials of `window_seconds` windows with sketches of `alpha`, series split by `keys`
/// (a point's resource attributes among them are in its tags already). Its counts go to
/// `progress`.
pub fn cumulative_operator<'scope>(
    points: StreamVec<'scope, u64, RunningPoint>,
    config: CumulativeConfig,
    window_seconds: &[u32],
    alpha: f64,
    keys: SeriesAttributeKeys,
    progress: Arc<Progress>,
    mut checkpoint: Option<OperatorCheckpoint>,
) -> StreamVec<'scope, u64, Partial> {
    let index = points.scope().index();
    let windows = window_seconds.to_vec();
    let pact = Exchange::new(|p: &RunningPoint| p.cumulative.stream);
    let scope = points.scope();
    points.unary_frontier(pact, "Cumulative", move |_cap, info| {
        if let Some(c) = &checkpoint {
            c.wake_with(scope.activator_for(info.address.clone()));
        }
        let mut streams = Streams::new(config.settings());
        if let Some(bytes) = checkpoint.as_ref().and_then(|c| c.restored()) {
            match Streams::new(config.settings()).restored(bytes) {
                Ok(s) => streams = s,
                Err(e) => tracing::error!(error = %e, "cumulative streams in the checkpoint unreadable; starting empty"),
            }
        }
        let mut pre = PreAggregator::new(&windows, alpha, keys.clone());
        let mut stash: Stash<RunningPoint> = Stash::new();
        let mut partials = Vec::new();
        let mut warned = (0u64, None::<std::time::Instant>);
        move |(input, frontier), output| {
            stash_input(input, &mut stash);
            // A checkpoint due before batch `next`: the streams with every batch before its
            // time applied.
            let mut deposit_before = |next: u64, streams: &Streams| {
                if let Some(c) = checkpoint.as_mut() {
                    c.deposit_due(next, |_| streams.snapshot());
                }
            };
            while let Some(&t) = stash.keys().next() {
                if frontier.frontier().less_equal(&t) {
                    break;
                }
                deposit_before(t, &streams);
                let Some((cap, mut batch)) = next_passed(&mut stash, frontier.frontier()) else {
                    break;
                };
                streams.evict_silent(*cap.time() as i64);
                batch.sort_by_key(|p| (p.cumulative.stream, p.timestamp));
                for p in batch {
                    if let Outcome::Delta(d) = streams.apply(p.into_point()) {
                        pre.add(&d);
                    }
                }
                pre.drain(&mut partials);
                if !partials.is_empty() {
                    output.session(&cap).give_iterator(partials.drain(..));
                }
                let c = streams.counts();
                progress.set_cumulative(index, c.live, c.stale);
                // At most one warning every WARN_EVERY, with the count since the last.
                let due = warned.1.is_none_or(|at| at.elapsed() >= WARN_EVERY);
                if c.stale > warned.0 && due {
                    tracing::warn!(
                        worker = index,
                        stale = c.stale - warned.0,
                        "cumulative points arrived after a later point of their stream and were \
                         not counted (a stream's points in several partitions? see the \
                         Collector's partition_metrics_by_resource_attributes)"
                    );
                    warned = (c.stale, Some(std::time::Instant::now()));
                }
            }
            deposit_before(
                frontier.frontier().first().copied().unwrap_or(u64::MAX),
                &streams,
            );
        }
    })
}
