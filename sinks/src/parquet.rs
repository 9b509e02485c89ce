//! Windowed output rows to Parquet, one table directory per output, partitioned by UTC day of
//! the window start (`window_stats/date=YYYY-MM-DD/`, `red/date=…/`). Rows are buffered and a file is written when
//! the roll interval or row limit is reached (or the input ends): written under
//! `<data-dir>/.tmp/`, synced, then renamed into place, so readers never see a partial file and
//! offsets are committed only after the rename. Files are written on a thread per sink, never
//! on the timely worker.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apo_core::{RowSink, SinkError};
use apo_schemas::action::ActionRecord;
use apo_schemas::critical_path::{CriticalPathRecord, CriticalPathShare};
use apo_schemas::decision::Decision;
use apo_schemas::model_output::{AnomalyRecord, ForecastRecord};
use apo_schemas::red::RedStats;
use apo_schemas::service_map::{ServiceMapCurrent, ServiceMapEdge};
use apo_schemas::slo::SloState;
use apo_schemas::table::{schema, Table};
use apo_schemas::{OutputRow, WindowStats};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

/// A row type with a Parquet table of its own; its columns are its [`Table`] declaration.
pub trait ParquetRow: Table + OutputRow + Clone + Send + 'static {
    /// The table (directory under the data directory).
    const TABLE: &'static str = <Self as Table>::NAME;
    /// Rows buffered at most before a file is written, whatever the roll interval: bounds the
    /// buffer's memory when rows arrive fast (a replay).
    const MAX_ROWS: usize = 1_000_000;
    /// The table's Arrow schema.
    fn schema() -> SchemaRef {
        schema::<Self>()
    }
    /// The batch of `rows`.
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, SinkError> {
        crate::columns::to_batch(rows)
    }
}

impl ParquetRow for WindowStats {}

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
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        self.seq += 1;
        let name = format!("part-{}-{stamp}-{:06}.parquet", self.file_prefix, self.seq);
        write_as(&self.dir, &self.tmp, day, &name, rows)
    }
}

/// Writes `rows` to `<table_dir>/date=<day>/<name>`: first under `tmp` (shared by every
/// table's writers: the table name keeps them apart), synced, then renamed into place.
fn write_as<R: ParquetRow>(
    table_dir: &Path,
    tmp: &Path,
    day: &str,
    name: &str,
    rows: &[R],
) -> Result<PathBuf, SinkError> {
    let io =
        |what: &str, p: &Path, e: std::io::Error| SinkError(format!("{what} {}: {e}", p.display()));
    let batch = R::to_batch(rows)?;
    let tmp_path = tmp.join(format!("{}-{name}", R::TABLE));
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
    let part_dir = table_dir.join(format!("date={day}"));
    fs::create_dir_all(&part_dir).map_err(|e| io("creating", &part_dir, e))?;
    let final_path = part_dir.join(name);
    fs::rename(&tmp_path, &final_path).map_err(|e| io("renaming into", &final_path, e))?;
    if let Ok(d) = File::open(&part_dir) {
        let _ = d.sync_all();
    }
    Ok(final_path)
}

/// Writes `row` at once, alone, to `R`'s table under `data_dir` as `<name>.parquet` in its
/// day's partition, durable when this returns. Writing the same name again replaces the
/// file, so a writer that names a row after its identity (the actuator: one file per audit
/// record) can repeat a write after a crash without the row appearing twice.
pub fn write_one<R: ParquetRow>(
    data_dir: &Path,
    name: &str,
    row: &R,
) -> Result<PathBuf, SinkError> {
    let dir = data_dir.join(R::TABLE);
    let tmp = data_dir.join(".tmp");
    for d in [&dir, &tmp] {
        fs::create_dir_all(d).map_err(|e| SinkError(format!("creating {}: {e}", d.display())))?;
    }
    let file = format!("{name}.parquet");
    write_as(
        &dir,
        &tmp,
        &day_of(row.window_start()),
        &file,
        std::slice::from_ref(row),
    )
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

impl ParquetRow for RedStats {}

impl ParquetRow for AnomalyRecord {}

impl ParquetRow for ForecastRecord {}

impl ParquetRow for CriticalPathRecord {
    /// A row per trace, a few KB in memory with its segments' strings: a 1 M-span replay held
    /// over 200 MB of them within one 10 s roll (peak RSS 610 MB, 390 MB with a 1 s roll).
    const MAX_ROWS: usize = 10_000;
}

impl ParquetRow for CriticalPathShare {}

impl ParquetRow for ServiceMapEdge {}

impl ParquetRow for SloState {}

impl ParquetRow for ServiceMapCurrent {}

impl ParquetRow for Decision {}

impl ParquetRow for ActionRecord {}
