//! Pull-then-push remote-write jobs (seeds 000 and 001): a job, from
//! `[[remote_write.jobs]]` or a MetricAccess manifest, pulls the series a
//! namespace may see from the infrastructure Prometheus, filters them to
//! that namespace, adds its labels and pushes them to the namespace's
//! target (its Prometheus, a Pushgateway, a remote-write URL, or its Grafana
//! Cloud stack through the proxy's own credentials).
//!
//! `validate` (at config load) -> `spec::Job` -> `controller::Controller`
//! (one task per job, `cycle`): `source` (health, instant queries) -> `series`
//! (merge, namespace filter, labels) -> `deliver` (queue, batches, retries)
//! with `encode` (protobuf + snappy, or the text format).

pub mod controller;
mod cycle;
pub mod deliver;
pub mod encode;
pub mod raw;
pub mod selector;
pub mod series;
pub mod source;
pub mod spec;
pub mod validate;

pub use controller::Controller;
pub use raw::RawRemoteWrite;
pub use spec::{Job, RemoteWrite, TargetKind};
