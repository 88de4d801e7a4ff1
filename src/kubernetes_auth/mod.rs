//! Kubernetes ServiceAccount tokens as client credentials: a bearer token
//! that is a JWT is verified offline against the cluster's keys (`jwks`,
//! `verify`), and the ServiceAccount it names selects the client
//! (`tenant::resolve`). `Verifier` holds the keys (from OIDC discovery or
//! a `jwks_file`), refreshes them, and caches verified tokens by digest
//! until they expire, so a token is verified once, then looked up.

mod cache;
pub mod jwks;
pub mod keys;
pub mod spec;
pub mod verify;

pub use keys::{KeyStatus, Verifier};
pub use spec::{AccountPattern, KeySource, KubernetesAuth, ServiceAccount, POD_SA_DIR};
pub use verify::{bearer_jwt, looks_like_jwt, JwtError, Verified};

#[cfg(test)]
mod tests;
