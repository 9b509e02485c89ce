//! Windowed output rows to Parquet, one table directory per output, partitioned by UTC day of
//! the window start (`window_stats/date=YYYY-MM-DD/`, `red/date=…/`). Rows are buffered and a file is written when
//! the roll interval or row limit is reached (or the input ends): written under
//! `<data-dir>/.tmp/`, synced, then renamed into place, so readers never see a partial file and
//! offsets are committed only after the rename.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apo_dataflow::sink::{SinkError, StatsSink};
use apo_schemas::arrow::{red_schema, window_stats_schema, RED_TABLE, WINDOW_STATS_TABLE};
use apo_schemas::red::RedStats;
use apo_schemas::{OutputRow, WindowStats};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::SchemaRef;

/// A row type with a Parquet table of its own.
pub trait ParquetRow: OutputRow + Clone + 'static {
    /// The table (directory under the data directory).
    const TABLE: &'static str;
    fn schema() -> SchemaRef;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError>;
}

impl ParquetRow for WindowStats {
    const TABLE: &'static str = WINDOW_STATS_TABLE;
    fn schema() -> SchemaRef {
        window_stats_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        to_batch(rows)
    }
}
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

pub struct ParquetStatsSink<R: ParquetRow = WindowStats> {
    dir: PathBuf,
    tmp: PathBuf,
    file_prefix: String,
    roll_interval: Duration,
    max_rows: usize,
    rows: Vec<R>,
    name: String,
    first_row_at: Option<Instant>,
    seq: u64,
    /// Writes received, and how many of them are in files renamed into place.
    writes: u64,
    durable: u64,
}

impl<R: ParquetRow> ParquetStatsSink<R> {
    /// `file_prefix` must be unique per writer (process and worker), e.g. `p0-w1`.
    pub fn new(
        data_dir: &Path,
        file_prefix: &str,
        roll_interval: Duration,
    ) -> Result<Self, SinkError> {
        let dir = data_dir.join(R::TABLE);
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
            name: format!("parquet:{}", R::TABLE),
            first_row_at: None,
            seq: 0,
            writes: 0,
            durable: 0,
        })
    }

    fn write_file(&mut self, day: &str, rows: &[R]) -> Result<PathBuf, SinkError> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            SinkError(format!("{what} {}: {e}", p.display()))
        };
        let batch = R::to_batch(rows)?;
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

impl<R: ParquetRow> StatsSink<R> for ParquetStatsSink<R> {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, rows: &[R]) -> Result<(), SinkError> {
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

impl<R: ParquetRow> ParquetStatsSink<R> {
    /// Writes the buffered rows to files, one per day, and renames them into place.
    fn roll(&mut self) -> Result<(), SinkError> {
        let rows = std::mem::take(&mut self.rows);
        let mut by_day: BTreeMap<String, Vec<R>> = BTreeMap::new();
        for r in rows.iter() {
            by_day
                .entry(day_of(r.window_start()))
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

impl ParquetRow for RedStats {
    const TABLE: &'static str = RED_TABLE;
    fn schema() -> SchemaRef {
        red_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let f = |g: fn(&RedStats) -> f64| {
            Arc::new(Float64Array::from_iter_values(rows.iter().map(g))) as ArrayRef
        };
        let s = |g: fn(&RedStats) -> &str| {
            Arc::new(StringArray::from_iter_values(rows.iter().map(g))) as ArrayRef
        };
        let i = |g: fn(&RedStats) -> i64| {
            Arc::new(Int64Array::from_iter_values(rows.iter().map(g))) as ArrayRef
        };
        let ts = |g: fn(&RedStats) -> i64| {
            Arc::new(
                TimestampMillisecondArray::from_iter_values(rows.iter().map(g))
                    .with_timezone("UTC"),
            ) as ArrayRef
        };
        let cols: Vec<ArrayRef> = vec![
            s(|r| &r.service_name),
            s(|r| &r.span_name),
            s(|r| &r.span_kind),
            s(|r| &r.status_code),
            i(|r| r.window_seconds as i64),
            ts(|r| r.window_start),
            ts(|r| r.window_end),
            i(|r| r.calls as i64),
            f(|r| r.rate),
            i(|r| r.operation_errors as i64),
            i(|r| r.operation_calls as i64),
            f(|r| r.error_ratio),
            f(|r| r.duration_sum_ms),
            f(|r| r.duration_min_ms),
            f(|r| r.duration_max_ms),
            f(|r| r.duration_mean_ms),
            f(|r| r.duration_p50_ms),
            f(|r| r.duration_p90_ms),
            f(|r| r.duration_p95_ms),
            f(|r| r.duration_p99_ms),
            f(|r| r.duration_p999_ms),
            f(|r| r.relative_accuracy),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.overflow)),
            )),
            i(|r| r.overflow_operations as i64),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.revision as i32),
            )),
        ];
        RecordBatch::try_new(red_schema(), cols).map_err(|e| SinkError(format!("arrow batch: {e}")))
    }
}
