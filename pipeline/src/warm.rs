//! The models' warm start: the windows a previous run wrote to the Parquet tables, read back so
//! that each series' model state (feature history, alert state, forecaster input) is rebuilt
//! before its first new window, one set per consumer.

use std::path::Path;
use std::sync::Arc;

use apo_dataflow::{anomaly_warm_windows, Loader, ModelConfig, PastWindows, SpanConfig};
use apo_models::features::HISTORY;
use apo_schemas::red::RedStats;
use apo_schemas::WindowStats;
use apo_sinks::history::{read_since, ReadBack};

use crate::{RunConfig, RunError};

/// Past windows for each consumer of a warm start (`None`: that consumer starts cold).
#[derive(Default, Clone)]
pub struct WarmStart {
    /// The metrics lane's anomaly state.
    pub metrics: Option<Arc<PastWindows<WindowStats>>>,
    /// The forecaster's input.
    pub forecasts: Option<Arc<PastWindows<WindowStats>>>,
    /// The trace lane's anomaly state (RED rows).
    pub red: Option<Arc<PastWindows<RedStats>>>,
}

fn loader<R: ReadBack>(dir: &Path) -> Loader<R> {
    let dir = dir.to_path_buf();
    Box::new(move |since| read_since::<R>(&dir, since).map_err(|e| e.to_string()))
}

impl WarmStart {
    /// What `cfg`'s models need of the past, or nothing when the models or the warm start are off.
    pub fn for_run(cfg: &RunConfig) -> Result<Self, RunError> {
        match &cfg.models {
            Some(m) if cfg.warm_start => Self::read(
                m,
                &cfg.data_dir,
                &cfg.metrics.window_seconds,
                cfg.spans.as_ref(),
            ),
            _ => Ok(Self::default()),
        }
    }

    fn read(
        m: &ModelConfig,
        data_dir: &Path,
        window_seconds: &[u32],
        spans: Option<&SpanConfig>,
    ) -> Result<Self, RunError> {
        let largest = |secs: &[u32]| i64::from(secs.iter().copied().max().unwrap_or(1)) * 1000;
        let metrics_ms = largest(window_seconds);
        let mut w = WarmStart::default();
        let need = anomaly_warm_windows(&m.alert);
        // the forest and the forecaster both warm from window_stats: one read for both
        let mut views: Vec<(usize, usize)> = Vec::new();
        if m.anomaly_model.is_some() {
            views.push((need, HISTORY));
        }
        if let Some(p) = &m.forecast_model {
            let l = apo_models::Forecaster::load(p)
                .map_err(RunError::Models)?
                .seq_len();
            views.push((l, l));
        }
        let mut metrics = PastWindows::shared(&views, metrics_ms, loader(data_dir)).into_iter();
        if m.anomaly_model.is_some() {
            w.metrics = metrics.next();
            if let Some(s) = spans {
                let red_ms = largest(&[s.window_seconds]);
                w.red = Some(PastWindows::new(need, HISTORY, red_ms, loader(data_dir)));
            }
        }
        w.forecasts = metrics.next();
        Ok(w)
    }
}
