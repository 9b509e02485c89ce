//! The fleet's control API: what the actuators' executors ask of the simulation and what it
//! shows them. [`board`] holds the asked-for replicas and settings (bounded, versioned) and the
//! commands for the simulation to take; [`http`] serves it as the `webhook` executor's endpoint
//! and the `apps/v1` scale subresource the `kubernetes` executor calls, so both drive the
//! simulation unchanged.

pub mod board;
pub mod http;
