//! `apo produce`: the synthetic generators (metrics, or traces with `--spans`) as a load source
//! for any broker.

use std::sync::atomic::Ordering;
use std::time::Instant;

use apo_ingest::generator::{produce as produce_points, Generator, GeneratorConfig, Pace};
use apo_ingest::trace_generator::{TraceGenerator, TraceGeneratorConfig};
use apo_ingest::trace_produce::produce_traces;

use crate::args::ProduceArgs;
use crate::broker::Broker;
use crate::signals::stop_on_signals;
use crate::RunError;

/// Produces what `a` asks for until its count or duration is reached, or until interrupted.
pub fn produce(a: ProduceArgs) -> Result<(), RunError> {
    crate::clock_moved()?;
    let broker = Broker::required(
        &a.kafka,
        "(the address `apo run` prints for its embedded broker works too)",
    )?;
    let bad = |m: &str| Err(RunError::Config(m.to_string()));
    if a.rate <= 0.0 || !a.rate.is_finite() {
        return bad("--rate must be positive");
    }
    if a.batch == 0 {
        return bad("--batch must be at least 1");
    }
    let start_ms = if a.start == "now" {
        apo_core::clock::now_ms()
    } else {
        chrono::DateTime::parse_from_rfc3339(&a.start)
            .map_err(|e| {
                RunError::Config(format!(
                    "--start `{}`: expected RFC 3339 or `now` ({e})",
                    a.start
                ))
            })?
            .timestamp_millis()
    };
    let topic = a
        .topic
        .clone()
        .unwrap_or_else(|| if a.spans { "apo.spans" } else { "apo.metrics" }.to_string());
    let (client, brokers) = (broker.client(), broker.address());
    if a.kafka.create_topics {
        broker.prepare_topics(&[&topic], true, a.kafka.partitions)?;
    }
    let stop = stop_on_signals()?;
    let pace = if a.pace == "flat" {
        Pace::Flat
    } else {
        Pace::RealTime
    };
    let started = Instant::now();
    let report = |what: &str, s: &apo_ingest::generator::ProduceStats| {
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        eprintln!(
            "  {} {what}, {} messages, {:.1} MB ({:.0} {what}/s)",
            s.points,
            s.messages,
            s.bytes as f64 / 1e6,
            s.points as f64 / secs
        );
    };
    if a.spans {
        let mut g = TraceGenerator::new(&TraceGeneratorConfig {
            rate: a.rate,
            start_ms,
            incidents_per_hour: a.incidents_per_hour,
            seed: a.seed,
        });
        eprintln!(
            "producing traces to {topic} on {brokers}: {} traces/s of event time as {:?}, pace {}",
            a.rate, a.span_format, a.pace
        );
        let stats = produce_traces(
            client,
            &topic,
            &mut g,
            a.span_format,
            a.count,
            a.duration,
            pace,
            &|| stop.load(Ordering::Relaxed),
            &mut |s| report("spans", s),
        )
        .map_err(|e| RunError::kafka(format!("producing to {topic}"), e))?;
        eprintln!(
            "done: {} spans in {} messages ({:.1} MB) in {:.1} s",
            stats.points,
            stats.messages,
            stats.bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let mut g = Generator::new(&GeneratorConfig {
        services: a.services,
        metrics: a.metrics,
        rate: a.rate,
        start_ms,
        incidents_per_hour: a.incidents_per_hour,
        seed: a.seed,
    });
    eprintln!(
        "producing to {topic} on {brokers}: {} series, {} points/s of event time, pace {}",
        g.series_count(),
        a.rate,
        a.pace
    );
    let stats = produce_points(
        client,
        &topic,
        &mut g,
        a.batch,
        a.count,
        a.duration,
        pace,
        &|| stop.load(Ordering::Relaxed),
        &mut |s| report("points", s),
    )
    .map_err(|e| RunError::kafka(format!("producing to {topic}"), e))?;
    eprintln!(
        "done: {} points in {} messages ({:.1} MB) in {:.1} s",
        stats.points,
        stats.messages,
        stats.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
