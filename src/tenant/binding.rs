//! Namespace binding: which tenant a team-written resource (a MetricAccess
//! manifest, a PrometheusRule) may act for. Such a resource carries a
//! Kubernetes namespace and is trusted only for it: `[tenants.<t>]
//! namespaces` lists the namespaces whose resources may act for `t`.

use std::collections::BTreeMap;

use crate::config::{Tenant, DEFAULT_TENANT};

/// Why a resource may not act for the tenant it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("names tenant {named:?}, but no tenant lists namespace {namespace} in its namespaces: resources there act for the default tenant only")]
    Unlisted { named: String, namespace: String },
    #[error("names tenant {named:?}, but namespace {namespace} may act only for {}", allowed.join(", "))]
    NotAllowed {
        named: String,
        namespace: String,
        allowed: Vec<String>,
    },
    #[error("namespace {namespace} is listed by tenants {}: name one of them", listing.join(", "))]
    Ambiguous {
        namespace: String,
        listing: Vec<String>,
    },
}

/// The tenant a resource in `namespace` acts for, given the tenant it names
/// (if any): the one tenant that lists the namespace; when several do, the
/// one named, which must be among them; when none does, the default tenant
/// only. Naming any other tenant is refused (the message says why, never a
/// secret).
pub fn acting_tenant(
    namespace: &str,
    named: Option<&str>,
    tenants: &BTreeMap<String, Tenant>,
) -> Result<String, BindingError> {
    let listing: Vec<&str> = tenants
        .values()
        .filter(|t| t.namespaces.iter().any(|n| n == namespace))
        .map(|t| t.name.as_str())
        .collect();
    match (listing.as_slice(), named) {
        ([], None) => Ok(DEFAULT_TENANT.to_string()),
        ([], Some(DEFAULT_TENANT)) => Ok(DEFAULT_TENANT.to_string()),
        ([], Some(t)) => Err(BindingError::Unlisted {
            named: t.to_string(),
            namespace: namespace.to_string(),
        }),
        ([only], None) => Ok(only.to_string()),
        (_, Some(t)) if listing.contains(&t) => Ok(t.to_string()),
        (_, Some(t)) => Err(BindingError::NotAllowed {
            named: t.to_string(),
            namespace: namespace.to_string(),
            allowed: listing.iter().map(|s| s.to_string()).collect(),
        }),
        (_, None) => Err(BindingError::Ambiguous {
            namespace: namespace.to_string(),
            listing: listing.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(list: &[(&str, &[&str])]) -> BTreeMap<String, Tenant> {
        list.iter()
            .map(|(name, namespaces)| {
                (
                    name.to_string(),
                    Tenant {
                        name: name.to_string(),
                        upstreams: BTreeMap::new(),
                        clients: Vec::new(),
                        client_tokens_file: None,
                        max_in_flight: None,
                        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_namespace_acts_only_for_the_tenants_that_list_it() {
        let t = tenants(&[
            ("stage", &["team-a", "shared"]),
            ("prod", &["team-b", "shared"]),
            ("other", &[]),
        ]);
        let ok = |ns, named| acting_tenant(ns, named, &t);
        assert_eq!(ok("team-a", None).unwrap(), "stage");
        assert_eq!(ok("team-a", Some("stage")).unwrap(), "stage");
        assert!(ok("team-a", Some("prod"))
            .unwrap_err()
            .to_string()
            .contains("only for stage"));
        assert!(ok("team-a", Some("default")).is_err());
        assert!(ok("team-a", Some("other")).is_err());
        // Listed by two: the one named, and no third.
        assert_eq!(ok("shared", Some("prod")).unwrap(), "prod");
        assert_eq!(ok("shared", Some("stage")).unwrap(), "stage");
        assert!(ok("shared", Some("other")).is_err());
        assert_eq!(
            ok("shared", None).unwrap_err(),
            BindingError::Ambiguous {
                namespace: "shared".into(),
                listing: vec!["prod".into(), "stage".into()]
            }
        );
        // Listed by none: the default tenant only.
        assert_eq!(ok("team-z", None).unwrap(), "default");
        assert_eq!(ok("team-z", Some("default")).unwrap(), "default");
        assert!(ok("team-z", Some("stage")).is_err());
        // A namespace named like a tenant gains nothing from the name.
        assert!(ok("stage", Some("stage")).is_err());
        assert_eq!(ok("stage", None).unwrap(), "default");
    }
}
