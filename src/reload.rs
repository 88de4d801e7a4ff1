//! Hot reload: on SIGHUP, and when the config file, any secret file it
//! names, a manifest in `remote_write.manifests_dir` or a rule file in
//! `rules_sync.dir` changes. Files are
//! polled by content every `watch_interval` on the blocking pool (Kubernetes updates Secret mounts by swapping a
//! `..data` symlink, which content polling sees and mtimes may not). A
//! valid new config is swapped in whole; an invalid one leaves the current
//! config serving, is logged and counted. Credential files fail one way
//! each: a client's that can't be used (empty, comment-only, unreadable,
//! deleted, not a regular file, too large) revokes its tokens while the rest
//! reloads; an upstream's keeps its last good token. Files are only ever
//! read up to a bound, and never when they are not regular files (a FIFO
//! would hold the watcher).

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

use crate::app::App;
use crate::config;

/// Register the SIGHUP handler now (so a SIGHUP right after start reloads
/// instead of killing the process), take the files' baseline now (before
/// the listener is announced, so a change made once the proxy serves is
/// always seen as one), and return the watch loop to spawn.
pub async fn watch(
    app: Arc<App>,
    config_path: Option<PathBuf>,
) -> std::io::Result<impl Future<Output = ()>> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut last = fingerprint(app.current().config.watched_files.clone()).await;
    Ok(async move {
        loop {
            let interval = app.current().config.watch_interval;
            let by_signal = tokio::select! {
                _ = hangup.recv() => true,
                _ = tokio::time::sleep(interval) => false,
            };
            let now = fingerprint(app.current().config.watched_files.clone()).await;
            if !by_signal && now == last {
                continue;
            }
            last = now;
            reload(
                &app,
                config_path.clone(),
                if by_signal { "signal" } else { "file change" },
            )
            .await;
        }
    })
}

/// Load, validate and swap in the config. Returns whether it succeeded.
pub async fn reload(app: &App, config_path: Option<PathBuf>, trigger: &'static str) -> bool {
    let previous = app.current().config.clone();
    let loaded =
        tokio::task::spawn_blocking(move || config::load_reload(config_path.as_deref(), &previous))
            .await;
    match loaded {
        Ok(Ok((cfg, warnings))) => {
            for warning in &warnings {
                tracing::warn!(trigger, %warning, "config reloaded with a credential file that can't be used");
            }
            app.swap(cfg);
            app.metrics()
                .config_reloads
                .with_label_values(&["success"])
                .inc();
            tracing::info!(trigger, "config reloaded");
            true
        }
        Ok(Err(errors)) => {
            app.metrics()
                .config_reloads
                .with_label_values(&["failure"])
                .inc();
            for problem in &errors.0 {
                tracing::warn!(trigger, %problem, "config reload failed; the current config keeps serving");
            }
            false
        }
        Err(e) => {
            app.metrics()
                .config_reloads
                .with_label_values(&["failure"])
                .inc();
            tracing::error!(trigger, error = %e, "config reload task failed");
            false
        }
    }
}

/// Config, manifest and rule files are hashed whole up to this size; a
/// larger one (or a FIFO, a directory) by its size and mtime.
const WATCHED_FILE_LIMIT: u64 = 16 << 20;

fn hash_file(f: &std::path::Path, h: &mut DefaultHasher) {
    f.hash(h);
    match config::read_bounded(f, WATCHED_FILE_LIMIT) {
        Ok(text) => text.hash(h),
        // The reason (not regular, too large, missing) and what can be
        // seen without reading: a change of either is a change.
        Err(why) => {
            why.hash(h);
            if let Ok(meta) = std::fs::metadata(f) {
                meta.len().hash(h);
                meta.modified().ok().hash(h);
            }
        }
    }
}

/// A fingerprint of the files' names and contents (read off the runtime);
/// a directory stands for the YAML files in it.
async fn fingerprint(files: Vec<PathBuf>) -> u64 {
    tokio::task::spawn_blocking(move || fingerprint_now(&files))
        .await
        .unwrap_or(0)
}

fn fingerprint_now(files: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for f in files {
        if f.is_dir() {
            // A manifests directory: its YAML files, by name and content.
            for file in crate::yaml_dir::yaml_files(f).unwrap_or_default() {
                hash_file(&file, &mut h);
            }
        } else {
            hash_file(f, &mut h);
        }
    }
    h.finish()
}
