//! Decoding alone, OTLP (the SDK's cumulative exports) against nothing else: for profiling
//! the decoder (`perf record target/release/examples/otlp_decode`).

fn main() -> anyhow::Result<()> {
    let exports = apo_bench::otlp::sdk_exports(200_000)?;
    for _ in 0..5 {
        let (pps, n) = apo_bench::otlp::decode_rate(exports.iter().map(|(_, b)| b.as_slice()));
        println!("{n} OTLP data points decoded at {pps:.0}/s");
    }
    Ok(())
}
