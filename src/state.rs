//! `State`: everything built from one validated config: the route table,
//! the tenant resolver, and per tenant its upstream targets and
//! concurrency slots. A reload builds a new `State` and swaps it in whole;
//! in-flight requests finish on the one they started with.

use std::sync::Arc;

use crate::config::{DynamicConfig, DEFAULT_TENANT};
use crate::kubernetes_auth::keys::Verifier;
use crate::kubernetes_auth::spec::{KeySource, KubernetesAuth};
use crate::proxy::{ClientSet, Target};
use crate::routes::RouteTable;
use crate::telemetry::Metrics;
use crate::tenant::{token_hash, ClientEntry, ClientRate, InFlight, Resolver};

/// The previous state's verifier, when the new config keeps its issuer,
/// audiences and key source (a `jwks_file`'s new keys are taken over, and
/// its cache cleared, when they changed).
fn carried_verifier(previous: Option<&Arc<Verifier>>, k: &KubernetesAuth) -> Option<Arc<Verifier>> {
    let v = previous?;
    let was = v.config();
    if was.issuer != k.issuer || was.audiences != k.audiences {
        return None;
    }
    match (&was.keys, &k.keys) {
        (KeySource::File { path: a, .. }, KeySource::File { path: b, jwks }) if a == b => {
            v.take_file_keys(jwks);
            Some(v.clone())
        }
        (a @ KeySource::Discovery { .. }, b @ KeySource::Discovery { .. }) if a == b => {
            Some(v.clone())
        }
        _ => None,
    }
}

pub struct State {
    /// What a reload may change; the start-only keys are not here.
    pub config: Arc<DynamicConfig>,
    pub table: RouteTable,
    pub resolver: Resolver,
    /// Index 0 is the default tenant (the top-level upstreams).
    pub tenants: Vec<TenantState>,
    /// `1.1 <via_name>`, appended to `Via` on every proxied request.
    pub via: http::HeaderValue,
    /// The global `max_in_flight` slots.
    pub in_flight: Option<Arc<InFlight>>,
    /// ServiceAccount token verification (`[kubernetes_auth]`), carried
    /// across reloads that keep its issuer, audiences and key source kind.
    pub verifier: Option<Arc<Verifier>>,
}

pub struct TenantState {
    pub name: Arc<str>,
    /// Indexed like `table.upstreams()`; `None`: not configured here.
    pub targets: Vec<Option<Arc<Target>>>,
    /// Concurrency slots for writes and for everything else.
    pub write_slots: Option<Arc<InFlight>>,
    pub read_slots: Option<Arc<InFlight>>,
}

impl State {
    /// The request already passed through this proxy (its `Via` names our
    /// `via_name`): forwarding it again would loop.
    pub fn is_loop(&self, headers: &http::HeaderMap) -> bool {
        let ours = self.config.via_name.as_bytes();
        headers
            .get_all(http::header::VIA)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .any(|entry| {
                // `1.1 name`, `HTTP/1.1 name:port (comment)`: the second word.
                let mut words = entry
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty());
                words.next();
                words.next().is_some_and(|received_by| {
                    let host = received_by.split(|b| *b == b':').next().unwrap_or(b"");
                    host.eq_ignore_ascii_case(ours)
                })
            })
    }

    /// Build from `config`, reusing `clients` (and so their pools) for
    /// unchanged transport needs, and keeping the credential age of
    /// targets whose credentials `previous` already had. Limiter state
    /// (the global and tenant in-flight counters, client rate buckets) is
    /// carried on from `previous`, keyed by tenant and client name.
    pub fn build(
        config: DynamicConfig,
        metrics: &Arc<Metrics>,
        clients: &mut ClientSet,
        previous: Option<&State>,
    ) -> State {
        let table = RouteTable::new(&config.routes);
        let mut names: Vec<Arc<str>> = vec![DEFAULT_TENANT.into()];
        let mut tenants = vec![TenantState {
            name: DEFAULT_TENANT.into(),
            targets: targets(
                &table,
                &config.upstreams,
                DEFAULT_TENANT,
                metrics,
                clients,
                previous,
            ),
            write_slots: None,
            read_slots: None,
        }];
        let mut entries = Vec::new();
        for (i, t) in config.tenants.values().enumerate() {
            names.push(t.name.as_str().into());
            for c in &t.clients {
                let rate = c.rate.map(|r| {
                    let before = previous.and_then(|p| p.resolver.client_rate(&t.name, &c.name));
                    ClientRate::carried(before, r)
                });
                entries.push(
                    ClientEntry::new(
                        c.token.as_ref().map(|t| token_hash(t.expose().as_bytes())),
                        c.cert_cn.as_deref(),
                        i + 1,
                        &c.name,
                        c.access,
                        rate,
                    )
                    .with_account(c.service_account.clone()),
                );
            }
            let before = previous.and_then(|p| p.tenants.iter().find(|b| *b.name == *t.name));
            tenants.push(TenantState {
                name: t.name.as_str().into(),
                targets: targets(&table, &t.upstreams, &t.name, metrics, clients, previous),
                write_slots: t
                    .max_in_flight
                    .map(|m| InFlight::carried(before.and_then(|b| b.write_slots.as_ref()), m)),
                read_slots: t
                    .max_in_flight
                    .map(|m| InFlight::carried(before.and_then(|b| b.read_slots.as_ref()), m)),
            });
        }
        let in_flight = config
            .max_in_flight
            .map(|m| InFlight::carried(previous.and_then(|p| p.in_flight.as_ref()), m));
        let resolver = Resolver::new(names, entries, config.require_client_auth);
        let verifier = config.kubernetes_auth.as_ref().map(|k| {
            carried_verifier(previous.and_then(|p| p.verifier.as_ref()), k)
                .unwrap_or_else(|| Verifier::start(k.clone(), metrics.jwks_last_refresh.clone()))
        });
        if verifier.is_none() {
            metrics.jwks_last_refresh.set(0.0);
        }
        // via_name was validated as a token, so this never falls back.
        let via = http::HeaderValue::from_str(&format!("1.1 {}", config.via_name))
            .unwrap_or_else(|_| http::HeaderValue::from_static("1.1 lgtm-proxy"));
        State {
            config: Arc::new(config),
            table,
            resolver,
            tenants,
            via,
            in_flight,
            verifier,
        }
    }

    /// Set `lgtm_proxy_credentials_age_seconds` for every current target.
    pub fn export_credentials_age(&self, metrics: &Metrics) {
        metrics.credentials_age.reset();
        let now = std::time::SystemTime::now();
        for t in &self.tenants {
            for target in t.targets.iter().flatten() {
                if target.credentials_id.is_some() {
                    let age = now
                        .duration_since(target.credentials_since)
                        .unwrap_or_default();
                    metrics
                        .credentials_age
                        .with_label_values(&[&target.name, &t.name])
                        .set(age.as_secs_f64());
                }
            }
        }
    }
}

fn targets(
    table: &RouteTable,
    ups: &std::collections::BTreeMap<String, crate::config::Upstream>,
    tenant: &str,
    metrics: &Arc<Metrics>,
    clients: &mut ClientSet,
    previous: Option<&State>,
) -> Vec<Option<Arc<Target>>> {
    table
        .upstreams()
        .iter()
        .map(|name| {
            ups.get(name).map(|up| {
                let mut target = Target::new(up, tenant, clients.client_for(up), metrics.clone());
                if let Some(old) = previous.and_then(|p| p.target(tenant, name)) {
                    if old.credentials_id == target.credentials_id {
                        target.credentials_since = old.credentials_since;
                    }
                }
                Arc::new(target)
            })
        })
        .collect()
}

impl State {
    fn target(&self, tenant: &str, upstream: &str) -> Option<&Arc<Target>> {
        let t = self.tenants.iter().find(|t| &*t.name == tenant)?;
        let i = self.table.upstreams().iter().position(|u| u == upstream)?;
        t.targets[i].as_ref()
    }
}
