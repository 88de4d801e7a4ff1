//! `Route`: the longest prefix that matches the canonical path (404
//! without one), the caller's tenant's target for that route's upstream
//! (404 when the tenant has none), the upstream target rewritten once,
//! and the request's access class, read from exactly that target.

use super::ctx::Inbound;
use super::gate::Gate;
use crate::error::ProxyError;

#[derive(Debug, Clone, Copy)]
pub struct Route;

impl Gate for Route {
    fn admit<B: http_body::Body>(&self, call: &mut Inbound<B>) -> Result<(), ProxyError> {
        let path = call.path();
        let ctx = &call.ctx;
        let state = &ctx.state;
        // Fail closed: without a caller (a stack composed without
        // `Authenticate`) nothing is routed.
        let tenant = ctx
            .caller
            .and_then(|c| state.tenants.get(c.tenant))
            .ok_or(ProxyError::NoRoute)?;
        let matched = state.table.find(path).ok_or(ProxyError::NoRoute)?;
        let upstream = matched.route.upstream;
        let Some(target) = tenant.targets.get(upstream).and_then(Option::as_ref) else {
            let error = ProxyError::NotConfigured {
                upstream: state.table.upstreams()[upstream].as_str().into(),
                route: matched.route.prefix.clone(),
                tenant: tenant.name.clone(),
            };
            call.ctx.route = Some(matched.index);
            return Err(error);
        };
        let mut path_and_query = String::with_capacity(target.base_path.len() + path.len() + 64);
        matched.write_upstream_target(
            &target.base_path,
            call.req.uri().query(),
            &mut path_and_query,
        );
        let class = matched.class(&path_and_query, target.base_path.len(), call.req.method());
        let (index, target) = (matched.index, target.clone());
        let ctx = &mut call.ctx;
        ctx.route = Some(index);
        ctx.target = Some(target);
        ctx.path_and_query = path_and_query;
        ctx.class = class;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessClass;
    use crate::stack::test_support::{fixture, request, ADMIN};
    use crate::stack::{Authenticate, CanonicalTarget};

    /// Route `path` for the admin client of `stage`: the outcome and the
    /// labels, rewritten target and class it leaves in the context.
    fn routed(method: &str, path: &str) -> (Result<(), u16>, [String; 3], String, AccessClass) {
        let f = fixture();
        let mut call = f.inbound(request(method, path, &[("authorization", ADMIN)]));
        CanonicalTarget.admit(&mut call).unwrap();
        Authenticate.admit(&mut call).unwrap();
        let r = Route.admit(&mut call).map_err(|e| e.status().as_u16());
        let ctx = &call.ctx;
        (
            r,
            ctx.labels().map(str::to_owned),
            ctx.path_and_query.clone(),
            ctx.class,
        )
    }

    #[tokio::test]
    async fn the_canonical_path_is_routed_rewritten_and_classified() {
        let (r, labels, target, class) = routed("POST", "/prometheus//api/v1/%70ush?x=1");
        assert_eq!(r, Ok(()));
        assert!(target.ends_with("/api/prom/api/v1/push?x=1"), "{target}");
        assert_eq!(class, AccessClass::Write);
        assert_eq!(labels, ["stage", "/prometheus", "prometheus"]);
        let (_, _, _, class) = routed("GET", "/api/prom/api/v1/query");
        assert_eq!(class, AccessClass::Read);
    }

    #[tokio::test]
    async fn a_route_without_the_tenants_target_or_without_any_route_is_404() {
        let (r, labels, target, _) = routed("GET", "/loki/api/v1/labels");
        assert_eq!(r, Err(404));
        assert_eq!(labels, ["stage", "/loki", "loki"]);
        assert!(target.is_empty());
        let (r, labels, _, _) = routed("GET", "/nowhere");
        assert_eq!(r, Err(404));
        assert_eq!(labels, ["stage", "none", "none"]);
    }
}
