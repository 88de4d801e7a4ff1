//! `App`: the whole service without a socket: the config-derived `State`
//! behind an `ArcSwap` (replaced whole on reload), the metrics, the
//! outbound clients kept across reloads, and the background jobs. The
//! request path that runs on it is `stack::inbound`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::{Config, StartupConfig};
use crate::proxy::{ClientSet, RequestIds};
use crate::remote_write::Controller;
use crate::role::Role;
use crate::rules_sync::Syncer;
use crate::state::State;
use crate::telemetry::{unix_now, Metrics};

pub struct App {
    state: ArcSwap<State>,
    /// Every swapped-in state, for open connections and sessions to check
    /// their identities against (`revocation`).
    states: tokio::sync::watch::Sender<Arc<State>>,
    metrics: Arc<Metrics>,
    ids: RequestIds,
    draining: AtomicBool,
    /// Clients live across reloads: unchanged transports keep their pools.
    clients: Mutex<ClientSet>,
    /// The config the process started with: what the start-only keys
    /// still run with, whatever reloads came since.
    started_with: StartupConfig,
    /// Remote-write jobs, reconciled with every config.
    jobs: Controller,
    /// The rules sync task, reconciled with every config.
    rules: Syncer,
    /// What this process runs: a `proxy` never starts jobs or rules sync,
    /// `jobs` gets no proxied routes.
    role: Role,
}

impl App {
    /// Build every client, header value and route once.
    pub fn new(config: Config, role: Role) -> Self {
        let metrics = Arc::new(Metrics::new());
        let mut clients = ClientSet::new();
        let jobs = Controller::new(metrics.clone());
        let rules = Syncer::new(metrics.clone());
        let config = shaped(config, role);
        jobs.reconcile(config.remote_write.as_ref(), &mut clients);
        rules.reconcile(config.rules_sync.as_ref(), &mut clients);
        let started_with = config.startup;
        let state = Arc::new(State::build(config.dynamic, &metrics, &mut clients, None));
        metrics.config_last_success.set(unix_now());
        App {
            state: ArcSwap::new(state.clone()),
            states: tokio::sync::watch::Sender::new(state),
            metrics,
            ids: RequestIds::new(),
            draining: AtomicBool::new(false),
            clients: Mutex::new(clients),
            started_with,
            jobs,
            rules,
            role,
        }
    }

    /// Swap in a new validated config; requests in flight keep the old one.
    pub fn swap(&self, config: Config) {
        let config = shaped(config, self.role);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.state.load_full();
        let start_only = self.started_with.changes(&config.startup);
        if !start_only.is_empty() {
            tracing::warn!(
                keys = %start_only.join(", "),
                "reload: these keys take effect at the next start only; the running values stay"
            );
        }
        self.jobs
            .reconcile(config.remote_write.as_ref(), &mut clients);
        self.rules
            .reconcile(config.rules_sync.as_ref(), &mut clients);
        let state = Arc::new(State::build(
            config.dynamic,
            &self.metrics,
            &mut clients,
            Some(&old),
        ));
        self.state.store(state.clone());
        // Open connections and sessions re-check their identities.
        self.states.send_replace(state);
        // Pools the new state no longer uses go now, unless requests still
        // running on the replaced state hold them (then at a later reload).
        drop(old);
        clients.prune_pools();
        self.metrics.config_last_success.set(unix_now());
    }

    /// The states to come (the current one marked seen).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<State>> {
        self.states.subscribe()
    }

    pub fn current(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// How many upstream pools are open (per transport need, scheme,
    /// authority and protocol).
    pub fn pool_count(&self) -> usize {
        self.clients.lock().map(|c| c.pool_count()).unwrap_or(0)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// From now on /ready answers 503 (shutdown has begun).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The request ids given to requests that bring none.
    pub fn request_ids(&self) -> &RequestIds {
        &self.ids
    }

    /// The remote-write jobs (for /health and the debug endpoints).
    pub fn jobs(&self) -> &Controller {
        &self.jobs
    }

    /// The rules sync task (for /health).
    pub fn rules(&self) -> &Syncer {
        &self.rules
    }

    /// Set once shutdown has begun: /ready answers 503.
    pub fn draining(&self) -> &AtomicBool {
        &self.draining
    }
}

/// `config` as `role` runs it: without the background work for `proxy`,
/// without proxied routes for `jobs` (every proxied path is then a 404 "no
/// route", as the contract says). Both keep everything else, so one config
/// serves every role.
fn shaped(mut config: Config, role: Role) -> Config {
    if !role.runs_jobs() {
        config.remote_write = None;
        config.rules_sync = None;
    }
    if !role.proxies() {
        config.dynamic.routes.clear();
    }
    config
}
