//! Generic operators and the state they keep: window keys and partial aggregates, the DDSketch,
//! event-time tumbling windows with revisions, stashing by time, and work offloaded to a thread
//! of its own. Used by the metrics, trace and model stages alike.

pub(crate) mod aggregate;
pub(crate) mod exact_sum;
pub(crate) mod held;
pub(crate) mod offload;
pub(crate) mod route;
pub(crate) mod sketch;
pub(crate) mod stash;
pub(crate) mod window;
