//! Where a request goes: the compiled route table (longest prefix on a
//! segment boundary), the rewrite that keeps the query byte-for-byte, and the
//! request-target checks that run before any of it.

mod path;
mod table;

pub use path::{canonical_target, canonicalize, is_unreserved, PathError};
pub use table::{Matched, RouteTable};

/// Remote-write debug endpoints (admin class when client auth is on).
pub const DEBUG_COLLECTED: &str = "/collected-metrics";
pub const DEBUG_TARGETS: &str = "/debug/targets";
/// Paths the proxy answers itself; routes may not claim them.
pub const RESERVED_PATHS: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    DEBUG_COLLECTED,
    DEBUG_TARGETS,
];

#[cfg(test)]
mod proptests;
