//! Experiment helper: `cargo run --release -p apo-models --example context_scores -- CONFIG_JSON FILE.csv`
//! prints the contextual detector's score per row of a `timestamp,value` file (empty while it
//! learns the range).
use apo_models::context::{ContextConfig, ContextDetector};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let config: ContextConfig = serde_json::from_str(args.get(1).ok_or("config JSON")?)?;
    config.validate()?;
    for path in &args[2..] {
        let text = std::fs::read_to_string(path)?;
        let mut d = ContextDetector::default();
        println!("# {path}");
        for line in text.lines().skip(1) {
            let v: f64 = line.rsplit(',').next().ok_or("no value")?.trim().parse()?;
            match d.step(&config, v) {
                Some(s) => println!("{s}"),
                None => println!(),
            }
        }
        eprintln!("{path}: {} contexts", d.contexts());
    }
    Ok(())
}
