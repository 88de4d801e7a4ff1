//! Shared integration-test harness: a recording upstream, the real proxy
//! binary as a child process, and a small HTTP client.
#![allow(dead_code, unused_imports)]

pub mod alertmanager;
pub mod client;
pub mod jwt;
pub mod mimir;
pub mod oidc;
pub mod prometheus;
pub mod proxy;
pub mod pushgateway;
pub mod spelling;
pub mod tls;
pub mod upstream;
pub mod volume;

pub use client::*;
pub use proxy::ProxyProc;
pub use upstream::{Behavior, Recorded, RecordingUpstream};
