//! `apo-actuators`: consumers of `apo.decisions`, their safety policy, executors (Kubernetes,
//! webhook, log) and the `apo.actions` audit trail (DESIGN.md §1–§2). Nothing here yet.
