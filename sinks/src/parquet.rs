//! Windowed output rows to Parquet, one table directory per output, partitioned by UTC day of
//! the window start (`window_stats/date=YYYY-MM-DD/`, `red/date=…/`). Rows are buffered and a file is written when
//! the roll interval or row limit is reached (or the input ends): written under
//! `<data-dir>/.tmp/`, synced, then renamed into place, so readers never see a partial file and
//! offsets are committed only after the rename. Files are written on a thread per sink, never
//! on the timely worker.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apo_core::{RowSink, SinkError};
use apo_schemas::arrow::{
    anomalies_schema, critical_path_schema, critical_path_share_schema, forecasts_schema,
    red_schema, service_map_current_schema, service_map_schema, slo_schema, window_stats_schema,
    ANOMALIES_TABLE, CRITICAL_PATH_SHARE_TABLE, CRITICAL_PATH_TABLE, FORECASTS_TABLE, RED_TABLE,
    SERVICE_MAP_CURRENT_TABLE, SERVICE_MAP_TABLE, SLO_TABLE, WINDOW_STATS_TABLE,
};
use apo_schemas::critical_path::{CriticalPathRecord, CriticalPathShare};
use apo_schemas::model_output::{AnomalyRecord, ForecastRecord};
use apo_schemas::red::RedStats;
use apo_schemas::service_map::{ServiceMapCurrent, ServiceMapEdge};
use apo_schemas::slo::SloState;
use apo_schemas::{OutputRow, WindowStats};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, TimestampNanosecondArray,
};
use datafusion::arrow::datatypes::SchemaRef;

/// A row type with a Parquet table of its own.
pub trait ParquetRow: OutputRow + Clone + Send + 'static {
    /// The table (directory under the data directory).
    const TABLE: &'static str;
    /// Rows buffered at most before a file is written, whatever the roll interval: bounds the
    /// buffer's memory when rows arrive fast (a replay).
    const MAX_ROWS: usize = 1_000_000;
    fn schema() -> SchemaRef;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError>;
}

impl ParquetRow for WindowStats {
    const TABLE: &'static str = WINDOW_STATS_TABLE;
    fn schema() -> SchemaRef {
        window_stats_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let c = Cols(rows);
        batch(
            window_stats_schema(),
            vec![
                c.s(|r| &r.service),
                c.s(|r| &r.metric),
                c.s(|r| &r.unit),
                c.i(|r| r.window_seconds as i64),
                c.ms(|r| r.window_start),
                c.ms(|r| r.window_end),
                c.i(|r| r.count as i64),
                c.f(|r| r.sum),
                c.f(|r| r.min),
                c.f(|r| r.max),
                c.f(|r| r.mean),
                c.f(|r| r.p50),
                c.f(|r| r.p90),
                c.f(|r| r.p95),
                c.f(|r| r.p99),
                c.f(|r| r.p999),
                c.f(|r| r.relative_accuracy),
                c.i32(|r| r.revision as i32),
            ],
        )
    }
}
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

/// Parquet sink for one table. Files are written by a thread of the sink's own (encoding,
/// compression, `fsync` and rename take from milliseconds to, on a busy disk, seconds): the
/// timely worker only hands rows over and later collects which writes are in files, so a slow
/// disk never stalls windows or the other sinks' acknowledgements.
pub struct ParquetStatsSink<R: ParquetRow = WindowStats> {
    roll_interval: Duration,
    max_rows: usize,
    rows: Vec<R>,
    name: String,
    first_row_at: Option<Instant>,
    /// Writes received, and how many of them are in files renamed into place.
    writes: u64,
    durable: u64,
    /// Rolls handed to the writer thread and not yet reported back.
    in_flight: usize,
    jobs: Option<mpsc::Sender<Roll<R>>>,
    done: mpsc::Receiver<Result<u64, SinkError>>,
    writer: Option<JoinHandle<()>>,
}

/// Rows for the writer thread; `upto`: the writes they complete.
struct Roll<R> {
    rows: Vec<R>,
    upto: u64,
}

/// Writes files for one table; owned by the sink's writer thread.
struct FileWriter {
    dir: PathBuf,
    tmp: PathBuf,
    file_prefix: String,
    seq: u64,
}

fn writer_stopped() -> SinkError {
    SinkError("the Parquet writer thread has stopped".into())
}

/// How often the worker looks for finished files while a roll is being written.
const ROLL_POLL: Duration = Duration::from_millis(5);

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
        let mut files = FileWriter {
            dir,
            tmp,
            file_prefix: file_prefix.to_string(),
            seq: 0,
        };
        let (jobs, job_rx) = mpsc::channel::<Roll<R>>();
        let (done_tx, done) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name(format!("parquet-{}-{file_prefix}", R::TABLE))
            .spawn(move || {
                for roll in job_rx {
                    let r = files.write_rows(&roll.rows).map(|()| roll.upto);
                    if done_tx.send(r).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| SinkError(format!("starting the Parquet writer thread: {e}")))?;
        Ok(ParquetStatsSink {
            roll_interval,
            max_rows: R::MAX_ROWS,
            rows: Vec::new(),
            name: format!("parquet:{}", R::TABLE),
            first_row_at: None,
            writes: 0,
            durable: 0,
            in_flight: 0,
            jobs: Some(jobs),
            done,
            writer: Some(writer),
        })
    }

    /// Hands the buffered rows to the writer thread.
    fn roll(&mut self) -> Result<(), SinkError> {
        let rows = std::mem::take(&mut self.rows);
        let sent = self.jobs.as_ref().is_some_and(|j| {
            j.send(Roll {
                rows,
                upto: self.writes,
            })
            .is_ok()
        });
        if !sent {
            return Err(writer_stopped());
        }
        self.in_flight += 1;
        self.first_row_at = None;
        Ok(())
    }

    /// Takes the writer thread's reports; `wait`: until every roll handed over is reported.
    fn collect(&mut self, wait: bool) -> Result<(), SinkError> {
        while self.in_flight > 0 {
            let r = if wait {
                self.done.recv().map_err(|_| writer_stopped())
            } else {
                match self.done.try_recv() {
                    Ok(r) => Ok(r),
                    Err(mpsc::TryRecvError::Empty) => return Ok(()),
                    Err(mpsc::TryRecvError::Disconnected) => Err(writer_stopped()),
                }
            };
            self.in_flight -= 1;
            self.durable = self.durable.max(r??);
        }
        Ok(())
    }
}

impl FileWriter {
    /// Writes rows to files, one per day, each renamed into place once synced.
    fn write_rows<R: ParquetRow>(&mut self, rows: &[R]) -> Result<(), SinkError> {
        let mut by_day: BTreeMap<String, Vec<R>> = BTreeMap::new();
        for r in rows {
            by_day
                .entry(day_of(r.window_start()))
                .or_default()
                .push(r.clone());
        }
        for (day, rows_of_day) in by_day {
            self.write_file(&day, &rows_of_day)?;
        }
        Ok(())
    }

    fn write_file<R: ParquetRow>(&mut self, day: &str, rows: &[R]) -> Result<PathBuf, SinkError> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            SinkError(format!("{what} {}: {e}", p.display()))
        };
        let batch = R::to_batch(rows)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        self.seq += 1;
        let name = format!("part-{}-{stamp}-{:06}.parquet", self.file_prefix, self.seq);
        // `.tmp/` is shared by every table's writer thread: the table name keeps them apart.
        let tmp_path = self.tmp.join(format!("{}-{name}", R::TABLE));
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

impl<R: ParquetRow> Drop for ParquetStatsSink<R> {
    /// Lets the writer thread finish the file it is on (a partial one stays under `.tmp/`).
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

impl<R: ParquetRow> RowSink<R> for ParquetStatsSink<R> {
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

    /// Never waits for the disk, except with `finish`: then everything buffered is written
    /// before it returns.
    fn poll_durable(&mut self, finish: bool) -> Result<u64, SinkError> {
        self.collect(false)?;
        let due = finish
            || self.rows.len() >= self.max_rows
            || self
                .first_row_at
                .is_some_and(|t| t.elapsed() >= self.roll_interval);
        if !self.rows.is_empty() && due {
            self.roll()?;
        }
        if finish {
            self.collect(true)?;
        }
        if self.rows.is_empty() && self.in_flight == 0 {
            self.durable = self.writes;
        }
        Ok(self.durable)
    }

    fn next_poll(&self) -> Option<Duration> {
        let roll_due = self
            .first_row_at
            .map(|t| self.roll_interval.saturating_sub(t.elapsed()));
        if self.in_flight > 0 {
            Some(roll_due.map_or(ROLL_POLL, |d| d.min(ROLL_POLL)))
        } else {
            roll_due
        }
    }
}

impl ParquetRow for RedStats {
    const TABLE: &'static str = RED_TABLE;
    fn schema() -> SchemaRef {
        red_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let c = Cols(rows);
        batch(
            red_schema(),
            vec![
                c.s(|r| &r.service_name),
                c.s(|r| &r.span_name),
                c.s(|r| &r.span_kind),
                c.s(|r| &r.status_code),
                c.i(|r| r.window_seconds as i64),
                c.ms(|r| r.window_start),
                c.ms(|r| r.window_end),
                c.i(|r| r.calls as i64),
                c.f(|r| r.rate),
                c.i(|r| r.operation_errors as i64),
                c.i(|r| r.operation_calls as i64),
                c.f(|r| r.error_ratio),
                c.f(|r| r.duration_sum_ms),
                c.f(|r| r.duration_min_ms),
                c.f(|r| r.duration_max_ms),
                c.f(|r| r.duration_mean_ms),
                c.f(|r| r.duration_p50_ms),
                c.f(|r| r.duration_p90_ms),
                c.f(|r| r.duration_p95_ms),
                c.f(|r| r.duration_p99_ms),
                c.f(|r| r.duration_p999_ms),
                c.f(|r| r.relative_accuracy),
                c.b(|r| r.overflow),
                c.i(|r| r.overflow_operations as i64),
                c.i32(|r| r.revision as i32),
            ],
        )
    }
}

impl ParquetRow for AnomalyRecord {
    const TABLE: &'static str = ANOMALIES_TABLE;
    fn schema() -> SchemaRef {
        anomalies_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let c = Cols(rows);
        let drivers: Vec<String> = rows
            .iter()
            .map(|r| {
                r.drivers
                    .iter()
                    .map(|d| format!("{}={:.2}", d.feature, d.value))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        batch(
            anomalies_schema(),
            vec![
                c.s(|r| &r.service),
                c.s(|r| &r.metric),
                c.i(|r| r.window_seconds as i64),
                c.ms(|r| r.window_start),
                c.ms(|r| r.window_end),
                c.f(|r| r.score),
                c.f(|r| r.threshold),
                c.f(|r| r.likelihood),
                c.opt_f(|r| r.context_score),
                c.b(|r| r.is_anomaly),
                c.b(|r| r.raised),
                c.b(|r| r.suppressed),
                Arc::new(StringArray::from_iter_values(drivers.iter())),
                c.s(|r| &r.model_version),
                c.i32(|r| r.revision as i32),
            ],
        )
    }
}

impl ParquetRow for ForecastRecord {
    const TABLE: &'static str = FORECASTS_TABLE;
    fn schema() -> SchemaRef {
        forecasts_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let c = Cols(rows);
        batch(
            forecasts_schema(),
            vec![
                c.s(|r| &r.service),
                c.s(|r| &r.metric),
                c.s(|r| &r.signal),
                c.i(|r| r.window_seconds as i64),
                c.ms(|r| r.window_start),
                c.ms(|r| r.window_end),
                c.i(|r| r.horizon_seconds as i64),
                c.ms(|r| r.target_time),
                c.f(|r| r.value),
                c.f(|r| r.lower),
                c.f(|r| r.upper),
                c.s(|r| &r.model_version),
                c.i32(|r| r.revision as i32),
            ],
        )
    }
}

/// Column builders over a slice of rows.
struct Cols<'a, R>(&'a [R]);

impl<R> Cols<'_, R> {
    fn f(&self, g: impl Fn(&R) -> f64) -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(self.0.iter().map(g)))
    }
    fn opt_f(&self, g: impl Fn(&R) -> Option<f64>) -> ArrayRef {
        Arc::new(Float64Array::from_iter(self.0.iter().map(g)))
    }
    fn i(&self, g: impl Fn(&R) -> i64) -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(self.0.iter().map(g)))
    }
    fn i32(&self, g: impl Fn(&R) -> i32) -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(self.0.iter().map(g)))
    }
    fn s<'b>(&'b self, g: impl Fn(&'b R) -> &'b str) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(self.0.iter().map(g)))
    }
    fn b(&self, g: impl Fn(&R) -> bool) -> ArrayRef {
        Arc::new(BooleanArray::from_iter(self.0.iter().map(|r| Some(g(r)))))
    }
    fn ms(&self, g: impl Fn(&R) -> i64) -> ArrayRef {
        Arc::new(
            TimestampMillisecondArray::from_iter_values(self.0.iter().map(g)).with_timezone("UTC"),
        )
    }
    fn ns(&self, g: impl Fn(&R) -> i64) -> ArrayRef {
        Arc::new(
            TimestampNanosecondArray::from_iter_values(self.0.iter().map(g)).with_timezone("UTC"),
        )
    }
}

fn batch(schema: SchemaRef, cols: Vec<ArrayRef>) -> Result<RecordBatch, SinkError> {
    RecordBatch::try_new(schema, cols).map_err(|e| SinkError(format!("arrow batch: {e}")))
}

impl ParquetRow for CriticalPathRecord {
    const TABLE: &'static str = CRITICAL_PATH_TABLE;
    /// A row per trace, a few KB in memory with its segments' strings: a 1 M-span replay held
    /// over 200 MB of them within one 10 s roll (peak RSS 610 MB, 390 MB with a 1 s roll).
    const MAX_ROWS: usize = 10_000;
    fn schema() -> SchemaRef {
        critical_path_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let c = Cols(rows);
        let segments: Vec<String> = rows
            .iter()
            .map(|r| serde_json::to_string(&r.segments).unwrap_or_default())
            .collect();
        batch(
            critical_path_schema(),
            vec![
                c.s(|r| &r.trace_id),
                c.i(|r| r.fragment as i64),
                c.b(|r| r.complete),
                c.s(|r| &r.emitted),
                c.s(|r| &r.root_service),
                c.s(|r| &r.root_operation),
                c.i(|r| r.spans as i64),
                c.ns(|r| r.start_ns),
                c.ns(|r| r.end_ns),
                c.f(|r| r.duration_ms),
                Arc::new(StringArray::from_iter_values(segments)),
            ],
        )
    }
}

impl ParquetRow for CriticalPathShare {
    const TABLE: &'static str = CRITICAL_PATH_SHARE_TABLE;
    fn schema() -> SchemaRef {
        critical_path_share_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let c = Cols(rows);
        batch(
            critical_path_share_schema(),
            vec![
                c.i(|r| r.window_seconds as i64),
                c.ms(|r| r.window_start),
                c.ms(|r| r.window_end),
                c.s(|r| &r.service),
                c.s(|r| &r.operation),
                c.i32(|r| r.rank as i32),
                c.f(|r| r.critical_ms),
                c.f(|r| r.share),
                c.i(|r| r.traces as i64),
                c.i(|r| r.window_traces as i64),
                c.i32(|r| r.revision as i32),
            ],
        )
    }
}

impl ParquetRow for ServiceMapEdge {
    const TABLE: &'static str = SERVICE_MAP_TABLE;
    fn schema() -> SchemaRef {
        service_map_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let c = Cols(rows);
        batch(
            service_map_schema(),
            vec![
                c.s(|r| &r.client),
                c.s(|r| &r.server),
                c.s(|r| &r.connection_type),
                c.i(|r| r.window_seconds as i64),
                c.ms(|r| r.window_start),
                c.ms(|r| r.window_end),
                c.i(|r| r.calls as i64),
                c.i(|r| r.failed as i64),
                c.f(|r| r.latency_mean_ms),
                c.f(|r| r.latency_p50_ms),
                c.f(|r| r.latency_p95_ms),
                c.f(|r| r.latency_p99_ms),
                c.f(|r| r.latency_max_ms),
                c.f(|r| r.critical_path_ms),
                c.f(|r| r.relative_accuracy),
                c.i32(|r| r.revision as i32),
            ],
        )
    }
}

impl ParquetRow for SloState {
    const TABLE: &'static str = SLO_TABLE;
    fn schema() -> SchemaRef {
        slo_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let c = Cols(rows);
        batch(
            slo_schema(),
            vec![
                c.s(|r| &r.objective),
                c.s(|r| &r.service),
                c.s(|r| &r.description),
                c.f(|r| r.target),
                c.i(|r| r.window_seconds as i64),
                c.ms(|r| r.window_start),
                c.ms(|r| r.window_end),
                c.i(|r| r.events as i64),
                c.i(|r| r.bad_events as i64),
                c.f(|r| r.sli),
                c.b(|r| r.compliant),
                c.f(|r| r.burn_fast_long),
                c.f(|r| r.burn_fast_short),
                c.f(|r| r.burn_slow_long),
                c.f(|r| r.burn_slow_short),
                c.s(|r| &r.alert),
                c.i32(|r| r.revision as i32),
            ],
        )
    }
}

impl ParquetRow for ServiceMapCurrent {
    const TABLE: &'static str = SERVICE_MAP_CURRENT_TABLE;
    fn schema() -> SchemaRef {
        service_map_current_schema()
    }
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        let c = Cols(rows);
        batch(
            service_map_current_schema(),
            vec![
                c.s(|r| &r.client),
                c.s(|r| &r.server),
                c.s(|r| &r.connection_type),
                c.s(|r| &r.change),
                c.i(|r| r.horizon_seconds as i64),
                c.ms(|r| r.as_of),
                c.i(|r| r.windows as i64),
                c.i(|r| r.calls as i64),
                c.i(|r| r.failed as i64),
                c.f(|r| r.error_ratio),
                c.f(|r| r.latency_mean_ms),
                c.f(|r| r.latency_max_ms),
                c.f(|r| r.worst_window_p95_ms),
                c.f(|r| r.latency_p50_ms),
                c.f(|r| r.latency_p95_ms),
                c.f(|r| r.latency_p99_ms),
                c.f(|r| r.relative_accuracy),
                c.i32(|r| r.revision as i32),
            ],
        )
    }
}
