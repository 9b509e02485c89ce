//! Reading our own Parquet tables back into records: the windows of `window_stats` and `red`
//! that ended at or after a time, for a warm start of the models' per-series state after a
//! restart (`apo_dataflow::PastWindows`). Files are read from the day partitions that can
//! hold such windows; a file that cannot be read is an error (the caller starts cold).

use std::fs;
use std::path::{Path, PathBuf};

use apo_schemas::red::RedStats;
use apo_schemas::WindowStats;
use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::parquet::ParquetRow;

/// Reading past rows back failed; the message names the file (or column) and the cause.
#[derive(Debug, thiserror::Error, Clone)]
#[error("{0}")]
pub struct ReadError(pub String);

/// A row type that can be read back from its table: every column with a setter (see
/// `apo_schemas::table`), into a default record.
pub trait ReadBack: ParquetRow + Default {
    /// The rows of one batch of the table.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ReadError> {
        crate::columns::from_batch(batch)
    }
}

/// The rows of `R`'s table under `data_dir` whose window ended at or after `since_ms`.
pub fn read_since<R: ReadBack>(data_dir: &Path, since_ms: i64) -> Result<Vec<R>, ReadError> {
    let table = data_dir.join(R::TABLE);
    // A window that ends at `since_ms` started at most a day earlier (windows are shorter).
    let first_day = day_of(since_ms.saturating_sub(86_400_000));
    let mut files: Vec<PathBuf> = Vec::new();
    let days = match fs::read_dir(&table) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReadError(format!("reading {}: {e}", table.display()))),
    };
    for day in days.flatten() {
        let name = day.file_name().to_string_lossy().into_owned();
        let Some(date) = name.strip_prefix("date=") else {
            continue;
        };
        if date < first_day.as_str() {
            continue;
        }
        let entries = fs::read_dir(day.path())
            .map_err(|e| ReadError(format!("reading {}: {e}", day.path().display())))?;
        files.extend(
            entries
                .flatten()
                .map(|f| f.path())
                .filter(|p| p.extension().is_some_and(|x| x == "parquet")),
        );
    }
    files.sort();
    let mut rows = Vec::new();
    for path in files {
        let open =
            |e: &dyn std::fmt::Display| ReadError(format!("reading {}: {e}", path.display()));
        let file = fs::File::open(&path).map_err(|e| open(&e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| open(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| open(&e))?;
            rows.extend(
                R::from_batch(&batch)?
                    .into_iter()
                    .filter(|r| r.window_end() >= since_ms),
            );
        }
    }
    Ok(rows)
}

fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".into())
}

impl ReadBack for WindowStats {}

impl ReadBack for RedStats {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet::ParquetStatsSink;
    use apo_core::RowSink;
    use std::time::Duration;

    fn stats(metric: &str, start: i64, revision: u32) -> WindowStats {
        WindowStats {
            attributes: Default::default(),
            service: "checkout".into(),
            metric: metric.into(),
            unit: "ms".into(),
            window_seconds: 60,
            window_start: start,
            window_end: start + 60_000,
            count: 7,
            sum: 70.5,
            min: 1.25,
            max: 30.0,
            mean: 10.07,
            p50: 8.0,
            p90: 20.0,
            p95: 25.0,
            p99: 29.5,
            p999: 30.0,
            relative_accuracy: 0.01,
            revision,
        }
    }

    fn red(start: i64) -> RedStats {
        RedStats {
            service_name: "cart".into(),
            span_name: "GET /cart".into(),
            span_kind: "SPAN_KIND_SERVER".into(),
            status_code: "STATUS_CODE_ERROR".into(),
            window_seconds: 60,
            window_start: start,
            window_end: start + 60_000,
            calls: 12,
            rate: 0.2,
            operation_errors: 3,
            operation_calls: 40,
            error_ratio: 0.075,
            duration_sum_ms: 120.0,
            duration_min_ms: 2.0,
            duration_max_ms: 50.0,
            duration_mean_ms: 10.0,
            duration_p50_ms: 8.0,
            duration_p90_ms: 30.0,
            duration_p95_ms: 40.0,
            duration_p99_ms: 49.0,
            duration_p999_ms: 50.0,
            relative_accuracy: 0.01,
            overflow: true,
            overflow_operations: 4,
            revision: 2,
        }
    }

    #[test]
    fn what_the_sinks_wrote_reads_back_from_a_time_on() {
        let dir = tempfile::tempdir().unwrap();
        // two days apart: the older day's partition is not even opened
        let (day1, day3) = (1_764_115_200_000, 1_764_115_200_000 + 2 * 86_400_000);
        let written = vec![
            stats("latency", day1, 1),
            stats("latency", day3, 1),
            stats("latency", day3 + 60_000, 2),
        ];
        let mut sink = ParquetStatsSink::new(dir.path(), "w0", Duration::from_secs(3600)).unwrap();
        sink.write(&written).unwrap();
        let mut red_sink: ParquetStatsSink<RedStats> =
            ParquetStatsSink::new(dir.path(), "w0", Duration::from_secs(3600)).unwrap();
        red_sink.write(&[red(day1), red(day3)]).unwrap();
        sink.poll_durable(true).unwrap();
        red_sink.poll_durable(true).unwrap();

        let mut back: Vec<WindowStats> = read_since(dir.path(), day3 + 60_000).unwrap();
        back.sort_by_key(|w| w.window_start);
        assert_eq!(back, written[1..], "every field as written");
        let all: Vec<WindowStats> = read_since(dir.path(), 0).unwrap();
        assert_eq!(all.len(), 3);
        let reds: Vec<RedStats> = read_since(dir.path(), day3).unwrap();
        assert_eq!(reds, [red(day3)]);
        let none: Vec<WindowStats> = read_since(&dir.path().join("nothing here"), 0).unwrap();
        assert!(none.is_empty(), "no table yet: nothing to warm from");
    }

    #[test]
    fn a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("window_stats/date=2026-11-27");
        fs::create_dir_all(&part).unwrap();
        fs::write(part.join("part-x.parquet"), b"not parquet").unwrap();
        let e = read_since::<WindowStats>(dir.path(), 0).unwrap_err();
        assert!(e.to_string().contains("part-x.parquet"), "{e}");
    }
}
