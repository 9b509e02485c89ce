//! What every windowed output record has in common, for the sinks and the progress counters.

use crate::action::ActionRecord;
use crate::critical_path::{CriticalPathRecord, CriticalPathShare};
use crate::decision::Decision;
use crate::model_output::{AnomalyRecord, ForecastRecord};
use crate::red::RedStats;
use crate::service_map::{ServiceMapCurrent, ServiceMapEdge};
use crate::slo::SloState;
use crate::WindowStats;

/// A record emitted for one window of one key.
pub trait OutputRow {
    /// The Kafka key: the record's dimensions plus window. Revisions share it, so a compacted
    /// topic keeps the latest.
    fn key(&self) -> String;
    /// Exclusive end of the window, ms since the Unix epoch.
    fn window_end(&self) -> i64;
    /// Inclusive start of the window (its UTC day partitions the Parquet table).
    fn window_start(&self) -> i64;
    /// 1 for the first emission, more for revisions caused by late data.
    fn revision(&self) -> u32;
}

/// Implements [`OutputRow`] for a record with `key()`, `window_start`, `window_end` and
/// `revision`.
macro_rules! output_row {
    ($($t:ty),*) => {$(
        impl OutputRow for $t {
            fn key(&self) -> String {
                <$t>::key(self)
            }
            fn window_end(&self) -> i64 {
                self.window_end
            }
            fn window_start(&self) -> i64 {
                self.window_start
            }
            fn revision(&self) -> u32 {
                self.revision
            }
        }
    )*};
}

output_row!(
    WindowStats,
    RedStats,
    CriticalPathShare,
    ServiceMapEdge,
    SloState,
    AnomalyRecord,
    ForecastRecord,
    Decision
);

/// A trace's record: its "window" is the trace itself (start to end).
impl OutputRow for CriticalPathRecord {
    fn key(&self) -> String {
        CriticalPathRecord::key(self)
    }
    fn window_end(&self) -> i64 {
        self.end_ns.div_euclid(1_000_000)
    }
    fn window_start(&self) -> i64 {
        self.start_ns.div_euclid(1_000_000)
    }
    fn revision(&self) -> u32 {
        1
    }
}

/// A change of the current service map: its "window" is the horizon ending at `as_of`.
impl OutputRow for ServiceMapCurrent {
    fn key(&self) -> String {
        ServiceMapCurrent::key(self)
    }
    fn window_end(&self) -> i64 {
        self.as_of
    }
    fn window_start(&self) -> i64 {
        ServiceMapCurrent::window_start(self)
    }
    fn revision(&self) -> u32 {
        self.revision
    }
}

/// An audit record: its "window" is the instant it was executed (its UTC day partitions the
/// `actions` table); key = target, as on `apo.actions`.
impl OutputRow for ActionRecord {
    fn key(&self) -> String {
        self.target.clone()
    }
    fn window_end(&self) -> i64 {
        self.executed_at
    }
    fn window_start(&self) -> i64 {
        self.executed_at
    }
    fn revision(&self) -> u32 {
        1
    }
}
