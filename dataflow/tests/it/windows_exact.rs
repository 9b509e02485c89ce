//! The dataflow fed from memory, one and two workers, against exact statistics computed here.

use std::collections::BTreeMap;

use apo_dataflow::MetricsConfig;
use apo_dataflow::MetricsJob;
use apo_schemas::{MetricPoint, WindowStats};

use apo_dataflow::testing::run_from_memory;
use apo_dataflow::MemorySink;

/// The clock the lane judges event times against (`APO_NOW` moves both).
fn now_ms() -> i64 {
    apo_core::clock::now_ms()
}

/// Integer-valued points so sums are exact in any order.
fn points(base: i64) -> Vec<MetricPoint> {
    let mut seed = 11u64;
    let mut out = Vec::new();
    for i in 0..30_000i64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = (seed >> 33) % 7;
        let jitter = ((seed >> 20) % 2000) as i64; // within the 5 s lateness
        out.push(MetricPoint {
            timestamp: base + i * 4 - jitter,
            service: format!("svc{}", key % 3),
            name: format!("m{key}"),
            value: ((seed >> 40) % 5000) as f64 + 1.0,
            unit: "ms".into(),
            tags: Default::default(),
            histogram: None,
            cumulative: None,
            resource: None,
        });
    }
    out
}

fn run(workers: usize, payloads: Vec<Vec<u8>>) -> Vec<WindowStats> {
    let out = MemorySink::default();
    let sink = out.clone();
    run_from_memory(workers, payloads, move || {
        MetricsJob::from_config(&MetricsConfig::default(), vec![Box::new(sink.clone())]).unwrap()
    });
    let mut rows = out.rows.lock().unwrap().clone();
    rows.sort_by(|a, b| a.key().cmp(&b.key()).then(a.revision.cmp(&b.revision)));
    rows
}

#[test]
fn exact_counts_and_bounded_quantiles_one_and_two_workers() {
    let base = (now_ms() - 3_600_000) / 60_000 * 60_000;
    let pts = points(base);
    let payloads: Vec<Vec<u8>> = pts
        .chunks(100)
        .map(|c| serde_json::to_vec(c).unwrap())
        .collect();
    let one = run(1, payloads.clone());
    let two = run(2, payloads);
    assert_eq!(one, two, "two workers must give the same results as one");

    let mut exact: BTreeMap<(String, String, u32, i64), Vec<f64>> = BTreeMap::new();
    for p in &pts {
        for size in [10u32, 60] {
            let ms = size as i64 * 1000;
            let start = p.timestamp.div_euclid(ms) * ms;
            exact
                .entry((p.service.clone(), p.name.clone(), size, start))
                .or_default()
                .push(p.value);
        }
    }
    assert_eq!(
        one.len(),
        exact.len(),
        "one emission per window, no revisions"
    );
    for w in &one {
        let mut v = exact[&(
            w.service.clone(),
            w.metric.clone(),
            w.window_seconds,
            w.window_start,
        )]
            .clone();
        v.sort_by(f64::total_cmp);
        assert_eq!(w.count, v.len() as u64);
        assert_eq!(w.sum, v.iter().sum::<f64>());
        assert_eq!(w.min, v[0]);
        assert_eq!(w.max, *v.last().unwrap());
        assert_eq!(w.revision, 1);
        for (q, got) in [
            (0.5, w.p50),
            (0.9, w.p90),
            (0.95, w.p95),
            (0.99, w.p99),
            (0.999, w.p999),
        ] {
            let want = v[(q * (v.len() - 1) as f64).floor() as usize];
            assert!(
                ((got - want) / want).abs() <= w.relative_accuracy + 1e-9,
                "{w:?} q={q} want {want}"
            );
        }
    }
}
