//! Every Parquet table's columns, in order: the one declaration of each (see [`crate::table!`]).
//! Integer fields narrower or unsigned are stored as Int64 (counts, window sizes) or Int32
//! (revisions, ranks); event times as UTC timestamps; RED's dotted spanmetrics names become
//! underscores (`service_name`, …).

use crate::action::ActionRecord;
use crate::critical_path::{CriticalPathRecord, CriticalPathShare};
use crate::decision::Decision;
use crate::model_output::{AnomalyRecord, ForecastRecord};
use crate::red::RedStats;
use crate::service_map::{ServiceMapCurrent, ServiceMapEdge};
use crate::slo::SloState;
use crate::table;
use crate::WindowStats;

table!(WindowStats => "window_stats" key [service, metric, attributes, window_seconds, window_start] {
    service: Utf8,
    metric: Utf8,
    attributes: Map,
    unit: Utf8,
    window_seconds: Int64 as u32,
    window_start: TimestampMs,
    window_end: TimestampMs,
    count: Int64 as u64,
    sum: Float64,
    min: Float64,
    max: Float64,
    mean: Float64,
    p50: Float64,
    p90: Float64,
    p95: Float64,
    p99: Float64,
    p999: Float64,
    relative_accuracy: Float64,
    revision: Int32 as u32,
});

table!(RedStats => "red" key [service_name, span_name, span_kind, status_code, window_seconds, window_start] {
    service_name: Utf8,
    span_name: Utf8,
    span_kind: Utf8,
    status_code: Utf8,
    window_seconds: Int64 as u32,
    window_start: TimestampMs,
    window_end: TimestampMs,
    calls: Int64 as u64,
    rate: Float64,
    operation_errors: Int64 as u64,
    operation_calls: Int64 as u64,
    error_ratio: Float64,
    duration_sum_ms: Float64,
    duration_min_ms: Float64,
    duration_max_ms: Float64,
    duration_mean_ms: Float64,
    duration_p50_ms: Float64,
    duration_p90_ms: Float64,
    duration_p95_ms: Float64,
    duration_p99_ms: Float64,
    duration_p999_ms: Float64,
    relative_accuracy: Float64,
    overflow: Bool,
    overflow_operations: Int64 as u64,
    revision: Int32 as u32,
});

/// A critical path's segments as a JSON array (`[{"span_id", "service", "operation",
/// "start_ns", "end_ns"}, …]`).
pub fn critical_path_segments(r: &CriticalPathRecord) -> String {
    serde_json::to_string(&r.segments).unwrap_or_default()
}

table!(CriticalPathRecord => "critical_path" key [trace_id, fragment] {
    trace_id: Utf8,
    fragment: Int64 as u32,
    complete: Bool,
    emitted: Utf8,
    root_service: Utf8,
    root_operation: Utf8,
    spans: Int64 as u64,
    start = start_ns: TimestampNs,
    end = end_ns: TimestampNs,
    duration_ms: Float64,
    segments: Text(critical_path_segments),
});

table!(CriticalPathShare => "critical_path_share" key [window_seconds, window_start, service, operation] {
    window_seconds: Int64 as u32,
    window_start: TimestampMs,
    window_end: TimestampMs,
    service: Utf8,
    operation: Utf8,
    rank: Int32 as u32,
    critical_ms: Float64,
    share: Float64,
    traces: Int64 as u64,
    window_traces: Int64 as u64,
    revision: Int32 as u32,
});

table!(ServiceMapEdge => "service_map" key [client, server, connection_type, window_seconds, window_start] {
    client: Utf8,
    server: Utf8,
    connection_type: Utf8,
    window_seconds: Int64 as u32,
    window_start: TimestampMs,
    window_end: TimestampMs,
    calls: Int64 as u64,
    failed: Int64 as u64,
    latency_mean_ms: Float64,
    latency_p50_ms: Float64,
    latency_p95_ms: Float64,
    latency_p99_ms: Float64,
    latency_max_ms: Float64,
    // Nullable: the files written before these columns stay readable.
    server_latency_mean_ms: OptFloat64(edge_server_latency_mean_ms),
    server_latency_p50_ms: OptFloat64(edge_server_latency_p50_ms),
    server_latency_p95_ms: OptFloat64(edge_server_latency_p95_ms),
    server_latency_p99_ms: OptFloat64(edge_server_latency_p99_ms),
    server_latency_max_ms: OptFloat64(edge_server_latency_max_ms),
    critical_path_ms: Float64,
    relative_accuracy: Float64,
    revision: Int32 as u32,
});

table!(SloState => "slo" key [objective, service, window_seconds, window_start] {
    objective: Utf8,
    service: Utf8,
    description: Utf8,
    target: Float64,
    window_seconds: Int64 as u32,
    window_start: TimestampMs,
    window_end: TimestampMs,
    events: Int64 as u64,
    bad_events: Int64 as u64,
    sli: Float64,
    compliant: Bool,
    burn_fast_long: Float64,
    burn_fast_short: Float64,
    burn_slow_long: Float64,
    burn_slow_short: Float64,
    // Nullable: the files written before these columns stay readable.
    burn_ticket_long: OptFloat64(slo_burn_ticket_long),
    burn_ticket_short: OptFloat64(slo_burn_ticket_short),
    burn_ticket_slow_long: OptFloat64(slo_burn_ticket_slow_long),
    burn_ticket_slow_short: OptFloat64(slo_burn_ticket_slow_short),
    budget_remaining: OptFloat64(slo_budget_remaining),
    alert: Utf8,
    revision: Int32 as u32,
});

table!(ServiceMapCurrent => "service_map_current" key [client, server, connection_type, horizon_seconds, as_of, change] {
    client: Utf8,
    server: Utf8,
    connection_type: Utf8,
    change: Utf8,
    horizon_seconds: Int64 as u32,
    as_of: TimestampMs,
    windows: Int64 as u32,
    calls: Int64 as u64,
    failed: Int64 as u64,
    error_ratio: Float64,
    latency_mean_ms: Float64,
    latency_max_ms: Float64,
    worst_window_p95_ms: Float64,
    latency_p50_ms: Float64,
    latency_p95_ms: Float64,
    latency_p99_ms: Float64,
    relative_accuracy: Float64,
    revision: Int32 as u32,
});

/// An anomaly's drivers as `feature=value` pairs joined by commas, largest first.
pub fn drivers_text(r: &AnomalyRecord) -> String {
    r.drivers
        .iter()
        .map(|d| format!("{}={:.2}", d.feature, d.value))
        .collect::<Vec<_>>()
        .join(",")
}

table!(AnomalyRecord => "anomalies" key [service, metric, attributes, window_seconds, window_start] {
    service: Utf8,
    metric: Utf8,
    attributes: Map,
    window_seconds: Int64 as u32,
    window_start: TimestampMs,
    window_end: TimestampMs,
    score: Float64,
    threshold: Float64,
    likelihood: Float64,
    context_score: OptFloat64,
    is_anomaly: Bool,
    raised: Bool,
    suppressed: Bool,
    drivers: Text(drivers_text),
    model_version: Utf8,
    revision: Int32 as u32,
});

table!(ForecastRecord => "forecasts" key [service, metric, attributes, signal, window_seconds, window_start, horizon_seconds] {
    service: Utf8,
    metric: Utf8,
    attributes: Map,
    signal: Utf8,
    window_seconds: Int64 as u32,
    window_start: TimestampMs,
    window_end: TimestampMs,
    horizon_seconds: Int64 as u64,
    target_time: TimestampMs,
    value: Float64,
    lower: Float64,
    upper: Float64,
    model_version: Utf8,
    revision: Int32 as u32,
});

/// A decision's action by name (`scale`, …).
pub fn decision_action(d: &Decision) -> &str {
    d.action.as_str()
}

/// A circuit decision's peer (null for other actions).
pub fn circuit_peer(d: &Decision) -> Option<&str> {
    d.circuit.as_ref().map(|c| c.peer.as_str())
}

/// A circuit decision's state to take (null for other actions).
pub fn circuit_state(d: &Decision) -> Option<&str> {
    d.circuit.as_ref().map(|c| c.state.as_str())
}

/// How long an opened circuit stays open, ms (null unless a circuit is opened).
pub fn circuit_open_for_ms(d: &Decision) -> Option<i64> {
    d.circuit.as_ref().and_then(|c| c.open_for_ms)
}

/// An edge's mean server-side latency.
pub fn edge_server_latency_mean_ms(e: &ServiceMapEdge) -> Option<f64> {
    Some(e.server_latency_mean_ms)
}

/// An edge's median server-side latency.
pub fn edge_server_latency_p50_ms(e: &ServiceMapEdge) -> Option<f64> {
    Some(e.server_latency_p50_ms)
}

/// An edge's 95th percentile of server-side latency.
pub fn edge_server_latency_p95_ms(e: &ServiceMapEdge) -> Option<f64> {
    Some(e.server_latency_p95_ms)
}

/// An edge's 99th percentile of server-side latency.
pub fn edge_server_latency_p99_ms(e: &ServiceMapEdge) -> Option<f64> {
    Some(e.server_latency_p99_ms)
}

/// An edge's longest server-side latency.
pub fn edge_server_latency_max_ms(e: &ServiceMapEdge) -> Option<f64> {
    Some(e.server_latency_max_ms)
}

/// The SLO record's burn over the ticket pair's long window.
pub fn slo_burn_ticket_long(s: &SloState) -> Option<f64> {
    Some(s.burn_ticket_long)
}

/// The SLO record's burn over the ticket pair's short window.
pub fn slo_burn_ticket_short(s: &SloState) -> Option<f64> {
    Some(s.burn_ticket_short)
}

/// The SLO record's burn over the slow ticket pair's long window.
pub fn slo_burn_ticket_slow_long(s: &SloState) -> Option<f64> {
    Some(s.burn_ticket_slow_long)
}

/// The SLO record's burn over the slow ticket pair's short window.
pub fn slo_burn_ticket_slow_short(s: &SloState) -> Option<f64> {
    Some(s.burn_ticket_slow_short)
}

/// The SLO record's remaining error budget of its period.
pub fn slo_budget_remaining(s: &SloState) -> Option<f64> {
    Some(s.budget_remaining)
}

/// A tune decision's setting (null for other actions).
pub fn tune_setting(d: &Decision) -> Option<&str> {
    d.tune.as_ref().map(|t| t.setting.as_str())
}

/// A tune decision's value as the rule saw it (null for other actions, or unknown).
pub fn tune_from(d: &Decision) -> Option<f64> {
    d.tune.as_ref().and_then(|t| t.from)
}

/// A tune decision's value asked for (null for other actions).
pub fn tune_to(d: &Decision) -> Option<f64> {
    d.tune.as_ref().map(|t| t.to)
}

/// A decision's evidence as a JSON array (`[{"metric", "statistic", "window_seconds",
/// "window_start", "value", "target"}, …]`).
pub fn evidence_json(d: &Decision) -> String {
    serde_json::to_string(&d.evidence).unwrap_or_default()
}

table!(Decision => "decisions" key [id] {
    id: Utf8,
    target: Utf8,
    action: Utf8(decision_action),
    rule: Utf8,
    replicas_from: OptInt64 as u32,
    replicas_to: OptInt64 as u32,
    circuit_peer: OptUtf8(circuit_peer),
    circuit_state: OptUtf8(circuit_state),
    circuit_open_for_ms: OptInt64(circuit_open_for_ms),
    tune_setting: OptUtf8(tune_setting),
    tune_from: OptFloat64(tune_from),
    tune_to: OptFloat64(tune_to),
    reason: Utf8,
    evidence: Text(evidence_json),
    window_seconds: Int64 as u32,
    window_start: TimestampMs,
    window_end: TimestampMs,
    issued_at: TimestampMs,
    expires_at: TimestampMs,
    revision: Int32 as u32,
    key_id: Utf8,
    signature: Utf8,
});

/// An audit record's outcome by name (`succeeded`, …).
pub fn action_outcome(r: &ActionRecord) -> &str {
    r.outcome.as_str()
}

table!(ActionRecord => "actions" {
    decision_id: Utf8,
    target: Utf8,
    action: Utf8,
    executed_at: TimestampMs,
    actor: Utf8,
    outcome: Utf8(action_outcome),
    detail: OptUtf8,
});

/// A table's name, schema and key ([`super::Table::KEY`]).
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Its name, the folder of its files and its name in SQL.
    pub name: &'static str,
    /// Its columns.
    pub schema: arrow_schema::SchemaRef,
    /// The columns naming a row's subject (empty: every row is its own).
    pub key: &'static [&'static str],
}

/// Every table, with its schema and key: what `apo sql` registers (even when still empty). A new
/// table is one line here beside its declaration above.
pub fn every_table() -> Vec<TableInfo> {
    use super::{schema, Table};
    fn entry<T: Table>() -> TableInfo {
        TableInfo {
            name: T::NAME,
            schema: schema::<T>(),
            key: T::KEY,
        }
    }
    vec![
        entry::<WindowStats>(),
        entry::<RedStats>(),
        entry::<CriticalPathRecord>(),
        entry::<CriticalPathShare>(),
        entry::<ServiceMapEdge>(),
        entry::<SloState>(),
        entry::<AnomalyRecord>(),
        entry::<ForecastRecord>(),
        entry::<ServiceMapCurrent>(),
        entry::<Decision>(),
        entry::<ActionRecord>(),
    ]
}
