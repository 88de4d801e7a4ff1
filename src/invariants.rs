//! What must hold of every request target the proxy forwards, written once
//! for the property tests and the fuzz targets (`fuzz/`).
//!
//! The oracle is a decoding upstream (Go's `net/http` gives handlers the
//! decoded path; the Prometheus and Alertmanager routers clean runs of `/`):
//! whatever the proxy forwards, the upstream must read as the same class the
//! proxy decided, and as the same path it would have read from the raw one.

use http::Method;

use crate::access::{classify, AccessClass};
use crate::routes::canonicalize;

/// What a decoding upstream sees: every escape decoded once (as bytes),
/// then runs of `/` merged.
pub fn upstream_view(path: &str) -> Vec<u8> {
    let b = path.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                decoded.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                decoded.push(c);
                i += 1;
            }
        }
    }
    let mut merged: Vec<u8> = Vec::with_capacity(decoded.len());
    for c in decoded {
        if !(c == b'/' && merged.last() == Some(&b'/')) {
            merged.push(c);
        }
    }
    merged
}

/// The class an upstream's view of the path has. A decoded byte that is
/// not UTF-8 reads as U+FFFD: no literal segment of a row matches it, a
/// wildcard segment does, as it would match the raw bytes.
pub fn class_of_view(view: &[u8], method: &Method) -> AccessClass {
    classify(&String::from_utf8_lossy(view), method)
}

/// An invariant of a forwarded path that does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("{forwarded:?} is not canonical: {again:?}")]
    NotCanonical { forwarded: String, again: String },
    #[error("{forwarded:?} is forwarded but refused: {why}")]
    Refused {
        forwarded: String,
        why: crate::routes::PathError,
    },
    #[error("{0:?} carries an encoded separator")]
    EncodedSeparator(String),
    #[error("{0:?} carries '\\' or an empty segment")]
    BackslashOrEmptySegment(String),
    #[error("{0:?} carries a dot segment")]
    DotSegment(String),
    #[error("{method} {forwarded:?}: the proxy decided {}, a decoding upstream reads {}", decided.as_str(), read.as_str())]
    Class {
        method: Method,
        forwarded: String,
        decided: AccessClass,
        read: AccessClass,
    },
}

/// Check a forwarded path (no query): canonical (a fixed point of
/// `canonicalize`), no dot segment, encoded separator, backslash or empty
/// segment, and read by a decoding upstream, after its own `base_len` bytes
/// of base path, as `class`. `Err` says which invariant broke.
pub fn check_forwarded(
    forwarded: &str,
    base_len: usize,
    method: &Method,
    class: AccessClass,
) -> Result<(), Broken> {
    let path = || forwarded.to_string();
    match canonicalize(forwarded) {
        Ok(again) if again == forwarded => {}
        Ok(again) => {
            return Err(Broken::NotCanonical {
                forwarded: path(),
                again: again.into_owned(),
            })
        }
        Err(why) => {
            return Err(Broken::Refused {
                forwarded: path(),
                why,
            })
        }
    }
    let lower = forwarded.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
        return Err(Broken::EncodedSeparator(path()));
    }
    if forwarded.contains('\\') || forwarded.contains("//") {
        return Err(Broken::BackslashOrEmptySegment(path()));
    }
    if forwarded.split('/').any(|s| s == "." || s == "..") {
        return Err(Broken::DotSegment(path()));
    }
    let read = class_of_view(&upstream_view(&forwarded[base_len..]), method);
    if read != class {
        return Err(Broken::Class {
            method: method.clone(),
            forwarded: path(),
            decided: class,
            read,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoded_byte_that_is_not_utf8_still_matches_a_wildcard_segment() {
        // Found by the request_target fuzz target: `/otlp/v1/%B0ush` is a
        // write (otlp's `v1/<any>` row); a decoding upstream reads the
        // segment as the byte 0xB0, which no literal matches and the
        // wildcard does.
        let post = Method::POST;
        assert_eq!(classify("/otlp/v1/%B0ush", &post), AccessClass::Write);
        assert_eq!(
            check_forwarded("/otlp/v1/%B0ush", 0, &post, AccessClass::Write),
            Ok(())
        );
        // A literal segment spelled with such a byte matches nothing.
        assert_eq!(
            class_of_view(b"/api/prom/p\xb0sh", &post),
            AccessClass::Admin
        );
    }

    #[test]
    fn each_broken_invariant_is_named() {
        let post = Method::POST;
        let w = AccessClass::Write;
        assert!(matches!(
            check_forwarded("/api/prom/%70ush", 0, &post, w),
            Err(Broken::NotCanonical { .. })
        ));
        assert!(check_forwarded("/api/prom//push", 0, &post, w).is_err());
        assert!(check_forwarded("/api/prom/a/../push", 0, &post, w).is_err());
        assert!(check_forwarded("/api/prom%2Fpush", 0, &post, w).is_err());
        assert!(
            check_forwarded("/api/prom/push", 0, &post, AccessClass::Admin)
                .unwrap_err()
                .to_string()
                .contains("a decoding upstream reads write")
        );
        // The base path is the upstream's own, not classified.
        assert_eq!(check_forwarded("/base/api/prom/push", 5, &post, w), Ok(()));
    }
}
