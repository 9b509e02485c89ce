//! Window statistics to Parquet, one table directory per output, partitioned by UTC day of the
//! window start (`window_stats/date=YYYY-MM-DD/`). Rows are buffered and a file is written when
//! the roll interval or row limit is reached (or the input ends): written under
//! `<data-dir>/.tmp/`, synced, then renamed into place, so readers never see a partial file and
//! offsets are committed only after the rename.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apo_dataflow::sink::{SinkError, StatsSink};
use apo_schemas::arrow::{window_stats_schema, WINDOW_STATS_TABLE};
use apo_schemas::WindowStats;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

pub struct ParquetStatsSink {
    dir: PathBuf,
    tmp: PathBuf,
    file_prefix: String,
    roll_interval: Duration,
    max_rows: usize,
    rows: Vec<WindowStats>,
    first_row_at: Option<Instant>,
    seq: u64,
    /// Writes received, and how many of them are in files renamed into place.
    writes: u64,
    durable: u64,
}

impl ParquetStatsSink {
    /// `file_prefix` must be unique per writer (process and worker), e.g. `p0-w1`.
    pub fn new(
        data_dir: &Path,
        file_prefix: &str,
        roll_interval: Duration,
    ) -> Result<Self, SinkError> {
        let dir = data_dir.join(WINDOW_STATS_TABLE);
        let tmp = data_dir.join(".tmp");
        for d in [&dir, &tmp] {
            fs::create_dir_all(d)
                .map_err(|e| SinkError(format!("creating {}: {e}", d.display())))?;
        }
        Ok(ParquetStatsSink {
            dir,
            tmp,
            file_prefix: file_prefix.to_string(),
            roll_interval,
            max_rows: 1_000_000,
            rows: Vec::new(),
            first_row_at: None,
            seq: 0,
            writes: 0,
            durable: 0,
        })
    }

    fn write_file(&mut self, day: &str, rows: &[WindowStats]) -> Result<PathBuf, SinkError> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            SinkError(format!("{what} {}: {e}", p.display()))
        };
        let batch = to_batch(rows)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        self.seq += 1;
        let name = format!("part-{}-{stamp}-{:06}.parquet", self.file_prefix, self.seq);
        let tmp_path = self.tmp.join(&name);
        let file = File::create(&tmp_path).map_err(|e| io("creating", &tmp_path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))
            .map_err(|e| SinkError(format!("parquet writer: {e}")))?;
        w.write(&batch)
            .map_err(|e| SinkError(format!("parquet write: {e}")))?;
        let file = w
            .into_inner()
            .map_err(|e| SinkError(format!("parquet close: {e}")))?;
        file.sync_all().map_err(|e| io("syncing", &tmp_path, e))?;
        let part_dir = self.dir.join(format!("date={day}"));
        fs::create_dir_all(&part_dir).map_err(|e| io("creating", &part_dir, e))?;
        let final_path = part_dir.join(&name);
        fs::rename(&tmp_path, &final_path).map_err(|e| io("renaming into", &final_path, e))?;
        if let Ok(d) = File::open(&part_dir) {
            let _ = d.sync_all();
        }
        Ok(final_path)
    }
}

fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

/// Converts rows to an Arrow batch of [`window_stats_schema`].
pub fn to_batch(rows: &[WindowStats]) -> Result<RecordBatch, SinkError> {
    let f = |g: fn(&WindowStats) -> f64| {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(g))) as ArrayRef
    };
    let ts = |g: fn(&WindowStats) -> i64| {
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(g)).with_timezone("UTC"),
        ) as ArrayRef
    };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.service.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.metric.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.unit.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.window_seconds as i64),
        )),
        ts(|r| r.window_start),
        ts(|r| r.window_end),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.count as i64),
        )),
        f(|r| r.sum),
        f(|r| r.min),
        f(|r| r.max),
        f(|r| r.mean),
        f(|r| r.p50),
        f(|r| r.p90),
        f(|r| r.p95),
        f(|r| r.p99),
        f(|r| r.p999),
        f(|r| r.relative_accuracy),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.revision as i32),
        )),
    ];
    RecordBatch::try_new(window_stats_schema(), cols)
        .map_err(|e| SinkError(format!("arrow batch: {e}")))
}

impl StatsSink for ParquetStatsSink {
    fn name(&self) -> &str {
        "parquet:window_stats"
    }

    fn write(&mut self, rows: &[WindowStats]) -> Result<(), SinkError> {
        if !rows.is_empty() && self.first_row_at.is_none() {
            self.first_row_at = Some(Instant::now());
        }
        self.rows.extend_from_slice(rows);
        self.writes += 1;
        Ok(())
    }

    fn poll_durable(&mut self, finish: bool) -> Result<u64, SinkError> {
        let due = finish
            || self.rows.len() >= self.max_rows
            || self
                .first_row_at
                .is_some_and(|t| t.elapsed() >= self.roll_interval);
        if self.rows.is_empty() {
            self.durable = self.writes;
        } else if due {
            self.roll()?;
            self.durable = self.writes;
        }
        Ok(self.durable)
    }

    fn next_poll(&self) -> Option<Duration> {
        self.first_row_at
            .map(|t| self.roll_interval.saturating_sub(t.elapsed()))
    }
}

impl ParquetStatsSink {
    /// Writes the buffered rows to files, one per day, and renames them into place.
    fn roll(&mut self) -> Result<(), SinkError> {
        let rows = std::mem::take(&mut self.rows);
        let mut by_day: BTreeMap<String, Vec<WindowStats>> = BTreeMap::new();
        for r in rows.iter() {
            by_day
                .entry(day_of(r.window_start))
                .or_default()
                .push(r.clone());
        }
        for (day, rows_of_day) in by_day {
            if let Err(e) = self.write_file(&day, &rows_of_day) {
                // Keep the rows so a later attempt can write them.
                self.rows = rows;
                return Err(e);
            }
        }
        self.first_row_at = None;
        Ok(())
    }
}
