//! What every windowed output record has in common, for the sinks and the progress counters.

use crate::critical_path::CriticalPathShare;
use crate::red::RedStats;
use crate::service_map::ServiceMapEdge;
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

impl OutputRow for WindowStats {
    fn key(&self) -> String {
        WindowStats::key(self)
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

impl OutputRow for RedStats {
    fn key(&self) -> String {
        RedStats::key(self)
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

impl OutputRow for CriticalPathShare {
    fn key(&self) -> String {
        CriticalPathShare::key(self)
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

impl OutputRow for ServiceMapEdge {
    fn key(&self) -> String {
        ServiceMapEdge::key(self)
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
