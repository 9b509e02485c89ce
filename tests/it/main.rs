//! The integration tests of this crate, in one binary (one link of timely, rdkafka,
//! DataFusion and tract instead of one per file); a module per former test file.

mod actuate;
mod broker_cmd;
mod broker_outage;
mod chaos;
mod checkpoints;
mod cli;
mod common;
mod decisions;
mod drain_broker_loss;
mod embedded;
mod kafka_source;
mod memory_budget;
mod models_kafka;
mod offline;
mod otlp_sdk;
mod pipeline_kafka;
mod poison;
mod series_limits;
mod sim;
mod traces_kafka;
mod watermarks;
