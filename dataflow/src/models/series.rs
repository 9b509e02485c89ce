//! What a model sees of a windowed row: its series key, its service and its signals
//! ([`Scorable`], for window statistics and RED rows).

use apo_models::features;
use apo_schemas::attributes::Attributes;
use apo_schemas::red::RedStats;
use apo_schemas::{OutputRow, WindowStats};

/// (service, series name, window seconds). A metric's series name is the metric with its series
/// attributes, as Prometheus writes a series (`metric{key="value",…}`,
/// [`apo_schemas::attributes::series_text`]): each attribute series has its own state.
pub type SeriesKey = (String, String, u32);

pub(crate) fn window_ms(k: &SeriesKey) -> i64 {
    i64::from(k.2) * 1000
}

/// A closed window of one series that the isolation forest scores.
pub trait Scorable: OutputRow + Clone + 'static {
    /// The series: (service, name, window seconds); names are unique within a service, and
    /// actions on the service suppress the series' alerts.
    fn series(&self) -> SeriesKey;
    /// The name its records carry: the metric, or a RED row's series name.
    fn name(&self) -> String;
    /// The series attributes its records carry (none for a RED row).
    fn attributes(&self) -> Attributes;
    /// p50, p95, p99, rate and error ratio of the window.
    fn signals(&self) -> features::Signals;
}

impl Scorable for WindowStats {
    fn series(&self) -> SeriesKey {
        (
            self.service.clone(),
            self.series_text(),
            self.window_seconds,
        )
    }
    fn name(&self) -> String {
        self.metric.clone()
    }
    fn attributes(&self) -> Attributes {
        self.attributes.clone()
    }
    /// Metrics carry no errors: error ratio 0.
    fn signals(&self) -> features::Signals {
        [
            self.p50,
            self.p95,
            self.p99,
            self.count as f64 / f64::from(self.window_seconds.max(1)),
            0.0,
        ]
    }
}

/// The series name of a RED row in `apo.anomalies`: its dimensions, Prometheus style.
pub fn red_series_name(r: &RedStats) -> String {
    format!(
        "red{{span.name=\"{}\",span.kind=\"{}\",status.code=\"{}\"}}",
        r.span_name, r.span_kind, r.status_code
    )
}

impl Scorable for RedStats {
    fn series(&self) -> SeriesKey {
        (
            self.service_name.clone(),
            red_series_name(self),
            self.window_seconds,
        )
    }
    fn name(&self) -> String {
        red_series_name(self)
    }
    fn attributes(&self) -> Attributes {
        Attributes::new()
    }
    /// Span durations (ms), calls per second, and the operation's error ratio.
    fn signals(&self) -> features::Signals {
        [
            self.duration_p50_ms,
            self.duration_p95_ms,
            self.duration_p99_ms,
            self.rate,
            self.error_ratio,
        ]
    }
}
