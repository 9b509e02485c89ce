//! The timely cluster: worker threads in this process, and the processes of a cluster with
//! their addresses (a hostfile, or consecutive localhost ports).

use std::path::Path;

use crate::RunError;

/// The timely configuration for `workers` threads in process `process` of `processes`.
pub fn timely_config(
    workers: usize,
    processes: usize,
    process: usize,
    hostfile: Option<&Path>,
) -> Result<timely::Config, RunError> {
    if workers == 0 {
        return Err(RunError::Config("--workers must be at least 1".into()));
    }
    if processes <= 1 {
        return Ok(timely::Config::process(workers));
    }
    if process >= processes {
        return Err(RunError::Config(format!(
            "--process {process} must be below --processes {processes}"
        )));
    }
    let addresses: Vec<String> = match hostfile {
        Some(path) => {
            let file = |reason: String| RunError::File {
                what: "hostfile",
                path: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?;
            let hosts: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if hosts.len() < processes {
                return Err(file(format!(
                    "lists {} hosts for {processes} processes",
                    hosts.len()
                )));
            }
            hosts.into_iter().take(processes).collect()
        }
        None => (0..processes)
            .map(|i| format!("localhost:{}", 2101 + i))
            .collect(),
    };
    Ok(timely::Config {
        communication: timely::CommunicationConfig::Cluster {
            threads: workers,
            process,
            addresses,
            report: false,
            zerocopy: false,
        },
        worker: timely::WorkerConfig::default(),
    })
}
