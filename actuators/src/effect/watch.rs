//! The windows the verifications need: a consumer (assigned, no group, committing nothing) of
//! `apo.window_stats` and `apo.slo` that keeps, for each target some policy verifies, the
//! latest revision of every window of its watched signals that ended within the retention.
//! It starts at the first record written a retention before now (the broker's offsets for
//! times; from the beginning where the broker cannot say), so a restarted actuator sees the
//! windows before the actions it still watches.

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
    unreadable: u64,
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
            (s.service, LATENCY.to_string(), w)
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
        let oldest = apo_core::clock::now_ms() - RETENTION.as_millis() as i64;
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
            Some(old) if old.revision > w.revision => {}
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
