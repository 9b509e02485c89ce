//! The SLO file (`--slo-file`, TOML): objectives and burn-rate alert windows. Without a file
//! the product SLA applies (`apo_dataflow::default_objectives`) with the SRE workbook's
//! alert pairs. A Sloth spec (YAML) is read instead when the file is one ([`crate::config::sloth`]).
//!
//! ```toml
//! include_defaults = false   # keep the default objectives beside these (default: false)
//!
//! [burn]                     # the workbook's pairs (these are the defaults)
//! fast = { long = "1h", short = "5m", threshold = 14.4 }       # pages
//! slow = { long = "6h", short = "30m", threshold = 6.0 }       # pages
//! ticket = { long = "1d", short = "2h", threshold = 3.0 }      # tickets
//! ticket_slow = { long = "3d", short = "6h", threshold = 1.0 } # tickets
//! period = "30d"             # the SLO period whose remaining error budget each record has
//!
//! [[objective]]
//! name = "checkout-latency"
//! services = ["checkout"]          # empty or absent: every service
//! kinds = ["server"]               # span kinds; absent: all
//! operations = ["POST /checkout"]  # span-name prefixes, case-insensitive; absent: all
//! database_only = false            # only spans with db.system
//! latency = { quantile = 0.99, threshold = "800ms" }
//!
//! [[objective]]
//! name = "checkout-errors"
//! services = ["checkout"]
//! kinds = ["server"]
//! error_rate = 0.001               # at most 0.1 % of the spans may fail
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use apo_dataflow::{default_objectives, AlertPair, BurnConfig, Indicator, Objective};
use apo_schemas::SpanKind;
use serde::Deserialize;

use crate::RunError;

type Result<T, E = RunError> = std::result::Result<T, E>;

macro_rules! bail {
    ($($t:tt)*) => {
        return Err(RunError::Config(format!($($t)*)))
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    include_defaults: bool,
    burn: Option<Burn>,
    #[serde(default)]
    objective: Vec<ObjectiveSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Burn {
    fast: Option<Pair>,
    slow: Option<Pair>,
    ticket: Option<Pair>,
    ticket_slow: Option<Pair>,
    period: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pair {
    long: String,
    short: String,
    threshold: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectiveSpec {
    name: String,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    database_only: bool,
    latency: Option<Latency>,
    error_rate: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Latency {
    quantile: f64,
    threshold: String,
}

fn millis(s: &str, what: &str) -> Result<f64> {
    let d = humantime::parse_duration(s).map_err(|e| {
        RunError::Config(format!(
            "{what}: `{s}` is not a duration (e.g. 500ms, 1s, 5m): {e}"
        ))
    })?;
    Ok(d.as_secs_f64() * 1000.0)
}

fn pair(p: &Pair, what: &str) -> Result<AlertPair> {
    let (long, short) = (millis(&p.long, what)?, millis(&p.short, what)?);
    if short <= 0.0 || short > long {
        bail!("{what}: the short window must be positive and no longer than the long one");
    }
    if !(p.threshold > 0.0 && p.threshold.is_finite()) {
        bail!("{what}: threshold must be a positive burn rate");
    }
    Ok(AlertPair {
        long_ms: long as i64,
        short_ms: short as i64,
        threshold: p.threshold,
    })
}

fn objective(o: ObjectiveSpec) -> Result<Objective> {
    let what = format!("objective `{}`", o.name);
    if o.name.trim().is_empty() {
        bail!("an objective has an empty name");
    }
    let indicator = match (o.latency, o.error_rate) {
        (Some(l), None) => {
            if !(l.quantile > 0.0 && l.quantile < 1.0) {
                bail!("{what}: latency quantile must be in (0, 1), e.g. 0.95");
            }
            let threshold_ms = millis(&l.threshold, &what)?;
            if threshold_ms <= 0.0 {
                bail!("{what}: latency threshold must be positive");
            }
            Indicator::Latency {
                quantile: l.quantile,
                threshold_ms,
            }
        }
        (None, Some(r)) => {
            if !(r > 0.0 && r < 1.0) {
                bail!("{what}: error_rate must be in (0, 1), e.g. 0.001 for 0.1 %");
            }
            Indicator::ErrorRate { max_ratio: r }
        }
        _ => bail!("{what}: give exactly one of `latency` and `error_rate`"),
    };
    let kinds = o
        .kinds
        .iter()
        .map(|k| {
            SpanKind::parse(k).ok_or_else(|| {
                RunError::Config(format!("{what}: unknown span kind `{k}` (internal, server, client, producer, consumer)"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Objective {
        name: o.name,
        kinds,
        operation_prefixes: o.operations,
        database_only: o.database_only,
        services: o.services,
        indicator,
    })
}

/// The objectives and alert windows: from `path`, or the defaults.
pub fn load(path: Option<&Path>) -> Result<(Vec<Objective>, BurnConfig)> {
    let Some(path) = path else {
        return Ok((default_objectives(), BurnConfig::default()));
    };
    let file = |reason: String| RunError::File {
        what: "SLO file",
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
    if crate::config::sloth::is_sloth(&text) {
        let objectives = crate::config::sloth::parse(&text).map_err(|e| file(e.to_string()))?;
        return Ok((objectives, BurnConfig::default()));
    }
    parse(&text).map_err(|e| file(e.to_string()))
}

fn parse(text: &str) -> Result<(Vec<Objective>, BurnConfig)> {
    let f: File = toml::from_str(text).map_err(|e| RunError::Config(e.to_string()))?;
    let mut burn = BurnConfig::default();
    if let Some(b) = &f.burn {
        if let Some(p) = &b.fast {
            burn.fast = pair(p, "[burn] fast")?;
        }
        if let Some(p) = &b.slow {
            burn.slow = pair(p, "[burn] slow")?;
        }
        if let Some(p) = &b.ticket {
            burn.ticket = pair(p, "[burn] ticket")?;
        }
        if let Some(p) = &b.ticket_slow {
            burn.ticket_slow = pair(p, "[burn] ticket_slow")?;
        }
        if let Some(p) = &b.period {
            let d = humantime::parse_duration(p)
                .map_err(|e| RunError::Config(format!("[burn] period `{p}`: {e}")))?;
            if d.as_millis() < 60_000 {
                bail!("[burn] period `{p}` is shorter than a minute");
            }
            burn.period_ms = d.as_millis() as i64;
        }
    }
    let mut objectives = if f.include_defaults || f.objective.is_empty() {
        default_objectives()
    } else {
        Vec::new()
    };
    for o in f.objective {
        objectives.push(objective(o)?);
    }
    let mut names = BTreeSet::new();
    for o in &objectives {
        if !names.insert(o.name.as_str()) {
            bail!("objective `{}` is defined twice", o.name);
        }
    }
    Ok((objectives, burn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc: String = include_str!("slo_file.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start().to_string() + "\n")
            .collect();
        let (objectives, burn) = parse(&doc).unwrap();
        assert_eq!(objectives.len(), 2);
        assert_eq!(
            objectives[0].indicator,
            Indicator::Latency {
                quantile: 0.99,
                threshold_ms: 800.0
            }
        );
        assert_eq!(objectives[0].services, vec!["checkout".to_string()]);
        assert_eq!(
            objectives[1].indicator,
            Indicator::ErrorRate { max_ratio: 0.001 }
        );
        assert_eq!(burn, BurnConfig::default());
    }

    #[test]
    fn mistakes_are_named() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(err("[[objective]]\nname = \"a\"\n").contains("exactly one of"));
        assert!(err("[[objective]]\nname = \"a\"\nerror_rate = 2.0\n").contains("(0, 1)"));
        assert!(
            err("[[objective]]\nname = \"a\"\nkinds = [\"sever\"]\nerror_rate = 0.1\n")
                .contains("unknown span kind")
        );
        assert!(err(
            "[[objective]]\nname = \"a\"\nlatency = { quantile = 0.9, threshold = \"fast\" }\n"
        )
        .contains("not a duration"));
        assert!(err(
            "include_defaults = true\n[[objective]]\nname = \"api-errors\"\nerror_rate = 0.1\n"
        )
        .contains("defined twice"));
        assert!(
            err("[burn]\nfast = { long = \"5m\", short = \"1h\", threshold = 14.4 }\n")
                .contains("short window")
        );
        assert!(err("objectives = []\n").contains("unknown field"));
        assert!(err("[burn]\nperiod = \"soon\"\n").contains("period"));
        assert!(err("[burn]\nperiod = \"10s\"\n").contains("shorter than a minute"));
    }
}
