//! Request-target checks: absolute-form on HTTP/1, non-origin targets, and
//! `..` segments in any spelling (`..`, `%2e%2e`, `.%2E`, hidden behind an
//! encoded `/` or `\`). An upstream that normalizes paths must never be
//! walked out of the prefix the route grants.

use http::{Uri, Version};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("request target must be a path starting with '/'")]
    NotOriginForm,
    #[error("path must not contain '..' segments")]
    DotDot,
}

/// Check the request target. HTTP/1.x requests must use origin-form; h2
/// requests always carry scheme and authority, so only their path counts.
pub fn check_target(uri: &Uri, version: Version) -> Result<(), PathError> {
    let is_h1 = version < Version::HTTP_2;
    if is_h1 && (uri.scheme().is_some() || uri.authority().is_some()) {
        return Err(PathError::NotOriginForm);
    }
    let path = uri.path();
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    // A dot-dot segment needs a '.', '%' or '\\' somewhere: most paths
    // have none and skip the per-segment look.
    let suspicious = path.bytes().any(|b| matches!(b, b'.' | b'%' | b'\\'));
    if suspicious && path.split('/').any(is_dot_dot) {
        return Err(PathError::DotDot);
    }
    Ok(())
}

/// A raw segment that an upstream could read as `..`: decode `%2e`, `%2f`
/// and `%5c` (any case), then split on `/` and `\`. Works on bytes, so no
/// input can make it slice inside a character.
fn is_dot_dot(segment: &str) -> bool {
    if segment == ".." {
        return true;
    }
    let bytes = segment.as_bytes();
    if !bytes.iter().any(|b| *b == b'%' || *b == b'\\') {
        return false;
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = if bytes[i] == b'%' && i + 2 < bytes.len() {
            match [
                bytes[i + 1].to_ascii_lowercase(),
                bytes[i + 2].to_ascii_lowercase(),
            ] {
                [b'2', b'e'] => Some(b'.'),
                [b'2', b'f'] | [b'5', b'c'] => Some(b'/'),
                _ => None,
            }
        } else {
            None
        };
        match escaped {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(if bytes[i] == b'\\' { b'/' } else { bytes[i] });
                i += 1;
            }
        }
    }
    decoded.split(|b| *b == b'/').any(|s| s == b"..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(target: &str) -> Result<(), PathError> {
        check_target(&target.parse().unwrap(), Version::HTTP_11)
    }

    #[test]
    fn plain_paths_pass() {
        for t in [
            "/",
            "/prometheus/api/v1/query?query=up",
            "/a/.b/c..d/...",
            "/x/%2e/y",
            "/loki/%zz",
        ] {
            assert_eq!(check(t), Ok(()), "{t}");
        }
    }

    #[test]
    fn dot_dot_in_every_spelling_is_rejected() {
        for t in [
            "/prometheus/../admin",
            "/prometheus/..",
            "/prometheus/%2e%2e/admin",
            "/prometheus/%2E%2e/admin",
            "/prometheus/.%2E/admin",
            "/prometheus/%2e./admin",
            "/prometheus/..%2fadmin",
            "/prometheus/..%2Fadmin",
            "/prometheus/x%2f..%2fadmin",
            "/prometheus/..%5cadmin",
            "/prometheus/..\\admin",
        ] {
            assert_eq!(check(t), Err(PathError::DotDot), "{t}");
        }
    }

    #[test]
    fn absolute_form_is_rejected_on_http1_only() {
        let uri: Uri = "http://evil.example/prometheus/api".parse().unwrap();
        assert_eq!(
            check_target(&uri, Version::HTTP_11),
            Err(PathError::NotOriginForm)
        );
        assert_eq!(
            check_target(&uri, Version::HTTP_10),
            Err(PathError::NotOriginForm)
        );
        assert_eq!(check_target(&uri, Version::HTTP_2), Ok(()));
        assert_eq!(check("*"), Err(PathError::NotOriginForm));
    }
}
