//! The windows the verifications need: a consumer (assigned, no group, committing nothing) of
//! `apo.window_stats` and `apo.slo` that keeps, for each target some policy verifies, the
//! latest revision of every window of its watched signals that ended within the retention.
//! It starts at the first record written a retention before now (the broker's offsets for
//! times; from the beginning where the broker cannot say), so a restarted actuator sees the
//! windows before the actions it still watches.
//!
//! A latency metric split into attribute series (`http.route`, `error.type`: issue 15's
//! series attributes) is one signal to the judge, as it is to the planner's rules: each
//! series' latest revision is kept, and the window judged is their roll-up, the largest
//! statistic (an upper bound of the metric's) over their points summed ([`LatencySeries`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apo_core::kafka::{QuietConsumer, QuietEof};
use apo_schemas::slo::SloState;
use apo_schemas::WindowStats;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::judge::{slo_key, Signals, Window, LATENCY};
use super::VerifyConfig;
use crate::ActuateError;

/// How long windows are kept (and how far back the watch starts).
pub const RETENTION: Duration = Duration::from_secs(2 * 3600);

/// The topics the windows come from.
#[derive(Debug, Clone)]
pub struct WatchTopics {
    /// Window statistics (`apo.window_stats`): the latency.
    pub stats: String,
    /// SLO states (`apo.slo`).
    pub slo: String,
}

/// The recent windows of the verified targets.
pub struct Watch {
    consumer: QuietConsumer,
    topics: WatchTopics,
    /// Target → its verification settings.
    configs: BTreeMap<String, VerifyConfig>,
    signals: BTreeMap<String, Signals>,
    latency: LatencySeries,
    unreadable: u64,
}

/// The latency windows of each target by attribute series, each series' latest revision.
#[derive(Debug, Default)]
pub struct LatencySeries {
    /// Target → window start → series text → its window.
    windows: BTreeMap<String, BTreeMap<i64, BTreeMap<String, Window>>>,
}

impl LatencySeries {
    /// Takes `w` of `series` of `target` (unless a later revision of it is held) and returns
    /// the window's roll-up over the series held: the largest value, the points summed, the
    /// latest revision. `None` when `w` was an older revision.
    pub fn add(&mut self, target: &str, series: String, w: Window) -> Option<Window> {
        let by_series = self
            .windows
            .entry(target.to_string())
            .or_default()
            .entry(w.start)
            .or_default();
        if by_series
            .get(&series)
            .is_some_and(|old| old.revision > w.revision)
        {
            return None;
        }
        by_series.insert(series, w);
        let mut rolled = w;
        for s in by_series.values() {
            rolled.value = rolled.value.max(s.value);
            rolled.revision = rolled.revision.max(s.revision);
        }
        rolled.events = by_series.values().map(|s| s.events).sum();
        Some(rolled)
    }

    /// Forgets the windows that ended before `oldest` (ms).
    pub fn forget_before(&mut self, oldest: i64) {
        for windows in self.windows.values_mut() {
            while windows
                .first_key_value()
                .is_some_and(|(_, s)| s.values().all(|w| w.end < oldest))
            {
                windows.pop_first();
            }
        }
        self.windows.retain(|_, w| !w.is_empty());
    }
}

impl Watch {
    /// Opens the watch of `configs`' targets, from `from_ms` (ms since the Unix epoch).
    pub fn open(
        client: &ClientConfig,
        topics: WatchTopics,
        configs: BTreeMap<String, VerifyConfig>,
        from_ms: i64,
    ) -> Result<Self, ActuateError> {
        let ctx = |t: &str| format!("watching {t} for the effect of actions");
        let mut c = client.clone();
        c.set("group.id", "apo-actuate-verify")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let consumer: QuietConsumer = c
            .create_with_context(QuietEof)
            .map_err(|e| ActuateError::kafka(ctx(&topics.stats), e))?;
        let mut times = TopicPartitionList::new();
        for t in [&topics.stats, &topics.slo] {
            let n = apo_core::kafka::partition_count(client, t)
                .map_err(|e| ActuateError::kafka(ctx(t), e))?;
            for p in 0..n {
                times
                    .add_partition_offset(t, p, Offset::Offset(from_ms))
                    .map_err(|e| ActuateError::kafka(ctx(t), e))?;
            }
        }
        let start = match consumer.offsets_for_times(times.clone(), Duration::from_secs(10)) {
            Ok(found) => {
                let mut tpl = TopicPartitionList::new();
                for e in found.elements() {
                    // no record at or after the time: from the end
                    let o = match e.offset() {
                        Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                        _ => Offset::End,
                    };
                    tpl.add_partition_offset(e.topic(), e.partition(), o)
                        .map_err(|e| ActuateError::kafka(ctx(&topics.stats), e))?;
                }
                tpl
            }
            Err(e) => {
                tracing::warn!(error = %e, "the broker did not find offsets for a time: the effect watch reads its topics from the beginning");
                let mut tpl = TopicPartitionList::new();
                for e in times.elements() {
                    tpl.add_partition_offset(e.topic(), e.partition(), Offset::Beginning)
                        .map_err(|e| ActuateError::kafka(ctx(&topics.stats), e))?;
                }
                tpl
            }
        };
        consumer
            .assign(&start)
            .map_err(|e| ActuateError::kafka(ctx(&topics.stats), e))?;
        Ok(Watch {
            consumer,
            topics,
            configs,
            signals: BTreeMap::new(),
            latency: LatencySeries::default(),
            unreadable: 0,
        })
    }

    /// Reads what the topics hold, for at most `budget`.
    pub fn poll(&mut self, budget: Duration) {
        let started = Instant::now();
        loop {
            match self.consumer.poll(Duration::ZERO) {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "reading windows for the effect of actions")
                }
                Some(Ok(m)) => {
                    let topic = m.topic().to_string();
                    let payload = m.payload().map(<[u8]>::to_vec);
                    drop(m);
                    self.add(&topic, payload.as_deref());
                }
            }
            if started.elapsed() >= budget {
                return;
            }
        }
    }

    /// The windows of `target`.
    pub fn signals(&self, target: &str) -> Option<&Signals> {
        self.signals.get(target)
    }

    /// Records that were neither window statistics nor SLO states (counted, skipped).
    pub fn unreadable(&self) -> u64 {
        self.unreadable
    }

    fn add(&mut self, topic: &str, payload: Option<&[u8]>) {
        let Some(bytes) = payload else { return };
        let (target, key, w) = if topic == self.topics.stats {
            let Ok(s) = serde_json::from_slice::<WindowStats>(bytes) else {
                self.unreadable += 1;
                return;
            };
            let Some(cfg) = self.configs.get(&s.service) else {
                return;
            };
            if cfg.metric.as_deref() != Some(s.metric.as_str()) {
                return;
            }
            let value = match cfg.statistic.as_str() {
                "mean" => s.mean,
                "p50" => s.p50,
                "p90" => s.p90,
                "p95" => s.p95,
                "p999" => s.p999,
                "max" => s.max,
                _ => s.p99,
            };
            let w = Window {
                start: s.window_start,
                end: s.window_end,
                revision: s.revision,
                value,
                events: s.count,
                bad: 0,
            };
            let Some(rolled) = self.latency.add(&s.service, s.series_text(), w) else {
                return;
            };
            (s.service, LATENCY.to_string(), rolled)
        } else {
            let Ok(s) = serde_json::from_slice::<SloState>(bytes) else {
                self.unreadable += 1;
                return;
            };
            if !self.configs.get(&s.service).is_some_and(|c| c.slo) {
                return;
            }
            let w = Window {
                start: s.window_start,
                end: s.window_end,
                revision: s.revision,
                value: s.target,
                events: s.events,
                bad: s.bad_events,
            };
            (s.service, slo_key(&s.objective), w)
        };
        let is_latency = key == LATENCY;
        let oldest = apo_core::clock::now_ms() - RETENTION.as_millis() as i64;
        self.latency.forget_before(oldest);
        if w.end < oldest {
            return;
        }
        let windows = self
            .signals
            .entry(target)
            .or_default()
            .entry(key)
            .or_default();
        match windows.get(&w.start) {
            // a latency roll-up replaces the window whatever its revision (a series may be
            // new in it); an SLO's older revision does not
            Some(old) if old.revision > w.revision && !is_latency => {}
            _ => {
                windows.insert(w.start, w);
            }
        }
        while windows
            .first_key_value()
            .is_some_and(|(_, w)| w.end < oldest)
        {
            windows.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: i64, revision: u32, value: f64, events: u64) -> Window {
        Window {
            start,
            end: start + 10_000,
            revision,
            value,
            events,
            bad: 0,
        }
    }

    /// Two series of one window (the requests that succeeded and those that timed out): one
    /// window of the largest p99 over every point; a revision of one series replaces only its
    /// own part; an older revision changes nothing.
    #[test]
    fn attribute_series_of_a_latency_metric_roll_up_into_one_window() {
        let mut l = LatencySeries::default();
        let ok = "http.server.request.duration".to_string();
        let timeouts = "http.server.request.duration{error.type=\"timeout\"}".to_string();
        assert_eq!(
            l.add("checkout", ok.clone(), window(0, 1, 0.2, 90)),
            Some(window(0, 1, 0.2, 90))
        );
        assert_eq!(
            l.add("checkout", timeouts.clone(), window(0, 1, 10.0, 10)),
            Some(window(0, 1, 10.0, 100))
        );
        // the successful requests revised (late data): 95 of them now, the timeouts kept
        assert_eq!(
            l.add("checkout", ok.clone(), window(0, 2, 0.3, 95)),
            Some(window(0, 2, 10.0, 105))
        );
        assert_eq!(l.add("checkout", ok.clone(), window(0, 1, 0.2, 90)), None);
        // another target, another window: apart
        assert_eq!(
            l.add("cart", ok.clone(), window(0, 1, 0.5, 7)),
            Some(window(0, 1, 0.5, 7))
        );
        assert_eq!(
            l.add("checkout", ok, window(10_000, 1, 0.1, 50)),
            Some(window(10_000, 1, 0.1, 50))
        );
        l.forget_before(10_001);
        assert_eq!(l.windows["checkout"].len(), 1);
        assert!(!l.windows.contains_key("cart"));
    }
}
