//! The embedded default's synthetic traffic: metric points and traces produced in real time
//! (event time = now) on threads of their own, until the stop flag is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use apo_ingest::generator::{Generator, GeneratorConfig, Pace, ProduceStats};
use apo_ingest::trace_generator::{TraceGenerator, TraceGeneratorConfig};
use apo_ingest::trace_produce::{produce_traces, SpanFormat};
use apo_ingest::IngestError;
use rdkafka::ClientConfig;

/// Runs a load producer on a thread of its own, logging why it stopped if it failed.
fn spawn(
    name: &'static str,
    produce: impl FnOnce() -> Result<ProduceStats, IngestError> + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        if let Err(e) = produce() {
            tracing::error!(error = %e, "{name} stopped");
        }
    })
}

/// `rate` metric points per second to `topic`, in messages of 200.
pub fn points(
    client: &ClientConfig,
    topic: &str,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (client, topic) = (client.clone(), topic.to_string());
    spawn("synthetic generator", move || {
        let mut g = Generator::new(&GeneratorConfig {
            rate,
            start_ms: apo_core::clock::now_ms(),
            ..Default::default()
        });
        apo_ingest::generator::produce(
            &client,
            &topic,
            &mut g,
            200,
            None,
            None,
            Pace::RealTime,
            &|| stop.load(Ordering::Relaxed),
            &mut |_| {},
        )
    })
}

/// `rate` traces per second of a web shop to `topic`, as APO JSON, each span sent as it ends.
pub fn traces(
    client: &ClientConfig,
    topic: &str,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (client, topic) = (client.clone(), topic.to_string());
    spawn("synthetic trace generator", move || {
        let mut g = TraceGenerator::new(&TraceGeneratorConfig {
            rate,
            start_ms: apo_core::clock::now_ms(),
            ..Default::default()
        });
        produce_traces(
            &client,
            &topic,
            &mut g,
            SpanFormat::Json,
            None,
            None,
            Pace::RealTime,
            &|| stop.load(Ordering::Relaxed),
            &mut |_| {},
        )
    })
}
