//! The ceiling on live series against the real broker: `apo run --drain` over 900 series of
//! three services with limits of 100 per service and 250 in total. Series past a limit are
//! folded into overflow series (nothing is lost: every window's counts add up to its points),
//! kept series are exact, and with the default limits nothing overflows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use apo_schemas::{MetricPoint, WindowStats};

use crate::common::*;

const OVERFLOW: &str = "otel.metric.overflow";

/// Two points of each of `metrics` metrics of three services, all in one 60 s window,
/// interleaved so that every message mixes series.
fn points(metrics: usize) -> Vec<MetricPoint> {
    let start = base();
    let mut out = Vec::new();
    for round in 0..2 {
        for m in 0..metrics {
            for s in ["alpha", "beta", "gamma"] {
                let mut p = point(start + (out.len() % 50_000) as i64, s, (m + round) as f64);
                p.name = format!("m{m:04}");
                out.push(p);
            }
        }
    }
    out
}

fn drain(t: &Topics, extra: &[&str]) -> (Vec<WindowStats>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--drain", "--windows", "60s", "-w", "2"];
    args.extend_from_slice(extra);
    let out = run_to_end(
        &apo_run_args(t, dir.path(), &args),
        Duration::from_secs(300),
    );
    let stats = window_stats(&consume(&t.stats, usize::MAX, Duration::from_secs(3)));
    (
        latest(&stats).into_values().collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn series_past_the_limits_fold_into_overflow_series_and_nothing_is_lost() {
    let pts = points(300);
    let t = topics("series", 2);
    produce(&t.metrics, &messages(&pts, 2, 100));
    // Two workers: each takes half of each limit (50 per service, 125 in total).
    let (rows, _) = drain(
        &t,
        &["--max-series", "250", "--max-series-per-service", "100"],
    );
    let total: u64 = rows.iter().map(|r| r.count).sum();
    assert_eq!(total, pts.len() as u64, "every point is in some window");
    let kept: Vec<&WindowStats> = rows.iter().filter(|r| r.metric != OVERFLOW).collect();
    let overflow: Vec<&WindowStats> = rows.iter().filter(|r| r.metric == OVERFLOW).collect();
    assert!(
        !overflow.is_empty(),
        "900 series against 250: some overflow"
    );
    let mut per_service: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &kept {
        assert_eq!(r.count, 2, "a kept series is exact: {}", r.key());
        *per_service.entry(r.service.as_str()).or_default() += 1;
    }
    for (s, n) in &per_service {
        assert!(*n <= 100, "{s} kept {n} series, more than its limit");
    }
    let series: BTreeSet<(&str, &str)> = rows
        .iter()
        .map(|r| (r.service.as_str(), r.metric.as_str()))
        .collect();
    // Each worker's share of the total can be reached, plus its global overflow series.
    assert!(
        series.len() <= 250 + 2,
        "{} series live at once",
        series.len()
    );
    let folded: u64 = overflow.iter().map(|r| r.count).sum();
    assert_eq!(folded, pts.len() as u64 - 2 * kept.len() as u64);

    // The default limits keep all 900.
    let t2 = topics("series-default", 2);
    produce(&t2.metrics, &messages(&pts, 2, 100));
    let (rows, _) = drain(&t2, &[]);
    assert_eq!(rows.len(), 900);
    assert!(rows.iter().all(|r| r.metric != OVERFLOW && r.count == 2));
}

#[test]
fn zero_limits_are_refused_with_a_clear_error() {
    let t = topics("series-zero", 1);
    let dir = tempfile::tempdir().unwrap();
    for (flag, says) in [
        ("--max-series", "series limits must be at least 1"),
        (
            "--max-series-per-service",
            "series limits must be at least 1",
        ),
        ("--max-name-bytes", "length limits must be at least 1 byte"),
        (
            "--max-attribute-bytes",
            "length limits must be at least 1 byte",
        ),
        (
            "--memory-budget",
            "a memory budget must be at least 1 byte (or `none` for no budget)",
        ),
    ] {
        let out = apo(&apo_run_args(&t, dir.path(), &["--drain", flag, "0"]))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} 0 was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{flag} 0: {err}");
    }
}

/// Issue 15, item 4. Two routes of one metric are two series with their own windows and
/// quantiles (a pod tag, not a series attribute, splits nothing); past
/// `--max-attribute-sets` the rest of a metric's attribute sets are one series marked
/// `otel.metric.overflow = "true"`, exactly past the limit (nothing lost); the attributes are
/// in the Kafka key and in the Parquet table's map column, which SQL reads by key.
#[test]
fn attribute_sets_are_series_and_past_the_limit_fold_into_the_marked_overflow_series() {
    const HTTP: &str = "http.server.request.duration";
    let start = base();
    let mut pts = Vec::new();
    for i in 0..100 {
        for (route, v) in [("/pay", 100.0 + i as f64), ("/cart", 1.0 + i as f64)] {
            let mut p = point(start + i, "checkout", v);
            p.name = HTTP.into();
            p.tags.insert("http.route".into(), route.into());
            p.tags
                .insert("k8s.pod.name".into(), format!("pod-{}", i % 3));
            pts.push(p);
        }
    }
    for m in 0..10 {
        for i in 0..3 {
            let mut p = point(start + 200 + i, "checkout", 1.0 + m as f64);
            p.name = "rpc.server.duration".into();
            p.tags.insert("rpc.method".into(), format!("m{m}"));
            pts.push(p);
        }
    }
    let t = topics("attr-series", 2);
    produce(&t.metrics, &messages(&pts, 2, 50));
    let dir = tempfile::tempdir().unwrap();
    let out = run_to_end(
        &apo_run_args(
            &t,
            dir.path(),
            &[
                "--drain",
                "--windows",
                "60s",
                "-w",
                "2",
                "--max-attribute-sets",
                "4",
            ],
        ),
        Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = consume(&t.stats, usize::MAX, Duration::from_secs(3));
    let rows: Vec<WindowStats> = latest(&window_stats(&records)).into_values().collect();

    let http: BTreeMap<String, &WindowStats> = rows
        .iter()
        .filter(|r| r.metric == HTTP)
        .map(|r| (r.attributes["http.route"].clone(), r))
        .collect();
    assert_eq!(http.keys().collect::<Vec<_>>(), ["/cart", "/pay"]);
    for (route, lo) in [("/cart", 1.0), ("/pay", 100.0)] {
        let w = http[route];
        assert_eq!(w.attributes.len(), 1, "{:?}", w.attributes);
        assert_eq!((w.count, w.min, w.max), (100, lo, lo + 99.0), "{route}");
        assert_eq!(w.sum, (0..100).map(|i| lo + i as f64).sum::<f64>());
        // its own quantiles: the rank-floor(q·(n−1)) value of its 100, within the accuracy
        for (q, got) in [(0.5, w.p50), (0.9, w.p90), (0.99, w.p99)] {
            let exact = lo + (q * 99.0f64).floor();
            let err = ((got - exact) / exact).abs();
            assert!(
                err <= w.relative_accuracy + 1e-12,
                "{route} q={q}: {got} vs {exact}"
            );
        }
    }

    let (over, kept): (Vec<&WindowStats>, Vec<&WindowStats>) = rows
        .iter()
        .filter(|r| r.metric == "rpc.server.duration")
        .partition(|r| r.attributes.contains_key(OVERFLOW));
    assert_eq!(kept.len(), 4, "exactly the limit of attribute sets is kept");
    for w in &kept {
        assert_eq!(w.count, 3, "{}", w.key());
        assert!(w.attributes.contains_key("rpc.method"));
    }
    assert_eq!(over.len(), 1, "one overflow series");
    assert_eq!(
        over[0].attributes,
        BTreeMap::from([(OVERFLOW.to_string(), "true".to_string())])
    );
    assert_eq!(
        over[0].count,
        6 * 3,
        "the six sets past the limit, every point"
    );

    let keys: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.key.as_ref())
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert!(
        keys.iter()
            .any(|k| k.contains(&format!("|{HTTP}{{http.route=\"/pay\"}}|60s|"))),
        "{keys:?}"
    );

    let by_route = sql_csv(
        dir.path(),
        &format!(
            "SELECT attributes['http.route'] AS route, count FROM window_stats \
             WHERE metric = '{HTTP}' ORDER BY route"
        ),
    );
    assert_eq!(
        by_route,
        vec![
            vec!["/cart".to_string(), "100".to_string()],
            vec!["/pay".to_string(), "100".to_string()]
        ]
    );
}
