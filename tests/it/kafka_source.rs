//! The Kafka source against the real broker: partitions spread over workers, and a restart
//! resumes exactly after the committed offset of every partition.

use std::ops::ControlFlow;
use std::time::Duration;

use crate::common::*;
use apo_ingest::kafka::KafkaSource;
use apo_ingest::source::{MessageSource, SourceEvent};

fn read_all(src: &mut KafkaSource) -> Vec<(i32, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut eof = std::collections::BTreeSet::new();
    let started = std::time::Instant::now();
    while eof.len() < src.partitions().len() && started.elapsed() < Duration::from_secs(30) {
        src.poll(100, Duration::from_millis(100), &mut |e| match e {
            SourceEvent::Message(m) => {
                eof.remove(&m.partition);
                out.push((
                    m.partition,
                    m.offset,
                    m.payload.unwrap_or_default().to_vec(),
                ));
                ControlFlow::Continue(())
            }
            SourceEvent::Eof(p) => {
                eof.insert(p);
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    }
    out
}

#[test]
fn restart_resumes_after_the_committed_offsets_of_each_partition() {
    let t = topics("source", 3);
    let msgs: Vec<(i32, Vec<u8>)> = (0..90)
        .map(|i| (i % 3, format!("m{i}").into_bytes()))
        .collect();
    produce(&t.metrics, &msgs);

    let mut w0 = KafkaSource::new(&client(), &t.group, &t.metrics, 0, 2).unwrap();
    let mut w1 = KafkaSource::new(&client(), &t.group, &t.metrics, 1, 2).unwrap();
    assert_eq!(w0.partitions(), &[0, 2]);
    assert_eq!(w1.partitions(), &[1]);
    let first = read_all(&mut w0);
    assert_eq!(first.len(), 60);
    assert_eq!(read_all(&mut w1).len(), 30);
    w0.commit(&[(0, 9), (2, 19)], Some(Duration::from_secs(30)))
        .unwrap();
    drop(w0);
    drop(w1);

    let mut again = KafkaSource::new(&client(), &t.group, &t.metrics, 0, 1).unwrap();
    let rest = read_all(&mut again);
    let firsts: Vec<(i32, i64)> = [0, 1, 2]
        .iter()
        .map(|p| {
            (
                *p,
                rest.iter()
                    .filter(|r| r.0 == *p)
                    .map(|r| r.1)
                    .min()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(firsts, vec![(0, 10), (1, 0), (2, 20)]);
    assert_eq!(rest.len(), 20 + 30 + 10);
    // The lag comes from librdkafka's statistics, delivered while polling every 2 s.
    let started = std::time::Instant::now();
    while again.lag().is_none() && started.elapsed() < Duration::from_secs(20) {
        let mut more = 0;
        again
            .poll(100, Duration::from_millis(100), &mut |e| {
                if let SourceEvent::Message(_) = e {
                    more += 1;
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(more, 0, "nothing left to read");
    }
    assert_eq!(again.lag(), Some(0), "caught up: no lag");
    assert_eq!(
        rest.iter().find(|r| r.0 == 0 && r.1 == 10).unwrap().2,
        b"m30".to_vec()
    );
}

#[test]
fn a_poll_stopped_by_the_reader_loses_nothing() {
    let t = topics("source-break", 1);
    let msgs: Vec<(i32, Vec<u8>)> = (0..20).map(|i| (0, format!("m{i}").into_bytes())).collect();
    produce(&t.metrics, &msgs);
    let mut src = KafkaSource::new(&client(), &t.group, &t.metrics, 0, 1).unwrap();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let started = std::time::Instant::now();
    while seen.len() < 20 && started.elapsed() < Duration::from_secs(30) {
        // Stop after every third message: the next poll goes on from the one after it.
        let mut taken = 0;
        let n = src
            .poll(100, Duration::from_millis(100), &mut |e| match e {
                SourceEvent::Message(m) => {
                    seen.push(m.payload.unwrap_or_default().to_vec());
                    taken += 1;
                    if taken == 3 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                }
                SourceEvent::Eof(_) => ControlFlow::Continue(()),
            })
            .unwrap();
        assert_eq!(n, taken, "the count returned is the messages delivered");
        assert!(n <= 3, "the poll stopped at the third message, read {n}");
    }
    let want: Vec<Vec<u8>> = msgs.into_iter().map(|(_, m)| m).collect();
    assert_eq!(seen, want, "every message once, in order");
}

/// A commit that waits (the last of a drain, a stop's) is bounded: with the broker gone it
/// ends within its limit with an error naming the broker and the topic, instead of waiting
/// as long as librdkafka's synchronous commit would.
#[test]
fn a_waited_commit_to_a_broker_that_is_gone_ends_within_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = OwnBroker::start(dir.path());
    broker.use_on_this_thread();
    let t = topics("commit-gone", 1);
    let msgs: Vec<(i32, Vec<u8>)> = (0..10).map(|i| (0, format!("m{i}").into_bytes())).collect();
    produce(&t.metrics, &msgs);
    let mut src = KafkaSource::new(&client(), &t.group, &t.metrics, 0, 1).unwrap();
    assert_eq!(read_all(&mut src).len(), 10);
    src.commit(&[(0, 4)], Some(Duration::from_secs(30)))
        .expect("the broker stores a commit while it is there");
    broker.kill();
    let started = std::time::Instant::now();
    let e = src
        .commit(&[(0, 9)], Some(Duration::from_secs(3)))
        .expect_err("no broker, no commit");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let text = e.to_string();
    assert!(
        text.contains(&broker.addr) && text.contains(&t.metrics),
        "names the broker and the topic: {text}"
    );
    // librdkafka's consumer close waits for the group coordinator: bring the broker back so
    // dropping the source does not hang the test.
    broker.restart();
    drop(src);
}
