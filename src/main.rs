//! `apo`: the command line. It parses arguments and the configuration file and calls the
//! library that does the work: `apo-pipeline` (`run`, `produce`, `broker`), `apo-sinks` (`sql`),
//! `apo-bench` (`bench`, `score`, `forecast`).

mod cli;
mod config;
mod sql;

// Decoding allocates a few small strings per point; mimalloc does that far faster than glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = match config::parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("APO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    // The embedded broker's own crates log every request at info: keep them at warn unless
    // asked for by name.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours on a terminal only: a log written to a file or a pipe stays plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let result = match cli.command {
        cli::Command::Run(mut a) => {
            config::with_file_kafka_props(&mut a.kafka);
            if a.kafka.brokers.is_none() && !a.open_loop {
                apo_sim::embedded::closed_loop(&mut a).and_then(|traffic| {
                    apo_pipeline::run_with(*a, Some(traffic)).map_err(anyhow::Error::from)
                })
            } else {
                apo_pipeline::run(*a).map_err(anyhow::Error::from)
            }
        }
        cli::Command::Produce(mut a) => {
            config::with_file_kafka_props(&mut a.kafka);
            apo_pipeline::produce(a).map_err(anyhow::Error::from)
        }
        cli::Command::Actuate(mut a) => {
            config::with_file_kafka_props(&mut a.kafka);
            apo_actuators::actuate(*a)
                .map(|r| {
                    let outcomes: Vec<String> =
                        r.outcomes.iter().map(|(k, n)| format!("{n} {k}")).collect();
                    println!(
                        "{} decisions received; audited: {}",
                        r.received,
                        if outcomes.is_empty() {
                            "none".into()
                        } else {
                            outcomes.join(", ")
                        }
                    );
                })
                .map_err(anyhow::Error::from)
        }
        cli::Command::Override(mut a) => {
            config::with_file_kafka_props(&mut a.kafka);
            apo_actuators::overrides::command::run(*a)
                .map(|out| println!("{out}"))
                .map_err(anyhow::Error::from)
        }
        cli::Command::Sim(mut a) => {
            config::with_file_kafka_props(&mut a.kafka);
            apo_sim::command::sim(*a)
        }
        cli::Command::Sql(a) => sql::sql(a),
        cli::Command::Broker(a) => apo_pipeline::standalone::broker(a).map_err(anyhow::Error::from),
        cli::Command::Bench(mut a) => {
            config::with_file_kafka_props(&mut a.kafka);
            apo_bench::bench(a)
        }
        cli::Command::Score(a) => apo_bench::score(a),
        cli::Command::Forecast(a) => apo_bench::forecast(a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes, leaving out a cause whose text the message already holds (many
/// library errors repeat their source in their own message).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}
