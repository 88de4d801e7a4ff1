//! The `lgtm-proxy` binary: CLI, config load and validation before the
//! runtime starts, then serve. Exit codes: 0 clean, 78 invalid config
//! (EX_CONFIG), 1 runtime failure (e.g. the listen address is taken).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use lgtm_proxy::role::Role;
use lgtm_proxy::{alertmanager_config, config, proxy, reload, rules_sync, server, telemetry, App};

const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "lgtm-proxy",
    version,
    about = "Credential-injecting reverse proxy for Grafana Cloud LGTM"
)]
struct Cli {
    /// TOML config file. Without it no file is read: env alone is enough.
    #[arg(long, global = true, env = "LGTM_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// What `serve` runs: all (routes and background work), proxy (routes
    /// only) or jobs (remote-write jobs and rules sync, own endpoints only).
    #[arg(
        long,
        global = true,
        env = "LGTM_ROLE",
        default_value = "all",
        value_name = "ROLE"
    )]
    role: Role,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Load and validate the config, then serve (the default).
    Serve,
    /// Load and validate the config, print it (secrets redacted), exit.
    CheckConfig,
    /// Sync the rule files of `[rules_sync]` to every tenant's ruler once,
    /// print what was done, exit (0 in sync, 78 invalid rule files, 1 a
    /// ruler unreachable or refusing).
    RulesSync {
        /// Only read each ruler (GET) and print the plan.
        #[arg(long)]
        dry_run: bool,
    },
    /// A tenant's Alertmanager configuration (Mimir's /api/v1/alerts).
    AlertmanagerConfig {
        #[command(subcommand)]
        action: AmAction,
    },
}

#[derive(Subcommand)]
enum AmAction {
    /// Check FILE (an Alertmanager config, or Mimir's body) and POST it to
    /// the tenant's Alertmanager with its credentials (0 accepted, 78
    /// invalid, 1 refused or unreachable).
    Push {
        file: PathBuf,
        /// The tenant whose alertmanager upstream gets it (`default`: the
        /// top level).
        #[arg(long, default_value = config::DEFAULT_TENANT)]
        tenant: String,
        /// A template file to send along (repeatable).
        #[arg(long = "template", value_name = "FILE")]
        templates: Vec<PathBuf>,
        /// Only check and print what would be sent.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("lgtm-proxy: invalid config:");
            for line in &errors.0 {
                eprintln!("  {line}");
            }
            return ExitCode::from(EX_CONFIG);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print!("{}", config::render_effective(&cfg));
            for warning in config::config_warnings(&cfg) {
                eprintln!("lgtm-proxy: warning: {warning}");
            }
            // `serve` runs without an invalid manifest or rule file; a check
            // fails on them.
            let manifests = cfg
                .remote_write
                .as_ref()
                .map(|rw| rw.manifest_problems.as_slice())
                .unwrap_or_default();
            let rules = cfg
                .rules_sync
                .as_ref()
                .map(|rs| rs.problems.as_slice())
                .unwrap_or_default();
            let mut ok = true;
            for (what, problems) in [("MetricAccess manifests", manifests), ("rule files", rules)] {
                if !problems.is_empty() {
                    ok = false;
                    eprintln!("lgtm-proxy: invalid {what} (serve skips them):");
                    for line in problems {
                        eprintln!("  {line}");
                    }
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EX_CONFIG)
            }
        }
        Command::RulesSync { dry_run } => rules_sync(&cfg, dry_run),
        Command::AlertmanagerConfig {
            action:
                AmAction::Push {
                    file,
                    tenant,
                    templates,
                    dry_run,
                },
        } => alertmanager_push(&cfg, &file, &tenant, &templates, dry_run),
        Command::Serve => serve(cfg, cli.config, cli.role),
    }
}

/// Run a one-shot command's work on a single-threaded runtime.
fn block_on<F: std::future::Future>(work: F) -> Result<F::Output, ExitCode> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Ok(r.block_on(work)),
        Err(e) => {
            eprintln!("lgtm-proxy: cannot start the runtime: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn alertmanager_push(
    cfg: &config::Config,
    file: &std::path::Path,
    tenant: &str,
    templates: &[PathBuf],
    dry_run: bool,
) -> ExitCode {
    let upstreams = if tenant == config::DEFAULT_TENANT {
        Some(&cfg.upstreams)
    } else {
        cfg.tenants.get(tenant).map(|t| &t.upstreams)
    };
    let Some(up) = upstreams.and_then(|u| u.get("alertmanager")) else {
        eprintln!("lgtm-proxy: tenant {tenant} does not exist or has no alertmanager upstream");
        return ExitCode::from(EX_CONFIG);
    };
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| format!("{}: cannot read: {}", p.display(), e.kind()))
    };
    let mut files = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    for t in templates {
        match read(t) {
            Ok(text) => {
                let name = t.file_name().map(|n| n.to_string_lossy().into_owned());
                files.insert(name.unwrap_or_default(), text);
            }
            Err(e) => problems.push(e),
        }
    }
    let body = read(file).and_then(|text| {
        alertmanager_config::prepare(&text, files).map_err(|p| {
            p.iter()
                .map(|l| format!("{}: {l}", file.display()))
                .collect::<Vec<_>>()
                .join("\n  ")
        })
    });
    let body = match body {
        Ok(b) if problems.is_empty() => b,
        Ok(_) => {
            eprintln!("lgtm-proxy: {}", problems.join("\n  "));
            return ExitCode::from(EX_CONFIG);
        }
        Err(e) => {
            eprintln!("lgtm-proxy: invalid Alertmanager config:\n  {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if dry_run {
        println!(
            "tenant {tenant}: valid; would POST to {}{} ({} template file(s))",
            up.url(),
            alertmanager_config::CONFIG_PATH,
            body.template_files.len()
        );
        return ExitCode::SUCCESS;
    }
    let pushed = match block_on(async {
        alertmanager_config::push(&mut proxy::ClientSet::new(), up, &body).await
    }) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match pushed {
        Ok(said) => {
            println!("tenant {tenant}: Alertmanager configuration accepted ({said})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lgtm-proxy: tenant {tenant}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rules_sync(cfg: &config::Config, dry_run: bool) -> ExitCode {
    let Some(rs) = &cfg.rules_sync else {
        eprintln!("lgtm-proxy: the config has no [rules_sync] table");
        return ExitCode::from(EX_CONFIG);
    };
    let reports = match block_on(async {
        let active = rules_sync::syncer::Active::new(rs, &mut proxy::ClientSet::new());
        rules_sync::syncer::pass(&active, dry_run).await
    }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    for r in &reports {
        print!("{r}");
    }
    if !rs.problems.is_empty() {
        eprintln!("lgtm-proxy: invalid rule files (skipped; their groups are left as they are):");
        for line in &rs.problems {
            eprintln!("  {line}");
        }
        return ExitCode::from(EX_CONFIG);
    }
    let mut ok = true;
    for r in reports.iter().filter(|r| !r.ok()) {
        ok = false;
        match &r.unreachable {
            Some(e) => eprintln!(
                "lgtm-proxy: tenant {}: {} ruler unreachable: {e}",
                r.tenant,
                r.ruler.as_str()
            ),
            None => eprintln!(
                "lgtm-proxy: tenant {}: {} ruler: {} change(s) failed",
                r.tenant,
                r.ruler.as_str(),
                r.failed.len()
            ),
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn serve(cfg: config::Config, config_path: Option<PathBuf>, role: Role) -> ExitCode {
    // tokio reads TOKIO_WORKER_THREADS itself.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lgtm-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        telemetry::logging::init(&cfg.startup.log, cfg.startup.log_format);
        for warning in config::config_warnings(&cfg) {
            tracing::warn!(%warning, "config");
        }
        let app = Arc::new(App::new(cfg.clone(), role));
        let listener = match tokio::net::TcpListener::bind(cfg.startup.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listen = %cfg.startup.listen, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            role = %role,
            upstreams = ?cfg.upstreams.keys().collect::<Vec<_>>(),
            pools = app.pool_count(),
            "lgtm-proxy starting"
        );
        if let Some(admin) = cfg.startup.admin_listen {
            match tokio::net::TcpListener::bind(admin).await {
                Ok(l) => {
                    tokio::spawn(server::serve_admin(app.clone(), l));
                }
                Err(e) => {
                    tracing::error!(admin_listen = %admin, error = %e, "cannot listen");
                    return ExitCode::FAILURE;
                }
            }
        }
        // Signal handlers are registered before the listener is announced.
        match reload::watch(app.clone(), config_path).await {
            Ok(watcher) => {
                tokio::spawn(watcher);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch for reloads");
                return ExitCode::FAILURE;
            }
        }
        match server::run(&cfg, app, listener).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}
