//! The metrics job's settings: its window sizes, the sketches' accuracy, the input encoding and
//! the validity bounds of a point's timestamp and fields.

use apo_ingest::decode::{Encoding, FieldLimits, TimeBounds};
use apo_schemas::attributes::SeriesAttributeKeys;

use crate::engine::error::PipelineError;
use crate::metrics::cumulative::CumulativeConfig;
use crate::metrics::series_limit::SeriesLimits;

/// Settings of the metrics job (see `apo run --help` for their meaning and defaults); unknown
/// keys in a file are errors, missing ones default.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Tumbling window sizes, whole seconds.
    pub window_seconds: Vec<u32>,
    /// Relative accuracy of the percentiles (DDSketch alpha).
    pub relative_accuracy: f64,
    /// How messages are decoded (detected per message by default).
    pub encoding: Encoding,
    /// How old or how far in the future a point may be.
    pub time_bounds: TimeBounds,
    /// How long a point's names and how many and how long its tags may be.
    pub field_limits: FieldLimits,
    /// How many series may be live at once.
    pub series_limits: SeriesLimits,
    /// How the streams of cumulative points are kept.
    pub cumulative: CumulativeConfig,
    /// The attribute keys that split a metric's series (`None`: the semantic conventions'
    /// defaults, [`apo_schemas::attributes::DEFAULT_SERIES_ATTRIBUTES`]; empty: none).
    pub series_attributes: Option<Vec<String>>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            window_seconds: vec![10, 60],
            relative_accuracy: 0.01,
            encoding: Encoding::Auto,
            time_bounds: TimeBounds::default(),
            field_limits: FieldLimits::default(),
            series_limits: SeriesLimits::default(),
            cumulative: CumulativeConfig::default(),
            series_attributes: None,
        }
    }
}

impl MetricsConfig {
    /// The attribute keys that split series.
    pub fn series_attributes(&self) -> SeriesAttributeKeys {
        match &self.series_attributes {
            None => SeriesAttributeKeys::default(),
            Some(keys) => SeriesAttributeKeys::new(keys.iter().cloned()),
        }
    }

    /// Errors on window sizes or an accuracy the job cannot run with.
    pub fn validate(&self) -> Result<(), PipelineError> {
        let bad = |m: String| Err(PipelineError::Config(m));
        if self.window_seconds.is_empty() || self.window_seconds.contains(&0) {
            return bad("window sizes must be whole seconds, at least one, none zero".into());
        }
        if !(self.relative_accuracy > 0.0 && self.relative_accuracy < 1.0) {
            return bad(format!(
                "relative accuracy must be in (0, 1), got {}",
                self.relative_accuracy
            ));
        }
        let f = &self.field_limits;
        if f.max_name_bytes == 0
            || f.max_attribute_key_bytes == 0
            || f.max_attribute_value_bytes == 0
        {
            return bad(format!(
                "name and attribute length limits must be at least 1 byte (got --max-name-bytes \
                 {} and --max-attribute-bytes {}): 0 would send every record to the dead-letter \
                 topic",
                f.max_name_bytes, f.max_attribute_value_bytes
            ));
        }
        let s = &self.series_limits;
        if s.max_series == 0 || s.max_series_per_service == 0 || s.max_attribute_sets == 0 {
            return bad(format!(
                "series limits must be at least 1 (got --max-series {}, \
                 --max-series-per-service {} and --max-attribute-sets {}): 0 would fold every \
                 series into the overflow",
                s.max_series, s.max_series_per_service, s.max_attribute_sets
            ));
        }
        let c = &self.cumulative;
        if c.silence.is_zero() || c.silence < c.first_within {
            return bad(format!(
                "a cumulative stream's silence ({:?}) must be positive and at least its \
                 first-point window ({:?})",
                c.silence, c.first_within
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_cumulative_silence_shorter_than_the_first_point_window_is_refused() {
        let mut c = MetricsConfig::default();
        assert!(c.validate().is_ok());
        c.cumulative.silence = Duration::from_secs(60);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("silence"), "{err}");
        c.cumulative.silence = Duration::ZERO;
        c.cumulative.first_within = Duration::ZERO;
        assert!(c.validate().is_err());
    }
}
