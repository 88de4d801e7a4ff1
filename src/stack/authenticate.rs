//! `Authenticate`: who sent the request. The resolver picks the tenant and
//! the client from the presented token, certificate and `X-Scope-OrgID`
//! (401 unknown or missing credentials, 403 a tenant they don't cover).
//! An identity a reload could revoke is noted on the connection, and an
//! upgrade by one gets a session watch that closes it on revocation.

use super::ctx::{Caller, Inbound};
use super::gate::Gate;
use crate::error::ProxyError;
use crate::proxy::upgrade_requested;
use crate::revocation::{Identity, SessionWatch};

#[derive(Debug, Clone, Copy)]
pub struct Authenticate;

impl Gate for Authenticate {
    fn admit<B: http_body::Body>(&self, call: &mut Inbound<B>) -> Result<(), ProxyError> {
        let (req, ctx) = (&call.req, &mut call.ctx);
        let conn = &ctx.conn;
        let peer_cn = conn.peer_cn.as_deref();
        let (tenant_idx, client) = ctx
            .state
            .resolver
            .resolve_with(req.headers(), peer_cn, ctx.account.as_ref())
            .map_err(ProxyError::Auth)?;
        if client.is_some() || tenant_idx != 0 {
            let tenant = &ctx.state.tenants[tenant_idx].name;
            let client_name = client.map(|c| &c.name);
            conn.seen.note(req.headers(), peer_cn, tenant, client_name);
            if upgrade_requested(req.headers(), req.version()).is_some() {
                let identity = Identity::new(req.headers(), peer_cn, tenant, client_name);
                let states = conn.app.subscribe();
                ctx.session = Some(Box::new(SessionWatch::new(
                    identity,
                    conn.seen.chain(),
                    states,
                )));
            }
        }
        ctx.caller = Some(Caller {
            tenant: tenant_idx,
            client: client.map(|c| c.index()),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::test_support::{fixture, request, READER};

    fn admit(headers: &[(&str, &str)]) -> Result<(Option<Caller>, Option<String>), u16> {
        let f = fixture();
        let mut call = f.inbound(request("GET", "/prometheus/api/v1/query", headers));
        Authenticate
            .admit(&mut call)
            .map(|()| {
                let client = call.ctx.client().map(|c| c.name.to_string());
                (call.ctx.caller, client)
            })
            .map_err(|e| e.status().as_u16())
    }

    #[tokio::test]
    async fn a_token_selects_its_tenant_and_client() {
        let (caller, client) = admit(&[("authorization", READER)]).unwrap();
        assert_eq!(caller.map(|c| c.tenant), Some(1));
        assert_eq!(client.as_deref(), Some("reader"));
        // The same token as Basic's password.
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode("x:reader-token");
        let basic = format!("Basic {encoded}");
        assert_eq!(
            admit(&[("authorization", &basic)]).unwrap().1.as_deref(),
            Some("reader")
        );
    }

    #[tokio::test]
    async fn missing_unknown_and_foreign_credentials_are_refused() {
        assert_eq!(admit(&[]), Err(401));
        assert_eq!(admit(&[("authorization", "Bearer nobody")]), Err(401));
        let other = [("authorization", READER), ("x-scope-orgid", "default")];
        assert_eq!(admit(&other), Err(403));
    }
}
