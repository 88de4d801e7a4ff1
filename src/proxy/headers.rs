//! Header rules, both directions: hop-by-hop headers removed (RFC 9110
//! 7.6.1 plus whatever `Connection` names, `te: trailers` kept), the
//! client's credentials dropped, forwarding headers appended, and the
//! upstream's credentials injected from values precomputed at config load.

use std::net::SocketAddr;

use http::header::{
    Entry, HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, EXPECT, HOST,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

use super::target::Target;
use crate::tenant::X_SCOPE_ORGID;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// Only meaningful with an `h2c` upgrade, which is never passed.
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// The fixed hop-by-hop list (RFC 9110 7.6.1, the legacy ones, and h2c's
/// `HTTP2-Settings`).
static HOP_BY_HOP: [&HeaderName; 10] = [
    &HTTP2_SETTINGS,
    &CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &PROXY_AUTHENTICATE,
    &PROXY_AUTHORIZATION,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
    &UPGRADE,
];

/// An HTTP/1.x answer given before the client's request body was read to
/// its end says `Connection: close`: hyper closes such a connection once
/// the response is out, and a client that still thought it reusable would
/// send its next request into the closing socket (Envoy closes the same
/// way). HTTP/2 streams need no such header (none is allowed).
pub fn close_if_body_unread(headers: &mut HeaderMap, version: http::Version, body_unread: bool) {
    if body_unread && version <= http::Version::HTTP_11 {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Remove hop-by-hop headers: first whatever `Connection` names, then the
/// fixed list. `TE` survives only as `te: trailers` (gRPC needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names, comparing rather than hashing: most
    // messages carry none of these, many only `Connection: keep-alive`.
    let mut present = [false; HOP_BY_HOP.len()];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == name) {
            present[i] = true;
        }
    }
    if !present.contains(&true) {
        return;
    }
    let mut named: Vec<HeaderName> = Vec::new();
    for option in headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        // The fields it names that are here (names are stored lowercase).
        if let Some(name) = headers
            .keys()
            .find(|k| k.as_str().eq_ignore_ascii_case(option))
        {
            named.push(name.clone());
        }
    }
    for name in named {
        headers.remove(name);
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
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(*name);
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// The client's address and how it reached the proxy, with its
/// `X-Forwarded-For` and `X-Forwarded-Proto` entries made once per
/// connection instead of once per request.
#[derive(Clone)]
pub struct ClientAddr {
    pub addr: SocketAddr,
    pub forwarded_for: HeaderValue,
    /// `https` on a connection that arrived over inbound TLS, else `http`.
    pub forwarded_proto: HeaderValue,
}

impl ClientAddr {
    pub fn new(addr: SocketAddr, tls: bool) -> Self {
        let forwarded_for = HeaderValue::from_str(&addr.ip().to_string())
            .expect("an IP address is a valid header value");
        ClientAddr {
            addr,
            forwarded_for,
            forwarded_proto: HeaderValue::from_static(if tls { "https" } else { "http" }),
        }
    }
}

/// Turn the client's request headers into the upstream's; `client` gives
/// this hop's `X-Forwarded-For` and `X-Forwarded-Proto` entries.
pub fn prepare_request(
    headers: &mut HeaderMap,
    target: &Target,
    client: &ClientAddr,
    request_id: &HeaderValue,
) {
    strip_hop_by_hop(headers);
    // The client's credentials and tenant never reach an upstream: an
    // insert replaces every value the client sent.
    match &target.authorization {
        Some(auth) => headers.insert(AUTHORIZATION, auth.clone()),
        None => headers.remove(AUTHORIZATION),
    };
    match &target.org_id {
        Some(org) => headers.insert(X_SCOPE_ORGID.clone(), org.clone()),
        None => headers.remove(&X_SCOPE_ORGID),
    };
    // Host is set by the client from the upstream URI (HTTP/1) or carried
    // as :authority (h2). Expect was answered here already.
    headers.remove(HOST);
    headers.remove(EXPECT);
    append_list(headers, &X_FORWARDED_FOR, &client.forwarded_for);
    append_list(headers, &X_FORWARDED_PROTO, &client.forwarded_proto);
    // Values unique to each request are marked sensitive: to an h2
    // upstream that means HPACK "never indexed". Indexed, each new id would
    // take a place in the connection's header table, push out the values
    // that do repeat, and make every later lookup of that name compare
    // against all the ids still there.
    match headers.get_mut(&X_REQUEST_ID) {
        Some(client_id) => client_id.set_sensitive(true),
        None => {
            headers.insert(X_REQUEST_ID.clone(), request_id.clone());
        }
    }
    if let Some(trace) = headers.get_mut(&TRACEPARENT) {
        trace.set_sensitive(true);
    }
}

/// Append this proxy's entry (`1.1 <via_name>`) to `Via`.
pub fn append_via(headers: &mut HeaderMap, entry: &HeaderValue) {
    append_list(headers, &http::header::VIA, entry);
}

/// Append `value` to a comma-separated list header, folding any repeats
/// (the value is used as it is when the list is new).
fn append_list(headers: &mut HeaderMap, name: &HeaderName, value: &HeaderValue) {
    match headers.entry(name) {
        Entry::Vacant(e) => {
            e.insert(value.clone());
        }
        Entry::Occupied(mut e) => {
            let mut joined = Vec::new();
            for v in e.iter() {
                joined.extend_from_slice(v.as_bytes());
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(value.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                e.insert(v);
            }
        }
    }
}

/// Turn the upstream's response headers into the client's.
pub fn prepare_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
}

#[cfg(test)]
#[path = "headers_tests.rs"]
pub(crate) mod tests;
