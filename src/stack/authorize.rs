//! `Authorize`: an identified client may do only what its `access` lists
//! (403 naming the client and the class). Without a client (no client
//! auth configured for the tenant) there is nothing to narrow.

use super::ctx::Inbound;
use super::gate::Gate;
use crate::error::ProxyError;

#[derive(Debug, Clone, Copy)]
pub struct Authorize;

impl Gate for Authorize {
    fn admit<B: http_body::Body>(&self, call: &mut Inbound<B>) -> Result<(), ProxyError> {
        let ctx = &call.ctx;
        match ctx.client() {
            Some(c) if !c.access.allows(ctx.class) => Err(ProxyError::ClassDenied {
                client: c.name.clone(),
                class: ctx.class,
                access: c.access,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::test_support::{fixture, request, ADMIN, READER, WRITER};
    use crate::stack::{Authenticate, CanonicalTarget, Route};

    fn admit(method: &str, path: &str, token: &str) -> Result<(), u16> {
        let f = fixture();
        let mut call = f.inbound(request(method, path, &[("authorization", token)]));
        CanonicalTarget.admit(&mut call).unwrap();
        Authenticate.admit(&mut call).unwrap();
        Route.admit(&mut call).unwrap();
        Authorize.admit(&mut call).map_err(|e| e.status().as_u16())
    }

    #[tokio::test]
    async fn a_client_does_only_what_its_access_lists() {
        assert_eq!(admit("GET", "/prometheus/api/v1/query", READER), Ok(()));
        assert_eq!(admit("POST", "/api/prom/push", READER), Err(403));
        assert_eq!(admit("POST", "/api/prom/push", WRITER), Ok(()));
        assert_eq!(admit("GET", "/prometheus/api/v1/query", WRITER), Err(403));
        assert_eq!(admit("POST", "/api/prom/push", ADMIN), Ok(()));
        assert_eq!(admit("GET", "/prometheus/api/v1/query", ADMIN), Ok(()));
    }
}
