//! `CanonicalTarget`: the request target every later decision is made on.
//! The canonical path (the one spelling that is routed, classified and
//! forwarded) or 400; header limits (431); transfer codings other than
//! `chunked` alone (501); a request that already passed through this proxy
//! (508).

use std::borrow::Cow;

use super::ctx::Inbound;
use super::gate::Gate;
use crate::error::ProxyError;
use crate::routes::canonical_target;

/// The contract's request-header limits, enforced on HTTP/1.1 and h2 alike.
pub const MAX_HEADER_FIELDS: usize = 200;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct CanonicalTarget;

impl Gate for CanonicalTarget {
    fn admit<B: http_body::Body>(&self, call: &mut Inbound<B>) -> Result<(), ProxyError> {
        let req = &call.req;
        if let Cow::Owned(path) = canonical_target(req.uri(), req.version())? {
            call.ctx.canonical_path = Some(path);
        }
        if !headers_within_limits(req.headers()) {
            return Err(ProxyError::HeadersTooLarge);
        }
        if !transfer_coding_supported(req.headers()) {
            return Err(ProxyError::TransferCoding);
        }
        let state = &call.ctx.state;
        if state.is_loop(req.headers()) {
            return Err(ProxyError::Loop {
                via_name: state.config.via_name.as_str().into(),
            });
        }
        Ok(())
    }
}

/// `Transfer-Encoding`, when present, is `chunked` alone. hyper has
/// decoded the chunks already (and answers 400 when chunked is not last);
/// forwarding a body that was also gzip-coded with that coding silently
/// dropped would change it, so any other coding is 501. (Content-Length
/// beside Transfer-Encoding is handled by hyper as RFC 9112 6.3 says for an
/// intermediary: Content-Length removed, chunked processed, the connection
/// closed after the response.)
fn transfer_coding_supported(headers: &http::HeaderMap) -> bool {
    let mut codings = headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => true,
        (Some(only), None) => only.eq_ignore_ascii_case(b"chunked"),
        _ => false,
    }
}

/// At most 200 fields and 64 KiB of names and values. HTTP/1 is also
/// capped by hyper's parser; h2 only by HPACK's list size, so this check is
/// what makes both protocols agree.
fn headers_within_limits(h: &http::HeaderMap) -> bool {
    if h.len() > MAX_HEADER_FIELDS {
        return false;
    }
    let bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    bytes <= MAX_HEADER_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::test_support::{fixture, request};

    fn admit(headers: &[(&str, &str)], path: &str) -> Result<Option<String>, u16> {
        let f = fixture();
        let mut call = f.inbound(request("GET", path, headers));
        CanonicalTarget
            .admit(&mut call)
            .map(|()| call.ctx.canonical_path.clone())
            .map_err(|e| e.status().as_u16())
    }

    #[tokio::test]
    async fn the_canonical_path_is_kept_only_when_it_differs() {
        assert_eq!(admit(&[], "/api/prom/push"), Ok(None));
        assert_eq!(
            admit(&[], "/api/prom//%70ush"),
            Ok(Some("/api/prom/push".into()))
        );
        // Dot segments have no one meaning across upstreams: refused.
        assert_eq!(admit(&[], "/api/prom/./push"), Err(400));
        assert_eq!(admit(&[], "/api/prom/x/../push"), Err(400));
        assert_eq!(admit(&[], "/api/prom%2Fpush"), Err(400));
        assert_eq!(admit(&[], "/api/prom/%2e%2e/%2e%2e/loki"), Err(400));
    }

    #[tokio::test]
    async fn header_limits_codings_and_loops_are_refused() {
        let many: Vec<(String, String)> = (0..=MAX_HEADER_FIELDS)
            .map(|i| (format!("x-h{i}"), "v".into()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(admit(&many, "/api/prom/push"), Err(431));
        let big = "v".repeat(MAX_HEADER_BYTES);
        assert_eq!(admit(&[("x-big", &big)], "/api/prom/push"), Err(431));
        assert_eq!(
            admit(&[("transfer-encoding", "gzip, chunked")], "/api/prom/push"),
            Err(501)
        );
        assert_eq!(
            admit(&[("transfer-encoding", "Chunked")], "/api/prom/push"),
            Ok(None)
        );
        assert_eq!(
            admit(&[("via", "1.0 other, 1.1 lgtm-proxy")], "/api/prom/push"),
            Err(508)
        );
    }
}
