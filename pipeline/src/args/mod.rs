//! The run's settings as flags: clap argument groups of `apo run`, `apo produce` and `apo broker`. Every flag
//! can also come from an environment variable (`APO_…`, shown in `--help`); the binary layers a
//! TOML file under both (file values become the flags' defaults). [`crate::RunConfig`] turns
//! [`RunArgs`] into the typed, checked configuration the topology is built from.

mod alert;
mod broker;
mod kafka;
mod planner;
mod produce;
mod run;

use std::time::Duration;

pub use alert::AlertArgs;
pub use broker::BrokerArgs;
pub use kafka::KafkaArgs;
pub use planner::PlannerArgs;
pub use produce::ProduceArgs;
pub use run::{ModelArgs, RunArgs, TraceArgs};

/// A memory ceiling from a flag: bytes, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit(pub Option<u64>);

/// Parses a memory size for a flag: a number with an optional unit, decimal (`kB`, `MB`, `GB`)
/// or binary (`KiB`, `MiB`, `GiB`, and Kubernetes' `Ki`, `Mi`, `Gi`), or `none`.
pub fn memory_size(s: &str) -> Result<MemoryLimit, String> {
    let t = s.trim();
    if ["none", "off", "unlimited"].contains(&t.to_ascii_lowercase().as_str()) {
        return Ok(MemoryLimit(None));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" | "ki" => 1024.0,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (examples: 512MiB, 2GiB, 1.5GB, 800Mi, none)"
            ))
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: not a size (examples: 512MiB, 2GiB, 1.5GB, none)"))?;
    let bytes = n * scale;
    if !(1.0..1e18).contains(&bytes) {
        return Err(format!(
            "`{s}`: a memory budget must be at least 1 byte (or `none` for no budget)"
        ));
    }
    Ok(MemoryLimit(Some(bytes as u64)))
}

/// Parses a human duration (`500ms`, `10s`, `5m`, `7d`) for a flag.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}`: {e} (examples: 500ms, 10s, 5m, 7d)"))
}

#[cfg(test)]
mod tests {
    use super::{memory_size, MemoryLimit};

    #[test]
    fn memory_sizes_in_decimal_binary_and_kubernetes_units() {
        let ok = |s: &str| memory_size(s).map(|m| m.0);
        assert_eq!(ok("1GiB"), Ok(Some(1 << 30)));
        assert_eq!(ok("512Mi"), Ok(Some(512 << 20)));
        assert_eq!(ok("1.5GB"), Ok(Some(1_500_000_000)));
        assert_eq!(ok("800 MB"), Ok(Some(800_000_000)));
        assert_eq!(ok("4096"), Ok(Some(4096)));
        assert_eq!(memory_size("none"), Ok(MemoryLimit(None)));
        for bad in ["", "0", "0MiB", "lots", "3 parsecs", "1..2GB"] {
            assert!(memory_size(bad).is_err(), "{bad} was accepted");
        }
    }
}
