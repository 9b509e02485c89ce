//! The models in the stream: what a model sees of a window ([`Scorable`](series::Scorable)),
//! the anomaly and forecast operators, closed windows batched for a model thread, per-series
//! state dropped when a series falls silent, and the warm start from past windows.

pub(crate) mod anomaly;
pub(crate) mod batch;
pub(crate) mod config;
pub(crate) mod forecast;
pub(crate) mod series;
pub(crate) mod state;
pub(crate) mod warm;
