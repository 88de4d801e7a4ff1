//! Header rules, both directions: hop-by-hop headers removed (RFC 9110
//! 7.6.1 plus whatever `Connection` names, `te: trailers` kept), the
//! client's credentials dropped, forwarding headers appended, and the
//! upstream's credentials injected from values precomputed at config load.

use std::net::IpAddr;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, EXPECT, HOST,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

use super::target::Target;

pub static X_SCOPE_ORGID: HeaderName = HeaderName::from_static("x-scope-orgid");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Remove hop-by-hop headers: first whatever `Connection` names, then the
/// fixed list. `TE` survives only as `te: trailers` (gRPC needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    let te_trailers = headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("trailers")
        });
    for name in [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &PROXY_AUTHENTICATE,
        &PROXY_AUTHORIZATION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
    ] {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Turn the client's request headers into the upstream's.
pub fn prepare_request(
    headers: &mut HeaderMap,
    target: &Target,
    peer: IpAddr,
    request_id: &HeaderValue,
) {
    strip_hop_by_hop(headers);
    // The client's credentials and tenant never reach an upstream.
    headers.remove(AUTHORIZATION);
    headers.remove(&X_SCOPE_ORGID);
    // Host is set by the client from the upstream URI (HTTP/1) or carried
    // as :authority (h2). Expect was answered here already.
    headers.remove(HOST);
    headers.remove(EXPECT);
    append_list(headers, &X_FORWARDED_FOR, &peer.to_string());
    append_list(headers, &X_FORWARDED_PROTO, "http");
    if !headers.contains_key(&X_REQUEST_ID) {
        headers.insert(X_REQUEST_ID.clone(), request_id.clone());
    }
    if let Some(auth) = &target.authorization {
        headers.insert(AUTHORIZATION, auth.clone());
    }
    if let Some(org) = &target.org_id {
        headers.insert(X_SCOPE_ORGID.clone(), org.clone());
    }
}

/// Append `value` to a comma-separated list header, folding any repeats.
fn append_list(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    let mut joined = String::new();
    for v in headers.get_all(name).iter().filter_map(|v| v.to_str().ok()) {
        joined.push_str(v);
        joined.push_str(", ");
    }
    joined.push_str(value);
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(name.clone(), v);
    }
}

/// Turn the upstream's response headers into the client's.
pub fn prepare_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
}

#[cfg(test)]
#[path = "headers_tests.rs"]
pub(crate) mod tests;
