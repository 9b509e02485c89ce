//! Warm start of the models' per-series state: the windows a series closed before this process
//! started, read back (once per process, lazily) from where the sinks made them durable, and
//! handed to the worker that owns the series the first time that worker sees it after the
//! start. The model operators replay them silently (features, scores, alert state; the
//! forecaster's input), so a restart neither blinds a series for the windows its state spans
//! nor changes what is emitted: the replay of uncommitted windows scores them as the first run
//! did.
//!
//! What is replayed for a series: its first emissions (revision 1, what the operators score)
//! before the first window seen after the start, duplicates (a crash's replays) once, at most
//! `need` of them, and only those after its last silence longer than `span` windows (the
//! running operators would have dropped its state there). Operators that need the same table
//! (the forest and the forecaster, over `window_stats`) share one read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::models::series::{Scorable, SeriesKey};

/// Reads the windows that ended at or after a time (ms), for a warm start.
pub type Loader<T> = Box<dyn Fn(i64) -> Result<Vec<T>, String> + Send + Sync>;

enum Loaded<T> {
    NotYet,
    Rows {
        /// Per series its windows, and how many views have yet to take them.
        by_series: HashMap<SeriesKey, (Vec<T>, usize)>,
        /// Past this window end, any series not yet seen again would have been dropped by
        /// the running operators: what is left is forgotten.
        forget_after: i64,
    },
    Done,
}

/// The windows read back once per process, for every view over them.
struct Store<T> {
    /// Views taking from it: a series' windows are dropped once each has taken them.
    views: usize,
    /// The most windows and the longest silence any view needs (how far back to read, and
    /// when to forget).
    need: usize,
    span: usize,
    largest_window_ms: i64,
    loader: Loader<T>,
    state: Mutex<Loaded<T>>,
}

/// Past windows per series for one model operator, shared by the workers of a process; views
/// made together ([`PastWindows::shared`]) read the tables once.
pub struct PastWindows<T> {
    store: Arc<Store<T>>,
    need: usize,
    span: usize,
}

impl<T: Scorable> PastWindows<T> {
    /// Keeps up to `need` windows per series, cut after a silence of more than `span` of its
    /// windows; `largest_window_ms` bounds how far back the loader reads.
    pub fn new(need: usize, span: usize, largest_window_ms: i64, loader: Loader<T>) -> Arc<Self> {
        Self::shared(&[(need, span)], largest_window_ms, loader)
            .pop()
            .unwrap_or_else(|| unreachable!("one view asked for"))
    }

    /// One view per (need, span) over windows read once.
    pub fn shared(
        views: &[(usize, usize)],
        largest_window_ms: i64,
        loader: Loader<T>,
    ) -> Vec<Arc<Self>> {
        let store = Arc::new(Store {
            views: views.len(),
            need: views.iter().map(|v| v.0).max().unwrap_or(0),
            span: views.iter().map(|v| v.1.max(1)).max().unwrap_or(1),
            largest_window_ms: largest_window_ms.max(1),
            loader,
            state: Mutex::new(Loaded::NotYet),
        });
        views
            .iter()
            .map(|&(need, span)| {
                Arc::new(PastWindows {
                    store: store.clone(),
                    need,
                    span: span.max(1),
                })
            })
            .collect()
    }

    /// The past windows of `series` before `before_end`, oldest first; once per series (a
    /// second call returns none).
    pub fn take(&self, series: &SeriesKey, before_end: i64) -> Vec<T> {
        let rows = self.store.take(series, before_end);
        self.cut(rows, before_end)
    }
    /// The rows a series' state would hold at `before_end`.
    fn cut(&self, mut rows: Vec<T>, before_end: i64) -> Vec<T> {
        rows.retain(|r| r.window_end() < before_end);
        rows.sort_by_key(|r| r.window_start());
        rows.dedup_by_key(|r| r.window_start());
        let Some(last) = rows.last() else {
            return rows;
        };
        let window_ms = i64::from(last.series().2).max(1) * 1000;
        let gap = (self.span as i64).saturating_mul(window_ms);
        let mut from = 0;
        let mut next_end = before_end;
        for i in (0..rows.len()).rev() {
            if next_end - rows[i].window_end() > gap {
                from = i + 1;
                break;
            }
            next_end = rows[i].window_end();
        }
        let from = from.max(rows.len().saturating_sub(self.need));
        rows.split_off(from)
    }
}

impl<T: Scorable> Store<T> {
    fn take(&self, series: &SeriesKey, before_end: i64) -> Vec<T> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, Loaded::NotYet) {
            *state = self.load(before_end);
        }
        let Loaded::Rows {
            by_series,
            forget_after,
        } = &mut *state
        else {
            return Vec::new();
        };
        if before_end > *forget_after {
            *state = Loaded::Done;
            return Vec::new();
        }
        match by_series.get_mut(series) {
            Some((rows, left)) if *left > 1 => {
                *left -= 1;
                rows.clone()
            }
            Some(_) => by_series
                .remove(series)
                .map(|(rows, _)| rows)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    fn load(&self, first_end: i64) -> Loaded<T> {
        let back = (self.need as i64).saturating_mul(self.largest_window_ms);
        let since = first_end.saturating_sub(back);
        match (self.loader)(since) {
            Ok(rows) => {
                let n = rows.len();
                let mut by_series: HashMap<SeriesKey, (Vec<T>, usize)> = HashMap::new();
                for r in rows.into_iter().filter(|r| r.revision() == 1) {
                    by_series
                        .entry(r.series())
                        .or_insert_with(|| (Vec::new(), self.views))
                        .0
                        .push(r);
                }
                tracing::info!(
                    windows = n,
                    series = by_series.len(),
                    "model state: past windows read for a warm start"
                );
                Loaded::Rows {
                    by_series,
                    forget_after: first_end
                        .saturating_add((self.span as i64).saturating_mul(self.largest_window_ms)),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "model state: past windows not readable; series start cold");
                Loaded::Done
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apo_schemas::WindowStats;

    fn w(metric: &str, start_s: i64, revision: u32) -> WindowStats {
        WindowStats {
            attributes: Default::default(),
            service: "s".into(),
            metric: metric.into(),
            window_seconds: 10,
            window_start: start_s * 1000,
            window_end: (start_s + 10) * 1000,
            revision,
            unit: String::new(),
            count: 1,
            sum: 1.0,
            min: 1.0,
            max: 1.0,
            mean: 1.0,
            p50: 1.0,
            p90: 1.0,
            p95: 1.0,
            p99: 1.0,
            p999: 1.0,
            relative_accuracy: 0.01,
        }
    }

    fn key(metric: &str) -> SeriesKey {
        ("s".into(), metric.into(), 10)
    }

    #[test]
    fn hands_each_series_its_windows_before_the_first_seen_once() {
        let rows = vec![
            w("a", 0, 1),
            w("a", 10, 1),
            w("a", 10, 1), // a replay's duplicate
            w("a", 10, 2), // a revision: not what was scored
            w("a", 20, 1),
            w("a", 30, 1), // at or after the first window seen: the replay emits it
            w("b", 0, 1),
        ];
        let since = Arc::new(Mutex::new(None));
        let seen = since.clone();
        let past = PastWindows::new(
            2,
            100,
            10_000,
            Box::new(move |s| {
                *seen.lock().unwrap() = Some(s);
                Ok(rows.clone())
            }),
        );
        let a = past.take(&key("a"), 40_000);
        let starts: Vec<i64> = a.iter().map(|r| r.window_start).collect();
        assert_eq!(starts, [10_000, 20_000], "the last `need`, deduplicated");
        assert_eq!(*since.lock().unwrap(), Some(40_000 - 2 * 10_000));
        assert!(past.take(&key("a"), 50_000).is_empty(), "once");
        assert_eq!(past.take(&key("b"), 40_000).len(), 1);
        assert!(past.take(&key("c"), 40_000).is_empty());
    }

    #[test]
    fn a_long_silence_cuts_the_history_and_late_series_start_cold() {
        let rows = vec![w("a", 0, 1), w("a", 100, 1), w("a", 110, 1), w("b", 0, 1)];
        // span 3 windows of 10 s: the 90 s silence after the first window cuts it off
        let past = PastWindows::new(10, 3, 10_000, Box::new(move |_| Ok(rows.clone())));
        let a = past.take(&key("a"), 130_000);
        let starts: Vec<i64> = a.iter().map(|r| r.window_start).collect();
        assert_eq!(starts, [100_000, 110_000]);
        // b first seen more than a span after the start: its state would have been dropped
        assert!(past.take(&key("b"), 130_000 + 31_000).is_empty());
    }

    #[test]
    fn views_made_together_read_once_and_each_take_their_own() {
        let reads = Arc::new(Mutex::new(0));
        let counted = reads.clone();
        let rows = vec![w("a", 0, 1), w("a", 10, 1), w("a", 20, 1)];
        let views = PastWindows::shared(
            &[(3, 100), (1, 100)],
            10_000,
            Box::new(move |_| {
                *counted.lock().unwrap() += 1;
                Ok(rows.clone())
            }),
        );
        assert_eq!(views[0].take(&key("a"), 40_000).len(), 3);
        assert_eq!(views[1].take(&key("a"), 40_000).len(), 1, "its own need");
        assert!(views[0].take(&key("a"), 40_000).is_empty(), "once per view");
        assert_eq!(*reads.lock().unwrap(), 1);
    }

    #[test]
    fn an_unreadable_history_means_a_cold_start() {
        let past: Arc<PastWindows<WindowStats>> =
            PastWindows::new(10, 3, 10_000, Box::new(|_| Err("no data dir".into())));
        assert!(past.take(&key("a"), 1_000_000).is_empty());
    }
}
