//! Per-series state of the model operators (feature history and alert state, or the
//! forecaster's recent values), dropped once a series has been silent for as long as the state
//! spans: memory follows the series that are live, not every series ever seen.

use std::collections::HashMap;
use std::hash::Hash;

/// State per series key, with the end of the series' last window; saved whole in a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "K: serde::Serialize + Hash + Eq, V: serde::Serialize",
    deserialize = "K: serde::Deserialize<'de> + Hash + Eq, V: serde::Deserialize<'de>"
))]
pub struct SeriesStates<K, V> {
    states: HashMap<K, (i64, V)>,
    /// Windows a series' state covers: silent for longer than that many of its windows, its
    /// state says nothing about its present and is dropped.
    span_windows: i64,
    /// Event time (ms) of the last sweep.
    swept_at: i64,
}

/// Event time between sweeps for silent series.
const SWEEP_EVERY_MS: i64 = 60_000;

impl<K: Hash + Eq, V: Default> SeriesStates<K, V> {
    /// States that cover `span_windows` windows of their series.
    pub fn new(span_windows: usize) -> Self {
        SeriesStates {
            states: HashMap::new(),
            span_windows: span_windows.max(1) as i64,
            swept_at: i64::MIN,
        }
    }

    /// The state of `key`, whose window ending at `end` (ms) just closed; a new one if the
    /// series is new or was dropped.
    pub fn touch(&mut self, key: K, end: i64) -> &mut V {
        let e = self
            .states
            .entry(key)
            .or_insert_with(|| (end, V::default()));
        e.0 = e.0.max(end);
        &mut e.1
    }

    pub fn contains(&self, key: &K) -> bool {
        self.states.contains_key(key)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.states.get_mut(key).map(|(_, v)| v)
    }

    /// Drops the series silent for more than their span at event time `now` (ms), where
    /// `window_ms` gives a key's window size; at most once per minute of event time.
    pub fn evict(&mut self, now: i64, window_ms: impl Fn(&K) -> i64) {
        if self.swept_at != i64::MIN && now - self.swept_at < SWEEP_EVERY_MS {
            return;
        }
        self.swept_at = now;
        let span = self.span_windows;
        self.states
            .retain(|k, (last, _)| now - *last <= span.saturating_mul(window_ms(k)));
    }

    /// Series held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.states.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_silent_longer_than_their_span_are_dropped_and_start_afresh() {
        // Keys are (name, window ms); state is a count of windows seen.
        let mut s: SeriesStates<(&str, i64), u32> = SeriesStates::new(3);
        let w = |k: &(&str, i64)| k.1;
        for end in [10_000, 20_000, 30_000] {
            *s.touch(("a", 10_000), end) += 1;
            *s.touch(("b", 60_000), end) += 1;
        }
        *s.touch(("c", 10_000), 30_000) += 1;
        s.evict(30_000, w);
        assert_eq!(s.len(), 3, "nothing silent yet");
        // At 60 s: "a" last closed at 30 s, 30 s ago = exactly its span of 3 × 10 s: kept.
        s.evict(60_000, w);
        assert_eq!(
            s.len(),
            3,
            "a sweep within a minute of the last does nothing"
        );
        s.evict(90_000, w);
        // 60 s silent: "a" and "c" (span 30 s) go, "b" (span 3 × 60 s) stays.
        assert_eq!(s.len(), 1);
        assert_eq!(s.get_mut(&("b", 60_000)).copied(), Some(3));
        assert!(s.get_mut(&("a", 10_000)).is_none());
        // "a" returns: a fresh state.
        assert_eq!(*s.touch(("a", 10_000), 100_000), 0);
        // Exactly at the span is kept, one millisecond beyond is not.
        let mut t: SeriesStates<(&str, i64), u32> = SeriesStates::new(3);
        t.touch(("x", 10_000), 0);
        t.evict(30_000, w);
        assert_eq!(t.len(), 1);
        t.evict(90_001, w);
        assert!(t.is_empty());
    }
}
