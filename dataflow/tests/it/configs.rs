//! The library's settings load from TOML as serde structs: missing keys take the defaults,
//! durations read as humantime, unknown keys are errors naming the key.

use std::time::Duration;

use apo_dataflow::{AssemblyConfig, LaneConfig, MetricsConfig, ModelConfig, Signal, SpanConfig};
use apo_ingest::decode::Encoding;

#[test]
fn settings_load_from_toml_with_defaults() {
    let lane: LaneConfig =
        toml::from_str("lateness = \"2s\"\nhorizon = \"10m\"\ndrain = true").unwrap();
    assert_eq!(lane.lateness, Duration::from_secs(2));
    assert_eq!(lane.horizon, Duration::from_secs(600));
    assert!(lane.drain);
    assert_eq!(lane.idle_timeout, LaneConfig::default().idle_timeout);

    let metrics: MetricsConfig = toml::from_str(
        "window_seconds = [5, 60]\nencoding = \"otlp\"\n[time_bounds]\nmax_age_ms = 1000",
    )
    .unwrap();
    assert_eq!(metrics.window_seconds, vec![5, 60]);
    assert_eq!(metrics.encoding, Encoding::Otlp);
    assert_eq!(metrics.time_bounds.max_age_ms, 1000);
    assert_eq!(
        metrics.time_bounds.max_future_ms,
        MetricsConfig::default().time_bounds.max_future_ms
    );
    assert_eq!(metrics.relative_accuracy, 0.01);

    let spans: SpanConfig =
        toml::from_str("window_seconds = 30\n[assembly]\nidle_ms = 5000").unwrap();
    assert_eq!(spans.window_seconds, 30);
    assert_eq!(spans.assembly.idle_ms, 5000);
    assert_eq!(
        spans.assembly.max_spans_held,
        AssemblyConfig::default().max_spans_held
    );
    assert_eq!(spans.objectives, SpanConfig::default().objectives);

    let models: ModelConfig = toml::from_str(
        "forecast_signal = \"p95\"\nreload_check = \"1m\"\n[alert]\nraise_after = 2",
    )
    .unwrap();
    assert_eq!(models.forecast_signal, Signal::P95);
    assert_eq!(models.reload_check, Duration::from_secs(60));
    assert_eq!(models.alert.raise_after, 2);
    assert!(models.anomaly_model.is_none());
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    let err = |r: Result<(), toml::de::Error>| r.unwrap_err().to_string();
    let lane = err(toml::from_str::<LaneConfig>("latenes = \"2s\"").map(|_| ()));
    assert!(lane.contains("latenes"), "{lane}");
    let metrics = err(toml::from_str::<MetricsConfig>("encoding = \"xml\"").map(|_| ()));
    assert!(metrics.contains("unknown encoding `xml`"), "{metrics}");
    let spans = err(toml::from_str::<SpanConfig>("objectives = []").map(|_| ()));
    assert!(spans.contains("objectives"), "{spans}");
    let models = err(toml::from_str::<ModelConfig>("reload_check = \"soon\"").map(|_| ()));
    assert!(
        models.contains("reload_check") || models.contains("soon"),
        "{models}"
    );
    let signal = err(toml::from_str::<ModelConfig>("forecast_signal = \"p42\"").map(|_| ()));
    assert!(signal.contains("p42"), "{signal}");
}
