//! The integration tests of this crate, in one binary (one link of timely, rdkafka,
//! DataFusion and tract instead of one per file); a module per former test file.

mod audit_tables;
mod trace_tables;
