//! The TOML configuration file. Its keys are the long flag names (`lateness = "5s"`,
//! `windows = ["10s", "1m"]`), at the top level (any command) or in a table named after the
//! command (`[run]`, `[produce]`, `[sql]`, `[bench]`); `[kafka]` holds librdkafka properties.
//! Values become the `APO_…` environment defaults of their flags, so the precedence is
//! command line, then environment, then file, then built-in default.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;

static FILE_KAFKA_PROPS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// librdkafka properties from the file's `[kafka]` table (flags given with -X come after them).
pub fn file_kafka_props() -> &'static [(String, String)] {
    FILE_KAFKA_PROPS.get().map(|v| v.as_slice()).unwrap_or(&[])
}

fn config_path(args: &[String]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("APO_CONFIG").map(PathBuf::from)
}

fn env_name(key: &str) -> String {
    format!("APO_{}", key.replace('-', "_").to_ascii_uppercase())
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(a) => a
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

/// Reads the configuration file, if one is named, into environment defaults.
pub fn apply_config_file() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = config_path(&args) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing config file {}", path.display()))?;
    let cmd = crate::cli::Cli::command();
    let envs_of = |sub: &clap::Command| -> BTreeSet<String> {
        sub.get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().to_string()))
            .collect()
    };
    let commands: Vec<(String, BTreeSet<String>)> = cmd
        .get_subcommands()
        .map(|s| (s.get_name().to_string(), envs_of(s)))
        .collect();
    let chosen = args
        .iter()
        .skip(1)
        .find_map(|a| commands.iter().find(|(n, _)| n == a))
        .map(|(n, _)| n.clone());
    let mut settings: Vec<(String, String)> = Vec::new();
    let mut kafka = Vec::new();
    for (key, value) in &table {
        match value {
            toml::Value::Table(t) if key == "kafka" => {
                for (k, v) in t {
                    let v = scalar(v).with_context(|| format!("[kafka] {k}: expected a scalar"))?;
                    kafka.push((k.clone(), v));
                }
            }
            toml::Value::Table(t) => {
                let Some((_, known)) = commands.iter().find(|(n, _)| n == key) else {
                    bail!(
                        "{}: unknown table [{key}] (tables: kafka, run, produce, sql, bench)",
                        path.display()
                    );
                };
                for (k, v) in t {
                    let env = env_name(k);
                    if !known.contains(&env) {
                        bail!("{}: unknown key `{k}` in [{key}]", path.display());
                    }
                    if chosen.as_deref() == Some(key.as_str()) {
                        let v = scalar(v)
                            .with_context(|| format!("[{key}] {k}: expected a scalar or array"))?;
                        settings.insert(0, (env, v));
                    }
                }
            }
            v => {
                let env = env_name(key);
                if !commands.iter().any(|(_, known)| known.contains(&env)) && env != "APO_CONFIG" {
                    bail!("{}: unknown key `{key}`", path.display());
                }
                let v = scalar(v).with_context(|| format!("{key}: expected a scalar or array"))?;
                // Applied after the command's table, which therefore wins.
                settings.push((env, v));
            }
        }
    }
    for (env, v) in settings {
        if std::env::var_os(&env).is_none() {
            // Single-threaded at this point: no other thread reads the environment yet.
            std::env::set_var(&env, v);
        }
    }
    let _ = FILE_KAFKA_PROPS.set(kafka);
    Ok(())
}

/// librdkafka client configuration for `brokers`: file properties, then command-line ones.
pub fn kafka_client(brokers: &str, cli: &[(String, String)]) -> rdkafka::ClientConfig {
    let mut all: Vec<(String, String)> = file_kafka_props().to_vec();
    all.extend(cli.iter().cloned());
    apo_ingest::kafka::client_config(brokers, &all)
}
