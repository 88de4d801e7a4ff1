//! Metrics (every name defined in one place) and log setup.

pub mod logging;
pub mod metrics;
pub mod remote_write;

pub use metrics::{method_label, Metrics};
