//! Metrics (every name defined in one place) and log setup.

pub mod logging;
pub mod metrics;
pub mod remote_write;
pub mod rules_sync;

pub use metrics::{method_label, Metrics};

/// Seconds since the Unix epoch, for timestamp gauges and status bodies.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
