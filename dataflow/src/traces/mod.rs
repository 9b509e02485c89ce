//! The trace pipeline: RED and SLO burn rates per service window, traces assembled within
//! bounds, their critical paths (Jaeger's algorithm) and critical-path shares, service-map
//! edges per window (producer → consumer pairs across traces joined by their span links) and
//! the current map over a sliding horizon (differential dataflow).

pub(crate) mod assembly;
pub(crate) mod critical_path;
pub(crate) mod job;
pub(crate) mod links;
pub(crate) mod map_view;
pub(crate) mod path_share;
pub(crate) mod red;
pub(crate) mod service_map;
pub(crate) mod slo;
pub(crate) mod slo_ops;
pub(crate) mod trace_ops;
