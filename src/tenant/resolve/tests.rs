use super::*;
use crate::tenant::token_hash;
use http::HeaderValue;

fn resolver(require: bool) -> Resolver {
    let names = vec!["default".into(), "prod".into(), "stage".into()];
    let clients = vec![
        ClientEntry::new(
            Some(token_hash(b"p-tok")),
            None,
            1,
            "alloy",
            AccessSet::ALL,
            None,
        ),
        ClientEntry::new(
            Some(token_hash(b"s-tok")),
            Some("kubecost.stage"),
            2,
            "kubecost",
            AccessSet::ALL,
            None,
        ),
    ];
    Resolver::new(names, clients, require)
}

fn h(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.insert(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    m
}

fn tenant(r: &Resolver, pairs: &[(&str, &str)]) -> Result<usize, AuthError> {
    r.resolve(&h(pairs), None).map(|(t, _)| t)
}

#[test]
fn certificate_cn_selects_a_client_and_a_token_decides_first() {
    let r = resolver(true);
    assert_eq!(
        r.resolve(&h(&[]), Some("kubecost.stage"))
            .map(|(t, c)| (t, c.map(|c| c.name.to_string()))),
        Ok((2, Some("kubecost".into())))
    );
    assert_eq!(
        r.resolve(&h(&[]), Some("stranger")).map(|(t, _)| t),
        Err(AuthError::Unknown)
    );
    assert_eq!(
        r.resolve(
            &h(&[("authorization", "Bearer p-tok")]),
            Some("kubecost.stage")
        )
        .map(|(t, _)| t),
        Ok(1)
    );
}

#[test]
fn rules_in_order_with_auth_required() {
    let r = resolver(true);
    assert_eq!(tenant(&r, &[("authorization", "Bearer s-tok")]), Ok(2));
    assert_eq!(
        tenant(
            &r,
            &[
                ("authorization", "Bearer s-tok"),
                ("x-scope-orgid", "stage")
            ]
        ),
        Ok(2)
    );
    assert_eq!(
        tenant(
            &r,
            &[("authorization", "Bearer s-tok"), ("x-scope-orgid", "prod")]
        ),
        Err(AuthError::TenantMismatch)
    );
    assert_eq!(
        tenant(&r, &[("authorization", "Bearer nope")]),
        Err(AuthError::Unknown)
    );
    assert_eq!(tenant(&r, &[]), Err(AuthError::Missing));
    assert_eq!(
        tenant(&r, &[("x-scope-orgid", "prod")]),
        Err(AuthError::Missing)
    );
}

#[test]
fn rules_in_order_without_auth_required() {
    let r = resolver(false);
    assert_eq!(tenant(&r, &[("authorization", "Bearer p-tok")]), Ok(1));
    assert_eq!(tenant(&r, &[("x-scope-orgid", "stage")]), Ok(2));
    assert_eq!(
        tenant(&r, &[("x-scope-orgid", "nobody")]),
        Err(AuthError::UnknownTenant)
    );
    assert_eq!(tenant(&r, &[("authorization", "Bearer unknown")]), Ok(0));
    assert_eq!(tenant(&r, &[]), Ok(0));
}

#[test]
fn every_token_of_many_tenants_finds_its_own_client() {
    let names: Vec<Arc<str>> = std::iter::once("default".into())
        .chain((0..50).map(|i| format!("t{i}").into()))
        .collect();
    let clients = (0..100)
        .map(|i| {
            let token = format!("token-{i}");
            ClientEntry::new(
                Some(token_hash(token.as_bytes())),
                None,
                1 + i / 2,
                &format!("c{i}"),
                AccessSet::ALL,
                None,
            )
        })
        .collect();
    let r = Resolver::new(names, clients, true);
    for i in 0..100 {
        let bearer = format!("Bearer token-{i}");
        let (tenant, client) = r.resolve(&h(&[("authorization", &bearer)]), None).unwrap();
        assert_eq!(tenant, 1 + i / 2);
        assert_eq!(&*client.unwrap().name, format!("c{i}"));
    }
    let unknown = h(&[("authorization", "Bearer token-100")]);
    assert_eq!(r.resolve(&unknown, None).err(), Some(AuthError::Unknown));
}

#[test]
fn without_tenants_everything_is_default() {
    let r = Resolver::new(vec!["default".into()], vec![], false);
    assert_eq!(
        tenant(
            &r,
            &[("x-scope-orgid", "anything"), ("authorization", "Bearer x")]
        ),
        Ok(0)
    );
}
