//! `apo-dataflow`: the timely dataflow jobs, one folder per concept.
//!
//! - [`engine`]-level items: the worker loop ([`run_lanes`], [`run_job`]) over lanes
//!   ([`JobLane`]: one input topic each), the [`Job`] contract, the durable sink operator
//!   behind [`RowSink`], offsets safe to commit, [`Progress`], [`LaneConfig`] (what every lane needs);
//! - `ops`: window keys and partial aggregates, [`DDSketch`], event-time windows with
//!   revisions ([`window_operator`]), stashing by time, offloading work to a thread;
//! - `metrics`: the metrics pipeline ([`MetricsJob`], [`MetricsConfig`]);
//! - `traces`: the trace pipeline ([`SpanJob`]): RED, SLOs, assembly, critical paths, shares,
//!   the service map and its current view;
//! - `decisions`: the planner ([`PlannerStage`]) and its rules: the HPA's arithmetic
//!   ([`desired_replicas`], [`Autoscaler`]);
//! - `models`: anomaly scores and forecasts of closed windows, per-series state, warm start.
//!
//! Modules are private to the crate; what the binary, the sinks and the tests use is
//! re-exported here. `docs/ARCHITECTURE.md` describes how the parts fit.

mod decisions;
mod engine;
mod metrics;
mod models;
mod ops;
#[cfg(feature = "test-util")]
pub mod testing;
mod traces;

pub use apo_core::{MemorySink, RowSink, SinkError, OUTPUT_DELAY_BOUND};
pub use decisions::circuit::operator::CIRCUIT_RULE;
pub use decisions::config::{
    MetricTarget, PlannerConfig, ScaleTarget, TargetSignal, DEFAULT_REPLICAS_METRIC,
    DEFAULT_TOLERANCE,
};
pub use decisions::hpa::behavior::{
    Autoscaler, Behavior, Limit, PolicyKind, ScalingPolicy, ScalingRules, SelectPolicy,
};
pub use decisions::hpa::calculator::{
    desired_from_average, desired_replicas, largest_proposal, CalculatorError, PodSample,
};
pub use decisions::planner::{
    planner_operator, PlannerStage, CACHE_RULE, CANARY_RULE, HPA_RULE, POOL_RULE, PREDICTIVE_RULE,
};
pub use decisions::predictive::{quantile_name, DEFAULT_BURST_UTILIZATION, UPPER_QUANTILE};
pub use engine::budget::{resident_bytes, BudgetUse, MemoryBudget};
pub use engine::checkpoint::{
    Checkpoints, LaneState, Manifest, RestoreError, Store as CheckpointStore, StoreError, Taken,
    KEEP as CHECKPOINTS_KEPT,
};
pub use engine::config::{IdlePolicy, LaneConfig, TICK_MS};
pub use engine::context::BuildContext;
pub use engine::error::PipelineError;
pub use engine::job::{crosses, Decoded, Job};
pub use engine::lane::{JobLane, Lane, WorkerReport};
pub use engine::progress::{percentile, Latency, Progress, StuckPartition};
pub use engine::sink::{sink_operator, tracked_sink, RowsCallback, SinkState};
pub use engine::worker::{run_job, run_lanes};
pub use metrics::config::MetricsConfig;
pub use metrics::cumulative::CumulativeConfig;
pub use metrics::job::{MetricsJob, ModelStage};
pub use metrics::series_limit::{SeriesLimits, OVERFLOW};
pub use models::anomaly::{anomaly_warm_windows, StateInputs};
pub use models::config::{ModelConfig, Signal};
pub use models::series::{red_series_name, Scorable, SeriesKey};
pub use models::warm::{Loader, PastWindows};
pub use ops::held::Held;
pub use ops::sketch::DDSketch;
pub use ops::window::window_operator;
pub use traces::assembly::{AssembledTrace, AssemblyConfig, Emitted, TraceAssembler};
pub use traces::critical_path::{critical_path, Segment};
pub use traces::job::{CircuitStage, RedAnomalies, SpanConfig, SpanJob, SpanSinks};
pub use traces::map_view::current_map;
pub use traces::path_share::{path_record, SharePartial, ShareWindow};
pub use traces::red::{RedPartial, RedWindow};
pub use traces::service_map::{
    attribute_critical, default_peer_attributes, trace_edges, trace_edges_with, Edge, EdgeCall,
    EdgePartial, EdgeWindow, DEFAULT_PEER_ATTRIBUTES, USER,
};
pub use traces::slo::{
    default_objectives, AlertPair, BurnConfig, BurnTracker, Indicator, Objective,
};
pub use traces::trace_ops::assemble_traces;
