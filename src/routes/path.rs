//! Request-target canonicalization: the one spelling of a path that is
//! routed, classified and forwarded. Upstreams (Go's `net/http`, the
//! Prometheus and Alertmanager routers) decode a path before they route it,
//! so a decision made on any other spelling than the forwarded one can be
//! walked around with a percent-encoded letter, a doubled slash or a `.`
//! segment. Here:
//!
//! - percent-encoded unreserved characters (RFC 3986 2.3: letters, digits,
//!   `-` `.` `_` `~`) are decoded;
//! - an encoded `/`, `\` or NUL, a raw `\`, a malformed escape, and a `.` or
//!   `..` segment in any spelling are refused;
//! - runs of `/` are merged (OTLP exporters with a trailing slash in their
//!   endpoint send `//v1/traces`);
//! - every other escape is kept, its hex upper-cased; other bytes as sent.
//!
//! Canonicalizing a canonical path changes nothing, and decoding it fully
//! (what an upstream does) can only turn an escape into a character outside
//! the unreserved set, which no access-class entry contains.
//!
//! The escapes are read here, not by `percent-encoding` (which the proxy
//! uses to encode): its decoder turns every escape into its byte, while
//! this boundary decides per escape whether to decode, keep or refuse it,
//! in one pass that allocates only when the spelling changes.

use std::borrow::Cow;

use http::{Uri, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("request target must be a path starting with '/'")]
    NotOriginForm,
    #[error("path must not contain '.' or '..' segments")]
    DotSegment,
    #[error("path must not contain '\\' or an encoded '/', '\\' or NUL")]
    EncodedSeparator,
    #[error("path contains a malformed percent-encoding")]
    BadEscape,
}

/// Check the request target and return its canonical path (borrowed when
/// the path is canonical already, as nearly every real one is). HTTP/1.x
/// requests must use origin-form; h2 requests always carry scheme and
/// authority, so only their path counts.
pub fn canonical_target(uri: &Uri, version: Version) -> Result<Cow<'_, str>, PathError> {
    let is_h1 = version < Version::HTTP_2;
    if is_h1 && (uri.scheme().is_some() || uri.authority().is_some()) {
        return Err(PathError::NotOriginForm);
    }
    canonicalize(uri.path())
}

/// The canonical form of `path` (see the module docs), or why it has none.
pub fn canonicalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    if is_canonical(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    // Start of the segment being written (just after its '/').
    let mut segment_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' => {
                end_segment(&out[segment_start..])?;
                // Runs of '/' are merged.
                if out.last() != Some(&b'/') {
                    out.push(b'/');
                }
                segment_start = out.len();
                i += 1;
            }
            b'\\' => return Err(PathError::EncodedSeparator),
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).and_then(|h| hex(*h)),
                    bytes.get(i + 2).and_then(|h| hex(*h)),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let decoded = hi << 4 | lo;
                if matches!(decoded, b'/' | b'\\' | 0) {
                    return Err(PathError::EncodedSeparator);
                }
                if is_unreserved(decoded) {
                    out.push(decoded);
                } else {
                    out.push(b'%');
                    out.push(HEX_UPPER[usize::from(hi)]);
                    out.push(HEX_UPPER[usize::from(lo)]);
                }
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    end_segment(&out[segment_start..])?;
    // Only ASCII was rewritten and every other byte was copied whole, so the
    // result is as valid UTF-8 as the input; never panic either way.
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError::BadEscape)
}

/// The fast path: no escape, no backslash, no empty or dot segment.
fn is_canonical(bytes: &[u8]) -> bool {
    if bytes.iter().any(|b| matches!(b, b'%' | b'\\')) {
        return false;
    }
    // Segments after the leading '/'; the last may be empty (trailing '/').
    let mut segments = bytes[1..].split(|b| *b == b'/').peekable();
    while let Some(s) = segments.next() {
        let last = segments.peek().is_none();
        if (s.is_empty() && !last) || s == b"." || s == b".." {
            return false;
        }
    }
    true
}

fn end_segment(segment: &[u8]) -> Result<(), PathError> {
    if segment == b"." || segment == b".." {
        Err(PathError::DotSegment)
    } else {
        Ok(())
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 2.3 unreserved characters.
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(p: &str) -> Result<String, PathError> {
        canonicalize(p).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_are_borrowed_unchanged() {
        for p in [
            "/",
            "/prometheus/api/v1/query",
            "/a/.b/c..d/...",
            "/loki/api/v1/push/",
            "/x/%20",
        ] {
            let c = canonicalize(p).unwrap();
            assert_eq!(c, p);
            if !p.contains('%') {
                assert!(matches!(c, Cow::Borrowed(_)), "{p}");
            }
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_upper_cased() {
        assert_eq!(canon("/api/prom/pu%73h").unwrap(), "/api/prom/push");
        assert_eq!(canon("/%61%70%69/v1/%77rite").unwrap(), "/api/v1/write");
        assert_eq!(canon("/a/%7e%2D%5F%2e%30").unwrap(), "/a/~-_.0");
        assert_eq!(canon("/a/%3a%3F%20%c3%a9").unwrap(), "/a/%3A%3F%20%C3%A9");
        assert_eq!(canon("/a/%25%32%66").unwrap(), "/a/%252f");
    }

    #[test]
    fn slash_runs_are_merged_trailing_slash_kept() {
        assert_eq!(canon("/otlp//v1/traces").unwrap(), "/otlp/v1/traces");
        assert_eq!(canon("//v1/traces").unwrap(), "/v1/traces");
        assert_eq!(canon("/a///b//").unwrap(), "/a/b/");
        assert_eq!(canon("//").unwrap(), "/");
    }

    #[test]
    fn dot_segments_in_every_spelling_are_refused() {
        for p in [
            "/prometheus/../admin",
            "/prometheus/..",
            "/prometheus/.",
            "/prometheus/./api",
            "/prometheus//./api",
            "/prometheus/%2e%2e/admin",
            "/prometheus/%2E%2e/admin",
            "/prometheus/.%2E/admin",
            "/prometheus/%2e./admin",
            "/prometheus/%2e/admin",
            "/prometheus/%2E",
        ] {
            assert_eq!(canon(p), Err(PathError::DotSegment), "{p}");
        }
    }

    #[test]
    fn encoded_separators_backslash_and_bad_escapes_are_refused() {
        for p in [
            "/prometheus/..%2fadmin",
            "/prometheus/..%2Fadmin",
            "/prometheus/x%2f..%2fadmin",
            "/prometheus/..%5cadmin",
            "/prometheus/..\\admin",
            "/api/v1%2fwrite",
            "/a\\b",
            "/a%00b",
        ] {
            assert_eq!(canon(p), Err(PathError::EncodedSeparator), "{p}");
        }
        for p in ["/loki/%zz", "/a%", "/a%4", "/a%4g"] {
            assert_eq!(canon(p), Err(PathError::BadEscape), "{p}");
        }
    }

    #[test]
    fn absolute_form_is_rejected_on_http1_only() {
        let uri: Uri = "http://evil.example/prometheus/api".parse().unwrap();
        assert_eq!(
            canonical_target(&uri, Version::HTTP_11),
            Err(PathError::NotOriginForm)
        );
        assert_eq!(
            canonical_target(&uri, Version::HTTP_10),
            Err(PathError::NotOriginForm)
        );
        assert_eq!(
            canonical_target(&uri, Version::HTTP_2).as_deref(),
            Ok("/prometheus/api")
        );
        assert_eq!(canon("*"), Err(PathError::NotOriginForm));
    }
}
