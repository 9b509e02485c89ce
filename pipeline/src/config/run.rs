//! [`RunConfig`]: everything a run is built from, typed and checked once. The topology
//! ([`crate::topology`]) reads only this; [`RunConfig::from_args`] makes one from the flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use apo_dataflow::{
    AssemblyConfig, CumulativeConfig, IdlePolicy, LaneConfig, MetricsConfig, ModelConfig,
    PlannerConfig, SeriesLimits, SpanConfig,
};
use apo_ingest::decode::{FieldLimits, TimeBounds};
use apo_schemas::decision::SigningKey;

use crate::args::RunArgs;
use crate::RunError;

/// The names of every topic a run reads or writes.
#[derive(Debug, Clone)]
pub struct Topics {
    /// Input: metric points.
    pub metrics: String,
    /// Output: window statistics.
    pub window_stats: String,
    /// Unusable input, with a reason in the headers.
    pub dlq: String,
    /// Input: spans.
    pub spans: String,
    /// Output: RED rows.
    pub red: String,
    /// Output: per-trace critical paths.
    pub critical_path: String,
    /// Output: critical-path shares per window.
    pub critical_path_share: String,
    /// Output: service-map edges per window.
    pub service_map: String,
    /// Output: SLO states.
    pub slo: String,
    /// Output: the current service map's changes.
    pub service_map_current: String,
    /// Output: anomaly scores.
    pub anomalies: String,
    /// Output: forecasts.
    pub forecasts: String,
    /// Input: actions carried out, for alert suppression (`None`: no suppression).
    pub actions: Option<String>,
    /// Output: the planner's decisions.
    pub decisions: String,
}

impl Topics {
    /// Every topic named `{prefix}.{table}`: `apo` gives the defaults (`apo.metrics`,
    /// `apo.window_stats`, …, `apo.actions`).
    pub fn with_prefix(prefix: &str) -> Self {
        let t = |name: &str| format!("{prefix}.{name}");
        Topics {
            metrics: t("metrics"),
            window_stats: t("window_stats"),
            dlq: t("dlq"),
            spans: t("spans"),
            red: t("red"),
            critical_path: t("critical_path"),
            critical_path_share: t("critical_path_share"),
            service_map: t("service_map"),
            slo: t("slo"),
            service_map_current: t("service_map_current"),
            anomalies: t("anomalies"),
            forecasts: t("forecasts"),
            actions: Some(t("actions")),
            decisions: t("decisions"),
        }
    }
}

/// A run's configuration: the lanes' settings, the trace pipeline's and the models' (each
/// `None` when off), the topics, and where and how outputs are written.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// What every lane needs: lateness, horizon, idleness, drain, rate limit.
    pub lanes: LaneConfig,
    /// The metrics job's windows, accuracy, encoding and validity bounds.
    pub metrics: MetricsConfig,
    /// The trace pipeline, when on.
    pub spans: Option<SpanConfig>,
    /// The models' stage, when on and a model was found.
    pub models: Option<ModelConfig>,
    /// Topic names.
    pub topics: Topics,
    /// Consumer group of the input offsets.
    pub group: String,
    /// Where the Parquet tables are written (and read back for a warm start).
    pub data_dir: PathBuf,
    /// Longest time rows wait before their Parquet file is written.
    pub parquet_roll: Duration,
    /// This process's index in the timely cluster (it names the Parquet files).
    pub process: usize,
    /// Rebuild the models' per-series state from the Parquet tables at start.
    pub warm_start: bool,
    /// The planner, when a rules file is given: its rules and its signing key.
    pub planner: Option<(PlannerConfig, SigningKey)>,
    /// How often the jobs are checkpointed (zero: never).
    pub checkpoint_interval: Duration,
    /// The object store the checkpoints go to (none: under the data directory).
    pub checkpoint_url: Option<String>,
    /// Discard the checkpoints at start.
    pub from_scratch: bool,
}

impl RunConfig {
    /// Checks the flags and builds the configuration; models named on the command line must
    /// load, the default ones are used when present.
    pub fn from_args(a: &RunArgs) -> Result<Self, RunError> {
        let lanes = lane_config(a)?;
        let metrics = metrics_config(a)?;
        let spans = a
            .traces
            .enabled
            .then(|| span_config(a, &lanes, &metrics))
            .transpose()?;
        let models = model_config(a)?;
        let planner = planner_config(a, &metrics, models.as_ref())?;
        let t = &a.traces;
        let suppressing = models.as_ref().is_some_and(|m| m.anomaly_model.is_some())
            && !a.models.actions_topic.is_empty();
        Ok(RunConfig {
            lanes,
            metrics,
            spans,
            models,
            topics: Topics {
                metrics: a.metrics_topic.clone(),
                window_stats: a.window_stats_topic.clone(),
                dlq: a.dlq_topic.clone(),
                spans: t.spans_topic.clone(),
                red: t.red_topic.clone(),
                critical_path: t.critical_path_topic.clone(),
                critical_path_share: t.critical_path_share_topic.clone(),
                service_map: t.service_map_topic.clone(),
                slo: t.slo_topic.clone(),
                service_map_current: t.service_map_current_topic.clone(),
                anomalies: a.models.anomalies_topic.clone(),
                forecasts: a.models.forecasts_topic.clone(),
                actions: suppressing.then(|| a.models.actions_topic.clone()),
                decisions: a.planner.decisions_topic.clone(),
            },
            planner,
            group: a.group.clone(),
            data_dir: a.data_dir.clone(),
            parquet_roll: a.parquet_roll,
            process: a.process,
            warm_start: a.models.warm_start,
            checkpoint_interval: a.checkpoint_interval,
            checkpoint_url: a.checkpoint_url.clone(),
            from_scratch: a.from_scratch,
        })
    }

    /// The metrics job's checkpoint directory.
    pub fn metrics_checkpoint_dir(&self) -> PathBuf {
        self.data_dir.join("checkpoints").join("metrics")
    }

    /// Why no job of this run takes checkpoints (`None`: each may).
    fn checkpoints_off(&self, processes: usize) -> Option<&'static str> {
        if self.checkpoint_interval.is_zero() {
            Some("--checkpoint-interval 0s")
        } else if processes > 1 {
            Some("checkpoints are taken in one process for now (-n 1)")
        } else {
            None
        }
    }

    /// Why the metrics job takes no checkpoints (`None`: it takes them).
    pub fn metrics_checkpoints_off(&self, processes: usize) -> Option<&'static str> {
        self.checkpoints_off(processes)
    }

    /// What the metrics job's state depends on: a checkpoint taken under other settings is
    /// refused.
    pub fn metrics_fingerprint(&self, workers: usize) -> String {
        let m = &self.metrics;
        format!(
            "metrics workers={workers} topic={} windows={:?} accuracy={} lateness={:?} \
             horizon={:?} idle={:?} limits={:?} attributes={:?} planner_attributes={:?} \
             cumulative={:?}",
            self.topics.metrics,
            m.window_seconds,
            m.relative_accuracy,
            self.lanes.lateness,
            self.lanes.horizon,
            self.lanes.idle_policy,
            m.series_limits,
            m.series_attributes(),
            self.planner.as_ref().map(|(c, _)| c.series_attributes()),
            m.cumulative,
        )
    }

    /// Where the trace job's checkpoints go.
    pub fn traces_checkpoint_dir(&self) -> PathBuf {
        self.data_dir.join("checkpoints").join("traces")
    }

    /// Why the trace job takes no checkpoints (`None`: it takes them).
    pub fn traces_checkpoints_off(&self, processes: usize) -> Option<&'static str> {
        self.checkpoints_off(processes)
    }

    /// What the trace job's state depends on: a checkpoint taken under other settings is
    /// refused.
    pub fn traces_fingerprint(&self, workers: usize) -> String {
        format!(
            "traces workers={workers} topic={} lateness={:?} horizon={:?} idle={:?} spans={:?}",
            self.topics.spans,
            self.lanes.lateness,
            self.lanes.horizon,
            self.lanes.idle_policy,
            self.spans,
        )
    }

    /// Every topic this run uses, inputs and outputs: what `--create-topics` creates (or what
    /// must exist without it).
    pub fn used_topics(&self) -> Vec<&str> {
        let t = &self.topics;
        let mut topics = vec![&t.metrics, &t.window_stats, &t.dlq];
        if self.spans.is_some() {
            topics.extend([
                &t.spans,
                &t.red,
                &t.critical_path,
                &t.critical_path_share,
                &t.service_map,
                &t.slo,
                &t.service_map_current,
            ]);
        }
        if self.models.is_some() {
            topics.extend([&t.anomalies, &t.forecasts]);
        }
        topics.extend(&t.actions);
        if self.planner.is_some() {
            topics.push(&t.decisions);
        }
        topics.into_iter().map(String::as_str).collect()
    }
}

/// The planner's rules file, checked against the run's windows, and its key.
fn planner_config(
    a: &RunArgs,
    metrics: &MetricsConfig,
    models: Option<&ModelConfig>,
) -> Result<Option<(PlannerConfig, SigningKey)>, RunError> {
    let Some(path) = &a.planner.file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| RunError::Config(format!("--planner {}: {e}", path.display())))?;
    let cfg = PlannerConfig::from_toml(&text)
        .map_err(|e| RunError::Config(format!("--planner {}: {e}", path.display())))?;
    if !metrics.window_seconds.contains(&cfg.window_seconds) {
        return Err(RunError::Config(format!(
            "--planner {}: window_seconds = {} is not one of --windows ({:?} s)",
            path.display(),
            cfg.window_seconds,
            metrics.window_seconds
        )));
    }
    if !cfg.circuit.is_empty() && !a.traces.enabled {
        return Err(RunError::Config(format!(
            "--planner {}: [[circuit]] edges are judged on the trace pipeline's service map, \
             which `--traces false` turns off",
            path.display()
        )));
    }
    if cfg.predictive() && models.is_none_or(|m| m.forecast_model.is_none()) {
        return Err(RunError::Config(format!(
            "--planner {}: a [scale.predictive] rule reads the forecasts, and this run makes \
             none (the models are off, or no forecast model: --forecast-model)",
            path.display()
        )));
    }
    let key = SigningKey::load(
        a.planner.decision_key_file.as_deref(),
        a.planner.decision_key_id.as_deref(),
    )
    .map_err(|e| {
        RunError::Config(format!(
            "the planner signs its decisions: {e} (--decision-key-file, or APO_DECISION_KEY)"
        ))
    })?;
    Ok(Some((cfg, key)))
}

fn whole_seconds(d: Duration, what: &str) -> Result<u32, RunError> {
    if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > u64::from(u32::MAX) {
        return Err(RunError::Config(format!(
            "{what} {d:?} must be a whole number of seconds"
        )));
    }
    Ok(d.as_secs() as u32)
}

fn metrics_config(a: &RunArgs) -> Result<MetricsConfig, RunError> {
    let mut windows = a
        .windows
        .iter()
        .map(|w| whole_seconds(*w, "window size"))
        .collect::<Result<Vec<_>, _>>()?;
    windows.sort_unstable();
    windows.dedup();
    let cfg = MetricsConfig {
        window_seconds: windows,
        relative_accuracy: a.accuracy,
        encoding: a.encoding,
        time_bounds: TimeBounds {
            max_age_ms: a.max_event_age.as_millis() as i64,
            max_future_ms: a.max_event_future.as_millis() as i64,
        },
        field_limits: FieldLimits {
            max_name_bytes: a.max_name_bytes,
            max_attributes: a.max_attributes,
            max_attribute_key_bytes: a.max_name_bytes,
            max_attribute_value_bytes: a.max_attribute_bytes,
        },
        series_limits: SeriesLimits {
            max_series: a.max_series,
            max_series_per_service: a.max_series_per_service,
            max_attribute_sets: a.max_attribute_sets,
        },
        series_attributes: a.series_attributes.clone(),
        cumulative: CumulativeConfig {
            silence: a.cumulative_silence,
            first_within: a.cumulative_first_within,
        },
    };
    cfg.validate()?;
    Ok(cfg)
}

fn lane_config(a: &RunArgs) -> Result<LaneConfig, RunError> {
    let cfg = LaneConfig {
        lateness: a.lateness,
        horizon: a.horizon,
        idle_timeout: a.idle_timeout,
        stuck_timeout: a.stuck_timeout,
        idle_policy: if a.idle_advance {
            IdlePolicy::Advance
        } else {
            IdlePolicy::Hold
        },
        drain: a.drain,
        drain_stall: a.drain_stall_timeout,
        max_messages_per_sec: a.max_messages_per_sec,
        ..Default::default()
    };
    cfg.validate()?;
    Ok(cfg)
}

fn model_config(a: &RunArgs) -> Result<Option<ModelConfig>, RunError> {
    let m = &a.models;
    if !m.enabled {
        return Ok(None);
    }
    let pick = |given: &Option<PathBuf>, default: &str, what: &str| {
        given.clone().or_else(|| {
            let p = Path::new(apo_models::DEFAULT_ARTIFACTS).join(default);
            if p.exists() {
                Some(p)
            } else {
                tracing::warn!("no {what} model at {} (run from the repository root, or give its path): {what} off", p.display());
                None
            }
        })
    };
    if let Some(d) = m.forecast_horizons.iter().find(|d| d.subsec_nanos() != 0) {
        return Err(RunError::Models(apo_models::ModelError::Input(format!(
            "--forecast-horizons: {d:?} is not a whole number of seconds"
        ))));
    }
    let cfg = ModelConfig {
        anomaly_model: pick(&m.anomaly_model, "iforest.onnx", "anomaly"),
        forecast_model: pick(&m.forecast_model, "lstm.onnx", "forecast"),
        alert: apo_models::alerting::AlertConfig {
            suppress_seconds: m.suppress_seconds,
            ..m.alert.config()
        },
        forecast_signal: m.forecast_signal,
        forecast_horizons: m.forecast_horizons.iter().map(|d| d.as_secs()).collect(),
        reload_check: m.model_reload_check,
    };
    if cfg.anomaly_model.is_none() && cfg.forecast_model.is_none() {
        return Ok(None);
    }
    cfg.check().map_err(RunError::Models)?;
    Ok(Some(cfg))
}

fn span_config(
    a: &RunArgs,
    lanes: &LaneConfig,
    metrics: &MetricsConfig,
) -> Result<SpanConfig, RunError> {
    let t = &a.traces;
    let window_seconds = whole_seconds(t.trace_window, "--trace-window")?;
    if t.max_trace_spans == 0 || t.max_held_spans == 0 {
        return Err(RunError::Config(
            "--max-trace-spans and --max-held-spans must be at least 1".into(),
        ));
    }
    let (objectives, burn) = super::slo_file::load(t.slo_file.as_deref())?;
    Ok(SpanConfig {
        window_seconds,
        relative_accuracy: metrics.relative_accuracy,
        max_operations: t.max_operations.max(1),
        max_share_rows: t.max_share_rows.max(1),
        assembly: AssemblyConfig {
            idle_ms: t.trace_idle.as_millis() as i64,
            max_spans_per_trace: t.max_trace_spans,
            max_spans_held: t.max_held_spans,
            horizon_ms: lanes.horizon.as_millis() as i64,
        },
        time_bounds: metrics.time_bounds,
        field_limits: metrics.field_limits,
        objectives,
        burn,
        map_horizon_ms: t.map_horizon.as_millis().max(1) as i64,
        peer_attributes: t
            .peer_attributes
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        run: RunArgs,
    }

    fn config(args: &[&str]) -> Result<RunConfig, RunError> {
        let mut argv = vec!["apo", "--models", "false"];
        argv.extend(args);
        RunConfig::from_args(&Cmd::parse_from(argv).run)
    }

    #[test]
    fn the_default_topics_are_the_apo_prefix() {
        let got = config(&[]).unwrap().topics;
        let want = Topics::with_prefix("apo");
        let names = |t: &Topics| {
            [
                &t.metrics,
                &t.window_stats,
                &t.dlq,
                &t.spans,
                &t.red,
                &t.critical_path,
                &t.critical_path_share,
                &t.service_map,
                &t.slo,
                &t.service_map_current,
                &t.anomalies,
                &t.forecasts,
            ]
            .map(String::clone)
        };
        assert_eq!(names(&got), names(&want));
        // no models, so no suppression and no actions topic
        assert_eq!(got.actions, None);
        assert_eq!(
            Cmd::parse_from(["apo"]).run.models.actions_topic,
            want.actions.unwrap()
        );
    }

    #[test]
    fn used_topics_follow_what_is_on() {
        let all = config(&[]).unwrap();
        assert_eq!(all.used_topics().len(), 10);
        let metrics_only = config(&["--traces", "false"]).unwrap();
        assert_eq!(
            metrics_only.used_topics(),
            vec!["apo.metrics", "apo.window_stats", "apo.dlq"]
        );
    }

    #[test]
    fn bad_settings_name_their_flag() {
        let err = |args: &[&str]| config(args).unwrap_err().to_string();
        assert!(err(&["--windows", "1500ms"]).contains("whole number of seconds"));
        assert!(err(&["--trace-window", "0s"]).contains("--trace-window"));
        assert!(err(&["--max-trace-spans", "0"]).contains("--max-trace-spans"));
    }

    #[test]
    fn a_predictive_rule_needs_the_forecasts() {
        let dir = tempfile::tempdir().unwrap();
        let planner = dir.path().join("planner.toml");
        std::fs::write(
            &planner,
            "[[scale]]\ntarget = \"a\"\nmax_replicas = 5\n\
             metrics = [{ name = \"cpu\", average_value = 0.5 }]\n\
             [scale.predictive]\nmetric = \"requests\"\ncapacity_per_replica = 10\n",
        )
        .unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
        let (p, k) = (planner.display().to_string(), key.display().to_string());
        let args = ["--planner", p.as_str(), "--decision-key-file", k.as_str()];
        let e = config(&args).unwrap_err().to_string();
        assert!(
            e.contains("[scale.predictive] rule reads the forecasts"),
            "{e}"
        );
    }
}
