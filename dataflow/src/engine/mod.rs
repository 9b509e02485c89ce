//! The engine every job runs on: the worker loop over lanes, a lane (one input topic: source,
//! watermark, late data, feed, commits), the [`Job`](job::Job) contract, the durable sink
//! operator, offsets safe to commit, live progress, and their settings and errors. Nothing here
//! knows metrics, traces or models.

pub(crate) mod budget;
pub(crate) mod checkpoint;
pub(crate) mod commit;
pub(crate) mod config;
pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod job;
pub(crate) mod lane;
pub(crate) mod progress;
pub(crate) mod sink;
pub(crate) mod worker;
