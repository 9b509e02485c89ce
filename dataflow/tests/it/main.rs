//! The integration tests of this crate, in one binary (one link of timely, rdkafka,
//! DataFusion and tract instead of one per file); a module per former test file.

mod assembly_bounds;
mod configs;
mod critical_path_cases;
mod generated_traces;
mod map_view_retraction;
mod path_share_exact;
mod red_exact;
mod red_windows;
mod service_map_edges;
mod slo_burn;
mod span_job;
mod trace_assembly_dataflow;
mod windows_exact;
