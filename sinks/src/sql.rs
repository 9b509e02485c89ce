//! `apo sql`: registers every table under the data directory in DataFusion (Parquet, partitioned
//! by `date=YYYY-MM-DD` directories, exposed as a `date` column) and answers a query as a table,
//! CSV or JSON.
//!
//! A table is read as its latest rows: one row per key ([`apo_schemas::table::Table::KEY`]),
//! the highest `revision` of it, so a window revised by late data or written again by a replay
//! after a restart counts once. Every row as written, each revision and each replayed copy, is
//! in `<table>_log`.

use std::path::Path;

use apo_schemas::table::{every_table, TableInfo};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

/// How `apo sql` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    /// A table drawn with borders.
    Table,
    /// CSV with a header line.
    Csv,
    /// JSON, one object per row.
    Json,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" => Ok(OutputFormat::Json),
            _ => Err(format!("unknown format `{s}` (table, csv, json)")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
/// Why a query could not be answered.
pub enum SqlError {
    #[error("data directory {0} does not exist (run the pipeline first, or pass --data-dir)")]
    /// The data directory does not exist.
    NoDataDir(String),
    /// DataFusion's message (which already holds its causes: kept as text so they are not
    /// printed again as a chain of sources).
    #[error("{0}")]
    DataFusion(String),
    #[error("formatting results: {0}")]
    /// The result could not be printed.
    Format(String),
}

impl From<datafusion::error::DataFusionError> for SqlError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        SqlError::DataFusion(e.to_string())
    }
}

/// Tables every data directory has, with their schemas (registered even when still empty, so
/// queries against them answer with no rows rather than an unknown-table error).
fn known_tables() -> Vec<TableInfo> {
    every_table()
}

/// The name every row of `table` is read under.
pub fn log_name(table: &str) -> String {
    format!("{table}_log")
}

/// The view of `t`'s latest rows over its log: per key, the row of the highest revision (any
/// one of identical replayed copies).
fn latest_view(t: &TableInfo) -> String {
    let quote = |c: &str| format!("\"{c}\"");
    let columns: Vec<String> = t
        .schema
        .fields()
        .iter()
        .map(|f| quote(f.name()))
        .chain(std::iter::once(quote("date")))
        .collect();
    let key: Vec<String> = t.key.iter().map(|k| quote(k)).collect();
    let order = if t.schema.field_with_name("revision").is_ok() {
        "ORDER BY \"revision\" DESC"
    } else {
        ""
    };
    format!(
        "CREATE VIEW \"{name}\" AS SELECT {cols} FROM (SELECT *, row_number() OVER \
         (PARTITION BY {key} {order}) AS apo_latest FROM \"{log}\") WHERE apo_latest = 1",
        name = t.name,
        cols = columns.join(", "),
        key = key.join(", "),
        log = log_name(t.name),
    )
}

/// A session with every table of `data_dir` registered.
pub async fn session(data_dir: &Path) -> Result<SessionContext, SqlError> {
    if !data_dir.is_dir() {
        return Err(SqlError::NoDataDir(data_dir.display().to_string()));
    }
    let ctx = SessionContext::new();
    let partition = vec![("date".to_string(), DataType::Utf8)];
    let known = known_tables();
    for t in &known {
        let dir = data_dir.join(t.name);
        std::fs::create_dir_all(&dir).map_err(|e| SqlError::Format(e.to_string()))?;
        let opts = ParquetReadOptions::default()
            .table_partition_cols(partition.clone())
            .schema(&t.schema);
        let path = dir.to_string_lossy();
        if t.key.is_empty() {
            ctx.register_parquet(t.name, path.as_ref(), opts).await?;
        } else {
            ctx.register_parquet(log_name(t.name), path.as_ref(), opts)
                .await?;
            ctx.sql(&latest_view(t)).await?;
        }
    }
    // Any other table directory (written by a newer version, say): schema inferred.
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || known.iter().any(|t| t.name == name) || !e.path().is_dir() {
                continue;
            }
            let opts = ParquetReadOptions::default().table_partition_cols(partition.clone());
            if let Err(err) = ctx
                .register_parquet(name.as_str(), e.path().to_string_lossy().as_ref(), opts)
                .await
            {
                tracing::warn!(table = %name, error = %err, "skipping directory that is not a readable table");
            }
        }
    }
    Ok(ctx)
}

/// Runs `query` over `data_dir` and returns the result batches.
pub async fn query(data_dir: &Path, query: &str) -> Result<Vec<RecordBatch>, SqlError> {
    let ctx = session(data_dir).await?;
    Ok(ctx.sql(query).await?.collect().await?)
}

/// Renders batches in `format`.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String, SqlError> {
    let err = |e: datafusion::arrow::error::ArrowError| SqlError::Format(e.to_string());
    match format {
        OutputFormat::Table => Ok(pretty_format_batches(batches).map_err(err)?.to_string()),
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                for b in batches {
                    w.write(b).map_err(err)?;
                }
            }
            String::from_utf8(buf).map_err(|e| SqlError::Format(e.to_string()))
        }
        OutputFormat::Json => {
            let mut buf = Vec::new();
            {
                let mut w = datafusion::arrow::json::ArrayWriter::new(&mut buf);
                for b in batches {
                    w.write(b).map_err(err)?;
                }
                w.finish().map_err(err)?;
            }
            let mut s = String::from_utf8(buf).map_err(|e| SqlError::Format(e.to_string()))?;
            if s.is_empty() {
                s.push_str("[]");
            }
            Ok(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet::ParquetStatsSink;
    use apo_core::RowSink;
    use apo_schemas::WindowStats;
    use std::time::Duration;

    fn row(service: &str, start: i64, count: u64) -> WindowStats {
        WindowStats {
            attributes: Default::default(),
            service: service.into(),
            metric: "lat".into(),
            unit: "ms".into(),
            window_seconds: 10,
            window_start: start,
            window_end: start + 10_000,
            count,
            sum: count as f64,
            min: 1.0,
            max: 1.0,
            mean: 1.0,
            p50: 1.0,
            p90: 1.0,
            p95: 1.0,
            p99: 1.0,
            p999: 1.0,
            relative_accuracy: 0.01,
            revision: 1,
        }
    }

    #[tokio::test]
    async fn parquet_written_by_the_sink_answers_sql() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ParquetStatsSink::new(dir.path(), "t", Duration::from_secs(3600)).unwrap();
        // Two days, two services.
        sink.write(&[
            row("a", 1_764_115_200_000, 3),
            row("b", 1_764_115_200_000, 4),
        ])
        .unwrap();
        sink.write(&[row("a", 1_764_201_600_000, 5)]).unwrap();
        assert_eq!(sink.poll_durable(false).unwrap(), 0, "not due to roll yet");
        assert_eq!(sink.poll_durable(true).unwrap(), 2, "both writes in files");
        let batches = query(
            dir.path(),
            "SELECT service, sum(count) AS n, count(DISTINCT date) AS days FROM window_stats GROUP BY service ORDER BY service",
        )
        .await
        .unwrap();
        let csv = render(&batches, OutputFormat::Csv).unwrap();
        assert_eq!(csv, "service,n,days\na,8,2\nb,4,1\n");
        let json = render(&batches, OutputFormat::Json).unwrap();
        assert!(json.starts_with("[{\"service\":\"a\""), "{json}");
        assert!(render(&batches, OutputFormat::Table)
            .unwrap()
            .contains("| a       |"));
        assert!(std::fs::read_dir(dir.path().join(".tmp"))
            .unwrap()
            .next()
            .is_none());
    }

    fn red_rows() -> Vec<apo_schemas::red::RedStats> {
        use apo_dataflow::{RedPartial, RedWindow};
        use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};
        let mut p = RedPartial::new(
            RedWindow {
                service: "shop".into(),
                window_seconds: 10,
                window_start: 1_764_115_200_000,
            },
            0.01,
            10,
        );
        for (i, (op, status, ms)) in [
            ("GET /", SpanStatus::Ok, 10),
            ("GET /", SpanStatus::Error, 30),
            ("GET /", SpanStatus::Ok, 20),
            ("POST /pay", SpanStatus::Unset, 100),
        ]
        .into_iter()
        .enumerate()
        {
            let end_ns = (1_764_115_200_000 + 5_000) * 1_000_000;
            p.add(&Span {
                links: Vec::new(),
                trace_id: TraceId(1),
                span_id: SpanId(i as u64 + 1),
                parent_span_id: None,
                service: "shop".into(),
                name: op.into(),
                kind: SpanKind::Server,
                start_ns: end_ns - ms * 1_000_000,
                end_ns,
                status,
                attributes: Default::default(),
                follows_from: false,
                adjusted_count: 1,
            });
        }
        p.finish(1)
    }

    #[tokio::test]
    async fn red_rows_written_by_the_sink_answer_sql() {
        use apo_schemas::red::RedStats;
        let dir = tempfile::tempdir().unwrap();
        let rows = red_rows();
        let mut sink: ParquetStatsSink<RedStats> =
            ParquetStatsSink::new(dir.path(), "t", Duration::from_secs(3600)).unwrap();
        sink.write(&rows).unwrap();
        assert_eq!(sink.poll_durable(true).unwrap(), 1);
        let batches = query(
            dir.path(),
            "SELECT span_name, status_code, calls, error_ratio, duration_max_ms FROM red ORDER BY span_name, status_code",
        )
        .await
        .unwrap();
        assert_eq!(
            render(&batches, OutputFormat::Csv).unwrap(),
            "span_name,status_code,calls,error_ratio,duration_max_ms\n\
             GET /,STATUS_CODE_ERROR,1,0.3333333333333333,30.0\n\
             GET /,STATUS_CODE_OK,2,0.3333333333333333,20.0\n\
             POST /pay,STATUS_CODE_UNSET,1,0.0,100.0\n"
        );
    }

    /// Every table's files are written on a thread of its own, all through one `.tmp/`:
    /// tables with the same writer prefix rolling at the same moments must not clash.
    #[tokio::test]
    async fn tables_sharing_a_prefix_roll_side_by_side() {
        use apo_schemas::red::RedStats;
        let dir = tempfile::tempdir().unwrap();
        let mut stats: ParquetStatsSink<WindowStats> =
            ParquetStatsSink::new(dir.path(), "w0", Duration::ZERO).unwrap();
        let mut red: ParquetStatsSink<RedStats> =
            ParquetStatsSink::new(dir.path(), "w0", Duration::ZERO).unwrap();
        let red_rows = red_rows();
        for i in 0..40 {
            stats
                .write(&[row("a", 1_764_115_200_000 + i * 10_000, 1)])
                .unwrap();
            red.write(&red_rows).unwrap();
            stats.poll_durable(false).unwrap();
            red.poll_durable(false).unwrap();
        }
        assert_eq!(stats.poll_durable(true).unwrap(), 40);
        assert_eq!(red.poll_durable(true).unwrap(), 40);
        let n = |sql: &'static str| {
            let dir = dir.path().to_path_buf();
            async move { render(&query(&dir, sql).await.unwrap(), OutputFormat::Csv).unwrap() }
        };
        assert_eq!(n("SELECT count(*) AS n FROM window_stats").await, "n\n40\n");
        // The same RED rows written 40 times: 40 copies in the log, one of each read.
        assert_eq!(
            n("SELECT count(*) AS n FROM red_log").await,
            format!("n\n{}\n", 40 * red_rows.len())
        );
        assert_eq!(
            n("SELECT count(*) AS n FROM red").await,
            format!("n\n{}\n", red_rows.len())
        );
    }

    /// A window revised by late data, a replayed copy of a window and two attribute series of
    /// one metric: each window counts once, at its highest revision; the log keeps every row.
    #[tokio::test]
    async fn a_revised_or_replayed_window_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ParquetStatsSink::new(dir.path(), "w0", Duration::ZERO).unwrap();
        let t = 1_764_115_200_000;
        let route = |r: &str, mut w: WindowStats| {
            w.attributes.insert("http.route".into(), r.into());
            w
        };
        let revised = WindowStats {
            revision: 2,
            ..row("a", t, 5)
        };
        sink.write(&[row("a", t, 3), row("a", t + 10_000, 4)])
            .unwrap();
        sink.write(&[revised]).unwrap();
        // A restart replays both windows of `a` (byte for byte) and the series of two routes.
        sink.write(&[row("a", t, 3), row("a", t + 10_000, 4)])
            .unwrap();
        sink.write(&[route("/x", row("b", t, 1)), route("/y", row("b", t, 2))])
            .unwrap();
        assert_eq!(sink.poll_durable(true).unwrap(), 4);
        let q = |sql: &'static str| {
            let dir = dir.path().to_path_buf();
            async move { render(&query(&dir, sql).await.unwrap(), OutputFormat::Csv).unwrap() }
        };
        assert_eq!(
            q(
                "SELECT service, count(*) AS windows, sum(count) AS points, max(revision) AS r \
               FROM window_stats GROUP BY service ORDER BY service"
            )
            .await,
            "service,windows,points,r\na,2,9,2\nb,2,3,1\n"
        );
        assert_eq!(
            q("SELECT count(*) AS n FROM window_stats_log").await,
            "n\n7\n"
        );
        // The date partition is a column of the view as of the table.
        assert_eq!(
            q("SELECT DISTINCT date FROM window_stats").await,
            "date\n2025-11-26\n"
        );
    }

    #[tokio::test]
    async fn empty_data_dir_answers_with_no_rows_and_missing_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let b = query(dir.path(), "SELECT count(*) AS n FROM window_stats")
            .await
            .unwrap();
        assert_eq!(render(&b, OutputFormat::Csv).unwrap(), "n\n0\n");
        let err = query(&dir.path().join("nope"), "SELECT 1")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }
}
