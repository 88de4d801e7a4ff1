//! lgtm-proxy: a credential-injecting reverse proxy in front of a Grafana
//! Cloud (or self-hosted) LGTM stack. See ARCHITECTURE.md for the diagrams
//! and the code anchors.
//!
//! A request flows `server` (accept, connection) -> `stack` (one tower
//! layer per decision: own endpoints, admission, target checks, tenant,
//! route, class, limits) -> `proxy::forward` (headers, pooled client,
//! streaming bodies), on the `State` that `app` holds, with `config`
//! validated before any of it starts.
#![forbid(unsafe_code)]

pub mod access;
pub mod alertmanager_config;
pub mod app;
pub mod config;
pub mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod kubernetes_auth;
pub mod preface;
pub mod proxy;
pub mod reload;
pub mod remote_write;
pub mod revocation;
pub mod role;
pub mod routes;
pub mod rules_sync;
pub mod server;
pub mod stack;
pub mod state;
pub mod telemetry;
pub mod tenant;
pub mod yaml_dir;

pub use app::App;
