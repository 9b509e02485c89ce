//! RED through the generic window operator of a timely dataflow: one and two workers give the
//! rows computed directly from all spans, and a late span revises its window.

use std::sync::{Arc, Mutex};

use apo_dataflow::window_operator;
use apo_dataflow::{RedPartial, RedWindow};
use apo_schemas::red::RedStats;
use apo_schemas::{Span, SpanId, SpanKind, SpanStatus, TraceId};
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

const T0: i64 = 1_764_115_200_000;

fn spans() -> Vec<Span> {
    let mut seed = 5u64;
    (0..20_000u64)
        .map(|i| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let end_ms = T0 + (i as i64) * 3; // 60 s of spans
            let dur_us = ((seed >> 33) % 50_000) as i64 + 1;
            Span {
                links: Vec::new(),
                trace_id: TraceId(i as u128 + 1),
                span_id: SpanId(i + 1),
                parent_span_id: None,
                service: format!("svc{}", (seed >> 20) % 3),
                name: format!("op{}", (seed >> 24) % 4),
                kind: SpanKind::Server,
                start_ns: end_ms * 1_000_000 - dur_us * 1000,
                end_ns: end_ms * 1_000_000,
                status: if (seed >> 28).is_multiple_of(50) {
                    SpanStatus::Error
                } else {
                    SpanStatus::Ok
                },
                attributes: Default::default(),
                follows_from: false,
                adjusted_count: 1,
            }
        })
        .collect()
}

/// Feeds `spans` (then `late`, after every window closed) through the window operator; each
/// worker takes every n-th span and pre-aggregates per window at each tick.
fn run(workers: usize, spans: Vec<Span>, late: Vec<Span>) -> Vec<RedStats> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let (spans, late) = (Arc::new(spans), Arc::new(late));
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut input: InputHandleVec<u64, RedPartial> = InputHandleVec::new();
        let probe = ProbeHandle::new();
        let sink = sink.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            let held = std::rc::Rc::new(apo_dataflow::Held::default());
            window_operator(input.to_stream(scope), 300_000, held)
                .inspect(move |r: &RedStats| sink.lock().unwrap().push(r.clone()))
                .probe_with(&probe);
        });
        let (i, n) = (worker.index(), worker.peers());
        let mine = |v: &[Span]| -> Vec<Span> { v.iter().skip(i).step_by(n).cloned().collect() };
        let feed = |input: &mut InputHandleVec<u64, RedPartial>, batch: &[Span]| {
            let mut parts: std::collections::BTreeMap<RedWindow, RedPartial> = Default::default();
            for s in batch {
                let w = RedPartial::window_of(s, 10);
                parts
                    .entry(w.clone())
                    .or_insert_with(|| RedPartial::new(w, 0.01, 10))
                    .add(s);
            }
            for p in parts.into_values() {
                input.send(p);
            }
        };
        // One tick per second of event time, with the watermark 1 s behind.
        for chunk in mine(&spans).chunks(300) {
            feed(&mut input, chunk);
            let wm = chunk.last().map_or(0, |s| s.event_time_ms()) - 1_000;
            if wm > *input.time() as i64 {
                input.advance_to(wm as u64);
            }
            worker.step_while(|| probe.less_than(input.time()));
        }
        input.advance_to((T0 + 120_000) as u64);
        worker.step_while(|| probe.less_than(input.time()));
        feed(&mut input, &mine(&late));
        input.advance_to((T0 + 130_000) as u64);
        worker.step_while(|| probe.less_than(input.time()));
    })
    .unwrap();
    let mut rows = out.lock().unwrap().clone();
    rows.sort_by(|a, b| a.key().cmp(&b.key()).then(a.revision.cmp(&b.revision)));
    rows
}

fn direct(spans: &[Span]) -> Vec<RedStats> {
    let mut parts: std::collections::BTreeMap<RedWindow, RedPartial> = Default::default();
    for s in spans {
        let w = RedPartial::window_of(s, 10);
        parts
            .entry(w.clone())
            .or_insert_with(|| RedPartial::new(w, 0.01, 10))
            .add(s);
    }
    let mut rows: Vec<RedStats> = parts.values().flat_map(|p| p.finish(1)).collect();
    rows.sort_by_key(|r| r.key());
    rows
}

fn same(a: &[RedStats], b: &[RedStats]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        // Sums may differ in the last bits with the order of addition; everything else exact.
        assert!((x.duration_sum_ms - y.duration_sum_ms).abs() <= 1e-9 * y.duration_sum_ms);
        let mut x = x.clone();
        x.duration_sum_ms = y.duration_sum_ms;
        x.duration_mean_ms = y.duration_mean_ms;
        assert_eq!(&x, y);
    }
}

#[test]
fn one_and_two_workers_give_the_direct_rows() {
    let s = spans();
    let want = direct(&s);
    assert!(want.len() > 100);
    same(&run(1, s.clone(), Vec::new()), &want);
    same(&run(2, s, Vec::new()), &want);
}

#[test]
fn a_late_span_revises_its_window() {
    let s = spans();
    let mut late = s[10].clone();
    late.span_id = SpanId(999_999);
    late.status = SpanStatus::Error;
    let rows = run(2, s.clone(), vec![late.clone()]);
    let key = RedPartial::window_of(&late, 10);
    let revised: Vec<&RedStats> = rows
        .iter()
        .filter(|r| r.service_name == key.service && r.window_start == key.window_start)
        .filter(|r| r.revision == 2)
        .collect();
    assert!(!revised.is_empty(), "revision 2 of the late span's window");
    let mut all = s;
    all.push(late);
    let want: Vec<RedStats> = direct(&all)
        .into_iter()
        .filter(|r| r.service_name == key.service && r.window_start == key.window_start)
        .map(|mut r| {
            r.revision = 2;
            r
        })
        .collect();
    let got: Vec<RedStats> = revised.into_iter().cloned().collect();
    same(&got, &want);
}
