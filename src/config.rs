//! The TOML configuration file. Its keys are the long flag names (`lateness = "5s"`,
//! `windows = ["10s", "1m"]`, `-` or `_` alike), at the top level (any command) or in a table
//! named after the command (`[run]`, `[produce]`, `[sql]`, `[bench]`, …); `[kafka]` holds
//! librdkafka properties. File values become the default values of their flags in the parser
//! itself (no environment is written), so the precedence is command line, then environment
//! (`APO_…`), then the file (a command's table over the top level), then the built-in default.
//! An unknown table or key is an error naming the file and the key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;

static FILE_KAFKA_PROPS: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// librdkafka properties from the file's `[kafka]` table (flags given with -X come after them).
fn file_kafka_props() -> &'static [(String, String)] {
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

/// The values of one setting: one for a scalar, several for an array.
fn values(v: &toml::Value) -> Option<Vec<String>> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    match v {
        toml::Value::Array(a) => a.iter().map(scalar).collect(),
        v => scalar(v).map(|s| vec![s]),
    }
}

/// The flag `key` names in `sub` (`data_dir` and `data-dir` alike), if it has one.
fn flag_of(sub: &clap::Command, key: &str) -> Option<clap::Id> {
    let long = key.replace('_', "-");
    sub.get_arguments()
        .find(|a| a.get_long() == Some(long.as_str()))
        .map(|a| a.get_id().clone())
}

/// `cmd` with the file's values as the defaults of `sub`'s flags.
fn with_defaults(
    cmd: clap::Command,
    sub: &str,
    settings: &[(clap::Id, Vec<String>)],
) -> clap::Command {
    cmd.mut_subcommand(sub, |mut sc| {
        for (id, vals) in settings {
            // The parser keeps its defaults for the life of the process; a file is read once.
            let vals: Vec<&'static str> = vals.iter().map(|v| &*v.clone().leak()).collect();
            sc = sc.mut_arg(id.clone(), |a| a.default_values(vals));
        }
        sc
    })
}

/// Parses the command line, with the configuration file's values (`--config` / `APO_CONFIG`) as
/// flag defaults. Clap reports bad arguments itself (exit 2); a bad file is an error here.
pub fn parse() -> Result<Cli> {
    let args: Vec<String> = std::env::args().collect();
    let mut cmd = Cli::command();
    if let Some(path) = config_path(&args) {
        cmd = apply_file(cmd, &path)?;
    }
    let matches = cmd.get_matches_from(&args);
    Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

/// Reads the file at `path` into `cmd`'s flag defaults and the `[kafka]` properties.
fn apply_file(mut cmd: clap::Command, path: &std::path::Path) -> Result<clap::Command> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing config file {}", path.display()))?;
    let commands: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    // Per command: the top level's settings first, then its table's, which therefore win.
    let mut top: Vec<(String, Vec<String>)> = Vec::new();
    let mut tables: BTreeMap<String, Vec<(clap::Id, Vec<String>)>> = BTreeMap::new();
    let mut kafka = Vec::new();
    for (key, value) in &table {
        match value {
            toml::Value::Table(t) if key == "kafka" => {
                for (k, v) in t {
                    let v = match values(v).as_deref() {
                        Some([one]) => one.clone(),
                        _ => bail!("{}: [kafka] {k}: expected a scalar", path.display()),
                    };
                    kafka.push((k.clone(), v));
                }
            }
            toml::Value::Table(t) => {
                let Some(sub) = cmd.find_subcommand(key) else {
                    bail!(
                        "{}: unknown table [{key}] (tables: kafka, {})",
                        path.display(),
                        commands.join(", ")
                    );
                };
                for (k, v) in t {
                    let Some(id) = flag_of(sub, k) else {
                        bail!("{}: unknown key `{k}` in [{key}]", path.display());
                    };
                    let v = values(v).with_context(|| {
                        format!(
                            "{}: [{key}] {k}: expected a scalar or array",
                            path.display()
                        )
                    })?;
                    tables.entry(key.clone()).or_default().push((id, v));
                }
            }
            v => {
                let known =
                    key == "config" || cmd.get_subcommands().any(|s| flag_of(s, key).is_some());
                if !known {
                    bail!("{}: unknown key `{key}`", path.display());
                }
                let v = values(v).with_context(|| {
                    format!("{}: {key}: expected a scalar or array", path.display())
                })?;
                top.push((key.clone(), v));
            }
        }
    }
    for name in &commands {
        let Some(sub) = cmd.find_subcommand(name) else {
            continue;
        };
        let mut settings: Vec<(clap::Id, Vec<String>)> = top
            .iter()
            .filter_map(|(k, v)| flag_of(sub, k).map(|id| (id, v.clone())))
            .collect();
        settings.extend(tables.remove(name).unwrap_or_default());
        cmd = with_defaults(cmd, name, &settings);
    }
    let _ = FILE_KAFKA_PROPS.set(kafka);
    Ok(cmd)
}

/// Puts the file's `[kafka]` properties before the ones given with `-X`, which therefore win.
pub fn with_file_kafka_props(kafka: &mut apo_pipeline::args::KafkaArgs) {
    let mut all: Vec<(String, String)> = file_kafka_props().to_vec();
    all.append(&mut kafka.kafka);
    kafka.kafka = all;
}
