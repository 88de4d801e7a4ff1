//! `Limit`: the client's request rate for the class (429 with
//! Retry-After), the route's `max_body_bytes` against a declared
//! Content-Length (413; a body without one is cut while streaming), and
//! the tenant's `max_in_flight` for writes or reads (429). Buckets and
//! slots are kept across reloads (`State::build`).

use super::ctx::Inbound;
use super::gate::Gate;
use crate::access::AccessClass;
use crate::error::ProxyError;
use crate::tenant::acquire;

#[derive(Debug, Clone, Copy)]
pub struct Limit;

impl Gate for Limit {
    fn admit<B: http_body::Body>(&self, call: &mut Inbound<B>) -> Result<(), ProxyError> {
        let ctx = &call.ctx;
        let write = ctx.class == AccessClass::Write;
        if let Some(rate) = ctx.client().and_then(|c| c.rate.as_ref()) {
            let bucket = if write { &rate.write } else { &rate.read };
            if let Err(wait) = bucket.try_take() {
                return Err(ProxyError::TooManyRequests {
                    limit: "client rate",
                    retry_after: wait.as_secs().max(1),
                });
            }
        }
        let route = ctx.route.and_then(|i| ctx.state.table.route(i));
        if let Some(limit) = route.and_then(|r| r.max_body_bytes) {
            let declared = call
                .req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(ProxyError::BodyTooLarge { limit });
            }
        }
        let tenant = ctx.caller.and_then(|c| ctx.state.tenants.get(c.tenant));
        let slots = tenant.and_then(|t| {
            if write {
                t.write_slots.as_ref()
            } else {
                t.read_slots.as_ref()
            }
        });
        call.ctx.tenant_slot = acquire(slots).map_err(|_| ProxyError::TooManyRequests {
            limit: "tenant max_in_flight",
            retry_after: 1,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::test_support::{fixture, request, Fixture, ADMIN, WRITER};
    use crate::stack::{Authenticate, CanonicalTarget, Inbound, Route};
    use bytes::Bytes;
    use http_body_util::Empty;

    fn limited(
        f: &Fixture,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (Result<(), ProxyError>, Inbound<Empty<Bytes>>) {
        let mut call = f.inbound(request("POST", path, headers));
        CanonicalTarget.admit(&mut call).unwrap();
        Authenticate.admit(&mut call).unwrap();
        Route.admit(&mut call).unwrap();
        (Limit.admit(&mut call), call)
    }

    #[tokio::test]
    async fn a_clients_rate_is_429_with_retry_after() {
        let f = fixture();
        let auth = [("authorization", WRITER)];
        assert!(limited(&f, "/api/prom/push", &auth).0.is_ok());
        match limited(&f, "/api/prom/push", &auth).0 {
            Err(ProxyError::TooManyRequests { limit, retry_after }) => {
                assert_eq!((limit, retry_after), ("client rate", 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_declared_body_over_the_routes_limit_is_413() {
        let f = fixture();
        let small = |n: &'static str| [("authorization", ADMIN), ("content-length", n)];
        assert!(limited(&f, "/small/push", &small("10")).0.is_ok());
        let (r, _) = limited(&f, "/small/push", &small("11"));
        assert_eq!(r.unwrap_err().status(), 413);
    }

    #[tokio::test]
    async fn the_tenants_slots_are_held_until_the_request_ends() {
        let f = fixture();
        let auth = [("authorization", ADMIN)];
        let (r, held) = limited(&f, "/api/prom/push", &auth);
        r.unwrap();
        assert!(held.ctx.tenant_slot.is_some());
        let (r, _) = limited(&f, "/api/prom/push", &auth);
        assert_eq!(r.unwrap_err().status(), 429);
        // Reads have their own slots.
        let mut read = f.inbound(request("GET", "/prometheus/api/v1/query", &auth));
        CanonicalTarget.admit(&mut read).unwrap();
        Authenticate.admit(&mut read).unwrap();
        Route.admit(&mut read).unwrap();
        Limit.admit(&mut read).unwrap();
        drop(held);
        assert!(limited(&f, "/api/prom/push", &auth).0.is_ok());
    }
}
