//! Shared by the YAML targets: one directory per process, as Kubernetes
//! mounts a ConfigMap, and the config that points at it.

use std::path::PathBuf;
use std::sync::OnceLock;

/// A directory under /dev/shm when there is one (no disk I/O per input).
pub fn dir() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let d = DIR.get_or_init(|| {
        let base = std::path::Path::new("/dev/shm");
        if base.is_dir() {
            tempfile::tempdir_in(base)
        } else {
            tempfile::tempdir()
        }
        .expect("a temporary directory")
    });
    // Keep the path alive with the TempDir (dropped at exit only).
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| d.path().to_path_buf())
}

/// Replace the directory's one YAML file with `text`.
pub fn write_only_file(name: &str, text: &[u8]) {
    std::fs::write(dir().join(name), text).expect("write the fuzz input");
}

/// The tenants both targets bind namespaces to.
pub const TENANTS: &str = r#"
    [upstreams.prometheus]
    url = "http://127.0.0.1:9/api/prom"
    user = "1"
    token = "fuzz-upstream-token"
    [tenants.stage]
    namespaces = ["team-a", "shared"]
    [tenants.stage.upstreams.prometheus]
    user = "2"
    [tenants.prod]
    namespaces = ["team-b", "shared"]
    [tenants.prod.upstreams.prometheus]
    user = "3"
"#;
