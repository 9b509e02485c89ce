//! End to end against the real broker: `apo run` reads metric points from Kafka and writes window
//! statistics to Kafka and Parquet; every figure is checked against exact values computed here.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::*;
use apo_schemas::{MetricPoint, WindowStats};

#[test]
fn percentiles_are_within_the_stated_error_and_totals_exact_and_sql_answers() {
    let t = topics("pct", 4);
    let pts = dataset(200_000, 50, base(), 1, 3_000, 1);
    let want = exact(&pts, &[10, 60]);
    produce(&t.metrics, &messages(&pts, 4, 200));
    let dir = tempfile::tempdir().unwrap();
    run_to_end(
        &apo_run_args(
            &t,
            dir.path(),
            &["--drain", "--windows", "10s,60s", "--lateness", "5s"],
        ),
        Duration::from_secs(600),
    );
    let stats = window_stats(&consume(&t.stats, want.len(), Duration::from_secs(20)));
    assert_eq!(stats.len(), want.len(), "one record per window");
    for w in &stats {
        assert_eq!(w.revision, 1);
        assert_eq!(w.relative_accuracy, 0.01);
        check_exact(w, &want);
    }
    assert!(
        consume(&t.dlq, 1, Duration::from_secs(3)).is_empty(),
        "nothing in the dead-letter topic"
    );

    // The same results through SQL over the Parquet files.
    let q = "SELECT count(*) AS windows, sum(count) AS points FROM window_stats WHERE window_seconds = 10";
    let out = apo(&[
        "sql".into(),
        "--data-dir".into(),
        dir.path().display().to_string(),
        "--format".into(),
        "csv".into(),
        q.into(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tens = want.keys().filter(|k| k.2 == 10).count();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("windows,points\n{tens},200000\n")
    );
    let out = apo(&[
        "sql".into(), "--data-dir".into(), dir.path().display().to_string(), "--format".into(), "json".into(),
        "SELECT service, max(p99) AS p99 FROM window_stats GROUP BY service ORDER BY service LIMIT 2".into(),
    ])
    .output()
    .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["service"], "svc-0");
}

#[test]
fn late_records_revise_within_the_horizon_and_go_to_the_dlq_beyond_it() {
    let t = topics("late", 1);
    let b = base();
    let msgs: Vec<Vec<MetricPoint>> = vec![
        vec![point(b + 1_000, "a", 1.0), point(b + 2_000, "a", 3.0)],
        vec![point(b + 20_000, "a", 7.0)], // watermark b+19 s: [b, b+10 s) closes
        vec![point(b + 3_000, "a", 5.0)],  // late, within the 60 s horizon
        vec![point(b + 200_000, "a", 11.0)], // watermark b+199 s
        vec![point(b + 4_000, "a", 13.0)], // beyond the horizon
        vec![point(b + 5_000, "a", 15.0), point(b + 200_500, "a", 17.0)], // one beyond, one on time
    ];
    let payloads: Vec<(i32, Vec<u8>)> = msgs
        .iter()
        .map(|m| (0, serde_json::to_vec(m).unwrap()))
        .collect();
    produce(&t.metrics, &payloads);
    let dir = tempfile::tempdir().unwrap();
    run_to_end(
        &apo_run_args(
            &t,
            dir.path(),
            &[
                "--drain",
                "--windows",
                "10s",
                "--lateness",
                "1s",
                "--horizon",
                "60s",
            ],
        ),
        Duration::from_secs(120),
    );
    let stats = window_stats(&consume(&t.stats, 4, Duration::from_secs(10)));
    let first: Vec<&WindowStats> = stats.iter().filter(|w| w.window_start == b).collect();
    assert_eq!(first.len(), 2, "{stats:?}");
    let (r1, r2) = (
        first.iter().find(|w| w.revision == 1).unwrap(),
        first.iter().find(|w| w.revision == 2).unwrap(),
    );
    assert_eq!((r1.count, r1.sum, r1.max), (2, 4.0, 3.0));
    assert_eq!((r2.count, r2.sum, r2.max), (3, 9.0, 5.0));

    let dlq = consume(&t.dlq, 2, Duration::from_secs(10));
    assert_eq!(dlq.len(), 2);
    for d in &dlq {
        assert_eq!(d.headers["apo.dlq.reason"], "late");
        assert_eq!(d.headers["apo.dlq.topic"], t.metrics);
    }
    assert_eq!(
        dlq[0].payload, payloads[4].1,
        "dead letters are the original bytes"
    );
    assert_eq!(dlq[0].headers["apo.dlq.offset"], "4");
    assert_eq!(
        dlq[1].headers["apo.dlq.points"], "0",
        "the on-time point of message 5 was used"
    );

    // Nothing disappears: points in = points in final windows + points in dead letters.
    let final_points: u64 = latest(&stats).values().map(|w| w.count).sum();
    assert_eq!(
        final_points + 2,
        msgs.iter().map(Vec::len).sum::<usize>() as u64
    );
}

#[test]
fn bad_input_goes_to_the_dlq_with_reasons_and_good_input_is_unaffected() {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
        Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;

    let t = topics("bad", 1);
    let b = base();
    // a message of one metric whose one data point is `v` (a gauge, or with `cumulative`, a
    // counter's running total as the SDKs send it by default)
    let otlp_with = |v: f64, cumulative: bool| {
        let dp = NumberDataPoint {
            time_unix_nano: (b as u64 + 4_000) * 1_000_000,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        };
        let data = if cumulative {
            metric::Data::Sum(Sum {
                data_points: vec![dp],
                aggregation_temporality: 2,
                is_monotonic: true,
            })
        } else {
            metric::Data::Gauge(Gauge {
                data_points: vec![dp],
            })
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("otel".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "latency".into(),
                        unit: "ms".into(),
                        data: Some(data),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    };
    let otlp = |v: f64| otlp_with(v, false);
    let good = vec![
        point(b + 1_000, "a", 10.0),
        point(b + 2_000, "a", 20.0),
        point(b + 3_000, "b", 30.0),
    ];
    let ok = |p: &MetricPoint| serde_json::to_vec(p).unwrap();
    // (payload, expected dead-letter reason or None)
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (ok(&good[0]), None),
        (b"\x00\xffgarbage\x13".to_vec(), Some("invalid_protobuf")),
        (
            format!(r#"{{"timestamp":{},"serv"#, b).into_bytes(),
            Some("invalid_json"),
        ),
        (
            format!(
                r#"{{"timestamp":{},"service":5,"name":"m","value":"high"}}"#,
                b
            )
            .into_bytes(),
            Some("invalid_json"),
        ),
        (
            format!(
                r#"{{"timestamp":{},"service":"a","name":"latency","value":NaN}}"#,
                b
            )
            .into_bytes(),
            Some("invalid_json"),
        ),
        (otlp(f64::NAN), Some("invalid_field")),
        (Vec::new(), Some("empty")),
        // a cumulative counter's total whose start is unknown: its stream's first point, the
        // baseline of its next; nothing counted, nothing refused
        (otlp_with(1_200.0, true), None),
        (
            format!(
                r#"{{"timestamp":{},"service":"","name":"latency","value":1}}"#,
                b
            )
            .into_bytes(),
            Some("invalid_field"),
        ),
        (
            serde_json::to_vec(&point(4_102_444_800_000, "a", 1.0)).unwrap(),
            Some("invalid_field"),
        ),
        (
            format!(
                r#"[{},{{"timestamp":{},"service":"a","name":"latency","value":null}}]"#,
                String::from_utf8(ok(&good[1])).unwrap(),
                b
            )
            .into_bytes(),
            Some("invalid_json"),
        ),
        (otlp(40.0), None),
        (ok(&good[2]), None),
    ];
    produce(
        &t.metrics,
        &cases
            .iter()
            .map(|(p, _)| (0, p.clone()))
            .collect::<Vec<_>>(),
    );
    let dir = tempfile::tempdir().unwrap();
    run_to_end(
        &apo_run_args(&t, dir.path(), &["--drain", "--windows", "10s"]),
        Duration::from_secs(120),
    );

    let expected_bad: Vec<(usize, &str)> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, (_, r))| r.map(|r| (i, r)))
        .collect();
    let dlq = consume(&t.dlq, expected_bad.len(), Duration::from_secs(10));
    assert_eq!(dlq.len(), expected_bad.len());
    for (d, (i, reason)) in dlq.iter().zip(&expected_bad) {
        assert_eq!(d.headers["apo.dlq.offset"], i.to_string());
        assert_eq!(
            d.headers["apo.dlq.reason"], *reason,
            "message {i}: {}",
            d.headers["apo.dlq.detail"]
        );
        assert_eq!(d.payload, cases[*i].0, "message {i} kept unchanged");
        assert!(!d.headers["apo.dlq.detail"].is_empty());
    }
    assert_eq!(
        dlq.last().unwrap().headers["apo.dlq.points"],
        "1",
        "the valid point of the mixed array was used"
    );

    let mut used = good.clone();
    let mut otel = point(b + 4_000, "otel", 40.0);
    otel.name = "latency".into();
    used.push(otel);
    let want = exact(&used, &[10]);
    let stats = window_stats(&consume(&t.stats, want.len(), Duration::from_secs(10)));
    assert_eq!(stats.len(), want.len(), "{stats:?}");
    for w in &stats {
        check_window(
            w,
            &want[&(w.service.clone(), w.metric.clone(), 10, w.window_start)],
        );
    }
}

/// A kill and a restart replay windows: every copy of a window is byte for byte the first (its
/// sum kept exactly, so the same whatever the grouping of points a replay happens to make),
/// and SQL counts each window once. Without checkpoints (`--checkpoint-interval 0s`: the
/// replay from the last cut no open window spans; `checkpoints.rs` tests them).
#[test]
fn a_killed_pipeline_restarted_covers_every_window_exactly_once_per_content() {
    let t = topics("crash", 4);
    let pts = in_seconds(dataset(300_000, 20, base(), 10, 3_000, 7));
    let want = exact(&pts, &[10, 60]);
    produce(&t.metrics, &messages(&pts, 4, 100));
    let dir = tempfile::tempdir().unwrap();
    let run = [
        "--windows",
        "10s,60s",
        "--lateness",
        "5s",
        "--horizon",
        "20s",
        "--parquet-roll",
        "200ms",
        "--checkpoint-interval",
        "0s",
    ];
    let mut first = run.to_vec();
    // Throttled so the kill lands mid-stream even on a loaded machine (about 30 s of input).
    first.extend(["--max-messages-per-sec", "100"]);
    let args = apo_run_args(&t, dir.path(), &first);
    let mut child = apo(&args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL) once part of the output is out.
    let seen = kill_after_output(&mut child, want.len() / 10, || {
        consume(&t.stats, want.len(), Duration::from_millis(500)).len()
    });
    assert!(seen < want.len(), "killed too late to test anything");
    let mut drain = apo_run_args(&t, dir.path(), &run);
    drain.push("--drain".into());
    run_to_end(&drain, Duration::from_secs(600));

    let dlq = consume(&t.dlq, usize::MAX, Duration::from_secs(3));
    assert!(
        dlq.is_empty(),
        "in-order data never goes to the dead-letter topic: {:?}",
        dlq.first().map(|d| &d.headers)
    );
    let records = consume(&t.stats, usize::MAX, Duration::from_secs(10));
    let by_key = copies_by_key(records);
    assert_eq!(by_key.len(), want.len(), "every window covered");
    let mut duplicated = 0;
    for (k, v) in &by_key {
        assert!(
            v.iter().all(|x| x == &v[0]),
            "{k}: a replayed copy is not byte for byte the first: {}",
            v.iter()
                .map(|x| String::from_utf8_lossy(x).to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        duplicated += (v.len() > 1) as usize;
        let w: WindowStats = serde_json::from_slice(&v[0]).expect("window stats JSON");
        check_exact(&w, &want);
    }
    println!("{duplicated} of {} windows written twice", want.len());
    assert!(
        duplicated < want.len(),
        "the restart resumed from committed offsets, not from the start"
    );
    assert!(
        duplicated > 0,
        "nothing was replayed: the kill tested nothing"
    );
    // SQL reads each window once, replayed or not; the log has every copy written.
    let q = "SELECT count(*), sum(count) FROM window_stats";
    let points = (pts.len() * 2).to_string();
    assert_eq!(
        sql_csv(dir.path(), q),
        vec![vec![want.len().to_string(), points]],
        "{q}"
    );
    let log = sql_csv(dir.path(), "SELECT count(*) FROM window_stats_log");
    let logged: usize = log[0][0].parse().unwrap();
    println!(
        "{logged} rows in window_stats_log for {} windows",
        want.len()
    );
    assert!(logged >= want.len());
}

#[test]
fn two_workers_and_two_processes_give_the_same_results_as_one() {
    let pts = dataset(60_000, 30, base(), 5, 2_000, 3);
    let msgs = messages(&pts, 4, 100);
    let run = |extra: &[&str], processes: usize| -> Vec<WindowStats> {
        let t = topics("scale", 4);
        produce(&t.metrics, &msgs);
        let dir = tempfile::tempdir().unwrap();
        if processes == 1 {
            let mut a: Vec<&str> = vec!["--drain"];
            a.extend_from_slice(extra);
            run_to_end(&apo_run_args(&t, dir.path(), &a), Duration::from_secs(300));
        } else {
            let hostfile = cluster_hostfile(dir.path(), processes);
            let children: Vec<_> = (0..processes)
                .map(|i| {
                    let (n, p, h) = (
                        processes.to_string(),
                        i.to_string(),
                        hostfile.display().to_string(),
                    );
                    let args =
                        apo_run_args(&t, dir.path(), &["--drain", "-n", &n, "-p", &p, "-H", &h]);
                    apo(&args)
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for c in children {
                let out = c.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let mut s = window_stats(&consume(&t.stats, usize::MAX, Duration::from_secs(8)));
        s.sort_by_key(|w| (w.key(), w.revision));
        s
    };
    let one = run(&[], 1);
    let want = exact(&pts, &[10, 60]);
    assert_eq!(one.len(), want.len());
    assert_eq!(run(&["-w", "2"], 1), one, "two workers");
    assert_eq!(run(&[], 2), one, "two processes");
    let keys: BTreeSet<String> = one.iter().map(WindowStats::key).collect();
    assert_eq!(keys.len(), one.len());
}

#[test]
fn apo_produce_writes_the_requested_points_as_valid_apo_json() {
    let t = topics("produce", 2);
    let out = apo(&[
        "produce".into(),
        "--brokers".into(),
        brokers(),
        "--topic".into(),
        t.metrics.clone(),
        "--count".into(),
        "5000".into(),
        "--pace".into(),
        "flat".into(),
        "--batch".into(),
        "100".into(),
        "--create-topics".into(),
        "false".into(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = consume(&t.metrics, usize::MAX, Duration::from_secs(5));
    let mut points = 0;
    let mut services = BTreeSet::new();
    for r in &records {
        let batch: Vec<MetricPoint> = serde_json::from_slice(&r.payload).unwrap();
        for p in &batch {
            p.validate().unwrap();
            assert_eq!(
                r.key.as_deref(),
                Some(p.service.as_bytes()),
                "keyed by service"
            );
            services.insert(p.service.clone());
        }
        points += batch.len();
    }
    assert_eq!(points, 5000);
    assert_eq!(services.len(), 6);
}
