//! Decoding alone, per point: the official SDK's cumulative OTLP exports (`apo bench`'s OTLP
//! input) against APO JSON arrays of 200 generated points (`apo bench`'s metrics input), in
//! one run, five rounds each, alternating. For the decoder's work and for profiling it:
//! `cargo run --release -p apo-bench --example otlp_decode` (or under `perf record`). With the
//! `apo` binary's allocator (mimalloc), as `apo bench` decodes.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use apo_ingest::generator::{Generator, GeneratorConfig};

fn main() -> anyhow::Result<()> {
    let points = 200_000u64;
    let exports = apo_bench::otlp::sdk_exports(points)?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut g = Generator::new(&GeneratorConfig {
        services: 12,
        metrics: 4,
        rate: 2_000.0,
        start_ms: now - (points as f64 / 2.0) as i64 - 60_000,
        incidents_per_hour: 6.0,
        seed: 7,
    });
    let generated: Vec<apo_schemas::MetricPoint> = (0..points).map(|_| g.next_point()).collect();
    let json: Vec<Vec<u8>> = generated
        .chunks(200)
        .map(serde_json::to_vec)
        .collect::<Result<_, _>>()?;
    let otlp: Vec<&[u8]> = exports.iter().map(|(_, b)| b.as_slice()).collect();
    let json: Vec<&[u8]> = json.iter().map(Vec::as_slice).collect();
    let c = apo_bench::otlp::DecodeComparison::run(&otlp, &json, apo_bench::otlp::DECODE_ROUNDS);
    for (round, (o, j)) in c.otlp.iter().zip(&c.json).enumerate() {
        println!(
            "round {}: OTLP {o:.0} data points/s ({}), APO JSON {j:.0} points/s ({}): {:.2}x",
            round + 1,
            c.counts.0,
            c.counts.1,
            o / j
        );
    }
    let (o, j) = c.medians();
    println!("medians: OTLP {o:.0}, APO JSON {j:.0}: {:.2}x", o / j);
    Ok(())
}
