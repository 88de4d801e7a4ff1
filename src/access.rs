//! Access classes: what a request does to an upstream, decided from the
//! UPSTREAM path (after rewrite, without the upstream URL's base path) and
//! the method, in one table that later features extend. A `[[routes]]`
//! entry may set the class for all of its traffic instead.

use http::Method;

mod class;
mod table;

pub use class::{AccessClass, AccessSet};

use table::TABLE;
use AccessClass::{Admin, Read};

/// Paths deeper than this are matched by no row (the deepest row has 7
/// segments): their non-safe requests are admin.
const MAX_SEGMENTS: usize = 16;

/// The class of a request to `path` (the canonical upstream path, no query)
/// by `method`. Segments match exactly; one trailing slash is ignored.
pub fn classify(path: &str, method: &Method) -> AccessClass {
    if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS {
        return Read;
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let trimmed = trimmed.strip_prefix('/').unwrap_or(trimmed);
    let mut segments = [""; MAX_SEGMENTS];
    let mut n = 0;
    if !trimmed.is_empty() {
        for s in trimmed.split('/') {
            if n == MAX_SEGMENTS {
                return Admin;
            }
            segments[n] = s;
            n += 1;
        }
    }
    let segments = &segments[..n];
    TABLE
        .iter()
        .find(|r| r.covers(method) && r.matches(segments))
        .map_or(Admin, |r| r.class)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
