//! Poison records against the real broker: oversize names and tags, deeply nested JSON,
//! invalid UTF-8, a message whose dead-letter copy is larger than the producer's limit, and an
//! output row larger than the broker takes. The pipeline runs on through all of them; every bad
//! record is in the dead-letter topic with its reason, every good one is counted.

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::common::*;
use apo_schemas::MetricPoint;

/// Produces messages to partition 0 in order, up to 8 MB each, and waits for every
/// acknowledgement.
fn produce_large(topic: &str, messages: &[Vec<u8>]) {
    let producer: BaseProducer = client()
        .set("message.max.bytes", "8000000")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for payload in messages {
        loop {
            match producer.send(
                BaseRecord::<[u8], [u8]>::to(topic)
                    .partition(0)
                    .payload(payload),
            ) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "{e}"
                    );
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

#[test]
fn poison_records_go_to_the_dlq_with_reasons_and_the_pipeline_runs_on() {
    let t = topics("poison", 1);
    let b = base();
    let json = |p: &MetricPoint| serde_json::to_vec(p).unwrap();
    let mega = "s".repeat(1 << 20);
    let mut tagged = point(b + 1_500, "a", 5.0);
    tagged.tags.insert("route".into(), "r".repeat(1 << 20));
    // 45 000 good points and one bad one: about 3 MB, so its dead-letter copy cannot be the
    // whole message.
    let mut array: Vec<MetricPoint> = (0..45_000)
        .map(|i| point(b + 5_000 + i, "bulk", (i % 997) as f64 + 1.0))
        .collect();
    let mut bad = point(b + 5_000, "bulk", 1.0);
    bad.service = String::new();
    array.insert(30_000, bad);
    let array_bytes = serde_json::to_vec(&array).unwrap();
    assert!(array_bytes.len() > 3_000_000);
    let mut invalid_utf8 = format!(r#"{{"timestamp":{},"service":""#, b + 2_000).into_bytes();
    invalid_utf8.extend_from_slice(b"\xff\xfe");
    invalid_utf8.extend_from_slice(br#"","name":"latency","value":1}"#);

    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (json(&point(b + 1_000, "a", 10.0)), None),
        (json(&point(b + 1_000, &mega, 10.0)), Some("too_large")),
        (json(&tagged), Some("too_large")),
        (
            format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            Some("invalid_json"),
        ),
        (invalid_utf8, Some("invalid_json")),
        (array_bytes.clone(), Some("invalid_field")),
        (json(&point(b + 3_000, "b", 30.0)), None),
    ];
    produce_large(
        &t.metrics,
        &cases.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_to_end(
        &apo_run_args(&t, dir.path(), &["--drain", "--windows", "10s"]),
        Duration::from_secs(180),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);

    let expected_bad: Vec<(usize, &str)> = cases
        .iter()
        .enumerate()
        .filter_map(|(i, (_, r))| r.map(|r| (i, r)))
        .collect();
    let dlq = consume(&t.dlq, expected_bad.len() + 1, Duration::from_secs(10));
    assert_eq!(dlq.len(), expected_bad.len(), "{stderr}");
    for (d, (i, reason)) in dlq.iter().zip(&expected_bad) {
        assert_eq!(d.headers["apo.dlq.offset"], i.to_string());
        assert_eq!(
            d.headers["apo.dlq.reason"], *reason,
            "message {i}: {}",
            d.headers["apo.dlq.detail"]
        );
        assert!(!d.headers["apo.dlq.detail"].is_empty());
        assert!(d.payload.len() < 1_000_000, "message {i}'s copy fits");
    }
    assert!(
        dlq[0].headers["apo.dlq.detail"].contains("`service` is 1048576 bytes"),
        "{:?}",
        dlq[0].headers
    );
    assert!(dlq[1].headers["apo.dlq.detail"].contains("`attribute value` is 1048576 bytes"));
    // Copies that fit are whole (the nested and the invalid UTF-8 ones); the 1 MB ones and the
    // 3 MB one are cut and say so; the 1 MB ones keep their first bytes, the array its bad
    // point first (below).
    for (d, (i, _)) in dlq.iter().zip(&expected_bad) {
        let len = cases[*i].0.len();
        if len < 900_000 {
            assert!(!d.headers.contains_key("apo.dlq.truncated"), "message {i}");
            assert_eq!(d.payload, cases[*i].0, "message {i} kept unchanged");
        } else {
            assert_eq!(
                d.headers["apo.dlq.truncated"],
                len.to_string(),
                "message {i}"
            );
            if cases[*i].0 != array_bytes {
                assert_eq!(d.payload[..], cases[*i].0[..d.payload.len()], "message {i}");
            }
        }
    }
    let big = &dlq[4];
    assert_eq!(
        big.headers["apo.dlq.truncated"],
        array_bytes.len().to_string()
    );
    assert_eq!(big.headers["apo.dlq.points"], "30000");
    // the evidence first: the copy is a JSON array of the bad point, then the good ones from
    // the start, as many as fit, and says which
    let copy: Vec<serde_json::Value> = serde_json::from_slice(&big.payload).expect("a JSON array");
    assert_eq!(copy[0], serde_json::to_value(&array[30_000]).unwrap());
    let good = copy.len() - 1;
    assert!(good > 10_000, "{good} good points kept");
    for (j, v) in copy[1..].iter().enumerate() {
        assert_eq!(*v, serde_json::to_value(&array[j]).unwrap(), "element {j}");
    }
    assert_eq!(big.headers["apo.dlq.kept"], format!("30000,0-{}", good - 1));

    // Every good point counted, exactly.
    let mut used = vec![point(b + 1_000, "a", 10.0), point(b + 3_000, "b", 30.0)];
    used.extend(array.iter().filter(|p| !p.service.is_empty()).cloned());
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

#[test]
fn an_output_row_the_broker_refuses_goes_to_the_dlq_instead_of_stopping() {
    let t = topics("refused", 1);
    let b = base();
    let huge = "h".repeat(1_500_000);
    let json = |p: &MetricPoint| serde_json::to_vec(p).unwrap();
    produce_large(
        &t.metrics,
        &[
            json(&point(b + 1_000, "a", 10.0)),
            json(&point(b + 1_000, &huge, 10.0)),
            json(&point(b + 2_000, "a", 20.0)),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    // Names this long are let in on purpose: the window row of `huge` is larger than the
    // producer's 1 MB limit.
    run_to_end(
        &apo_run_args(
            &t,
            dir.path(),
            &["--drain", "--windows", "10s", "--max-name-bytes", "2000000"],
        ),
        Duration::from_secs(180),
    );
    let dlq = consume(&t.dlq, 2, Duration::from_secs(10));
    assert_eq!(
        dlq.len(),
        1,
        "{:?}",
        dlq.iter().map(|d| &d.headers).collect::<Vec<_>>()
    );
    let d = &dlq[0];
    assert_eq!(d.headers["apo.dlq.reason"], "output_refused");
    assert_eq!(d.headers["apo.dlq.topic"], t.stats);
    assert!(
        d.headers["apo.dlq.detail"].contains("too large"),
        "{}",
        d.headers["apo.dlq.detail"]
    );
    let size: usize = d.headers["apo.dlq.size"].parse().unwrap();
    assert!(size > 1_500_000);
    assert_eq!(d.headers["apo.dlq.truncated"], size.to_string());
    assert_eq!(d.payload.len(), 64 * 1024);
    assert!(d.payload.starts_with(b"{"));
    let key = d.key.clone().unwrap();
    assert_eq!(key.len(), 64 * 1024);
    assert!(huge.as_bytes().starts_with(&key));
    let start = b / 10_000 * 10_000;
    assert_eq!(d.headers["apo.dlq.window_start"], start.to_string());
    assert_eq!(
        d.headers["apo.dlq.window_end"],
        (start + 10_000).to_string()
    );
    assert_eq!(d.headers["apo.dlq.revision"], "1");

    // The other window is out, exact.
    let stats = window_stats(&consume(&t.stats, 2, Duration::from_secs(10)));
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(stats[0].service, "a");
    check_window(&stats[0], &[10.0, 20.0]);
}

/// A dead letter the broker refuses for good (issue 30, item 8): the dead-letter topic has a
/// schema its broker validates (`apo broker --schemas`, as a broker with schema validation
/// does), which the copy of a message that is not JSON does not match, so the broker answers
/// INVALID_RECORD. The letter is logged at ERROR with the coordinates of its message and
/// counted in the progress line, and the pipeline goes on: a later bad message's letter (a
/// JSON array, which the schema takes) is written, the points are counted, and a stop is clean.
/// Before, the refusal stopped the pipeline with a delivery error.
#[test]
fn a_dead_letter_the_broker_refuses_is_logged_and_counted_and_the_pipeline_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    let broker = OwnBroker::start_with_schemas(dir.path(), Some(&schemas));
    broker.use_on_this_thread();
    let t = topics("dlq-refused", 1);
    // the value of a record of the dead-letter topic must be a JSON array
    std::fs::write(
        schemas.join(format!("{}.json", t.dlq)),
        r#"{"type": "object", "properties": {"value": {"type": "array"}}}"#,
    )
    .unwrap();
    let b = now_ms() - 60_000;
    let json = |p: &[MetricPoint]| serde_json::to_vec(p).unwrap();
    produce(
        &t.metrics,
        &[
            (0, json(&[point(b + 1_000, "a", 10.0)])),
            (0, b"{not json".to_vec()),
            (0, json(&[point(b + 2_000, "a", 20.0)])),
        ],
    );
    let log = dir.path().join("run.log");
    let mut child = apo(&apo_run_args(
        &t,
        dir.path(),
        &["--windows", "10s", "--progress-interval", "1s"],
    ))
    .env("APO_LOG", "info")
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_for = |what: &dyn Fn(&str) -> bool, why: &str| {
        let started = std::time::Instant::now();
        while !what(&read()) {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "{why}: {}",
                read()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for(
        &|l| l.contains("(1 refused by the broker)"),
        "the refusal is counted in the progress line",
    );
    let refusal = read()
        .lines()
        .find(|l| l.contains("the broker refused a dead letter for good"))
        .map(str::to_string)
        .expect("the refusal is logged");
    assert!(
        refusal.contains("ERROR")
            && refusal.contains(&format!("topic=\"{}\"", t.metrics))
            && refusal.contains("partition=\"0\"")
            && refusal.contains("offset=\"1\"")
            && refusal.contains("reason=\"invalid_json\""),
        "the refusal names the message's coordinates: {refusal}"
    );
    // It goes on: a later bad message's letter is written, its good point counted.
    let mut bad = point(b + 3_000, "a", 30.0);
    bad.service = String::new();
    produce(
        &t.metrics,
        &[(0, json(&[point(b + 3_000, "a", 30.0), bad]))],
    );
    let dlq = consume(&t.dlq, 1, Duration::from_secs(30));
    assert_eq!(
        dlq.len(),
        1,
        "{:?}",
        dlq.iter().map(|d| &d.headers).collect::<Vec<_>>()
    );
    assert_eq!(dlq[0].headers["apo.dlq.offset"], "3");
    assert_eq!(dlq[0].headers["apo.dlq.points"], "1");
    wait_for(
        &|l| l.contains("metrics | points in 3 "),
        "every good point is counted",
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "{}", read());
    let errors: Vec<String> = read()
        .lines()
        .filter(|l| l.contains("ERROR") && !l.contains("refused a dead letter"))
        .map(str::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
