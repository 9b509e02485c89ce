//! JSON Schema documents for producers and consumers of APO's JSON topics.
//!
//! The committed files under `schemas/json/` are generated from the Rust types; a test fails when
//! they drift. Regenerate with `cargo run -p apo-schemas --example write_json_schemas`.

use crate::action::ActionRecord;
use crate::critical_path::{CriticalPathRecord, CriticalPathShare};
use crate::decision::Decision;
use crate::model_output::{AnomalyRecord, ForecastRecord};
use crate::overrides::Override;
use crate::red::RedStats;
use crate::service_map::{ServiceMapCurrent, ServiceMapEdge};
use crate::slo::SloState;
use crate::{MetricPoint, Span, WindowStats};

/// (file name, pretty-printed schema) for every JSON record type.
pub fn all() -> Vec<(&'static str, String)> {
    let render = |s: schemars::Schema| {
        let mut text = serde_json::to_string_pretty(&s).unwrap_or_default();
        text.push('\n');
        text
    };
    vec![
        (
            "action.schema.json",
            render(schemars::schema_for!(ActionRecord)),
        ),
        (
            "anomaly.schema.json",
            render(schemars::schema_for!(AnomalyRecord)),
        ),
        (
            "decision.schema.json",
            render(schemars::schema_for!(Decision)),
        ),
        (
            "forecast.schema.json",
            render(schemars::schema_for!(ForecastRecord)),
        ),
        (
            "override.schema.json",
            render(schemars::schema_for!(Override)),
        ),
        (
            "metric_point.schema.json",
            render(schemars::schema_for!(MetricPoint)),
        ),
        (
            "critical_path.schema.json",
            render(schemars::schema_for!(CriticalPathRecord)),
        ),
        (
            "critical_path_share.schema.json",
            render(schemars::schema_for!(CriticalPathShare)),
        ),
        ("red.schema.json", render(schemars::schema_for!(RedStats))),
        (
            "service_map.schema.json",
            render(schemars::schema_for!(ServiceMapEdge)),
        ),
        (
            "service_map_current.schema.json",
            render(schemars::schema_for!(ServiceMapCurrent)),
        ),
        ("slo.schema.json", render(schemars::schema_for!(SloState))),
        ("span.schema.json", render(schemars::schema_for!(Span))),
        (
            "window_stats.schema.json",
            render(schemars::schema_for!(WindowStats)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_schemas_match_the_types() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
        for (name, text) in super::all() {
            let on_disk = std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}; run the write_json_schemas example"));
            assert_eq!(
                on_disk, text,
                "{name} is stale: run the write_json_schemas example"
            );
        }
    }
}
