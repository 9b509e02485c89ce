//! `apo bench`'s memory against live series (issue 14, part 2): the metrics dataflow over
//! 1 k … 1 M distinct series, each point of which is generated lazily (two per series, every
//! series live at the end), with the memory budget off and on; peak resident memory, points/s,
//! and how much was folded into overflow series. The series limits are raised out of the way,
//! so only the budget bounds the state.

use std::fmt::Write as _;
use std::sync::Arc;

use std::time::Duration;

use anyhow::Result;
use apo_core::{RowSink, SinkError};
use apo_dataflow::{LaneConfig, MemoryBudget, MetricsConfig, MetricsJob, SeriesLimits};
use apo_ingest::dlq::MemoryDeadLetters;
use apo_ingest::generator::{Generator, GeneratorConfig, GeneratorSource};
use apo_schemas::WindowStats;

use crate::phase::{peak_rss_mib, reset_peak_rss, run_phase_under, PhaseResult};

const BATCH: usize = 200;

/// A sink that keeps nothing (rows held for the report would be memory of their own).
#[derive(Default)]
pub(crate) struct Discard {
    writes: u64,
}

impl RowSink<WindowStats> for Discard {
    fn name(&self) -> &str {
        "discard"
    }
    fn write(&mut self, _rows: &[WindowStats]) -> Result<(), SinkError> {
        self.writes += 1;
        Ok(())
    }
    fn poll_durable(&mut self, _finish: bool) -> Result<u64, SinkError> {
        Ok(self.writes)
    }
    fn next_poll(&self) -> Option<Duration> {
        None
    }
}

/// Series as services × metrics: at most 1 000 metrics per service (under the per-service
/// limit's default of 2 000 as well).
fn generator(series: usize, stamp: i64) -> GeneratorConfig {
    let services = series.div_ceil(1_000).max(1);
    let metrics = series / services;
    // Two points per series over two minutes of event time, ending a minute before now.
    let points = 2 * services * metrics;
    let rate = points as f64 / 120.0;
    GeneratorConfig {
        services,
        metrics,
        rate,
        start_ms: stamp - 180_000,
        incidents_per_hour: 0.0,
        seed: 11,
    }
}

fn run(cfg: &LaneConfig, series: usize, stamp: i64, budget: Option<u64>) -> Result<PhaseResult> {
    let g = generator(series, stamp);
    let points = (2 * g.services * g.metrics) as u64;
    let metrics = MetricsConfig {
        series_limits: SeriesLimits {
            max_series: 100_000_000,
            max_series_per_service: 100_000_000,
            max_attribute_sets: 100_000_000,
        },
        ..MetricsConfig::default()
    };
    let budget = Arc::new(MemoryBudget::new(budget));
    run_phase_under(1, cfg.clone(), budget, move |_, _| {
        Ok((
            Box::new(GeneratorSource::new(Generator::new(&g), points, BATCH)) as _,
            Box::new(MemoryDeadLetters::default()) as _,
            MetricsJob::from_config(&metrics, vec![Box::new(Discard::default())])
                .map_err(|e| e.to_string())?,
        ))
    })
}

/// The section: one row per size and budget setting.
pub fn series_section(
    cfg: &LaneConfig,
    sizes: &[usize],
    budget: u64,
    stamp: i64,
) -> Result<String> {
    let mut out = String::new();
    reset_peak_rss();
    let idle = peak_rss_mib().unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "Metric series live at once, two points each (lazily generated), windows {:?} s, 1 worker, \
         series limits raised out of the way; budget {:.0} MiB for the process. Resident memory \
         before the first run: {idle:.0} MiB. Runs go from the smallest size up, the budget on \
         first at each size: memory the allocator kept from an earlier run counts in a later \
         one's peak, never the other way round.\n",
        MetricsConfig::default().window_seconds,
        budget as f64 / (1 << 20) as f64,
    );
    let _ = writeln!(
        out,
        "| series | budget | peak RSS | points/s | series folded into overflow | points folded | went over |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|");
    for &n in sizes {
        for on in [true, false] {
            eprintln!(
                "memory at {n} series, budget {}…",
                if on { "on" } else { "off" }
            );
            let r = run(cfg, n, stamp, on.then_some(budget))?;
            let (_, folded, points_folded) = r.series;
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {:.0} | {folded} | {points_folded} | {} |",
                if on { "on" } else { "off" },
                r.rss_mib.map_or("n/a".into(), |m| format!("{m:.0} MiB")),
                r.points as f64 / r.seconds,
                if on {
                    r.over_budget.to_string()
                } else {
                    "–".into()
                },
            );
        }
    }
    Ok(out)
}
