//! Stopping on SIGINT and SIGTERM: a flag the workers and generators poll, so a stop commits
//! what is durable and exits cleanly instead of being killed mid-write.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::RunError;

/// A flag set on SIGINT or SIGTERM.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, RunError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| RunError::Config(format!("installing a signal handler: {e}")))?;
    }
    Ok(stop)
}
