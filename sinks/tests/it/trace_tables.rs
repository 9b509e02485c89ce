//! The trace pipeline's Parquet tables answer SQL: generated web-shop traces run through the
//! span job (from memory) into `red`, `slo`, `critical_path`, `critical_path_share` and
//! `service_map`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use apo_dataflow::Progress;
use apo_dataflow::{run_job, LaneConfig};
use apo_dataflow::{SpanConfig, SpanJob, SpanSinks};
use apo_ingest::dlq::MemoryDeadLetters;
use apo_ingest::source::MemorySource;
use apo_ingest::trace_generator::{TraceGenerator, TraceGeneratorConfig};
use apo_sinks::parquet::ParquetStatsSink;
use apo_sinks::sql::{query, render, OutputFormat};

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn trace_tables_answer_sql() {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut g = TraceGenerator::new(&TraceGeneratorConfig {
        start_ms: now - 3_600_000,
        rate: 20.0,
        incidents_per_hour: 0.0,
        ..Default::default()
    });
    let payloads: Vec<Vec<u8>> = (0..1_000)
        .map(|_| serde_json::to_vec(&g.next_trace()).unwrap())
        .collect();
    let path = dir.path().to_path_buf();
    let roll = Duration::from_secs(3600);
    tokio::task::spawn_blocking(move || {
        timely::execute(timely::Config::thread(), move |worker| {
            let p = |name: &str| format!("{name}-w{}", worker.index());
            let sinks = SpanSinks {
                red: vec![Box::new(
                    ParquetStatsSink::new(&path, &p("r"), roll).unwrap(),
                )],
                critical_path: vec![Box::new(
                    ParquetStatsSink::new(&path, &p("c"), roll).unwrap(),
                )],
                critical_path_share: vec![Box::new(
                    ParquetStatsSink::new(&path, &p("s"), roll).unwrap(),
                )],
                service_map: vec![Box::new(
                    ParquetStatsSink::new(&path, &p("m"), roll).unwrap(),
                )],
                slo: vec![Box::new(
                    ParquetStatsSink::new(&path, &p("o"), roll).unwrap(),
                )],
                service_map_current: vec![Box::new(
                    ParquetStatsSink::new(&path, &p("v"), roll).unwrap(),
                )],
            };
            run_job(
                worker,
                &LaneConfig {
                    drain: true,
                    ..Default::default()
                },
                SpanJob::new(SpanConfig::default(), sinks),
                Box::new(MemorySource::new("apo.spans", payloads.clone())),
                Box::new(MemoryDeadLetters::default()),
                Arc::new(Progress::default()),
                Arc::new(AtomicBool::new(false)),
            )
            .unwrap();
        })
        .unwrap();
    })
    .await
    .unwrap();

    let sql = |q: &'static str| {
        let dir = dir.path().to_path_buf();
        async move { render(&query(&dir, q).await.unwrap(), OutputFormat::Csv).unwrap() }
    };
    assert_eq!(
        sql("SELECT count(*) AS traces, min(CAST(complete AS INT)) AS all_complete FROM critical_path").await,
        "traces,all_complete\n1000,1\n"
    );
    assert_eq!(
        sql("SELECT count(DISTINCT client || '>' || server) AS edges FROM service_map").await,
        "edges\n12\n"
    );
    assert_eq!(
        sql("SELECT sum(calls) AS calls FROM red WHERE \"span_kind\" = 'SPAN_KIND_SERVER' AND service_name = 'frontend'").await,
        "calls\n1000\n"
    );
    // Every frontend server span is an event of each API objective.
    assert_eq!(
        sql("SELECT objective, sum(events) AS events FROM slo WHERE service = 'frontend' GROUP BY objective ORDER BY objective").await,
        "objective,events\napi-errors,1000\napi-latency-p50,1000\napi-latency-p95,1000\napi-latency-p99,1000\n"
    );
    // The current map: each of the 12 edges upserted, then retracted when the input ended.
    assert_eq!(
        sql("SELECT change, count(DISTINCT client || '>' || server) AS edges FROM service_map_current GROUP BY change ORDER BY change").await,
        "change,edges\nretract,12\nupsert,12\n"
    );
    let top = sql("SELECT service, operation FROM critical_path_share GROUP BY service, operation ORDER BY sum(critical_ms) DESC LIMIT 2").await;
    assert!(top.contains("payment,POST /v1/charges"), "{top}");
}
